"""Seed 000's network at the paper's scale: parameters and multiply-adds per component.

``cost_table()`` builds Deformable DeepLab on ResNet-101 (``NetConfig.paper()``) on the meta
device (no memory, no arithmetic), runs its real forward pass on a 2048x1024 Cityscapes frame
under the harness's FLOP counter (vidbench.flops: PyTorch's counter plus the formulas for
deformable convolution and bilinear upsampling) and sets what it counts beside what the paper
implies. Seed 000 gives no parameter or multiply-add counts, only times on a Tesla K80; the
paper column is therefore the well-known ResNet-101 trunk (torchvision's resnet101 has
44,549,160 parameters, of which the 1000-way classifier is 2,049,000) plus what sec. 3.1 and
Deformable ConvNets' design fix (offset convs, task layers). ``print(cost_text())`` shows it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pandas as pd
import torch
from torch import nn
from vidbench.flops import flop_counter
from vidbench.methods.common.deformable import DeformableConv
from vidbench.methods.segmentation.deeplab import NetConfig, SegmentationNetwork

PAPER_FRAME = (1024, 2048)  # Cityscapes, height x width
RESNET101_TRUNK_PARAMS = 44_549_160 - (2048 * 1000 + 1000)  # torchvision resnet101 minus fc
PAPER_MS_K80 = {  # seed 000: the only costs it reports (Tesla K80, 2048x1024 frames)
    "frame": 1000 / 1.3,  # sec. 4.2: the frame-by-frame baseline runs at 1.3 fps
    "warp+task": 54.0,  # sec. 3.4 / Fig. 2: W + N_task per intermediate frame
}


def _params(modules: list[nn.Module], skip: frozenset[int] = frozenset()) -> int:
    unique = {id(p): p for m in modules for p in m.parameters() if id(p) not in skip}
    return sum(p.numel() for p in unique.values())


def _flops(run: Callable[[], object]) -> tuple[float, dict[str, float]]:
    """Total FLOPs of ``run()`` and FLOPs per module name (FlopCounterMode's hierarchy)."""
    with flop_counter() as counter:
        run()
    per_module = {name: float(sum(ops.values())) for name, ops in counter.get_flop_counts().items()}
    return float(counter.get_total_flops()), per_module


def paper_parameters(config: NetConfig) -> dict[str, int]:
    """What the paper implies, counted by hand: ResNet-101's trunk, 3 res5 offset convs
    (3x3, 512 -> 2 x 4 groups x 9 taps, with bias; Deformable ConvNets) and the task network's
    two 1x1 convs with bias (sec. 3.1: 2048 -> 1024 -> C)."""
    offsets = 3 * (512 * 72 * 9 + 72)
    task_project = 2048 * 1024 + 1024
    task_score = 1024 * config.num_classes + config.num_classes
    return {
        "trunk": RESNET101_TRUNK_PARAMS,
        "dcn": offsets,
        "feature": RESNET101_TRUNK_PARAMS + offsets,
        "task": task_project + task_score,
        "project": task_project,
        "score": task_score,
        "upsample": 0,
        "total": RESNET101_TRUNK_PARAMS + offsets + task_project + task_score,
    }


@torch.no_grad()
def cost_table(
    config: NetConfig | None = None, size: tuple[int, int] = PAPER_FRAME
) -> pd.DataFrame:
    """Parameters and GMACs (FLOPs / 2) per component of one ``size`` (height, width) frame.

    Rows: ``feature`` (of which ``trunk`` and ``dcn`` = the deformable convs' offset layers
    plus their bilinear sampling) and ``task`` (``project``, ``score``, ``upsample``; the
    softmax is not counted), then ``total``. Columns: ``params``, ``gmacs``, ``paper_params``
    (``paper_parameters``; for the paper's architecture only), ``note``.
    """
    config = config or NetConfig.paper()
    height, width = size
    with torch.device("meta"):
        net = SegmentationNetwork(config).eval()
    images = torch.zeros(1, 3, height, width, device="meta")
    feature_flops, _ = _flops(lambda: net.features(images))
    features = net.features(images)
    offsets = [m.offset for m in net.features.modules() if isinstance(m, DeformableConv)]
    # the DCN increment: the offset convs plus deform_conv2d's bilinear sampling, measured as
    # the difference to the same network with plain res5 convs (dilation costs nothing)
    dcn_flops = 0.0
    if config.deformable:
        with torch.device("meta"):
            plain = SegmentationNetwork(replace(config, deformable=False)).eval()
        dcn_flops = feature_flops - _flops(lambda: plain.features(images))[0]
    task = net.task
    task_flops, task_modules = _flops(lambda: task(features, size))
    project = task_modules.get("TaskNetwork.project", 0.0)
    score = task_modules.get("TaskNetwork.score", 0.0)
    offset_ids = frozenset(id(p) for o in offsets for p in o.parameters())
    params = {
        "feature": _params([net.features]),
        "trunk": _params([net.features], offset_ids),
        "dcn": _params(offsets),
        "task": _params([task]),
        "project": _params([task.project]),
        "score": _params([task.score]),
        "upsample": 0,
    }
    params["total"] = params["feature"] + params["task"]
    gmacs = {
        "feature": feature_flops / 2e9,
        "trunk": (feature_flops - dcn_flops) / 2e9,
        "dcn": dcn_flops / 2e9,
        "task": task_flops / 2e9,
        "project": project / 2e9,
        "score": score / 2e9,
        "upsample": (task_flops - project - score) / 2e9,
        "total": (feature_flops + task_flops) / 2e9,
    }
    is_paper = config == NetConfig.paper(config.num_classes)
    paper: dict[str, int] = paper_parameters(config) if is_paper else {}
    frame_ms, task_ms = PAPER_MS_K80["frame"], PAPER_MS_K80["warp+task"]
    frame_note = f"; paper: {frame_ms:.0f} ms/frame for the whole network on a K80"
    task_note = f"; paper: warp + task {task_ms:.0f} ms/frame on a K80"
    notes = {
        "feature": "trunk + DCN offsets, output stride 16" + (frame_note if is_paper else ""),
        "trunk": "paper: torchvision resnet101 without fc (the seed gives no count)"
        if is_paper
        else "ResNet without its classifier",
        "dcn": f"{len(offsets)} res5 offset convs 3x3 -> 72 + bilinear sampling (4 MACs/tap)",
        "task": "sec. 3.1" + (task_note if is_paper else ""),
        "project": "1x1 conv A -> A/2",
        "score": "1x1 conv A/2 -> C",
        "upsample": "bilinear to full size (4 MACs per output)",
        "total": "",
    }
    rows = ["feature", "trunk", "dcn", "task", "project", "score", "upsample", "total"]
    return pd.DataFrame(
        {
            "params": [params[r] for r in rows],
            "gmacs": [gmacs[r] for r in rows],
            "paper_params": pd.array([paper.get(r) for r in rows], dtype="Int64"),
            "note": [notes[r] for r in rows],
        },
        index=pd.Index(rows, name="component"),
    )



def cost_text(config: NetConfig | None = None, size: tuple[int, int] = PAPER_FRAME) -> str:
    """``cost_table`` as aligned text: parameters in millions, GMACs to two decimals."""
    table = cost_table(config, size)
    shown = pd.DataFrame(
        {
            "params_M": (table["params"] / 1e6).round(3),
            "paper_M": (table["paper_params"].astype("Float64") / 1e6).round(3),
            f"gmacs_{size[1]}x{size[0]}": table["gmacs"].round(2),
            "note": table["note"].str.ljust(table["note"].str.len().max()),
        }
    )
    return shown.to_string(na_rep="-")
