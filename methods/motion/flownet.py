"""DFF's flow network (Zhu et al., CVPR 2017; seed 000's [39]) as a motion source.

FlowNet "Simple" as DFF uses it: the two frames stacked (6 channels) at half resolution, a
strided encoder and a FlowNet-S refinement decoder that stops at stride 16 of the original
image, i.e. on the feature grid. Besides the flow it predicts DFF's per-channel scale field;
propagated features are the warped key features times that field.

Training, as DFF: pre-train the flow on ground truth (DFF used Flying Chairs; synthcity renders
its own exact flow), then train end to end on a current frame with a key sampled from the
preceding frames, the loss on the current frame's labels only. Deviations: the network is
narrow (CPU), and end-to-end training updates the flow network and scale field while the
per-frame network stays frozen, so every scheme shares one feature and task network.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm
from vidbench.api import Frame, VideoSource
from vidbench.methods.common.training import descend
from vidbench.methods.motion.sources import Motion, MotionSource, regrid
from vidbench.methods.motion.warp import warp

FLOW_DIVISOR = 20.0  # FlowNet predicts flow / 20 (its training convention)
FLOW_STRIDE = 16  # the flow's grid: the feature grid of DeepLab and R-FCN (output stride 16)


def _conv(cin: int, cout: int, kernel: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, kernel // 2), nn.LeakyReLU(0.1))


class FlowNetSimple(nn.Module):
    """(current, reference) images (N,3,H,W) in [0,1] -> displacement (N,2,ceil(H/16),ceil(W/16))
    in pixels (reference position - current position) and a scale field (N,C,...)."""

    def __init__(self, feature_channels: int, width: int = 32) -> None:
        super().__init__()
        w = width
        self.conv1 = _conv(6, w, 7, 2)  # stride 4 of the original image
        self.conv2 = _conv(w, 2 * w, 5, 2)  # 8
        self.conv3 = nn.Sequential(_conv(2 * w, 4 * w, 5, 2), _conv(4 * w, 4 * w, 3))  # 16
        self.conv4 = nn.Sequential(_conv(4 * w, 8 * w, 3, 2), _conv(8 * w, 8 * w, 3))  # 32
        self.conv5 = nn.Sequential(_conv(8 * w, 8 * w, 3, 2), _conv(8 * w, 8 * w, 3))  # 64
        self.flow5 = nn.Conv2d(8 * w, 2, 3, padding=1)
        self.up5 = _conv(8 * w, 4 * w, 3)
        self.flow4 = nn.Conv2d(8 * w + 4 * w + 2, 2, 3, padding=1)
        self.up4 = _conv(8 * w + 4 * w + 2, 2 * w, 3)
        self.refine3 = _conv(4 * w + 2 * w + 2, 4 * w, 3)
        self.flow3 = nn.Conv2d(4 * w, 2, 3, padding=1)
        self.scale = nn.Conv2d(4 * w, feature_channels, 1)
        nn.init.zeros_(self.flow3.weight)
        nn.init.zeros_(self.flow3.bias)  # starts as zero motion ...
        nn.init.zeros_(self.scale.weight)
        nn.init.ones_(self.scale.bias)  # ... and pure warping (scale 1)

    def forward(
        self, current: torch.Tensor, reference: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        pair = F.avg_pool2d(torch.cat([current, reference], 1) * 2 - 1, 2, ceil_mode=True)
        c3 = self.conv3(self.conv2(self.conv1(pair)))
        c4 = self.conv4(c3)
        c5 = self.conv5(c4)
        flow5 = self.flow5(c5)
        x4 = torch.cat([c4, _up(self.up5(c5), c4), _up(flow5, c4)], 1)
        flow4 = self.flow4(x4)
        x3 = self.refine3(torch.cat([c3, _up(self.up4(x4), c3), _up(flow4, c3)], 1))
        return self.flow3(x3) * FLOW_DIVISOR, self.scale(x3)


def _up(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


def _block(
    cin: int, cout: int, kernel: int = 3, stride: int = 1, batch_norm: bool = False
) -> nn.Sequential:
    if batch_norm:
        return nn.Sequential(
            nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, bias=False),
            nn.BatchNorm2d(cout),
            nn.LeakyReLU(0.1),
        )
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2), nn.LeakyReLU(0.1))


def _upconv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False), nn.LeakyReLU(0.1))


class FlowNetS(nn.Module):
    """The published FlowNetS (Dosovitskiy et al. 2015), with the parameter names of its common
    PyTorch checkpoints (``conv1.0.weight`` ... ``predict_flow2.weight``), used as DFF uses it:
    both frames at half resolution, the finest flow (stride 4 there, 8 in the image) pooled to
    stride 16, times ``div_flow`` and 2 for full-resolution pixels, plus a scale field head on
    the finest decoder features (not in published checkpoints: it starts at 1)."""

    MEAN = (0.45, 0.432, 0.411)  # RGB mean the published checkpoints subtract from [0, 1] input

    def __init__(
        self, feature_channels: int, batch_norm: bool = False, div_flow: float = 20.0
    ) -> None:
        super().__init__()
        self.div_flow = div_flow
        widths = [
            (6, 64, 7, 2),
            (64, 128, 5, 2),
            (128, 256, 5, 2),
            (256, 256, 3, 1),
            (256, 512, 3, 2),
            (512, 512, 3, 1),
            (512, 512, 3, 2),
            (512, 512, 3, 1),
            (512, 1024, 3, 2),
            (1024, 1024, 3, 1),
        ]
        names = [
            "conv1",
            "conv2",
            "conv3",
            "conv3_1",
            "conv4",
            "conv4_1",
            "conv5",
            "conv5_1",
            "conv6",
            "conv6_1",
        ]
        for name, (cin, cout, kernel, stride) in zip(names, widths):
            self.add_module(name, _block(cin, cout, kernel, stride, batch_norm))
        for level, (cin, cout) in zip(
            (5, 4, 3, 2), ((1024, 512), (1026, 256), (770, 128), (386, 64))
        ):
            self.add_module(f"deconv{level}", _upconv(cin, cout))
        for level, cin in zip((6, 5, 4, 3, 2), (1024, 1026, 770, 386, 194)):
            self.add_module(f"predict_flow{level}", nn.Conv2d(cin, 2, 3, 1, 1, bias=False))
        for level in (6, 5, 4, 3):
            self.add_module(
                f"upsampled_flow{level}_to_{level - 1}",
                nn.ConvTranspose2d(2, 2, 4, 2, 1, bias=False),
            )
        self.scale = nn.Conv2d(194, feature_channels, 1)
        nn.init.zeros_(self.scale.weight)
        nn.init.ones_(self.scale.bias)

    def forward(
        self, current: torch.Tensor, reference: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        mean = torch.tensor(self.MEAN * 2, dtype=current.dtype, device=current.device)
        mean = mean.view(1, 6, 1, 1)
        x = F.avg_pool2d(torch.cat([current, reference], 1), 2, ceil_mode=True) - mean
        c2 = self.conv2(self.conv1(x))
        c3 = self.conv3_1(self.conv3(c2))
        c4 = self.conv4_1(self.conv4(c3))
        c5 = self.conv5_1(self.conv5(c4))
        top = self.conv6_1(self.conv6(c5))
        flow = self.predict_flow6(top)
        for level, skip in ((5, c5), (4, c4), (3, c3), (2, c2)):
            up_flow = getattr(self, f"upsampled_flow{level + 1}_to_{level}")(flow)
            top = torch.cat(
                [skip, _crop(getattr(self, f"deconv{level}")(top), skip), _crop(up_flow, skip)], 1
            )
            flow = getattr(self, f"predict_flow{level}")(top)
        flow = F.avg_pool2d(flow, 2, ceil_mode=True) * self.div_flow * 2
        return flow, F.avg_pool2d(self.scale(top), 2, ceil_mode=True)


FlowNetKind = Literal["simple", "flownets"]


def build_flownet(kind: FlowNetKind, feature_channels: int, width: int) -> nn.Module:
    """DFF's flow network, untrained: ``simple`` is the CPU-sized FlowNetSimple of ``width``,
    ``flownets`` the published FlowNetS (38.7 M parameters, what DFF runs; the paper-scale
    choice)."""
    if kind == "flownets":
        return FlowNetS(feature_channels)
    return FlowNetSimple(feature_channels, width)


def _crop(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return x[..., : like.shape[-2], : like.shape[-1]]


class FlowNetMotion(MotionSource):
    """The flow network as a motion source; bilinear-upsampled when asked for a finer grid."""

    name = "flownet"
    pairwise = True

    def __init__(self, network: nn.Module) -> None:
        self.network = network.eval()

    def modules(self) -> dict[str, nn.Module]:
        return {"flownet": self.network}

    def estimate(self, current: Frame, reference: Frame, stride: int) -> Motion:
        flow, scale = self.network(current.image[None], reference.image[None])
        if stride == FLOW_STRIDE:
            return Motion(flow[0], None, scale[0])
        hw = (current.image.shape[-2], current.image.shape[-1])
        size = (-(-hw[0] // stride), -(-hw[1] // stride))
        return Motion(F.interpolate(flow, size=size, mode="bilinear", align_corners=False)[0])


@dataclass(frozen=True)
class FlowTrainConfig:
    """CPU-sized recipe: pre-training on ground-truth flow, then DFF end-to-end training."""

    width: int = 16
    pretrain_steps: int = 600
    finetune_steps: int = 300
    batch_size: int = 8
    lr: float = 1e-3
    max_key_distance: int = 9  # DFF samples the key from the 9 preceding frames
    pretrain_max_distance: int = 4


def compose_backward(
    flows: np.ndarray, valid: np.ndarray, current: int, distance: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Ground-truth displacement from frame ``current`` to ``current - distance`` by chaining
    one-frame backward flows (``flows[t]`` maps frame t+1 to t); valid where every link is."""
    total = torch.from_numpy(flows[current - 1]).float()
    ok = torch.from_numpy(valid[current - 1]).float()
    for step in range(1, distance):
        link = torch.from_numpy(flows[current - 1 - step]).float()
        link_ok = torch.from_numpy(valid[current - 1 - step]).float()
        sampled = warp(torch.cat([link, link_ok[None]])[None], total, 1)[0]
        total = total + sampled[:2]
        ok = ok * (sampled[2] > 0.999).float()
    return total, ok > 0


def pretrain_flow(
    videos: Sequence[VideoSource], network: nn.Module, config: FlowTrainConfig, seed: int
) -> list[float]:
    """End-point-error training on synthcity's rendered flow, on the stride-16 grid."""
    rng = np.random.default_rng(seed)
    truth = [
        video.backward_flow() for video in tqdm(videos, desc="ground-truth flow", unit="video")
    ]
    optimiser = torch.optim.Adam(network.parameters(), lr=config.lr)
    losses = []
    network.train()
    for _ in tqdm(range(config.pretrain_steps), desc="pre-train flownet", unit="step"):
        currents, references, targets, masks = [], [], [], []
        for _ in range(config.batch_size):
            i = int(rng.integers(len(videos)))
            distance = int(rng.integers(1, config.pretrain_max_distance + 1))
            current = int(rng.integers(distance, videos[i].info.num_frames))
            flow, ok = compose_backward(*truth[i], current, distance)
            frame = videos[i].frame(current)
            hw = (frame.image.shape[-2], frame.image.shape[-1])
            target, cell_ok = regrid(flow, ok, 1, FLOW_STRIDE, hw)
            currents.append(frame.image)
            references.append(videos[i].frame(current - distance).image)
            targets.append(target)
            masks.append(cell_ok)
        predicted, _ = network(torch.stack(currents), torch.stack(references))
        mask = torch.stack(masks).float()
        error = (predicted - torch.stack(targets)).norm(dim=1)
        losses.append(descend(optimiser, (error * mask).sum() / mask.sum().clamp_min(1)))
    return losses


def load_flownet(path: Path, feature_channels: int) -> nn.Module:
    """A flow network from a local file: one saved by ``train_flownet``, or a published
    FlowNetS checkpoint (``{"state_dict": ..., "div_flow": 20}`` with FlowNetS parameter names,
    with or without batch norm), whose scale field then starts at 1."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No flow network weights at {path}.")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise ValueError(f"{path} is not a checkpoint with a state dict.")
    if "conv6.0.weight" in state:
        network: nn.Module = FlowNetS(
            feature_channels,
            batch_norm="conv1.1.running_mean" in state,
            div_flow=float(checkpoint.get("div_flow", 20.0)),
        )
        allowed_missing = {"scale.weight", "scale.bias"}
    elif "flow3.weight" in state:
        network = FlowNetSimple(feature_channels, checkpoint["config"]["width"])
        allowed_missing = set()
    else:
        raise ValueError(
            f"{path}: neither a FlowNetS checkpoint (conv1..conv6_1, predict_flow2..6)"
            " nor a vidbench FlowNetSimple checkpoint."
        )
    result = network.load_state_dict(state, strict=False)
    missing = set(result.missing_keys) - allowed_missing
    if missing or result.unexpected_keys:
        raise ValueError(
            f"{path} does not fit {type(network).__name__}: missing "
            f"{sorted(missing)[:5]}, unexpected {sorted(result.unexpected_keys)[:5]}."
        )
    return network.eval()
