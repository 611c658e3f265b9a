"""PSLA and the attention modules of its ablations (seed 001, sec. 3.2, sec. 4.3, Tables 2-3).

Every module aligns a *source* feature map ``F^t`` (the one whose content is moved, e.g. the
temporal feature) to a *target* ``F^{t+eps}`` (the frame being processed):
``aligned = module(target, source)``, the paper's ``PSLA(F^{t+eps}, F^t)``. For each target
cell p1 = (x, y), affinities c(p1, p2) = <g(F^{t+eps}_p1), f(F^t_p2)> (Eq. 1) are computed for
the source cells p2 of a neighbourhood, normalised over it, and the source feature (not its
embedding) is aggregated with those weights (Eq. 5). f and g are 1x1 convolutions to 256
channels (sec. 3.5). The text names the embeddings f(F^t), g(F^{t+eps}); Fig. 1's caption has
them the other way round: here f embeds the source, g the target.

The family differs only in the neighbourhood and the normalisation (sec. 4.3):

- ``ProgressiveSparseLocalAttention`` (PSLA): Phi of Eqs. 2-3, softmax (Eq. 4).
- ``DensePSLA``: the full (2d+1)^2 window, softmax.
- ``MatchTrans`` (STMN, Xiao & Lee, ECCV 2018, the paper's [37]): the (2d+1)^2 window, weights
  are the similarities divided by their sum over the window ("accumulating all similarity
  scores in the local region", sec. 4.3). As STMN's released code computes it (checked against
  its MatchTrans module and CUDA kernel): the cosine of the two maps at each cell pair,
  similarities <= 0 set to 0, the rest divided by their sum over the window (no softmax, no
  temperature, so the weights are much flatter than a softmax's: that is the contrast sec. 4.3
  draws); a cell whose similarities are all <= 0 keeps the source's own feature there.
  ``similarity="embedded"`` (default) takes the cosine of the embeddings f, g, as PSLA's Table 3
  implies (62.7 M parameters for every propagation method, so they share f and g);
  ``similarity="features"`` takes it of the feature maps themselves, as STMN does (no f, g).
  STMN also passes no gradient through the similarity; here it does, because in PSLA's
  framework the target is the Transform Net's output, which would otherwise never train in
  the S setting.
- ``Nonlocal`` (Wang et al. [36], embedded Gaussian): every source position, softmax.

All four keep the same f and g (the paper's Table 3 lists 62.7 M parameters for every one of
them, so they differ in no learned layer); Nonlocal here has no value or output convolution.

Border: the embedded source and the source feature are zero-padded by d, and an offset that
falls outside the map is left out of the normalisation (its affinity is -inf before the softmax;
MatchTrans's clamped cosine is 0 there, as in STMN's kernel), so the weights of every cell fall on real positions.
(A first version let padded cells take part in the softmax with affinity 0: on small maps, where
every cell has offsets outside, training pushed all weight onto those zeros and PSLA (a)
propagated nothing: 6.3 mAP on synthdet at l = 10.)

Cost: affinities and aggregation are batched matrix products (``torch.matmul``), so PyTorch's
FLOP counter sees them: per target cell, |Phi| * c_embed multiply-adds for Eq. 1 and
|Phi| * C for Eq. 5, plus C * c_embed for each of the two 1x1 embeddings. The shifted copies of
the source are materialised: memory B*H*W*|Phi|*C floats (323 MB for C = 1024, d = 4 on the
38x63 map of a 600x1000 image).
"""

from __future__ import annotations

import typing
from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

EMBED_CHANNELS = 256  # sec. 3.5: f and g are 1x1 convolutions with 256 filters
DEFAULT_MAX_DISPLACEMENT = 4  # sec. 3.5: d = 4 by default
MATCHTRANS_EPS = 1e-8
MatchTransSimilarity = Literal["embedded", "features"]
MATCHTRANS_SIMILARITIES: tuple[str, ...] = typing.get_args(MatchTransSimilarity)

Offset = tuple[int, int]  # (dy, dx): the source cell (y + dy, x + dx) for target cell (y, x)


def progressive_sparse_offsets(max_displacement: int) -> list[Offset]:
    """Phi of Eqs. 2-3: the centre, then for each stride s = 1..d the 8 cells (a, b) with
    a, b in {-s, 0, s} other than the centre (the paper's "(x + a, x + b)" is read as
    (x + a, y + b)). |Phi| = 1 + 8d. For d = 4 these 33 offsets (dy, dx), in this order:

    (0, 0);
    s=1: (-1,-1) (-1,0) (-1,1) (0,-1) (0,1) (1,-1) (1,0) (1,1);
    s=2: (-2,-2) (-2,0) (-2,2) (0,-2) (0,2) (2,-2) (2,0) (2,2);
    s=3: (-3,-3) (-3,0) (-3,3) (0,-3) (0,3) (3,-3) (3,0) (3,3);
    s=4: (-4,-4) (-4,0) (-4,4) (0,-4) (0,4) (4,-4) (4,0) (4,4).

    The sub-regions do not overlap, so stride 1 covers the 3x3 centre densely and each ring
    s > 1 samples only its corners and edge mid-points: the grid gets sparser outwards (Fig. 1).
    """
    _check_displacement(max_displacement)
    offsets: list[Offset] = [(0, 0)]
    for s in range(1, max_displacement + 1):
        offsets += [(a, b) for a in (-s, 0, s) for b in (-s, 0, s) if (a, b) != (0, 0)]
    return offsets


def dense_offsets(max_displacement: int) -> list[Offset]:
    """The full (2d+1)^2 window of MatchTrans and DensePSLA, row-major."""
    _check_displacement(max_displacement)
    span = range(-max_displacement, max_displacement + 1)
    return [(a, b) for a in span for b in span]


def _check_displacement(max_displacement: int) -> None:
    if not isinstance(max_displacement, int) or max_displacement < 1:
        raise ValueError(f"max displacement d must be an integer >= 1, got {max_displacement!r}")


def _embedding(channels: int, embed_channels: int) -> nn.Conv2d:
    return nn.Conv2d(channels, embed_channels, kernel_size=1)


def inside_map(height: int, width: int, offsets: Sequence[Offset]) -> torch.Tensor:
    """(H, W, K) bool: cell (y, x) + offset k lies inside the map (the centre always does)."""
    ys = torch.arange(height)[:, None, None]
    xs = torch.arange(width)[None, :, None]
    dy = torch.tensor([o[0] for o in offsets])[None, None, :]
    dx = torch.tensor([o[1] for o in offsets])[None, None, :]
    return (ys + dy >= 0) & (ys + dy < height) & (xs + dx >= 0) & (xs + dx < width)


def shifted_stack(x: torch.Tensor, offsets: Sequence[Offset]) -> torch.Tensor:
    """(B, C, H, W) -> (B, H, W, K, C): entry [b, y, x, k] is x[b, :, y + dy_k, x + dx_k], zero
    where that cell lies outside the map."""
    reach = max(max(abs(dy), abs(dx)) for dy, dx in offsets)
    height, width = x.shape[-2:]
    padded = nn.functional.pad(x, (reach, reach, reach, reach)).permute(0, 2, 3, 1)
    return torch.stack(
        [
            padded[:, reach + dy : reach + dy + height, reach + dx : reach + dx + width, :]
            for dy, dx in offsets
        ],
        dim=3,
    )


class AttentionAlignment(nn.Module):
    """The part every family member shares: the embeddings f (source) and g (target)."""

    def __init__(self, channels: int, embed_channels: int = EMBED_CHANNELS) -> None:
        super().__init__()
        if channels < 1 or embed_channels < 1:
            raise ValueError(
                f"channels ({channels}) and embed_channels ({embed_channels}) must be >= 1"
            )
        self.channels = channels
        self.embed_channels = embed_channels
        self.f = _embedding(channels, embed_channels)
        self.g = _embedding(channels, embed_channels)

    def embed_source(self, source: torch.Tensor) -> torch.Tensor:
        """f(F^t): reusable while the source stays the same (e.g. F_t between key frames)."""
        return self.f(source)

    def embed_target(self, target: torch.Tensor) -> torch.Tensor:
        """g(F^{t+eps})."""
        return self.g(target)

    def weights(self, target_emb: torch.Tensor, source_emb: torch.Tensor) -> torch.Tensor:
        """Normalised correspondence weights; layout defined by the subclass."""
        raise NotImplementedError

    def aggregate(self, weights: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        """Eq. 5: the source aggregated with ``weights`` -> (B, C, H, W)."""
        raise NotImplementedError

    def forward(
        self,
        target: torch.Tensor,
        source: torch.Tensor,
        source_emb: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``source`` (B, C, H, W) aligned to ``target`` (B, C, H, W); pass ``source_emb``
        to reuse f(source) computed earlier."""
        if target.dim() != 4 or target.shape != source.shape or target.shape[1] != self.channels:
            raise ValueError(
                f"{type(self).__name__}: target {tuple(target.shape)} and source "
                f"{tuple(source.shape)} must both be (B, {self.channels}, H, W)"
            )
        if source_emb is None:
            source_emb = self.embed_source(source)
        return self.aggregate(self.weights(self.embed_target(target), source_emb), source)


class LocalAttention(AttentionAlignment):
    """Attention over a fixed set of offsets; weights are (B, H, W, K), K = len(offsets)."""

    normalisation = "softmax"

    def __init__(
        self,
        channels: int,
        offsets: Sequence[Offset],
        embed_channels: int = EMBED_CHANNELS,
    ) -> None:
        super().__init__(channels, embed_channels)
        if not offsets or len(set(offsets)) != len(offsets):
            raise ValueError(f"offsets must be non-empty and distinct, got {list(offsets)}")
        self.offsets: list[Offset] = [(int(dy), int(dx)) for dy, dx in offsets]

    def affinities(self, target_emb: torch.Tensor, source_emb: torch.Tensor) -> torch.Tensor:
        """Eq. 1 at every offset: (B, H, W, K), as batched products counted by the FLOP counter."""
        keys = shifted_stack(source_emb, self.offsets)  # (B, H, W, K, c)
        query = target_emb.permute(0, 2, 3, 1).unsqueeze(-1)  # (B, H, W, c, 1)
        return torch.matmul(keys, query).squeeze(-1)

    def weights(self, target_emb: torch.Tensor, source_emb: torch.Tensor) -> torch.Tensor:
        """Eq. 4: softmax over the offsets that fall inside the map."""
        affinities = self.affinities(target_emb, source_emb)
        inside = inside_map(affinities.shape[1], affinities.shape[2], self.offsets)
        return torch.softmax(affinities.masked_fill(~inside.to(affinities.device), -torch.inf), -1)

    def aggregate(self, weights: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        values = shifted_stack(source, self.offsets)  # (B, H, W, K, C)
        aligned = torch.matmul(weights.unsqueeze(-2), values).squeeze(-2)  # (B, H, W, C)
        return aligned.permute(0, 3, 1, 2).contiguous()


class ProgressiveSparseLocalAttention(LocalAttention):
    """PSLA (sec. 3.2, Eqs. 1-5): softmax attention over the 1 + 8d offsets of Phi."""

    def __init__(
        self,
        channels: int,
        max_displacement: int = DEFAULT_MAX_DISPLACEMENT,
        embed_channels: int = EMBED_CHANNELS,
    ) -> None:
        super().__init__(channels, progressive_sparse_offsets(max_displacement), embed_channels)
        self.max_displacement = max_displacement


class DensePSLA(LocalAttention):
    """DensePSLA (sec. 4.3): PSLA's weights (softmax, Eq. 4) over the full (2d+1)^2 window."""

    def __init__(
        self,
        channels: int,
        max_displacement: int = DEFAULT_MAX_DISPLACEMENT,
        embed_channels: int = EMBED_CHANNELS,
    ) -> None:
        super().__init__(channels, dense_offsets(max_displacement), embed_channels)
        self.max_displacement = max_displacement


class MatchTrans(DensePSLA):
    """MatchTrans (STMN [37]) over the (2d+1)^2 window: non-negative cosine similarities divided
    by their sum over the window (no softmax); a cell without a positive similarity keeps the
    source's own feature. ``similarity``: of the embeddings f, g or of the features."""

    normalisation = "sum"

    def __init__(
        self,
        channels: int,
        max_displacement: int = DEFAULT_MAX_DISPLACEMENT,
        embed_channels: int = EMBED_CHANNELS,
        similarity: MatchTransSimilarity = "embedded",
    ) -> None:
        super().__init__(channels, max_displacement, embed_channels)
        if similarity not in MATCHTRANS_SIMILARITIES:
            raise ValueError(
                f"MatchTrans similarity {similarity!r}; allowed: {', '.join(MATCHTRANS_SIMILARITIES)}"
            )
        self.similarity = similarity
        if similarity == "features":  # STMN: the cosine of the maps themselves, nothing learned
            self.f = self.g = nn.Identity()

    def weights(self, target_emb: torch.Tensor, source_emb: torch.Tensor) -> torch.Tensor:
        def unit(x: torch.Tensor) -> torch.Tensor:
            return x / (x.norm(dim=1, keepdim=True) + MATCHTRANS_EPS)

        similarity = self.affinities(unit(target_emb), unit(source_emb)).clamp(min=0)
        mass = similarity.sum(dim=-1, keepdim=True)
        own = torch.zeros(len(self.offsets), dtype=similarity.dtype, device=similarity.device)
        own[self.offsets.index((0, 0))] = 1.0
        return torch.where(mass > 0, similarity / mass.clamp(min=MATCHTRANS_EPS), own)


class Nonlocal(AttentionAlignment):
    """Nonlocal [36] as the paper's ablation uses it: softmax over all H*W source positions of the
    same embedded dot products; weights are (B, H*W target, H*W source)."""

    normalisation = "softmax"

    def weights(self, target_emb: torch.Tensor, source_emb: torch.Tensor) -> torch.Tensor:
        query = target_emb.flatten(2).transpose(1, 2)  # (B, HW, c)
        keys = source_emb.flatten(2)  # (B, c, HW)
        return torch.softmax(torch.matmul(query, keys), dim=-1)

    def aggregate(self, weights: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = source.shape
        values = source.flatten(2).transpose(1, 2)  # (B, HW, C)
        aligned = torch.matmul(weights, values)  # (B, HW, C)
        return aligned.transpose(1, 2).reshape(batch, channels, height, width)


AttentionKind = Literal["psla", "dense-psla", "matchtrans", "nonlocal"]
ATTENTION_KINDS: tuple[str, ...] = typing.get_args(AttentionKind)


def build_attention(
    kind: str,
    channels: int,
    max_displacement: int = DEFAULT_MAX_DISPLACEMENT,
    embed_channels: int = EMBED_CHANNELS,
    matchtrans_similarity: str = "embedded",
) -> AttentionAlignment:
    """One family member by its registry-style name (``ATTENTION_KINDS``); Nonlocal ignores d,
    only MatchTrans reads ``matchtrans_similarity``."""
    if kind == "psla":
        return ProgressiveSparseLocalAttention(channels, max_displacement, embed_channels)
    if kind == "dense-psla":
        return DensePSLA(channels, max_displacement, embed_channels)
    if kind == "matchtrans":
        return MatchTrans(channels, max_displacement, embed_channels, matchtrans_similarity)
    if kind == "nonlocal":
        return Nonlocal(channels, embed_channels)
    raise ValueError(f"unknown attention kind {kind!r}; expected one of {ATTENTION_KINDS}")
