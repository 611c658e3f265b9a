"""AdaFocus and AdaFocus+ networks (Wang et al., ICCV 2021, sec. 3.1 and 3.3).

f_G: torchvision MobileNetV2 features on the full 224x224 frame (1280x7x7, no pooling before
the policy). pi: 1x1 conv 1280->32, FC 1568->1024 + ReLU, GRU(1024), softmax over the patch
candidates (Fig. 3; the FC between conv and GRU is the public code's, docs/reference-notes.md
§6a). f_L: torchvision ResNet-50 (no fc) on the PxP patch. f_C: GRU(1024) over
[e_G, e_L] (pooled; e_G reuse switchable, Table 4) and a linear classifier (eq. 4).
AdaFocus+ adds pi' (same architecture, one sigmoid output: the keep probability, eq. 8).
``AdaFocusConfig`` can shrink every part for CPU-scale runs (MobileNetV2 width, ResNet-18 for
f_L, GRU size); the defaults are the paper's networks. ``FrameAverage`` and ``FrameGRU`` are the
ResNet baselines of Fig. 6 (full frames; frame-averaged linear predictions, or a GRU).

Candidates: an n x n grid of normalised top-left corners {0, 1/(n-1), ..., 1}; the crop's
top-left pixel is floor(a * (H - P)) per axis, as the public code (n = 5, 6, 7, 8).

GMACs accounting (checked against Tables 1 and 2, see ``adafocus_flops``): per frame, f_G
(MobileNetV2 features at 224, 0.30 GMACs; its ImageNet classifier is not part of AdaFocus and
is not run), pi and pi' (~0.01), f_L (ResNet-50 at P: 1.34 at 128, 2.09 at 160) and f_C (GRU
on 3328 inputs, 0.013) and its linear layer. The crop is indexing (0 multiply-adds). 16 frames
give 26.52 (P=128) and 38.53 (P=160) GMACs against the paper's 26.6 and 38.6 (-0.3%, -0.2%,
about 5 MMACs per frame; not traced further: rounding or terms such as batch norm that the
paper's counter may include and FlopCounterMode does not).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torchvision.models import mobilenet_v2, resnet18, resnet50
from torchvision.models._utils import _make_divisible
from torchvision.models.resnet import BasicBlock, ResNet

GLOBAL_CHANNELS = 1280
LOCAL_CHANNELS = 2048
HIDDEN = 1024
POLICY_CHANNELS = 32
GRID_SIDES = {25: 5, 36: 6, 49: 7, 64: 8}
PATCH_SIZES = (96, 128, 160, 192)
MINI_WIDTH = 16  # first-stage channels of ``resnet10-mini`` (torchvision's ResNets have 64)


def resnet10_mini(weights: None = None, **_: object) -> ResNet:
    """A ResNet-10 (one BasicBlock per stage) with 16/32/64/128 channels, for the CPU demo's
    ``scale=mini``: the same stem, stages and pooling as torchvision's, 1/4 of ResNet-18's
    widths and half its depth. No ImageNet weights exist for it (``weights`` must be None)."""
    if weights is not None:
        raise ValueError("adafocus: resnet10-mini has no pretrained weights")
    net = ResNet(BasicBlock, [1, 1, 1, 1], num_classes=1000)
    # rebuild the stages at 1/4 width (torchvision's ResNet has no width argument)
    net.inplanes = MINI_WIDTH
    net.conv1 = nn.Conv2d(3, MINI_WIDTH, kernel_size=7, stride=2, padding=3, bias=False)
    net.bn1 = nn.BatchNorm2d(MINI_WIDTH)
    net.layer1 = net._make_layer(BasicBlock, MINI_WIDTH, 1)
    net.layer2 = net._make_layer(BasicBlock, 2 * MINI_WIDTH, 1, stride=2)
    net.layer3 = net._make_layer(BasicBlock, 4 * MINI_WIDTH, 1, stride=2)
    net.layer4 = net._make_layer(BasicBlock, 8 * MINI_WIDTH, 1, stride=2)
    net.fc = nn.Linear(8 * MINI_WIDTH, 1000)
    for module in net.modules():  # torchvision's initialisation, redone for the new layers
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.constant_(module.weight, 1)
            nn.init.constant_(module.bias, 0)
    return net


LOCAL_ARCHS = {
    "resnet50": (resnet50, LOCAL_CHANNELS),
    "resnet18": (resnet18, 512),
    "resnet10-mini": (resnet10_mini, 8 * MINI_WIDTH),
}
BACKBONE_STRIDE = 32


def candidate_grid(num_candidates: int) -> torch.Tensor:
    """Normalised (row, col) top-left corners of the patch candidates, shape (n, 2), row-major."""
    if num_candidates not in GRID_SIDES:
        raise ValueError(
            f"adafocus: num_candidates={num_candidates} is not one of {sorted(GRID_SIDES)}"
        )
    side = GRID_SIDES[num_candidates]
    steps = torch.arange(side, dtype=torch.float64) / (side - 1)
    rows, cols = torch.meshgrid(steps, steps, indexing="ij")
    return torch.stack([rows.flatten(), cols.flatten()], dim=1)


def patch_corners(location: torch.Tensor, frame_size: tuple[int, int], patch: int) -> torch.Tensor:
    """Pixel top-left corners floor(location * (size - P)) for normalised locations (B, 2)."""
    height, width = frame_size
    if patch > min(height, width):
        raise ValueError(f"adafocus: patch {patch} is larger than the frame {height}x{width}")
    span = torch.tensor([height - patch, width - patch], dtype=torch.float64)
    return torch.floor(location.double().cpu() * span).long()


def crop_patches(frames: torch.Tensor, corners: torch.Tensor, patch: int) -> torch.Tensor:
    """Crop a PxP patch from each frame (B, C, H, W) at its pixel corner (B, 2)."""
    if frames.shape[0] != corners.shape[0]:
        raise ValueError(
            f"adafocus: {frames.shape[0]} frames but {corners.shape[0]} patch corners"
        )
    crops = [
        frame[:, top : top + patch, left : left + patch]
        for frame, (top, left) in zip(frames, corners.tolist())
    ]
    return torch.stack(crops)


def global_cnn(width: float = 1.0) -> nn.Module:
    """f_G: MobileNetV2 features (no pooling, no classifier), (B,3,H,W) -> (B,1280,H/32,W/32);
    ``width`` is torchvision's width_mult (the last layer keeps 1280 channels for width <= 1)."""
    return mobilenet_v2(weights=None, width_mult=width).features


def global_channels(width: float = 1.0) -> int:
    """Channels of f_G's output for a MobileNetV2 width multiplier (torchvision's rule)."""
    return _make_divisible(GLOBAL_CHANNELS * max(1.0, width), 8)


def feature_grid(frame_size: tuple[int, int]) -> tuple[int, int]:
    """Spatial size of a stride-32 backbone's map (padding rounds each halving up)."""
    return tuple(math.ceil(side / BACKBONE_STRIDE) for side in frame_size)


def local_backbone(arch: str) -> tuple[nn.Module, int]:
    """A torchvision ResNet without its fc, and its pooled feature width."""
    if arch not in LOCAL_ARCHS:
        raise ValueError(f"adafocus: local_arch {arch!r} is not one of {sorted(LOCAL_ARCHS)}")
    build, channels = LOCAL_ARCHS[arch]
    net = build(weights=None)
    net.fc = nn.Identity()
    return net, channels


class LocalCNN(nn.Module):
    """f_L: ResNet-50 (or ResNet-18) up to global average pooling, (B, 3, P, P) -> (B, C)."""

    def __init__(self, arch: str = "resnet50") -> None:
        super().__init__()
        self.net, self.out_channels = local_backbone(arch)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        return self.net(patches)


class RecurrentPolicy(nn.Module):
    """pi (Fig. 3): 1x1 conv on e_G, FC + ReLU, GRU cell, an actor head of ``outputs`` logits;
    a critic head (the PPO value) that only training runs."""

    def __init__(
        self,
        outputs: int,
        feature_hw: tuple[int, int] = (7, 7),
        channels: int = GLOBAL_CHANNELS,
        hidden: int = HIDDEN,
    ) -> None:
        super().__init__()
        self.squeeze = nn.Conv2d(channels, POLICY_CHANNELS, kernel_size=1)
        self.embed = nn.Linear(POLICY_CHANNELS * feature_hw[0] * feature_hw[1], hidden)
        self.gru = nn.GRUCell(hidden, hidden)
        self.actor = nn.Linear(hidden, outputs)
        self.critic = nn.Linear(hidden, 1)

    def forward(
        self, global_map: torch.Tensor, hidden: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One step: returns (actor logits, new hidden state)."""
        state = torch.relu(self.embed(self.squeeze(global_map).flatten(1)))
        hidden = self.gru(state, hidden)
        return self.actor(hidden), hidden

    def value(self, hidden: torch.Tensor) -> torch.Tensor:
        """The critic's state value (B,) for PPO training; not run at inference."""
        return self.critic(hidden).squeeze(1)


@dataclass(frozen=True)
class AdaFocusConfig:
    """Sec. 4.1: P in {96,128,160,192}, 49 candidates, GRU(1024); ``reuse_global`` is Table 4.
    ``global_width`` (MobileNetV2 width_mult), ``local_arch`` and ``hidden`` (GRU size of pi, pi'
    and f_C) shrink the networks for CPU-scale runs; the defaults are the paper's."""

    num_classes: int = 200
    patch: int = 128
    num_candidates: int = 49
    reuse_global: bool = True
    skip_policy: bool = False
    dropout: float = 0.8
    frame_size: tuple[int, int] = (224, 224)
    global_width: float = 1.0
    local_arch: str = "resnet50"
    hidden: int = HIDDEN

    def __post_init__(self) -> None:
        if self.patch >= min(self.frame_size):
            raise ValueError(f"adafocus: patch {self.patch} must be < frame {self.frame_size}")
        if self.local_arch not in LOCAL_ARCHS:
            raise ValueError(
                f"adafocus: local_arch {self.local_arch!r} is not one of {sorted(LOCAL_ARCHS)}"
            )
        candidate_grid(self.num_candidates)


@dataclass
class StreamState:
    """Recurrent state between frames: hidden states of pi, pi' and f_C."""

    policy: torch.Tensor | None = None
    keep: torch.Tensor | None = None
    classifier: torch.Tensor | None = None


@dataclass
class StepOutput:
    """What one frame step produced: class logits after this frame (B, K), the chosen candidate
    (B,), the policy's distribution (B, n), the keep probability (B,) or None, the keep mask."""

    logits: torch.Tensor
    action: torch.Tensor
    probs: torch.Tensor
    keep_prob: torch.Tensor | None
    kept: torch.Tensor


class AdaFocus(nn.Module):
    """The four components of sec. 3.1, plus pi' of sec. 3.3 when ``config.skip_policy``."""

    def __init__(self, config: AdaFocusConfig) -> None:
        super().__init__()
        self.config = config
        feature_hw = feature_grid(config.frame_size)
        channels = global_channels(config.global_width)
        self.global_cnn = global_cnn(config.global_width)
        self.local_cnn = LocalCNN(config.local_arch)
        self.policy = RecurrentPolicy(config.num_candidates, feature_hw, channels, config.hidden)
        self.keep_policy = (
            RecurrentPolicy(1, feature_hw, channels, config.hidden) if config.skip_policy else None
        )
        width = self.local_cnn.out_channels + (channels if config.reuse_global else 0)
        self.classifier_gru = nn.GRUCell(width, config.hidden)
        self.dropout = nn.Dropout(config.dropout)
        self.fc = nn.Linear(config.hidden, config.num_classes)
        self.register_buffer("candidates", candidate_grid(config.num_candidates).float())

    def choose(self, logits: torch.Tensor, action: torch.Tensor | None) -> torch.Tensor:
        """Eq. 3: sample from pi in training, argmax at test; a given ``action`` wins."""
        if action is not None:
            return action
        if self.training:
            return torch.distributions.Categorical(logits=logits).sample()
        return logits.argmax(dim=1)

    def step(
        self,
        frame: torch.Tensor,
        state: StreamState,
        action: torch.Tensor | None = None,
        rho: float | None = None,
        keep: torch.Tensor | None = None,
    ) -> tuple[StepOutput, StreamState]:
        """Process one frame (B, 3, H, W). AdaFocus+ runs f_L only where p^B >= ``rho`` (or
        where ``keep`` is True; without either it samples b_t in training, keeps all at eval);
        skipped frames feed zeros for e_L to f_C (eq. 9)."""
        global_map = self.global_cnn(frame)
        policy_logits, policy_hidden = self.policy(global_map, state.policy)
        action = self.choose(policy_logits, action)
        keep_prob, keep_hidden = None, state.keep
        if self.keep_policy is not None:
            keep_logit, keep_hidden = self.keep_policy(global_map, state.keep)
            keep_prob = torch.sigmoid(keep_logit.squeeze(1))
            if keep is None:
                keep = keep_prob >= rho if rho is not None else self._sample_keep(keep_prob)
        if keep is None:
            keep = torch.ones(frame.shape[0], dtype=torch.bool, device=frame.device)
        local = self.local_features(frame, action, keep)
        logits, classifier_hidden = self.classify_step(global_map, local, state.classifier)
        output = StepOutput(logits, action, policy_logits.softmax(dim=1), keep_prob, keep)
        return output, StreamState(policy_hidden, keep_hidden, classifier_hidden)

    def _sample_keep(self, keep_prob: torch.Tensor) -> torch.Tensor:
        """Eq. 8: b_t ~ Bernoulli(p^B) in training; at eval with no rho every frame is kept."""
        if self.training:
            return torch.bernoulli(keep_prob).bool()
        return torch.ones_like(keep_prob, dtype=torch.bool)

    def local_features(
        self, frame: torch.Tensor, action: torch.Tensor, keep: torch.Tensor
    ) -> torch.Tensor:
        """f_L on the kept frames' patches; zeros elsewhere (f_L is not run for them)."""
        local = frame.new_zeros(frame.shape[0], self.local_cnn.out_channels)
        rows = keep.nonzero().flatten()
        if rows.numel() == 0:
            return local
        corners = patch_corners(
            self.candidates[action[rows]], tuple(frame.shape[-2:]), self.config.patch
        )
        patches = crop_patches(frame[rows], corners, self.config.patch)
        local[rows] = self.local_cnn(patches).to(local.dtype)
        return local

    def classify_step(
        self, global_map: torch.Tensor, local: torch.Tensor, hidden: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """f_C (eq. 4): GRU over [pooled e_G, pooled e_L], then the linear classifier."""
        parts = [global_map.mean(dim=(2, 3)), local] if self.config.reuse_global else [local]
        hidden = self.classifier_gru(torch.cat(parts, dim=1), hidden)
        return self.fc(self.dropout(hidden)), hidden

    def glance(self, video: torch.Tensor) -> torch.Tensor:
        """f_G on every frame of (B, T, 3, H, W) at once: maps (B, T, C, h, w)."""
        return self.global_cnn(video.flatten(0, 1)).unflatten(0, tuple(video.shape[:2]))

    def forward(
        self,
        video: torch.Tensor,
        actions: torch.Tensor | None = None,
        rho: float | None = None,
        keep: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Whole video (B, T, 3, H, W), offline (sec. 3.4): f_G on all frames at once, the
        recurrent policies, f_L on all kept patches at once, then f_C. Returns per-step
        ``logits`` (B, T, K), ``actions`` (B, T), ``probs`` (B, T, n), ``kept`` (B, T) and,
        for AdaFocus+, ``keep_prob`` (B, T)."""
        batch, steps = video.shape[:2]
        frames = video.flatten(0, 1)
        global_maps = self.glance(video)
        chosen, probs, keep_probs = [], [], []
        policy_hidden = keep_hidden = None
        for t in range(steps):
            logits, policy_hidden = self.policy(global_maps[:, t], policy_hidden)
            given = actions[:, t] if actions is not None else None
            chosen.append(self.choose(logits, given))
            probs.append(logits.softmax(dim=1))
            if self.keep_policy is not None:
                keep_logit, keep_hidden = self.keep_policy(global_maps[:, t], keep_hidden)
                keep_probs.append(torch.sigmoid(keep_logit.squeeze(1)))
        action = torch.stack(chosen, dim=1)
        kept = self._keep_mask(keep_probs, rho, keep, batch, steps, video.device)
        local = self.local_features(frames, action.flatten(), kept.flatten())
        local = local.unflatten(0, (batch, steps))
        hidden, step_logits = None, []
        for t in range(steps):
            logits, hidden = self.classify_step(global_maps[:, t], local[:, t], hidden)
            step_logits.append(logits)
        out = {
            "logits": torch.stack(step_logits, dim=1),
            "actions": action,
            "probs": torch.stack(probs, dim=1),
            "kept": kept,
        }
        if keep_probs:
            out["keep_prob"] = torch.stack(keep_probs, dim=1)
        return out

    def _keep_mask(
        self,
        keep_probs: list[torch.Tensor],
        rho: float | None,
        keep: torch.Tensor | None,
        batch: int,
        steps: int,
        device: torch.device,
    ) -> torch.Tensor:
        if keep is not None:
            return keep.bool()
        if not keep_probs:
            return torch.ones(batch, steps, dtype=torch.bool, device=device)
        stacked = torch.stack(keep_probs, dim=1)
        if rho is not None:
            return stacked >= rho
        return self._sample_keep(stacked)


def solve_rho(keep_probs: torch.Tensor, eta: float) -> float:
    """Sec. 3.3: the threshold rho such that p^B >= rho keeps the top ``eta`` fraction of the
    given keep probabilities (ceil(eta * N) of them; ties at rho may keep a few more)."""
    if not 0.0 < eta <= 1.0:
        raise ValueError(f"adafocus: eta={eta} must be in (0, 1]")
    flat = keep_probs.detach().flatten()
    if flat.numel() == 0:
        raise ValueError("adafocus: solve_rho needs at least one keep probability")
    count = max(1, math.ceil(eta * flat.numel() - 1e-9))
    return float(torch.sort(flat, descending=True).values[count - 1])


@dataclass(frozen=True)
class BaselineConfig:
    """Fig. 6 baselines: a ResNet on full frames, ``arch`` and ``hidden`` as in AdaFocusConfig."""

    num_classes: int = 200
    arch: str = "resnet50"
    hidden: int = HIDDEN
    dropout: float = 0.8


class FrameAverage(nn.Module):
    """Fig. 6 "ResNet-50": frame-wise linear predictions on full frames, averaged over frames."""

    def __init__(self, config: BaselineConfig) -> None:
        super().__init__()
        self.backbone, channels = local_backbone(config.arch)
        self.dropout = nn.Dropout(config.dropout)
        self.fc = nn.Linear(channels, config.num_classes)

    def forward(self, video: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B, T, 3, H, W) -> ``logits`` (B, T, K): the running mean up to each frame."""
        frames = self.backbone(video.flatten(0, 1)).unflatten(0, tuple(video.shape[:2]))
        per_frame = self.fc(self.dropout(frames))
        counts = torch.arange(1, video.shape[1] + 1, device=video.device, dtype=per_frame.dtype)
        return {"logits": per_frame.cumsum(dim=1) / counts[None, :, None]}


class FrameGRU(nn.Module):
    """Fig. 6 "ResNet-50 + GRU": full-frame ResNet features into a GRU and a linear classifier."""

    def __init__(self, config: BaselineConfig) -> None:
        super().__init__()
        self.backbone, channels = local_backbone(config.arch)
        self.gru = nn.GRUCell(channels, config.hidden)
        self.dropout = nn.Dropout(config.dropout)
        self.fc = nn.Linear(config.hidden, config.num_classes)

    def forward(self, video: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B, T, 3, H, W) -> ``logits`` (B, T, K) after each frame."""
        frames = self.backbone(video.flatten(0, 1)).unflatten(0, tuple(video.shape[:2]))
        hidden, logits = None, []
        for t in range(video.shape[1]):
            hidden = self.gru(frames[:, t], hidden)
            logits.append(self.fc(self.dropout(hidden)))
        return {"logits": torch.stack(logits, dim=1)}
