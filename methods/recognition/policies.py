"""Fixed patch-selection policies of AdaFocus Table 5, usable at training and test time.

``random`` draws a candidate uniformly; ``central`` takes the candidate nearest the frame's
centre (the exact middle for the odd 5x5 and 7x7 grids; for 6x6 and 8x8 the first of the tied
nearest ones); ``gaussian`` draws a normalised top-left location from N(0.5, std^2) per axis,
clips it to [0, 1] and snaps it to the nearest candidate. The paper says "a standard gaussian
distribution centred [at] the frame" without giving its scale in pixels; ``GAUSSIAN_STD`` =
0.25 of the candidate range is our choice (the same value the public Sth-Sth code uses as the
std of its continuous location policy). The continuous ``fixed_locations`` serves AdaFocus-TSM.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
from vidbench.methods.recognition.adafocus import candidate_grid

PolicyKind = Literal["learned", "random", "central", "gaussian"]
FixedKind = Literal["random", "central", "gaussian"]
GAUSSIAN_STD = 0.25
CENTRE = 0.5


def _check_fixed(kind: str) -> None:
    if kind not in get_args(FixedKind):
        raise ValueError(f"adafocus: fixed policy {kind!r} is not one of {get_args(FixedKind)}")


def fixed_locations(
    kind: FixedKind,
    shape: tuple[int, ...],
    generator: torch.Generator | None = None,
    std: float = GAUSSIAN_STD,
) -> torch.Tensor:
    """Normalised (row, col) locations in [0, 1] of shape (*shape, 2) drawn by a fixed policy."""
    _check_fixed(kind)
    full = (*shape, 2)
    if kind == "random":
        return torch.rand(full, generator=generator)
    if kind == "central":
        return torch.full(full, CENTRE)
    return (CENTRE + std * torch.randn(full, generator=generator)).clamp(0.0, 1.0)


def nearest_candidate(locations: torch.Tensor, num_candidates: int) -> torch.Tensor:
    """Index of the grid candidate nearest each normalised location (*, 2) -> (*)."""
    grid = candidate_grid(num_candidates).float()
    distance = (locations.float().unsqueeze(-2) - grid).square().sum(dim=-1)
    return distance.argmin(dim=-1)


def choose_fixed(
    kind: FixedKind,
    batch: int,
    num_candidates: int,
    generator: torch.Generator | None = None,
    steps: int | None = None,
    std: float = GAUSSIAN_STD,
) -> torch.Tensor:
    """Candidate indices (batch,) or (batch, steps) chosen by a fixed policy (Table 5)."""
    _check_fixed(kind)
    shape = (batch,) if steps is None else (batch, steps)
    candidate_grid(num_candidates)
    if kind == "random":
        return torch.randint(num_candidates, shape, generator=generator)
    return nearest_candidate(fixed_locations(kind, shape, generator, std), num_candidates)
