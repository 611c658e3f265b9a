"""AdaFocus and AdaFocus+ (seed 002) behind the streaming adapter, with a batch axis.

Streaming (``stream``, batch 1, the paper's latency): each frame runs f_G ("glance"), the
policies ("policy": pi picks a patch, pi' decides whether f_L runs), f_L on the patch ("focus")
and f_C ("classify"); the prediction after step t is the softmax of f_C's logits (online,
Fig. 6) and the video's is the last step's (offline, sec. 3.4). ``offline`` (batch N, the
paper's throughput) runs ``AdaFocus.forward`` on N whole videos: f_G on all frames at once,
the recurrent policies, f_L on all kept patches at once, then f_C.

Scale presets: ``scale=toy`` (MobileNetV2 x0.5, ResNet-18, GRU 256, the dataset's frames, a
patch of 3/7 of the frame side like P = 96 at 224) trains in minutes on a CPU; ``scale=mini``
(MobileNetV2 x0.25, ``resnet10-mini``, GRU 128, a patch of half the side, dropout 0.5, Adam
3e-3 with a warm-up + cosine schedule, 6 + 1 + 1 epochs; 7 for the supervised models) is the CPU demo's, sized so that it learns on the
small synthaction within the demo's budget (README, "Recognition (seed 002)"); ``scale=paper``
is sec. 4.1's architecture (MobileNetV2, ResNet-50, GRU 1024, P = 128 at 224).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Literal

import torch
from vidbench.api import Frame, Method, RecognitionPrediction, VideoInfo, Workspace
from vidbench.methods.recognition.adafocus import AdaFocus, AdaFocusConfig, StreamState, solve_rho
from vidbench.methods.recognition.policies import choose_fixed
from vidbench.methods.recognition.train_clips import (
    EpochBatches,
    TrainClips,
    clip_batch,
    train_clips,
)
from vidbench.methods.recognition.training import (
    PPO_EPOCHS,
    Logs,
    PPOOptions,
    TrainOptions,
    train_adafocus,
    train_warmup,
    warmup_key,
)
from vidbench.methods.recognition.weights import load_backbone, weights_key

Scale = Literal["toy", "mini", "paper"]
PRESETS: dict[str, dict[str, Any]] = {
    "toy": {
        "global_width": 0.5,
        "local_arch": "resnet18",
        "hidden": 256,
        "patch_ratio": 3 / 7,
        "stage_epochs": (4, 2, 2),
        "lr": 1e-3,
        "dropout": 0.8,
        "schedule": "constant",
    },
    "mini": {
        "global_width": 0.25,
        "local_arch": "resnet10-mini",
        "hidden": 128,
        "patch_ratio": 1 / 2,
        "stage_epochs": (6, 1, 1),
        "lr": 3e-3,
        "dropout": 0.5,
        "schedule": "cosine",
    },
    "paper": {
        "global_width": 1.0,
        "local_arch": "resnet50",
        "hidden": 1024,
        "patch_ratio": 4 / 7,
        "stage_epochs": (50, 50, 10),
        "lr": 1e-3,
        "dropout": 0.8,
        "schedule": "constant",
    },
}


def train_options(
    options: Any, seed: int, device: str, steps_per_epoch: int = 0, **variants: Any
) -> TrainOptions:
    """The preset's epochs per stage, learning rate and schedule, unless ``options`` override
    them; ``steps_per_epoch`` (batches per epoch) lets a cosine schedule know its length.
    ``options.ppo_epochs`` / ``options.stage3_sampling``, where the method has them, set
    PPO's K and how stage III draws pi's patches."""
    preset = PRESETS[options.scale]
    epochs = (options.epochs,) * 3 if options.epochs else preset["stage_epochs"]
    extra: dict[str, Any] = {}
    if getattr(options, "ppo_epochs", 0):
        extra["ppo"] = PPOOptions(epochs=options.ppo_epochs)
    if hasattr(options, "stage3_sampling"):
        extra["sample_finetune"] = options.stage3_sampling == "sample"
    return TrainOptions(
        stage_epochs=epochs,
        epochs=epochs[0] + epochs[2],  # supervised models: the epochs that train backbones
        lr=options.lr or preset["lr"],
        seed=seed,
        device=device,
        lr_schedule=preset["schedule"],
        steps_per_epoch=steps_per_epoch,
        **{**extra, **variants},
    )


def steps_per_epoch(clips: TrainClips, batch: int) -> int:
    """Batches per epoch of ``clips`` at ``batch`` videos each."""
    return -(-len(clips) // batch)


def probabilities(logits: torch.Tensor) -> torch.Tensor:
    """Class scores as the task wants them: softmax probabilities, float32 on the CPU."""
    return logits.float().softmax(dim=-1).cpu()


def video_seed(name: str, seed: int) -> int:
    """A per-video seed for fixed random policies, the same in stream and offline runs."""
    return seed * 1_000_003 + zlib.crc32(name.encode())


@dataclass(frozen=True)
class AdaFocusOptions:
    """``policy``: learned pi or a fixed one (Table 5); ``reward``: Eq. 7 or a variant
    (Table 5); ``stage3``: fine-tune f_L and f_C or f_C only; ``stage3_sampling``: patches
    drawn from pi in stage III (sec. 3.2) or its argmax (the public code); ``ppo_epochs``: PPO
    updates per batch (``PPO_EPOCHS``; 1 = the public code, whose clip then never acts);
    ``patch`` 0 = the preset's."""

    scale: Scale = "toy"
    patch: int = 0
    candidates: int = 49
    policy: Literal["learned", "random", "central", "gaussian"] = "learned"
    reward: Literal["eq7", "confidence", "increments"] = "eq7"
    reuse_global: bool = True
    stage3: Literal["local+classifier", "classifier"] = "local+classifier"
    stage3_sampling: Literal["sample", "argmax"] = "sample"  # pi in stage III (paper: sample)
    ppo_epochs: int = PPO_EPOCHS  # K of PPO per batch (paper: off-the-shelf PPO; public: 1)
    epochs: int = 0  # 0 = the preset's epochs per stage
    batch: int = 16
    lr: float = 0.0  # 0 = the preset's
    global_weights: str = ""  # torchvision ImageNet MobileNetV2 file for f_G (sec. 4.1)
    local_weights: str = ""  # torchvision ImageNet ResNet file for f_L


@dataclass(frozen=True)
class AdaFocusPlusOptions(AdaFocusOptions):
    """AdaFocus+ (sec. 3.3): keep the top ``eta`` of frames for f_L; ``penalty`` is lambda."""

    eta: float = 0.7
    penalty: float = 1e-6


class AdaFocusMethod(Method):
    """``adafocus``: the learned-policy model of sec. 3.1 (or a Table 5 fixed policy)."""

    name = "adafocus"
    task = "recognition"
    components = ("glance", "policy", "focus", "classify")
    Config: ClassVar[type] = AdaFocusOptions
    smoke = {"epochs": "1", "candidates": "25"}
    uses_keyframes = False
    online: ClassVar[bool] = True
    skip_policy: ClassVar[bool] = False
    inference_only: ClassVar[tuple[str, ...]] = ()  # options that leave the weights unchanged

    def __init__(self, config: AdaFocusOptions, workspace: Workspace) -> None:
        super().__init__(config, workspace)
        self.seed = workspace.seed
        self.workspace = workspace
        first = workspace.train_videos()[0].info
        self.model, self.rho = self._build((first.height, first.width))
        self.state = StreamState()
        self.last: torch.Tensor | None = None
        self.info: VideoInfo | None = None

    def _network(self, frame_size: tuple[int, int]) -> AdaFocusConfig:
        c = self.config
        preset = PRESETS[c.scale]
        patch = c.patch or int(round(min(frame_size) * preset["patch_ratio"] / 8) * 8)
        return AdaFocusConfig(
            num_classes=self.workspace.num_classes,
            patch=patch,
            num_candidates=c.candidates,
            reuse_global=c.reuse_global,
            skip_policy=self.skip_policy,
            frame_size=frame_size,
            global_width=preset["global_width"],
            local_arch=preset["local_arch"],
            hidden=preset["hidden"],
            dropout=preset["dropout"],
        )

    def _build(self, frame_size: tuple[int, int]) -> tuple[AdaFocus, float | None]:
        """The network for ``frame_size``, trained (or loaded from the checkpoint cache), and
        AdaFocus+'s threshold rho (solved for this ``eta`` from the keep probabilities stored
        with the weights: one trained model serves every eta, as sec. 3.3 varies it)."""
        network = self._network(frame_size)
        model = AdaFocus(network)
        options = asdict(self.config)
        for name in self.inference_only:
            options.pop(name)
        key = {
            "network": asdict(network),
            "options": options,
            "init": weights_key(self.config.global_weights, self.config.local_weights),
            "seed": self.seed,
        }
        path = self.workspace.checkpoint(
            self.name, key, lambda out: self._train(model, network, out)
        )
        saved = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(saved["model"])
        rho = solve_rho(saved["keep_probs"], self.config.eta) if self.skip_policy else None
        return model.eval(), rho

    def _train(self, model: AdaFocus, network: AdaFocusConfig, out: Any) -> None:
        """The three stages of sec. 3.2 on the train split (on a GPU when there is one), stage I
        from the cache that the rows sharing it (Table 5's policies and rewards) fill once;
        AdaFocus+ also stores its train frames' keep probabilities, from which rho is solved."""
        clips = train_clips(self.workspace.train_videos())
        c = self.config
        if c.global_weights:
            load_backbone(model.global_cnn, c.global_weights, "mobilenet_v2")
        if c.local_weights:
            load_backbone(model.local_cnn.net, c.local_weights, "resnet")
        device = "cuda" if torch.cuda.is_available() else "cpu"
        options = train_options(
            c,
            self.seed,
            device,
            steps_per_epoch(clips, c.batch),
            policy_kind=c.policy,
            reward=c.reward,
            skip_lambda=getattr(c, "penalty", 0.0),
            finetune_local=c.stage3 == "local+classifier",
        )
        warmup_cache = {
            "network": asdict(network),
            "init": weights_key(c.global_weights, c.local_weights),
            "batch": c.batch,
            "train": warmup_key(options),
        }
        train_adafocus(
            model.to(device),
            clips.batches(c.batch, self.seed),
            options,
            lambda *args: self._cached_warmup(warmup_cache, *args),
        )
        model.cpu()
        saved: dict[str, Any] = {"model": model.state_dict()}
        if self.skip_policy:
            saved["keep_probs"] = self._keep_probabilities(model, clips)
        torch.save(saved, out)

    def _cached_warmup(
        self, key: dict[str, Any], model: AdaFocus, batches: EpochBatches, options: TrainOptions
    ) -> tuple[AdaFocus, Logs]:
        """Stage I, trained once per ``key`` and loaded for every row that shares it, with the
        batches' generator where stage I left it (so the later stages draw what they would
        have drawn after training it here)."""

        def build(out: Any) -> None:
            train_warmup(model, batches, options)
            torch.save({"model": model.state_dict(), "batches": batches.state()}, out)

        path = self.workspace.checkpoint("adafocus-stage1", key, build, intermediate=True)
        saved = torch.load(path, map_location=options.device, weights_only=True)
        model.load_state_dict(saved["model"])
        batches.restore(saved["batches"].cpu())
        return model.to(options.device).train(), {}

    def _keep_probabilities(self, model: AdaFocus, clips: TrainClips) -> torch.Tensor:
        """pi' keep probabilities of every train frame (sec. 3.3 solves rho on them)."""
        model.eval()
        with torch.no_grad():
            probs = [
                model(video, actions=self._fixed_actions(video.shape[:2], None))["keep_prob"]
                for video, _ in clips.batches(self.config.batch, self.seed, augment=False)()
            ]
        return torch.cat([p.flatten() for p in probs])

    def _fixed_actions(
        self, shape: torch.Size | tuple[int, int], names: Sequence[str] | None
    ) -> torch.Tensor | None:
        """Patch choices of a fixed policy (Table 5) for (B, T) steps, or None for pi's."""
        if self.config.policy == "learned":
            return None
        batch, steps = shape
        rows = []
        for b in range(batch):
            name = names[b] if names is not None else str(b)
            generator = torch.Generator().manual_seed(video_seed(name, self.seed))
            rows.append(
                choose_fixed(self.config.policy, 1, self.config.candidates, generator, steps)[0]
            )
        return torch.stack(rows)

    def modules(self) -> dict[str, torch.nn.Module]:
        m = self.model
        parts = {"glance": m.global_cnn, "policy": m.policy, "focus": m.local_cnn}
        if m.keep_policy is not None:
            parts["keep_policy"] = m.keep_policy
        return {**parts, "classify": torch.nn.ModuleList([m.classifier_gru, m.fc])}

    def start(self, video: VideoInfo) -> None:
        self.state = StreamState()
        self.last = None
        self.info = video
        actions = self._fixed_actions((1, video.num_frames), [video.name])
        self.actions = None if actions is None else actions[0].to(self.device)

    def step(self, frame: Frame) -> list[RecognitionPrediction]:
        model, image = self.model, frame.image[None]
        with self.meter("glance"):
            global_map = model.global_cnn(image)
        with self.meter("policy"):
            logits, policy_hidden = model.policy(global_map, self.state.policy)
            given = None if self.actions is None else self.actions[frame.index : frame.index + 1]
            action = model.choose(logits, given)
            keep, keep_hidden = self._keep(global_map)
        if bool(keep.any()):
            with self.meter("focus"):
                local = model.local_features(image, action, keep)
        else:
            local = image.new_zeros(1, model.local_cnn.out_channels)
        with self.meter("classify"):
            class_logits, classifier_hidden = model.classify_step(
                global_map, local, self.state.classifier
            )
        self.state = StreamState(policy_hidden, keep_hidden, classifier_hidden)
        self.last = probabilities(class_logits[0])
        meta = {"patch": int(action[0]), "focused": bool(keep[0])}
        return [RecognitionPrediction(frame.index, self.last, meta)]

    def _keep(self, global_map: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Whether f_L runs on this frame (AdaFocus+: p >= rho) and pi's new hidden state."""
        keep = torch.ones(1, dtype=torch.bool, device=global_map.device)
        if self.model.keep_policy is None:
            return keep, None
        keep_logit, hidden = self.model.keep_policy(global_map, self.state.keep)
        return torch.sigmoid(keep_logit.squeeze(1)) >= self.rho, hidden

    def finish(self) -> list[RecognitionPrediction]:
        if self.last is None:
            return []
        return [RecognitionPrediction(None, self.last, {"steps": self.info.num_frames})]

    def offline(
        self, clips: Sequence[tuple[VideoInfo, Sequence[Frame]]]
    ) -> list[list[RecognitionPrediction]]:
        """N whole videos through ``AdaFocus.forward`` at once (sec. 3.4)."""
        video = clip_batch(clips)
        if video is None:
            return super().offline(clips)
        actions = self._fixed_actions(video.shape[:2], [info.name for info, _ in clips])
        if actions is not None:
            actions = actions.to(video.device)
        out = self.model(video, actions=actions, rho=self.rho)
        scores = probabilities(out["logits"])
        predictions = []
        for b, (info, frames) in enumerate(clips):
            steps = [
                RecognitionPrediction(
                    frame.index,
                    scores[b, t],
                    {"patch": int(out["actions"][b, t]), "focused": bool(out["kept"][b, t])},
                )
                for t, frame in enumerate(frames)
            ]
            steps.append(RecognitionPrediction(None, scores[b, -1], {"steps": len(frames)}))
            predictions.append(steps)
        return predictions


class AdaFocusPlusMethod(AdaFocusMethod):
    """``adafocus+`` (sec. 3.3): pi' skips f_L on the frames below rho; rho keeps the top
    ``eta`` of the train frames."""

    name = "adafocus+"
    Config: ClassVar[type] = AdaFocusPlusOptions
    skip_policy = True
    inference_only = ("eta",)
