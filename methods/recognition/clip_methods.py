"""Table 3's clip models (``tsm``, ``tsm+``, ``adafocus-tsm``, seed 002 sec. 4.2) and Fig. 6's
online baselines (``r50-avg``, ``r50-gru``) behind the streaming adapter, with a batch axis.

The TSM family sees the whole clip at once (the temporal shift mixes neighbouring frames), so
in a stream it holds the frames and predicts at the end: every fed frame then carries the video's
scores (``meta["video_level"]``, not scored online) and the delay is measured. The baselines
predict after each frame: ``r50-avg`` the running mean of frame-wise logits, ``r50-gru`` a GRU
over frame features. ``offline`` runs the same networks on N clips at once.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import nn
from vidbench.api import Frame, Method, RecognitionPrediction, VideoInfo, Workspace
from vidbench.methods.recognition.adafocus import BaselineConfig, FrameAverage, FrameGRU
from vidbench.methods.recognition.adafocus_method import (
    PRESETS,
    Scale,
    probabilities,
    steps_per_epoch,
    train_options,
    video_seed,
)
from vidbench.methods.recognition.policies import fixed_locations
from vidbench.methods.recognition.train_clips import TrainClips, clip_batch, train_clips
from vidbench.methods.recognition.training import (
    PPO_EPOCHS,
    frame_indices,
    split_glance_focus,
    train_adafocus_tsm,
    train_supervised,
)
from vidbench.methods.recognition.tsm import TSM, AdaFocusTSM, TSMConfig, TSMPlus


@dataclass(frozen=True)
class ClipOptions:
    """``scale`` as for adafocus; 8 glance frames (and 12 distinct focus frames for
    adafocus-tsm), each the segment centres of the fed clip, which must hold at least as many
    frames; ``epochs``/``lr`` 0 = the preset's."""

    scale: Scale = "toy"
    glance_frames: int = 8
    focus_frames: int = 12
    epochs: int = 0
    batch: int = 16
    lr: float = 0.0


@dataclass(frozen=True)
class AdaFocusTSMOptions(ClipOptions):
    """``patch`` 0 = the preset's share of the frame side (160/224 at paper scale);
    ``location``: pi categorical over ``candidates`` (the paper's, sec. 4.2) or the public
    code's Gaussian; ``stage3_sampling`` and ``ppo_epochs`` as for adafocus."""

    patch: int = 0
    candidates: int = 49
    location: Literal["categorical", "gaussian"] = "categorical"
    policy: Literal["learned", "random", "central", "gaussian"] = "learned"
    reward: Literal["eq7", "confidence", "increments"] = "eq7"
    stage3_sampling: Literal["sample", "argmax"] = "sample"
    ppo_epochs: int = PPO_EPOCHS


def build_and_train(
    method: Method, workspace: Workspace, model: nn.Module, key: dict[str, Any], train: Any
) -> nn.Module:
    """``model`` with weights from the checkpoint cache, trained by ``train(model, clips)``
    on the train split when missing (on a GPU when there is one)."""

    def build(out: Any) -> None:
        clips = train_clips(workspace.train_videos())
        device = "cuda" if torch.cuda.is_available() else "cpu"
        train(model.to(device), clips, device)
        torch.save({"model": model.cpu().state_dict()}, out)

    path = workspace.checkpoint(method.name, {**key, "seed": workspace.seed}, build)
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True)["model"])
    return model.eval()


def frame_size(workspace: Workspace) -> tuple[int, int]:
    info = workspace.train_videos()[0].info
    return info.height, info.width


class ClipMethod(Method):
    """A video-level model: frames are held until ``finish``, then one forward on the clip."""

    task = "recognition"
    Config: ClassVar[type] = ClipOptions
    smoke = {"epochs": "1", "glance_frames": "4", "focus_frames": "6"}
    uses_keyframes = False
    online: ClassVar[bool] = False

    def __init__(self, config: ClipOptions, workspace: Workspace) -> None:
        super().__init__(config, workspace)
        self.seed = workspace.seed
        self.model = self._build(workspace)
        self.frames: list[Frame] = []
        self.info: VideoInfo | None = None

    @abc.abstractmethod
    def _build(self, workspace: Workspace) -> nn.Module:
        """The trained network (built, or loaded from the checkpoint cache)."""

    def _train(self, model: nn.Module, clips: TrainClips, device: str) -> None:
        steps = steps_per_epoch(clips, self.config.batch)
        options = train_options(self.config, self.seed, device, steps)
        train_supervised(model, clips.batches(self.config.batch, self.seed), options)

    @abc.abstractmethod
    def video_logits(self, video: torch.Tensor, names: Sequence[str]) -> torch.Tensor:
        """(B, T, 3, H, W) clips -> (B, K) logits, components metered."""

    def modules(self) -> dict[str, nn.Module]:
        return dict(self.model.named_children())

    def start(self, video: VideoInfo) -> None:
        self.frames, self.info = [], video

    def step(self, frame: Frame) -> list[RecognitionPrediction]:
        self.frames.append(frame)
        return []

    def finish(self) -> list[RecognitionPrediction]:
        if not self.frames:
            return []
        video = torch.stack([f.image for f in self.frames])[None]
        scores = probabilities(self.video_logits(video, [self.info.name]))[0]
        return self._predictions(self.frames, scores)

    def _predictions(self, frames: Sequence[Frame], scores: torch.Tensor) -> list:
        steps = [RecognitionPrediction(f.index, scores, {"video_level": True}) for f in frames]
        return [*steps, RecognitionPrediction(None, scores, {"steps": len(frames)})]

    def offline(
        self, clips: Sequence[tuple[VideoInfo, Sequence[Frame]]]
    ) -> list[list[RecognitionPrediction]]:
        """N clips through the network at once."""
        video = clip_batch(clips)
        if video is None:
            return super().offline(clips)
        scores = probabilities(self.video_logits(video, [info.name for info, _ in clips]))
        return [self._predictions(frames, scores[b]) for b, (_, frames) in enumerate(clips)]


def evenly(video: torch.Tensor, wanted: int) -> torch.Tensor:
    """``wanted`` segment-centre frames of (B, T, ...) clips (the training code's choice)."""
    return video[:, frame_indices(video.shape[1], wanted).to(video.device)]


def tsm_config(options: ClipOptions, workspace: Workspace, patch: int = 0) -> TSMConfig:
    """The TSM family's networks for ``options`` at the preset's scale."""
    preset = PRESETS[options.scale]
    policy = {}
    if isinstance(options, AdaFocusTSMOptions):
        policy = {"num_candidates": options.candidates, "location_policy": options.location}
    return TSMConfig(
        num_classes=workspace.num_classes,
        glance_frames=options.glance_frames,
        focus_frames=options.focus_frames,
        patch=patch or 160,
        frame_size=frame_size(workspace),
        global_width=preset["global_width"],
        local_arch=preset["local_arch"],
        hidden=preset["hidden"],
        dropout=preset["dropout"],
        **policy,
    )


class TSMMethod(ClipMethod):
    """``tsm``: ResNet-TSM on 8 full frames, frame-wise linear predictions averaged."""

    name = "tsm"
    components = ("focus", "classify")

    def _build(self, workspace: Workspace) -> nn.Module:
        config = tsm_config(self.config, workspace)
        key = {"network": asdict(config), "options": asdict(self.config)}
        return build_and_train(self, workspace, TSM(config), key, self._train)

    def video_logits(self, video: torch.Tensor, names: Sequence[str]) -> torch.Tensor:
        frames = evenly(video, self.model.frames)
        with self.meter("focus"):
            features = self.model.backbone(frames.flatten(0, 1))
        with self.meter("classify"):
            logits = self.model.fc(features).unflatten(0, frames.shape[:2])
            return logits.mean(dim=1)


class TSMPlusMethod(ClipMethod):
    """``tsm+``: MobileNetV2-TSM and ResNet-TSM on the same 8 full frames, one classifier."""

    name = "tsm+"
    components = ("glance", "focus", "classify")

    def _build(self, workspace: Workspace) -> nn.Module:
        config = tsm_config(self.config, workspace)
        key = {"network": asdict(config), "options": asdict(self.config)}
        return build_and_train(self, workspace, TSMPlus(config), key, self._train)

    def video_logits(self, video: torch.Tensor, names: Sequence[str]) -> torch.Tensor:
        frames = evenly(video, self.model.frames).flatten(0, 1)
        with self.meter("glance"):
            glance = self.model.glance(frames).mean(dim=(2, 3))
        with self.meter("focus"):
            local = self.model.backbone(frames)
        with self.meter("classify"):
            logits = self.model.fc(torch.cat([glance, local], dim=1))
            return logits.unflatten(0, (video.shape[0], self.model.frames)).mean(dim=1)


class AdaFocusTSMMethod(ClipMethod):
    """``adafocus-tsm`` (sec. 4.2): pi over the glance frames picks one patch per video;
    ResNet-TSM runs on the focus frames' patches there."""

    name = "adafocus-tsm"
    Config: ClassVar[type] = AdaFocusTSMOptions
    components = ("glance", "policy", "focus")

    def _build(self, workspace: Workspace) -> nn.Module:
        c = self.config
        side = min(frame_size(workspace))
        share = {"paper": 160 / 224, "mini": PRESETS["mini"]["patch_ratio"]}.get(c.scale, 3 / 7)
        patch = c.patch or int(round(side * share / 8) * 8)
        config = tsm_config(c, workspace, patch)
        key = {"network": asdict(config), "options": asdict(c)}
        return build_and_train(self, workspace, AdaFocusTSM(config), key, self._train)

    def _train(self, model: nn.Module, clips: TrainClips, device: str) -> None:
        c = self.config
        options = train_options(
            c, self.seed, device, steps_per_epoch(clips, c.batch), policy_kind=c.policy,
            reward=c.reward,
        )
        train_adafocus_tsm(model, clips.batches(c.batch, self.seed), options)

    def video_logits(self, video: torch.Tensor, names: Sequence[str]) -> torch.Tensor:
        model = self.model
        glance, focus = split_glance_focus(
            video, model.config.glance_frames, model.config.focus_frames
        )
        with self.meter("glance"):
            maps = model.glance_maps(glance)
        with self.meter("policy"):
            location = self._location(maps, names)
        with self.meter("focus"):
            return model.focus(focus, location, maps.mean(dim=(1, 3, 4)))

    def _location(self, maps: torch.Tensor, names: Sequence[str]) -> torch.Tensor:
        """pi's mean location, or a fixed policy's (one per video, seeded by its name)."""
        if self.config.policy == "learned":
            return self.model.policy_mean(maps)[0]
        rows = [
            fixed_locations(
                self.config.policy, (1,), torch.Generator().manual_seed(video_seed(name, self.seed))
            )[0]
            for name in names
        ]
        return torch.stack(rows).to(maps.device)


class OnlineBaseline(Method):
    """Fig. 6 baselines on full frames, predicting after every frame."""

    task = "recognition"
    Config: ClassVar[type] = ClipOptions
    smoke = {"epochs": "1"}
    components = ("focus", "classify")
    uses_keyframes = False
    online: ClassVar[bool] = True
    network: ClassVar[type]

    def __init__(self, config: ClipOptions, workspace: Workspace) -> None:
        super().__init__(config, workspace)
        self.seed = workspace.seed
        preset = PRESETS[config.scale]
        network = BaselineConfig(
            num_classes=workspace.num_classes, arch=preset["local_arch"], hidden=preset["hidden"],
            dropout=preset["dropout"],
        )
        key = {"network": asdict(network), "options": asdict(config)}
        self.model = build_and_train(self, workspace, self.network(network), key, self._train)
        self.start(VideoInfo("", 0, 0, 0, 0.0))

    def _train(self, model: nn.Module, clips: TrainClips, device: str) -> None:
        steps = steps_per_epoch(clips, self.config.batch)
        options = train_options(self.config, self.seed, device, steps)
        train_supervised(model, clips.batches(self.config.batch, self.seed), options)

    def modules(self) -> dict[str, nn.Module]:
        return dict(self.model.named_children())

    def start(self, video: VideoInfo) -> None:
        self.state: Any = None
        self.steps = 0
        self.last: torch.Tensor | None = None

    def step(self, frame: Frame) -> list[RecognitionPrediction]:
        with self.meter("focus"):
            features = self.model.backbone(frame.image[None])
        with self.meter("classify"):
            logits = self.advance(features)
        self.steps += 1
        self.last = probabilities(logits[0])
        return [RecognitionPrediction(frame.index, self.last)]

    @abc.abstractmethod
    def advance(self, features: torch.Tensor) -> torch.Tensor:
        """Fold one frame's features into the state; the logits after it."""

    def finish(self) -> list[RecognitionPrediction]:
        if self.last is None:
            return []
        return [RecognitionPrediction(None, self.last, {"steps": self.steps})]

    def offline(
        self, clips: Sequence[tuple[VideoInfo, Sequence[Frame]]]
    ) -> list[list[RecognitionPrediction]]:
        video = clip_batch(clips)
        if video is None:
            return super().offline(clips)
        scores = probabilities(self.model(video)["logits"])
        out = []
        for b, (_, frames) in enumerate(clips):
            steps = [RecognitionPrediction(f.index, scores[b, t]) for t, f in enumerate(frames)]
            out.append([*steps, RecognitionPrediction(None, scores[b, -1], {"steps": len(frames)})])
        return out


class FrameAverageMethod(OnlineBaseline):
    """``r50-avg``: the running mean of frame-wise logits (Fig. 6 "ResNet-50")."""

    name = "r50-avg"
    network = FrameAverage

    def advance(self, features: torch.Tensor) -> torch.Tensor:
        logits = self.model.fc(features)
        self.state = logits if self.state is None else self.state + logits
        return self.state / (self.steps + 1)


class FrameGRUMethod(OnlineBaseline):
    """``r50-gru``: a GRU over frame features (Fig. 6 "ResNet-50 + GRU")."""

    name = "r50-gru"
    network = FrameGRU

    def advance(self, features: torch.Tensor) -> torch.Tensor:
        self.state = self.model.gru(features, self.state)
        return self.model.fc(self.state)
