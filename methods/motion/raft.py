"""torchvision's RAFT (Teed and Deng, ECCV 2020) as a motion source, from a local weights file.

Direction. ``RAFT(image1, image2)`` returns, at every pixel x of image1, the flow f with
image1(x) ~ image2(x + f). The interface wants, at every pixel of the *current* frame, the
offset to where that content sits in the *reference* frame, so image1 is the current frame
and image2 the reference: the output is already reference position - current position.

Nothing is downloaded: the network is built with ``weights=None`` and a torchvision checkpoint
(a state dict, e.g. ``raft_small_C_T_V2-01064c6d.pth``) is loaded from a path when given;
without one the network is randomly initialised and ``pretrained`` is False.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.nn import functional as F
from torchvision.models import optical_flow
from vidbench.api import Frame
from vidbench.methods.motion.sources import Motion, MotionSource, regrid

VARIANTS = {
    "small": (optical_flow.raft_small, optical_flow.Raft_Small_Weights.DEFAULT),
    "large": (optical_flow.raft_large, optical_flow.Raft_Large_Weights.DEFAULT),
}
# torchvision's RAFT refuses feature maps under 16 cells at 1/8 resolution
MIN_SIZE = 128


def build_raft(variant: str) -> torch.nn.Module:
    """An untrained torchvision ``raft_{variant}`` (never downloads)."""
    if variant not in VARIANTS:
        raise ValueError(f"RAFT: unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    return VARIANTS[variant][0](weights=None, progress=False)


def load_raft_weights(network: torch.nn.Module, path: Path, variant: str) -> None:
    """Load a torchvision RAFT state dict from ``path`` into ``network`` (strict), with errors
    that name the file and, when it fits the other variant, say so."""
    if not path.is_file():
        url = VARIANTS[variant][1].url
        raise FileNotFoundError(
            f"RAFT weights file {path} does not exist; download torchvision's raft_{variant} "
            f"checkpoint ({url}) on a machine with internet access and pass its local path, "
            f"or pass weights=None for a randomly initialised network"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for non-checkpoint files
        raise ValueError(
            f"RAFT weights file {path} is not a readable torch checkpoint "
            f"({type(error).__name__}: {error})"
        ) from error
    if not isinstance(state, dict):
        raise ValueError(
            f"RAFT weights file {path} holds a {type(state).__name__}, not a "
            f"state dict; save it with torch.save(model.state_dict(), path)"
        )
    try:
        network.load_state_dict(state)
    except RuntimeError as error:
        hint = " Check which variant (small or large) it was saved from."
        for other in VARIANTS:
            if other != variant and _fits(build_raft(other), state):
                hint = f" It is a raft_{other} checkpoint: pass variant={other!r}."
        summary = _mismatch(network, state)
        raise ValueError(
            f"RAFT weights file {path} does not match raft_{variant} ({summary}).{hint}"
        ) from error


def _mismatch(network: torch.nn.Module, state: dict) -> str:
    """A one-line account of how a state dict differs from a network's: key and shape counts."""
    expected = network.state_dict()
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    reshaped = [
        key
        for key in expected
        if key in state and getattr(state[key], "shape", None) != expected[key].shape
    ]
    parts = [
        f"{len(keys)} {what}, e.g. {keys[0]}"
        for what, keys in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("shape mismatches", reshaped),
        )
        if keys
    ]
    return "; ".join(parts) or "load_state_dict refused it"


def _fits(network: torch.nn.Module, state: dict) -> bool:
    try:
        network.load_state_dict(state)
    except RuntimeError:
        return False
    return True


class RAFTMotion(MotionSource):
    """RAFT flow between any two frames at full resolution (last refinement iteration),
    averaged onto the stride grid. Runs on the device of its parameters."""

    name = "raft"
    pairwise = True

    def __init__(
        self, variant: str = "small", weights: str | Path | None = None, iterations: int = 12
    ) -> None:
        if iterations < 1:
            raise ValueError(f"RAFTMotion: iterations must be >= 1, got {iterations}")
        self.variant = variant
        self.iterations = iterations
        self.network = build_raft(variant).eval()
        self.weights = None if weights is None else Path(weights)
        if self.weights is not None:
            load_raft_weights(self.network, self.weights, variant)
        self.pretrained = self.weights is not None

    def modules(self) -> dict[str, torch.nn.Module]:
        return {"raft": self.network}

    def estimate(self, current: Frame, reference: Frame, stride: int) -> Motion:
        if current.image.shape != reference.image.shape:
            raise ValueError(
                f"RAFTMotion: frames {current.index} and {reference.index} differ in size, "
                f"{tuple(current.image.shape)} vs {tuple(reference.image.shape)}"
            )
        height, width = current.image.shape[-2:]
        device = next(self.network.parameters()).device
        # (2, 3, H, W) in [-1, 1] as torchvision's OpticalFlow transform makes them; RAFT
        # needs sizes divisible by 8 and at least MIN_SIZE (its correlation pyramid halves a
        # 1/8-resolution map three times), so replicate-pad right and bottom, crop flow back
        pad_h, pad_w = (max(MIN_SIZE, size + -size % 8) - size for size in (height, width))
        pair = torch.stack((current.image, reference.image)).to(device, torch.float32)
        pair = F.pad(pair * 2 - 1, (0, pad_w, 0, pad_h), mode="replicate")
        with torch.no_grad():
            flows = self.network(pair[:1], pair[1:], num_flow_updates=self.iterations)
        field = flows[-1][0, :, :height, :width]  # (2, H, W) (dx, dy), current -> reference
        valid = torch.ones(height, width, dtype=torch.bool, device=field.device)
        displacement, valid = regrid(field, valid, 1, stride, (height, width))
        return Motion(displacement.to(current.image.device), valid.to(current.image.device))
