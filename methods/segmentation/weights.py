"""Initial weights for the seed-000 trunk from files the user points to (nothing is downloaded).

* ``torchvision``: a torchvision ResNet state dict (``resnet101-63fe2227.pth`` is ImageNet
  ResNet-101, the seed's initialisation, sec. 4.1). Its 1000-way ``fc`` is dropped, as the
  seed's feature network drops the classification layer (sec. 3.1).
* ``mmseg``: an mmsegmentation checkpoint (``{"state_dict": ..., "meta": ...}``), e.g. the model
  zoo's ``deeplabv3_r101-d8`` for Cityscapes. Its backbone is ResNetV1c: the deep stem
  (``backbone.stem.0/1/3/4/6/7``: three 3x3 convs with BN) and ``backbone.layerN.M.*`` named as
  torchvision's, so it loads into a ``stem=deep`` trunk key by key. Only the backbone is
  loaded: the ``decode_head`` is DeepLabv3's ASPP (four 512-channel branches, image pooling,
  a 3x3 bottleneck, then the classifier), which has no counterpart in the seed's task network
  (1x1 A -> A/2, 1x1 -> C); ``decode_head.*`` and ``auxiliary_head.*`` are listed as unused and
  the task network trains from its initialisation. The zoo's model runs at output stride 8
  (res4 and res5 dilated); here its weights run at the seed's output stride 16.

Loading is strict: every trunk tensor must come from the file with the same shape, and every
tensor of the file must be used or explicitly unused (``fc``, the heads); otherwise a
``ValueError`` names the file and the keys. Tensors the files cannot have are left as
initialised: the deformable convs' offset layers (zero, i.e. plain convs at the start) and
BatchNorm's ``num_batches_tracked`` where a file predates it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from vidbench.methods.common.weights import file_sha256, read_weights, tensor_dict
from vidbench.methods.segmentation.deeplab import FeatureNetwork, SegmentationNetwork

WeightsFormat = Literal["torchvision", "mmseg"]
# What a file may hold that the trunk does not use, by format.
_UNUSED = {"torchvision": ("fc.",), "mmseg": ("decode_head.", "auxiliary_head.")}
_MMSEG_BACKBONE = "backbone."


@dataclass(frozen=True)
class InitWeights:
    """A weights file to initialise the trunk with, and how to read it."""

    format: WeightsFormat
    path: Path

    def __post_init__(self) -> None:
        if self.format not in _UNUSED:
            raise ValueError(f"Weights format {self.format!r}; allowed: torchvision, mmseg.")
        if not Path(self.path).is_file():
            option = "imagenet_weights" if self.format == "torchvision" else "mmseg_weights"
            raise FileNotFoundError(f"{option}: no file at {self.path}.")

    def key(self) -> dict[str, str]:
        """Identity for checkpoint keys: the format and the file's SHA-256 (not its path)."""
        return {"format": self.format, "sha256": file_sha256(Path(self.path))}

    def apply(self, net: SegmentationNetwork) -> dict[str, Any]:
        """Load the file into ``net``'s trunk; returns a summary for the checkpoint."""
        if self.format == "torchvision":
            loaded = load_torchvision_resnet(net.features, Path(self.path))
        else:
            loaded = load_mmseg_backbone(net.features, Path(self.path))
        return {**self.key(), "file": Path(self.path).name, **loaded}


def load_torchvision_resnet(features: FeatureNetwork, path: Path) -> dict[str, Any]:
    """A torchvision ``ResNet.state_dict()`` file into a ``stem=torchvision`` trunk."""
    if features.config.stem != "torchvision":
        raise ValueError(f"{path}: a torchvision ResNet needs stem=torchvision.")
    data = read_weights(path)
    if isinstance(data, dict) and "state_dict" in data and isinstance(data["state_dict"], dict):
        data = data["state_dict"]
    state = tensor_dict(data, path, "a torchvision ResNet state dict")
    return load_trunk(features, state, path, _UNUSED["torchvision"])


def load_mmseg_backbone(features: FeatureNetwork, path: Path) -> dict[str, Any]:
    """An mmsegmentation checkpoint's ResNetV1c backbone into a ``stem=deep`` trunk."""
    if features.config.stem != "deep":
        raise ValueError(f"{path}: mmsegmentation's ResNetV1c backbone needs stem=deep.")
    data = read_weights(path)
    state = data.get("state_dict", data) if isinstance(data, dict) else data
    state = tensor_dict(state, path, "an mmsegmentation checkpoint's state_dict")
    if not any(key.startswith(_MMSEG_BACKBONE) for key in state):
        raise ValueError(f"{path}: no 'backbone.*' tensors; is it an mmsegmentation checkpoint?")
    renamed = {k.removeprefix(_MMSEG_BACKBONE): v for k, v in state.items()}
    return load_trunk(features, renamed, path, _UNUSED["mmseg"])


def load_trunk(
    features: FeatureNetwork,
    source: dict[str, torch.Tensor],
    path: Path,
    unused_prefixes: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Copy ``source`` (keys in torchvision/ResNetV1c naming: ``conv1``, ``stem.N``,
    ``layerN.M.*``) into ``features``' trunk, strictly (see the module docstring).

    Returns ``{"loaded": n tensors, "unused": [top-level prefixes of ignored keys]}``.
    """
    prefixes = features.trunk_prefixes()
    ours = features.state_dict()
    mapped: dict[str, str] = {}
    unused: set[str] = set()
    unknown: list[str] = []
    for key in source:
        if key.startswith(unused_prefixes):
            unused.add(key.split(".")[0])
            continue
        target = next(
            (dest + key[len(n) :] for n, dest in prefixes.items() if key.startswith(n + ".")),
            None,
        )
        if target is None or target not in ours:
            unknown.append(key)
        else:
            mapped[key] = target
    # every trunk tensor but the DCN offset layers, which no ResNet file has
    wanted = {key for key in ours if key.startswith("body.") and ".offset." not in key}
    missing = sorted(
        key
        for key in wanted - set(mapped.values())
        if not key.endswith("num_batches_tracked")  # absent from files older than it
    )
    mismatched = [
        f"{key}: file {tuple(source[key].shape)} vs trunk {tuple(ours[target].shape)}"
        for key, target in mapped.items()
        if source[key].shape != ours[target].shape
    ]
    if unknown or missing or mismatched:
        problems = [
            f"{len(unknown)} unexpected key(s) {_first(unknown)}" if unknown else "",
            f"{len(missing)} trunk tensor(s) missing {_first(missing)}" if missing else "",
            f"{len(mismatched)} shape mismatch(es) {_first(mismatched)}" if mismatched else "",
        ]
        raise ValueError(
            f"{path}: does not fit the trunk (layers {features.config.layers}, width "
            f"{features.config.width_per_group}, expansion {features.config.expansion}, stem "
            f"{features.config.stem}): " + "; ".join(p for p in problems if p)
        )
    with torch.no_grad():
        for key, target in mapped.items():
            ours[target].copy_(source[key])
    return {"loaded": len(mapped), "unused": sorted(unused)}


def _first(keys: list[str], shown: int = 5) -> str:
    more = f", ... ({len(keys) - shown} more)" if len(keys) > shown else ""
    return "[" + ", ".join(keys[:shown]) + more + "]"


def to_mmseg_state_dict(features: FeatureNetwork) -> dict[str, torch.Tensor]:
    """The trunk's tensors under mmsegmentation's backbone names (the inverse of
    ``load_mmseg_backbone``, for tests and for exporting)."""
    inverse = {dest: name for name, dest in features.trunk_prefixes().items()}
    out = {}
    for key, value in features.state_dict().items():
        if not key.startswith("body.") or ".offset." in key:
            continue
        for dest, name in inverse.items():
            if key.startswith(dest + "."):
                out[_MMSEG_BACKBONE + name + key[len(dest) :]] = value
                break
    return out
