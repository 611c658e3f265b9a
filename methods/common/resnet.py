"""torchvision's ResNet bottleneck with another output expansion: the small trunks of the
CPU-sized DeepLab and R-FCN keep torchvision's block with expansion 1 or 2 (4 is ResNet-50/101)."""

from __future__ import annotations

from torchvision.models.resnet import Bottleneck


def bottleneck_with_expansion(expansion: int) -> type[Bottleneck]:
    """torchvision's Bottleneck with its output expansion (4 in ResNet-50/101) changed."""
    if expansion == Bottleneck.expansion:
        return Bottleneck
    return type(f"Bottleneck{expansion}", (Bottleneck,), {"expansion": expansion})
