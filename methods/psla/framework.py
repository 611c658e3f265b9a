"""PSLA's video detection framework as plain modules (seed 001, sec. 3.3-3.5, Tables 2 and 5).

Key frames run the full network N_f (high-level feature F_h); non-key frames run the cheap
N_l (ResNet-101 up to res4b3, low-level feature F_l). Neither network is built here: these
modules take their output tensors. What is built:

- ``TransformNet`` (sec. 3.4, 3.5, Fig. 5): a bottleneck mapping F_l to the high-level space:
  1x1 conv reducing the channels, then 3x3 convs with 256 and C_h filters.
- ``FusionWeights``, the structure of both Update Net (sec. 3.3, Fig. 4) and Quality Net
  (sec. 3.5, "the same as Update Net"): the two maps concatenated, a 1x1 conv to 256, 3x3
  convs with 16 and 2 filters, softmax over the 2 maps per cell, then the weighted sum (Eq. 6).
- ``RecursiveFeatureUpdating`` (RFU, Eq. 6): F_t <- W^ . PSLA(F_h^k, F_t) + W . F_h^k.
- ``DenseFeatureTransforming`` (DenseFT, sec. 3.4): PSLA(TransformNet(F_l), F_t), fused by the
  Quality Net with the transformed feature.
- ``PSLAConfig`` and ``PSLAFramework``: the configurations of Tables 2 and 5.

Read from the paper's ablation (sec. 4.3, Table 2): Transform Net is used by *every*
configuration ("it enables stable training"); "S" (simple) propagates the feature of the
preceding key frame to non-key frames, no RFU and no Quality Net; "F" uses RFU and DenseFT
(Transform Net + Quality Net). Configuration (a) is PSLA S, (b) adds RFU, (c) adds DenseFT's
Quality Net and is PSLA F. So ``denseft`` below switches the Quality Net; the Transform Net is
always there.

Choices the paper leaves open (documented, not measured against anything):
- The Quality Net fuses the propagated feature with the *transformed* feature TransformNet(F_l)
  (the text says "fuse it with the low-level features F_l"; the task network needs features in
  the high-level space, and with C_l = C_h = 1024 the parameter count is the same either way).
- ReLU after every convolution except the fusion weights' last (the softmax input); the
  Transform Net's output is ReLU'd like the post-ReLU R-FCN feature it approximates.
- The Transform Net's reduced width is unstated; 64 is read off Table 3's parameter count:
  PSLA (a) 62.7 M - R-FCN 59.6 M = 3.1 M = f and g (0.52 M) + the 3x3 256 -> 1024 conv
  (2.36 M) + 3328 r + 256 for the reduction (1x1 1024 -> r, 3x3 r -> 256), so r = 64 gives
  3.10 M (256 would give 3.74 M). ``python -m vidbench.methods.detection.paper_scale`` shows all.
- RFU and DenseFT share one alignment module (f, g) by default (``share_attention``): the
  paper does not say, and separate embeddings would take the parameter count further from
  Table 1's (see ``tests/methods/psla/test_psla.py``, which prints the counts).
- At the first key frame of a video F_t is F_h (nothing to fuse yet).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import torch
from torch import nn
from vidbench.methods.psla.attention import (
    ATTENTION_KINDS,
    DEFAULT_MAX_DISPLACEMENT,
    EMBED_CHANNELS,
    MATCHTRANS_SIMILARITIES,
    AttentionAlignment,
    AttentionKind,
    MatchTransSimilarity,
    build_attention,
)

HIGH_CHANNELS = 1024  # R-FCN's feature (conv on res5, as in DFF); Transform Net's last layer
LOW_CHANNELS = 1024  # ResNet-101 res4b3 output
TRANSFORM_REDUCED = 64  # unstated; fits Table 3's count (see above)
FUSION_REDUCED = 256  # Fig. 4: 1x1 conv to 256 channels
FUSION_HIDDEN = 16  # Fig. 4: then 3x3 convs with 16 and 2 filters
VARIANTS = ("S", "F")
# the parts of the per-frame network (``.features`` = N_f, ``.task`` = N_t) that PSLA's training
# updates beside its own modules, by the ``joint`` option
JOINT = {"none": (), "task": ("task",), "all": ("features", "task")}


def _conv_relu(cin: int, cout: int, kernel: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, kernel, padding=kernel // 2), nn.ReLU(inplace=True)]


class TransformNet(nn.Sequential):
    """F_l (B, C_l, H, W) -> (B, C_h, H, W), an approximation of the high-level feature."""

    def __init__(
        self,
        low_channels: int = LOW_CHANNELS,
        high_channels: int = HIGH_CHANNELS,
        reduced: int = TRANSFORM_REDUCED,
    ) -> None:
        super().__init__(
            *_conv_relu(low_channels, reduced, 1),
            *_conv_relu(reduced, 256, 3),
            *_conv_relu(256, high_channels, 3),
        )


class FusionWeights(nn.Module):
    """Update Net / Quality Net: per-cell weights (W^, W) of two (B, C, H, W) maps, summing to
    one, and the fusion W^ . a + W . b (Eq. 6)."""

    def __init__(
        self, channels: int, reduced: int = FUSION_REDUCED, hidden: int = FUSION_HIDDEN
    ) -> None:
        super().__init__()
        self.net = nn.Sequential(
            *_conv_relu(2 * channels, reduced, 1),
            *_conv_relu(reduced, hidden, 3),
            nn.Conv2d(hidden, 2, 3, padding=1),
        )

    def weights(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """(B, 2, H, W): channel 0 weighs ``a``, channel 1 weighs ``b``."""
        if a.shape != b.shape:
            raise ValueError(f"fusion inputs differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
        return torch.softmax(self.net(torch.cat([a, b], dim=1)), dim=1)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        w = self.weights(a, b)
        return w[:, :1] * a + w[:, 1:] * b


class RecursiveFeatureUpdating(nn.Module):
    """RFU (sec. 3.3): align F_t to the new key frame's F_h^k, fuse with F_h^k (Eq. 6); the
    result is both the key frame's feature for the task network and the new F_t."""

    def __init__(self, attention: AttentionAlignment, update_net: FusionWeights) -> None:
        super().__init__()
        self.attention = attention
        self.update_net = update_net

    def forward(self, high: torch.Tensor, temporal: torch.Tensor | None) -> torch.Tensor:
        if temporal is None:
            return high
        return self.update_net(self.attention(high, temporal), high)


class DenseFeatureTransforming(nn.Module):
    """Non-key frames (sec. 3.4): TransformNet(F_l) is the target PSLA aligns F_t to; with a
    Quality Net the aligned feature is fused with TransformNet(F_l), otherwise it is the output."""

    def __init__(
        self,
        transform: TransformNet,
        attention: AttentionAlignment,
        quality_net: FusionWeights | None = None,
    ) -> None:
        super().__init__()
        self.transform = transform
        self.attention = attention
        self.quality_net = quality_net

    def forward(
        self,
        low: torch.Tensor,
        temporal: torch.Tensor,
        temporal_embedded: torch.Tensor | None = None,
    ) -> torch.Tensor:
        transformed = self.transform(low)
        aligned = self.attention(transformed, temporal, temporal_embedded)
        if self.quality_net is None:
            return aligned
        return self.quality_net(aligned, transformed)


@dataclass(frozen=True)
class PSLAConfig:
    """One configuration of Tables 2/5. ``variant`` "S" means rfu = denseft = False, "F" means
    both True; left None it is derived (None for configuration (b), which is neither)."""

    kind: str = "psla"
    variant: str | None = None
    d: int = DEFAULT_MAX_DISPLACEMENT
    rfu: bool | None = None
    denseft: bool | None = None
    channels: int = HIGH_CHANNELS
    low_channels: int = LOW_CHANNELS
    embed_channels: int = EMBED_CHANNELS
    transform_reduced: int = TRANSFORM_REDUCED
    share_attention: bool = True
    matchtrans_similarity: str = "embedded"  # MatchTrans only: cosine of f, g or of the features

    def __post_init__(self) -> None:
        if self.kind not in ATTENTION_KINDS:
            raise ValueError(f"PSLAConfig.kind {self.kind!r} is not one of {ATTENTION_KINDS}")
        if self.variant is not None and self.variant not in VARIANTS:
            raise ValueError(f"PSLAConfig.variant {self.variant!r} is not one of {VARIANTS}")
        implied = None if self.variant is None else self.variant == "F"
        for name in ("rfu", "denseft"):
            value = getattr(self, name)
            if implied is not None and value is not None and value != implied:
                raise ValueError(
                    f"PSLAConfig: variant {self.variant!r} implies {name}={implied}, got {value}"
                )
            object.__setattr__(self, name, bool(value if value is not None else implied))
        if self.variant is None and self.rfu == self.denseft:
            object.__setattr__(self, "variant", "F" if self.rfu else "S")

    def checkpoint_key(self) -> dict[str, object]:
        """The fields the trained modules depend on: all of them, less MatchTrans's similarity
        for the other kinds (it builds nothing there)."""
        fields = asdict(self)
        if self.kind != "matchtrans":
            del fields["matchtrans_similarity"]
        return fields


def paper_config(name: str, **overrides: object) -> PSLAConfig:
    """Named configurations: "a", "b", "c" (Table 5) and "<kind> S|F" (Table 2), e.g.
    "matchtrans S"; ``overrides`` set the other fields (d, channels, ...)."""
    named = {"a": (False, False), "b": (True, False), "c": (True, True)}
    parts = name.split()
    if name in named:
        fields: dict[str, object] = dict(zip(("rfu", "denseft"), named[name]), kind="psla")
    elif len(parts) == 2 and parts[0] in ATTENTION_KINDS and parts[1] in VARIANTS:
        fields = {"kind": parts[0], "variant": parts[1]}
    else:
        raise ValueError(
            f"unknown PSLA configuration {name!r}; expected 'a', 'b', 'c' or '<kind> S|F' with "
            f"kind in {ATTENTION_KINDS}"
        )
    return PSLAConfig(**fields, **overrides)  # type: ignore[arg-type]


class PSLAFramework(nn.Module):
    """The modules a configuration needs, with the two per-frame operations of Fig. 2."""

    def __init__(self, config: PSLAConfig) -> None:
        super().__init__()
        self.config = config
        c = config

        def attention() -> AttentionAlignment:
            return build_attention(
                c.kind, c.channels, c.d, c.embed_channels, c.matchtrans_similarity
            )

        propagation = attention()
        quality = FusionWeights(c.channels) if c.denseft else None
        self.dense = DenseFeatureTransforming(
            TransformNet(c.low_channels, c.channels, c.transform_reduced), propagation, quality
        )
        self.rfu: RecursiveFeatureUpdating | None = None
        if c.rfu:
            updating = propagation if c.share_attention else attention()
            self.rfu = RecursiveFeatureUpdating(updating, FusionWeights(c.channels))

    def key_frame(self, high: torch.Tensor, temporal: torch.Tensor | None = None) -> torch.Tensor:
        """F_h of a key frame -> its feature for the task network, which is also the new F_t
        (RFU's output, or F_h itself without RFU)."""
        if self.rfu is None:
            return high
        return self.rfu(high, temporal)

    def non_key_frame(
        self,
        low: torch.Tensor,
        temporal: torch.Tensor,
        temporal_embedded: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """F_l of a non-key frame and the current F_t -> its feature for the task network;
        ``temporal_embedded`` = ``embed_temporal(temporal)`` may be cached across frames."""
        return self.dense(low, temporal, temporal_embedded)

    def embed_temporal(self, temporal: torch.Tensor) -> torch.Tensor:
        """f(F_t) of the propagation attention, fixed until the next key frame."""
        return self.dense.attention.embed_source(temporal)

    def components(self) -> dict[str, nn.Module]:
        """Named parts for per-component cost (shared modules appear once)."""
        parts: dict[str, nn.Module] = {
            "transform": self.dense.transform,
            "attention": self.dense.attention,
        }
        if self.rfu is not None:
            if self.rfu.attention is not self.dense.attention:
                parts["rfu_attention"] = self.rfu.attention
            parts["update_net"] = self.rfu.update_net
        if self.dense.quality_net is not None:
            parts["quality_net"] = self.dense.quality_net
        return parts


@dataclass(frozen=True)
class PSLAOptions:
    """A method's PSLA options: ``attention`` kind, ``setting`` a / b / c (Table 5) or S / F
    (Table 2 ablations), max displacement ``d``, embedding and Transform-Net widths (256 / 64
    in the paper, at 1024 feature channels) and the CPU-sized training recipe (sec. 4.1).

    ``joint`` says which parts of the pre-trained per-frame network train with PSLA's modules:
    ``none`` (it stays frozen and shared with the other methods), ``task`` (N_t) or ``all``
    (N_f, hence N_l, and N_t: the paper's end-to-end training, sec. 3.5), at ``joint_lr``.
    ``key_loss``: the task loss is also taken on the second key's RFU output, the feature N_t
    reads on key frames at test time (the paper labels only the non-key frame; without this
    a jointly trained N_t is never shown that feature).
    ``share_attention``: RFU and DenseFT use one PSLA module (f, g), or one each.
    ``matchtrans_similarity`` (MatchTrans only): the cosine of the embeddings f, g (``embedded``,
    the PSLA paper's parameter count) or of the feature maps (``features``, STMN's own)."""

    attention: AttentionKind = "psla"
    setting: Literal["a", "b", "c", "S", "F"] = "c"
    d: int = DEFAULT_MAX_DISPLACEMENT
    embed_channels: int = 64
    transform_reduced: int = 64
    psla_steps: int = 200
    psla_lr: float = 1e-3
    psla_batch: int = 4
    train_interval: int = 10
    joint: Literal["none", "task", "all"] = "none"
    joint_lr: float = 1e-4
    key_loss: bool = False
    share_attention: bool = True
    matchtrans_similarity: MatchTransSimilarity = "embedded"

    def __post_init__(self) -> None:
        if self.joint not in JOINT:
            raise ValueError(f"joint '{self.joint}'; allowed: {', '.join(JOINT)}")
        if self.joint_lr <= 0:
            raise ValueError(f"joint_lr must be > 0, got {self.joint_lr}")
        if self.attention not in ATTENTION_KINDS:
            raise ValueError(f"attention '{self.attention}'; allowed: {', '.join(ATTENTION_KINDS)}")
        if self.setting not in ("a", "b", "c", *VARIANTS):
            raise ValueError(f"setting '{self.setting}'; allowed: a, b, c, S, F")
        if self.matchtrans_similarity not in MATCHTRANS_SIMILARITIES:
            raise ValueError(
                f"matchtrans_similarity '{self.matchtrans_similarity}'; allowed: "
                + ", ".join(MATCHTRANS_SIMILARITIES)
            )
        if self.matchtrans_similarity != "embedded" and self.attention != "matchtrans":
            raise ValueError("matchtrans_similarity applies to attention=matchtrans only")
        if self.setting in "abc" and self.attention != "psla":
            raise ValueError("settings a, b, c are PSLA's; give S or F for the ablation kinds")

    def recipe_key(self) -> dict[str, object]:
        """The training options a checkpoint of PSLA's modules depends on."""
        names = ["psla_steps", "psla_lr", "psla_batch", "train_interval", "joint"]
        names += ["joint_lr"] * (self.joint != "none") + ["key_loss"] * self.key_loss
        return {name: getattr(self, name) for name in names}

    def joint_parts(self, net: nn.Module) -> dict[str, nn.Module]:
        """The parts of ``net`` (with ``.features`` and ``.task``) trained with PSLA's modules."""
        return {name: getattr(net, name) for name in JOINT[self.joint]}

    def psla_config(self, channels: int, low_channels: int) -> PSLAConfig:
        """The framework configuration for features of ``channels`` (N_f) and ``low_channels``
        (N_l)."""
        name = self.setting if self.setting in "abc" else f"{self.attention} {self.setting}"
        return paper_config(
            name,
            d=self.d,
            channels=channels,
            low_channels=low_channels,
            embed_channels=self.embed_channels,
            transform_reduced=self.transform_reduced,
            share_attention=self.share_attention,
            matchtrans_similarity=self.matchtrans_similarity,
        )
