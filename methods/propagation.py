"""Feature propagation with any motion source: prop-mv (seed 000, sec. 3.3, Algorithm 1) and
prop-flow (Deep Feature Flow, the seed's [39]) are one method with two presets.

Keyframes run the feature network; other frames get warped features and run the task network.
``reference=previous`` warps the previous frame's (already propagated) features with that
frame's motion, step by step, as Algorithm 1 and the authors' research code do; the codec's
vectors only allow this. ``reference=key`` warps the key's features directly with motion
estimated between the current frame and the key, times the source's scale field, as DFF does.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import torch
from vidbench.api import Frame, SegmentationPrediction, VideoInfo, Workspace
from vidbench.methods.deeplab import OUTPUT_STRIDE
from vidbench.methods.feature_reuse import SegmentationConfig, SegmentationMethod
from vidbench.methods.flownet import FlowNetMotion, FlowTrainConfig, load_flownet, train_flownet
from vidbench.methods.motion_sources import MotionSource, build_source
from vidbench.methods.warp import warp

Source = Literal["mv", "flownet", "dis", "raft"]


@dataclass(frozen=True)
class PropConfig(SegmentationConfig):
    """Motion source, what it is measured against, and the flow sources' settings."""

    motion: Source = "mv"
    reference: Literal["previous", "key"] = "previous"
    flownet_weights: str = ""
    flownet_pretrain_steps: int = 600
    flownet_finetune_steps: int = 300
    raft_weights: str = ""
    dis_preset: Literal["ultrafast", "fast", "medium"] = "fast"


@dataclass(frozen=True)
class PropFlowConfig(PropConfig):
    """DFF's preset: the trained flow network, warping from the key."""

    motion: Source = "flownet"
    reference: Literal["previous", "key"] = "key"


def check_flow_source(config: PropConfig, workspace: Workspace) -> None:
    """Refuse, before any training, a FlowNet to pre-train on a dataset without ground-truth
    flow (Cityscapes, CamVid): such a run starts from published weights, as DFF does."""
    if config.motion != "flownet" or config.flownet_weights:
        return
    videos = workspace.train_videos()
    if videos and not getattr(videos[0], "has_flow_truth", False):
        raise ValueError(
            "prop-flow: the train videos have no ground-truth flow to pre-train FlowNet on; "
            "give flownet_weights=<FlowNetS checkpoint> (DFF starts from Flying Chairs weights)."
        )


class Propagation(SegmentationMethod):
    """Algorithm 1 with a pluggable motion source."""

    name = "prop"
    smoke = {"train_steps": "3", "flownet_pretrain_steps": "2", "flownet_finetune_steps": "2"}
    components = ("feature", "motion", "warp", "task")
    Config = PropConfig

    def __init__(self, config: PropConfig, workspace: Workspace) -> None:
        check_flow_source(config, workspace)
        super().__init__(config, workspace)
        self.source = self._build_source(config, workspace)
        if config.reference == "key" and not self.source.pairwise:
            raise ValueError(
                f"Motion source '{config.motion}' relates a frame to its predecessor only; "
                "use reference=previous."
            )

    def _build_source(self, config: PropConfig, workspace: Workspace) -> MotionSource:
        if config.motion == "flownet":
            initial = Path(config.flownet_weights) if config.flownet_weights else None
            if initial is not None and not initial.exists():
                raise FileNotFoundError(f"No flow network weights at {initial}.")
            train = FlowTrainConfig(
                pretrain_steps=config.flownet_pretrain_steps,
                finetune_steps=config.flownet_finetune_steps,
            )
            key = {
                "segmentation": self.net_key,  # the network it is trained on, recipe and init
                "flow": asdict(train),
                "seed": workspace.seed,
                "initial": hashlib.sha256(initial.read_bytes()).hexdigest() if initial else None,
            }
            net, channels = self.net, self.net.config.feature_channels
            path = workspace.checkpoint(
                "flownet",
                key,
                lambda out: train_flownet(
                    workspace.train_videos(), net, train, workspace.seed, out, initial
                ),
            )
            return FlowNetMotion(load_flownet(path, channels))
        if config.motion == "raft":
            return build_source("raft", weights=config.raft_weights or None)
        if config.motion == "dis":
            return build_source("dis", preset=config.dis_preset)
        return build_source(config.motion)

    def modules(self) -> dict[str, torch.nn.Module]:
        return {**super().modules(), **self.source.modules()}

    def start(self, video: VideoInfo) -> None:
        super().start(video)
        self.cached: torch.Tensor | None = None
        self.key: tuple[Frame, torch.Tensor] | None = None
        self.previous: Frame | None = None

    def step(self, frame: Frame) -> list[SegmentationPrediction]:
        is_key = frame.is_key or self.key is None
        if is_key:
            features = self.features(frame)
            self.key = (frame, features)
        else:
            reference, base = (
                (self.previous, self.cached) if self.config.reference == "previous" else self.key
            )
            with self.meter("motion"):
                motion = self.source.estimate(frame, reference, OUTPUT_STRIDE)
            with self.meter("warp"):
                features = warp(base, motion.displacement, OUTPUT_STRIDE)
                if motion.scale is not None:
                    features = features * motion.scale
        self.cached, self.previous = features, frame
        return [self.segment(frame.index, features, is_key)]


class PropMV(Propagation):
    """prop-mv: codec block motion vectors, warped frame to frame (seed 000, Algorithm 1)."""

    name = "prop-mv"


class PropFlow(Propagation):
    """prop-flow: Deep Feature Flow, flow network from the key times its scale field."""

    name = "prop-flow"
    Config = PropFlowConfig
