"""ImageNet initialisation of AdaFocus's CNNs from torchvision files the user points to
(seed 002 sec. 4.1: f_G and f_L start from ImageNet MobileNetV2 and ResNet-50; nothing is
downloaded here)."""

from __future__ import annotations

from pathlib import Path

from torch import nn
from vidbench.methods.common.weights import file_sha256, read_weights, tensor_dict

# torchvision file layout per backbone: the prefix our module's keys carry in the file, and the
# classification layer the seed drops
LAYOUTS = {
    "mobilenet_v2": ("features.", "classifier."),
    "resnet": ("", "fc."),
}


def load_backbone(module: nn.Module, path: str | Path, layout: str) -> int:
    """Copy a torchvision ImageNet classifier's weights into ``module`` (MobileNetV2's
    ``features`` or a ResNet without ``fc``), strictly: a missing, unexpected or mis-shaped
    tensor is a ValueError naming the file. Returns the number of tensors loaded."""
    path = Path(path)
    weights_key(str(path))
    prefix, dropped = LAYOUTS[layout]
    data = read_weights(path)
    if isinstance(data, dict) and isinstance(data.get("state_dict"), dict):
        data = data["state_dict"]
    state = tensor_dict(data, path, f"a torchvision {layout} state dict")
    kept = {
        key.removeprefix(prefix): value
        for key, value in state.items()
        if key.startswith(prefix) and not key.startswith(dropped)
    }
    ours = module.state_dict()
    unexpected = sorted(set(kept) - set(ours))
    missing = sorted(set(ours) - set(kept))
    mismatched = sorted(k for k in set(kept) & set(ours) if kept[k].shape != ours[k].shape)
    if unexpected or missing or mismatched:
        raise ValueError(
            f"{path}: does not fit the {layout} backbone: unexpected {unexpected[:3]}, missing "
            f"{missing[:3]}, shape mismatch {mismatched[:3]} (is it the same architecture and "
            "width as the method's preset? scale=paper is MobileNetV2 1.0 and ResNet-50)."
        )
    module.load_state_dict(kept)
    return len(kept)


def weights_key(*paths: str) -> list[str | None]:
    """Checkpoint-key entries for optional weights files: their SHA-256, not their paths."""
    for path in filter(None, paths):
        if not Path(path).is_file():
            raise ValueError(f"{path}: weights file not found.")
    return [file_sha256(Path(p)) if p else None for p in paths]
