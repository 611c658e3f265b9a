"""Video object detection methods of seed 001 behind the streaming adapter: ``rfcn`` (the
per-frame R-FCN baseline), ``dff`` (Deep Feature Flow on the detection head) and ``psla``
(PSLA with RFU and DenseFT, and its ablations Nonlocal / MatchTrans / DensePSLA, S and F).

Keys follow the protocol: each frame carries the key it should use (``Frame.key_index``, the
key of its segment under ``fixed-key@v1``, which for the paper's middle-key schedule may be a
later frame). A frame whose key has not arrived waits and is emitted when the key comes, so the
harness measures the look-ahead delay. Without an assigned key a frame uses the latest key.
PSLA, like DFF, uses its segment's key by default (the paper tests with DFF's schedule, sec.
4.1, whose code runs a segment's key before its other frames, so that key is the one processed
before them); ``psla:propagate_from=preceding`` reads sec. 4.3's "the feature of the preceding
key frame" literally: the latest key already seen, so frames before their segment's middle key
use the previous segment's and only the frames before a video's first key wait (README,
deviation 11, gives the measured effect).

Training (sec. 4.1, CPU-sized): the per-frame detector is trained once on every labelled frame
and shared by all three methods (so interval 1 is identical across them, as in the papers'
tables). DFF trains its flow network: pre-training on ground-truth flow where the dataset renders
it (DFF used Flying Chairs), else on OpenCV DIS flow of the training videos, then end to end with
the detection loss on a current frame and a key from the preceding ``train_interval`` frames.
PSLA trains its modules with the paper's sampling: a labelled non-key frame i and two keys
k1 in [i - l, i - l/2] and k2 in [i - l/2, i + l/2]; F_t is built from k1 then updated by k2 (RFU),
and the loss is the detection loss of frame i only. Deviation (as landed prop-flow): by default
the detector (N_f, N_t) stays frozen while DFF's flow network and PSLA's modules are trained,
where the paper trains everything end to end from ImageNet weights. ``psla:joint=task|all``
trains N_t, or N_f and N_t, with PSLA's modules (from the per-frame detector, BatchNorm
statistics fixed); under the paper's sampling nothing supervises the RFU output that key frames
feed to N_t, and on synthdet that is what breaks (README, Detection).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from tqdm import tqdm
from vidbench.api import DetectionPrediction, Frame, Method, VideoInfo, VideoSource, Workspace
from vidbench.methods.common.training import descend, sample_labelled, training_device
from vidbench.methods.detection.rfcn import FEATURE_STRIDE, Detector, DetectorConfig
from vidbench.methods.detection.rfcn_train import (
    DetectorTrainConfig,
    feature_losses,
    trained_detector,
)
from vidbench.methods.motion.flownet import (
    FlowNetKind,
    FlowTrainConfig,
    build_flownet,
    compose_backward,
)
from vidbench.methods.motion.sources import regrid
from vidbench.methods.motion.warp import warp
from vidbench.methods.psla.framework import PSLAConfig, PSLAFramework, PSLAOptions
from vidbench.methods.psla.training import load_psla, train_psla_modules


@dataclass(frozen=True)
class DetectionConfig:
    """The shared detector (small CPU default; ``layers=3-4-23-3:width=64:expansion=4:
    feature_channels=1024`` is the paper's ResNet-101) and its training steps."""

    layers: str = "1-1-2-1"
    width: int = 32
    expansion: int = 1
    feature_channels: int = 256
    dcn: bool = False
    train_steps: int = 500
    recipe: Literal["cpu", "paper"] = "cpu"  # paper: SGD lr 2.5e-4 -> 2.5e-5 (sec. 4.1)
    train_device: str = "auto"  # auto: the paper recipe on CUDA when there is one

    def train_config(self) -> DetectorTrainConfig:
        return DetectorTrainConfig.paper() if self.recipe == "paper" else DetectorTrainConfig()

    def device(self) -> str:
        """Where the detector trains (not part of its checkpoint key)."""
        return training_device(self.train_device, self.recipe)

    def detector(self, num_classes: int) -> DetectorConfig:
        layers = tuple(int(part) for part in self.layers.split("-"))
        if len(layers) != 4 or min(layers) < 1:
            raise ValueError(f"layers must be four positive counts like 3-4-23-3, not {self.layers!r}")
        if layers == (3, 4, 23, 3) and self.expansion == 4:
            paper = DetectorConfig.paper(self.dcn, num_classes)
            return DetectorConfig(**{**asdict(paper), "feature_channels": self.feature_channels})
        return DetectorConfig(
            layers=layers,  # type: ignore[arg-type]
            width_per_group=self.width,
            expansion=self.expansion,
            dcn=self.dcn,
            feature_channels=self.feature_channels,
            num_classes=num_classes,
        )


class DetectionMethod(Method):
    """Holds the trained per-frame detector and runs its task network on a feature map."""

    task = "detection"
    smoke = {"train_steps": "3"}

    def __init__(self, config: DetectionConfig, workspace: Workspace) -> None:
        super().__init__(config, workspace)
        self.net: Detector = trained_detector(
            workspace,
            config.detector(workspace.num_classes),
            config.train_steps,
            config.train_config(),
            config.device(),
        )
        for parameter in self.net.parameters():
            parameter.requires_grad_(False)
        self.size: tuple[int, int] = (0, 0)

    def start(self, video: VideoInfo) -> None:
        self.size = (video.height, video.width)

    def detector_key(self) -> dict[str, Any]:
        """What identifies the shared detector (its checkpoints also key on the dataset)."""
        return {
            "net": self.net.config.to_dict(),
            "steps": self.config.train_steps,
            "train": self.config.train_config().to_dict(),
        }

    def modules(self) -> dict[str, torch.nn.Module]:
        return {"feature": self.net.features, "task": self.net.task}

    def detect(self, index: int, features: torch.Tensor, key: bool) -> DetectionPrediction:
        with self.meter("task"):
            found = self.net.task(features, self.size)[0]
        return DetectionPrediction(index, found.boxes, found.scores, found.labels, {"key": key})


class RFCN(DetectionMethod):
    """The per-frame baseline: N_f and N_t (R-FCN) on every frame."""

    name = "rfcn"
    components = ("feature", "task")
    Config = DetectionConfig
    uses_keyframes = False

    def step(self, frame: Frame) -> list[DetectionPrediction]:
        with self.meter("feature"):
            features = self.net.features(frame.image[None])
        return [self.detect(frame.index, features, key=True)]


class KeyedPropagation(DetectionMethod):
    """Features on keys, carried to the frames the protocol assigns to each key (see the
    module docstring); subclasses say what a key keeps and how a frame uses it."""

    def start(self, video: VideoInfo) -> None:
        super().start(video)
        self.latest: int | None = None
        self.kept: dict[int, Any] = {}
        self.waiting: dict[int, list[Frame]] = {}

    def key_for(self, frame: Frame) -> int | None:
        """The key ``frame`` propagates from: the one the protocol assigns (its segment's,
        possibly later), else the latest."""
        return frame.key_index if frame.key_index is not None else self.latest

    def step(self, frame: Frame) -> list[DetectionPrediction]:
        key = self.key_for(frame)
        if frame.is_key or key is None:
            self.kept = {frame.index: self.key_frame(frame)}  # older keys are no longer needed
            self.latest = frame.index
            out = [self.detect(frame.index, self.key_features(self.kept[frame.index]), True)]
            return out + [
                self.non_key_frame(waiting, self.kept[frame.index])
                for waiting in self.waiting.pop(frame.index, [])
            ]
        if key in self.kept:
            return [self.non_key_frame(frame, self.kept[key])]
        self.waiting.setdefault(key, []).append(frame)
        return []

    def finish(self) -> list[DetectionPrediction]:
        if self.waiting:
            missing = sorted(self.waiting)
            raise RuntimeError(f"{self.name}: frames wait for keys {missing} that never came.")
        return []

    @abc.abstractmethod
    def key_frame(self, frame: Frame) -> Any:
        """Run a key; return what its frames need (kept until the next key)."""

    @abc.abstractmethod
    def key_features(self, kept: Any) -> torch.Tensor:
        """The key's own feature map for the task network."""

    @abc.abstractmethod
    def non_key_frame(self, frame: Frame, kept: Any) -> DetectionPrediction:
        """Detect on a frame from its key's kept state."""


@dataclass(frozen=True)
class DFFConfig(DetectionConfig):
    """DFF: the flow network (the CPU-sized FlowNetSimple of ``flownet_width``, or
    ``flownet=flownets``, the published FlowNetS DFF runs) and its CPU-sized training recipe."""

    flownet: FlowNetKind = "simple"
    flownet_width: int = 16
    flownet_pretrain_steps: int = 200
    flownet_finetune_steps: int = 100
    train_interval: int = 10


class DFF(KeyedPropagation):
    """Deep Feature Flow (Zhu et al. 2017) on the detection head: flow from the key by a
    FlowNet-style network with a scale field, key features warped and scaled, then N_t."""

    name = "dff"
    components = ("feature", "motion", "warp", "task")
    Config = DFFConfig
    smoke = {"train_steps": "3", "flownet_pretrain_steps": "2", "flownet_finetune_steps": "2"}

    def __init__(self, config: DFFConfig, workspace: Workspace) -> None:
        super().__init__(config, workspace)
        recipe = FlowTrainConfig(
            width=config.flownet_width,
            pretrain_steps=config.flownet_pretrain_steps,
            finetune_steps=config.flownet_finetune_steps,
            max_key_distance=config.train_interval - 1,
        )
        key = {
            "detector": self.detector_key(),
            "recipe": asdict(recipe),
            "seed": workspace.seed,
            # added after checkpoints were keyed without it: present only when not the default
            **({"network": config.flownet} if config.flownet != "simple" else {}),
        }
        channels = self.net.config.feature_channels
        path = workspace.checkpoint(
            "dff-flownet",
            key,
            lambda out: train_detection_flownet(
                workspace.train_videos(),
                self.net,
                recipe,
                workspace.seed,
                out,
                lambda: build_flownet(config.flownet, channels, config.flownet_width),
            ),
        )
        self.flownet = build_flownet(config.flownet, channels, config.flownet_width)
        self.flownet.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        self.flownet.eval()

    def modules(self) -> dict[str, torch.nn.Module]:
        return {**super().modules(), "flownet": self.flownet}

    def key_frame(self, frame: Frame) -> tuple[torch.Tensor, torch.Tensor]:
        with self.meter("feature"):
            return frame.image[None], self.net.features(frame.image[None])

    def key_features(self, kept: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return kept[1]

    def non_key_frame(self, frame: Frame, kept: tuple[torch.Tensor, torch.Tensor]) -> Any:
        key_image, key_features = kept
        with self.meter("motion"):
            flow, scale = self.flownet(frame.image[None], key_image)
        with self.meter("warp"):
            features = warp(key_features, flow, FEATURE_STRIDE) * scale
        return self.detect(frame.index, features, key=False)


@dataclass(frozen=True)
class PSLAMethodConfig(PSLAOptions, DetectionConfig):
    """The shared detector's options, then PSLA's (vidbench.methods.psla.framework.PSLAOptions).
    ``propagate_from``: a non-key frame uses its segment's key under the protocol (``segment``,
    as DFF; it may be a later frame) or the latest key already seen (``preceding``)."""

    propagate_from: Literal["segment", "preceding"] = "segment"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.propagate_from not in ("preceding", "segment"):
            raise ValueError(f"propagate_from '{self.propagate_from}'; allowed: segment, preceding")

    def framework(self, detector: DetectorConfig) -> PSLAConfig:
        return self.psla_config(detector.feature_channels, detector.low_level_channels)


class PSLA(KeyedPropagation):
    """PSLA (seed 001): keys run N_f and RFU updates the temporal feature F_t; non-key frames
    run the cheap N_l, Transform Net, PSLA from F_t and (setting c / F) the Quality Net."""

    name = "psla"
    components = (
        "feature",
        "update",
        "low_feature",
        "transform",
        "propagate",
        "quality",
        "task",
    )
    Config = PSLAMethodConfig
    smoke = {"train_steps": "3", "psla_steps": "2"}

    def __init__(self, config: PSLAMethodConfig, workspace: Workspace) -> None:
        super().__init__(config, workspace)
        framework_config = config.framework(self.net.config)
        key = {
            "detector": self.detector_key(),
            "framework": framework_config.checkpoint_key(),
            "recipe": config.recipe_key(),
            "seed": workspace.seed,
        }
        path = workspace.checkpoint(
            "psla-framework",
            key,
            lambda out: train_psla(
                workspace.train_videos(), self.net, framework_config, config, workspace.seed, out
            ),
        )
        self.framework = PSLAFramework(framework_config)
        load_psla(path, self.framework, self.net)
        self.temporal: torch.Tensor | None = None

    def start(self, video: VideoInfo) -> None:
        super().start(video)
        self.temporal = None

    def key_for(self, frame: Frame) -> int | None:
        """``propagate_from=preceding``: the latest key already seen, so frames before their
        segment's middle key use the previous segment's and only frames before a video's first
        key wait for it; ``segment`` (default): the key the protocol assigns, as DFF."""
        if self.config.propagate_from == "preceding" and self.latest is not None:
            return self.latest
        return super().key_for(frame)

    def modules(self) -> dict[str, torch.nn.Module]:
        return {**super().modules(), "psla": self.framework}

    def key_frame(self, frame: Frame) -> tuple[torch.Tensor, torch.Tensor]:
        with self.meter("feature"):
            high = self.net.features(frame.image[None])
        with self.meter("update"):
            self.temporal = self.framework.key_frame(high, self.temporal)
            embedded = self.framework.embed_temporal(self.temporal)
        return self.temporal, embedded

    def key_features(self, kept: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return kept[0]

    def non_key_frame(self, frame: Frame, kept: tuple[torch.Tensor, torch.Tensor]) -> Any:
        temporal, embedded = kept
        dense = self.framework.dense
        with self.meter("low_feature"):
            low = self.net.features.low_level(frame.image[None])
        with self.meter("transform"):
            transformed = dense.transform(low)
        with self.meter("propagate"):
            features = dense.attention(transformed, temporal, embedded)
        if dense.quality_net is not None:
            with self.meter("quality"):
                features = dense.quality_net(features, transformed)
        return self.detect(frame.index, features, key=False)


def flow_truth(video: VideoSource) -> tuple[np.ndarray, np.ndarray]:
    """Backward flow of a training video: the dataset's rendered ground truth where it has it,
    else OpenCV DIS optical flow between consecutive decoded frames (all pixels valid)."""
    try:
        return video.backward_flow()  # type: ignore[attr-defined]
    except (AttributeError, ValueError):
        from vidbench.methods.motion.dis import DISMotion

        dis = DISMotion()
        frames = [video.frame(i) for i in range(video.info.num_frames)]
        flows = [dis.estimate(b, a, 1).displacement.numpy() for a, b in zip(frames, frames[1:])]
        valid = np.ones((len(flows), *flows[0].shape[1:]), bool)
        return np.stack(flows).astype(np.float32), valid


def train_detection_flownet(
    videos: Sequence[VideoSource],
    detector: Detector,
    recipe: FlowTrainConfig,
    seed: int,
    path: Path,
    build: Callable[[], torch.nn.Module],
) -> None:
    """DFF for detection: flow pre-training of the network ``build`` makes (after seeding, so
    its initialisation follows ``seed``), then end to end through the frozen detector."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    network = build().train()
    moving = [v for v in videos if v.info.num_frames > recipe.pretrain_max_distance]
    truth = [flow_truth(v) for v in tqdm(moving, desc="dff: flow targets", unit="video")]
    optimiser = torch.optim.Adam(network.parameters(), lr=recipe.lr)
    for _ in tqdm(range(recipe.pretrain_steps), desc="dff: pre-train flownet", unit="step"):
        currents, references, targets, masks = [], [], [], []
        for _ in range(recipe.batch_size):
            number = int(rng.integers(len(moving)))
            video = moving[number]
            distance = int(rng.integers(1, recipe.pretrain_max_distance + 1))
            current = int(rng.integers(distance, video.info.num_frames))
            flow, ok = compose_backward(*truth[number], current, distance)
            image = video.frame(current).image
            target, cell_ok = regrid(flow, ok, 1, FEATURE_STRIDE, tuple(image.shape[-2:]))
            currents.append(image)
            references.append(video.frame(current - distance).image)
            targets.append(target)
            masks.append(cell_ok)
        predicted, _ = network(torch.stack(currents), torch.stack(references))
        mask = torch.stack(masks).float()
        error = (predicted - torch.stack(targets)).norm(dim=1)
        descend(optimiser, (error * mask).sum() / mask.sum().clamp_min(1))
    optimiser = torch.optim.Adam(network.parameters(), lr=recipe.lr / 10)
    for _ in tqdm(range(recipe.finetune_steps), desc="dff: end to end", unit="step"):
        currents, keys, targets = [], [], []
        for _ in range(recipe.batch_size):
            video, current = sample_labelled(rng, videos)
            key = max(0, current - int(rng.integers(0, recipe.max_key_distance + 1)))
            currents.append(video.frame(current).image)
            keys.append(video.frame(key).image)
            targets.append(video.label(current))
        current_images, key_images = torch.stack(currents), torch.stack(keys)
        with torch.no_grad():
            key_features = detector.features(key_images)
        flow, scale = network(current_images, key_images)
        features = warp(key_features, flow, FEATURE_STRIDE) * scale
        size = (current_images.shape[-2], current_images.shape[-1])
        descend(optimiser, sum(feature_losses(detector.task, features, size, targets).values()))
    torch.save(network.state_dict(), path)


def train_psla(
    videos: Sequence[VideoSource],
    detector: Detector,
    framework_config: PSLAConfig,
    config: PSLAMethodConfig,
    seed: int,
    path: Path,
) -> None:
    """PSLA's modules trained with the paper's sampling through the detector, whose
    ``config.joint`` parts train with them."""

    def loss(features: torch.Tensor, images: torch.Tensor, targets: list) -> torch.Tensor:
        size = (images.shape[-2], images.shape[-1])
        return sum(feature_losses(detector.task, features, size, targets).values())

    train_psla_modules(
        videos,
        PSLAFramework(framework_config),
        (detector.features, detector.features.low_level, loss),
        config,
        seed,
        path,
        config.joint_parts(detector),
    )
