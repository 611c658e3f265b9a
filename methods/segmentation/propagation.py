"""Feature propagation with any motion source: prop-mv (seed 000, sec. 3.3, Algorithm 1) and
prop-flow (Deep Feature Flow, the seed's [39]) are one method with two presets.

Keyframes run the feature network; other frames get warped features and run the task network.
``reference=previous`` warps the previous frame's (already propagated) features with that
frame's motion, step by step, as Algorithm 1 and the authors' research code do; the codec's
vectors only allow this. ``reference=key`` warps the key's features directly with motion
estimated between the current frame and the key, times the source's scale field, as DFF does.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm
from vidbench.api import Frame, SegmentationPrediction, VideoInfo, VideoSource, Workspace
from vidbench.files import file_sha256
from vidbench.methods.common.training import descend
from vidbench.methods.motion.flownet import (
    FLOW_DIVISOR,
    FlowNetKind,
    FlowNetMotion,
    FlowTrainConfig,
    build_flownet,
    load_flownet,
    pretrain_flow,
)
from vidbench.methods.motion.sources import MotionSource, build_source
from vidbench.methods.motion.warp import warp
from vidbench.methods.segmentation.deeplab import OUTPUT_STRIDE, SegmentationNetwork
from vidbench.methods.segmentation.feature_reuse import SegmentationConfig, SegmentationMethod

Source = Literal["mv", "flownet", "dis", "raft"]


@dataclass(frozen=True)
class PropConfig(SegmentationConfig):
    """Motion source, what it is measured against, and the flow sources' settings."""

    motion: Source = "mv"
    reference: Literal["previous", "key"] = "previous"
    flownet: FlowNetKind = "simple"  # flownets: the published FlowNetS (paper scale)
    flownet_weights: str = ""
    flownet_pretrain_steps: int = 600
    flownet_finetune_steps: int = 300
    raft_weights: str = ""
    dis_preset: Literal["ultrafast", "fast", "medium"] = "fast"
    joint: Literal["none", "all"] = "none"  # motion=flownet: the network trains with the flow

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.joint not in ("none", "all"):
            raise ValueError(f"joint '{self.joint}'; allowed: none, all")
        if self.joint == "all" and self.motion != "flownet":
            raise ValueError("joint=all trains the network with a flow network: motion=flownet")


@dataclass(frozen=True)
class PropFlowConfig(PropConfig):
    """DFF's preset: the trained flow network, warping from the key, trained end to end with
    the per-frame network (DFF sec. 3: "the whole network is trained end to end")."""

    motion: Source = "flownet"
    reference: Literal["previous", "key"] = "key"
    joint: Literal["none", "all"] = "all"


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
                "initial": file_sha256(initial) if initial else None,
                # added after checkpoints were keyed without them: present only when not default
                **({"network": config.flownet} if config.flownet != "simple" else {}),
                **({"joint": config.joint} if config.joint != "none" else {}),
            }
            net, channels = self.net, self.net.config.feature_channels
            path = workspace.checkpoint(
                "flownet",
                key,
                lambda out: train_flownet(
                    workspace.train_videos(), net, train, workspace.seed, out, initial,
                    config.flownet, config.joint == "all",
                ),
            )
            if config.joint == "all":  # this method's own copy of the network, trained with it
                saved = torch.load(path, map_location="cpu", weights_only=True)
                self.net.load_state_dict(saved["network_state"])
                self.net.eval()
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


def finetune_dff(
    videos: Sequence[VideoSource],
    network: nn.Module,
    net: SegmentationNetwork,
    config: FlowTrainConfig,
    seed: int,
    ignore_index: int = 255,
    joint: bool = False,
) -> list[float]:
    """DFF end-to-end: current frame c, key c-o with o in [0, max_key_distance]; the loss is
    the segmentation loss of the warped, scaled key features on frame c. ``joint``: the
    per-frame network (features and task) trains too, at the same learning rate, with its
    BatchNorm statistics fixed (DFF trains the whole network end to end); else it is frozen."""
    rng = np.random.default_rng(seed + 1)
    parameters = [*network.parameters(), *(net.parameters() if joint else [])]
    net.requires_grad_(joint)
    net.eval()
    optimiser = torch.optim.Adam(parameters, lr=config.lr / 10)
    losses = []
    network.train()
    for _ in tqdm(range(config.finetune_steps), desc="train flownet end to end (DFF)", unit="step"):
        currents, keys, labels = [], [], []
        for _ in range(config.batch_size):
            video = videos[int(rng.integers(len(videos)))]
            current = int(rng.choice(video.label_indices))
            key = max(0, current - int(rng.integers(0, config.max_key_distance + 1)))
            currents.append(video.frame(current).image)
            keys.append(video.frame(key).image)
            labels.append(torch.from_numpy(video.label(current)).long())
        current_images, key_images = torch.stack(currents), torch.stack(keys)
        with torch.set_grad_enabled(joint):
            key_features = net.features(key_images)
        flow, scale = network(current_images, key_images)
        features = warp(key_features, flow, OUTPUT_STRIDE) * scale
        size = (current_images.shape[-2], current_images.shape[-1])
        logits = net.task.logits(net.task.project(features), size)
        losses.append(
            descend(
                optimiser, F.cross_entropy(logits, torch.stack(labels), ignore_index=ignore_index)
            )
        )
    net.requires_grad_(False)
    return losses


def train_flownet(
    videos: Sequence[VideoSource],
    net: SegmentationNetwork,
    config: FlowTrainConfig,
    seed: int,
    path: Path,
    initial: Path | None = None,
    kind: FlowNetKind = "simple",
    joint: bool = False,
) -> None:
    """Pre-train the flow network ``kind`` on ground-truth flow, or start from ``initial``
    weights (e.g. a published FlowNetS, as DFF starts from Flying Chairs); then DFF end to
    end (``joint``: with the per-frame network, whose state is saved beside, on a copy); save."""
    torch.manual_seed(seed)
    if initial is None:
        network: nn.Module = build_flownet(kind, net.config.feature_channels, config.width)
        pretrain = pretrain_flow(videos, network, config, seed)
    else:
        network, pretrain = load_flownet(initial, net.config.feature_channels), []
    net = copy.deepcopy(net) if joint else net  # the caller's network stays as it was
    finetune = finetune_dff(videos, network, net, config, seed, joint=joint)
    torch.save(
        {
            **({"network_state": net.state_dict()} if joint else {}),
            "state_dict": network.state_dict(),
            "config": asdict(config),
            "div_flow": getattr(network, "div_flow", FLOW_DIVISOR),
            "pretrain_losses": pretrain,
            "finetune_losses": finetune,
        },
        path,
    )
