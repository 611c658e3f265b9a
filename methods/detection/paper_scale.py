"""Seed 001 at the paper's scale, from the built modules: the R-FCN detector's parameters and
multiply-adds by component, Table 1's parameter totals component by component, and what a
non-key frame costs PSLA against DFF's flow network.

The paper gives totals only: R-FCN on ResNet-101 59.6 M, DFF 96.6 M ("59.6 M ... and additional
37 M ... when using FlowNet"), PSLA (c) 63.7 M, PSLA (c) with DCN 72.2 M, and 62.7 M for every
"S" scheme of Table 3 (PSLA (a)). The increments over R-FCN are what a re-implementation must
reproduce; ``increments()`` sets the built ones beside them. ``non_key_gmacs()`` counts a
600x1000 non-key frame with PyTorch's FLOP counter on the meta device (no arithmetic run).
``python -m vidbench.methods.detection.paper_scale`` prints all four tables.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import pandas as pd
import torch
from vidbench.flops import flop_counter
from vidbench.methods.common.deformable import DeformableConv
from vidbench.methods.detection.rfcn import Detector, DetectorConfig
from vidbench.methods.motion.flownet import FlowNetS
from vidbench.methods.psla.framework import PSLAFramework, paper_config

PAPER_FRAME = (600, 1000)
PAPER_TOTALS_M = {
    "R-FCN": 59.6,
    "DFF": 96.6,
    "PSLA (a)": 62.7,
    "PSLA (c)": 63.7,
    "PSLA (c) + DCN": 72.2,
}


def _unique_count(parameters: list[torch.nn.Parameter]) -> int:
    """Parameters counted once even when shared."""
    return sum(p.numel() for p in {id(p): p for p in parameters}.values())


def parameter_breakdown(detector: Detector) -> dict[str, int]:
    """Parameters per component: the ResNet trunk (res1-res5, no classifier), the DCN offset
    convs, the 3x3 conv to the feature channels, the RPN and the two R-FCN maps."""
    features, task = detector.features, detector.task
    deformable = [m for m in features.modules() if isinstance(m, DeformableConv)]
    offsets = [p for m in deformable for p in m.offset.parameters()]
    offset_ids = {id(p) for p in offsets}
    trunk = [
        p
        for p in [*features.low.parameters(), *features.high.parameters()]
        if id(p) not in offset_ids
    ]
    parts = {
        "resnet": _unique_count(trunk),
        "dcn_offsets": _unique_count(offsets),
        "feature_conv": _unique_count(list(features.conv.parameters())),
        "rpn": _unique_count([*task.rpn_score.parameters(), *task.rpn_box.parameters()]),
        "rfcn_scores": _unique_count(list(task.ps_score.parameters())),
        "rfcn_boxes": _unique_count(list(task.ps_box.parameters())),
    }
    parts["total"] = sum(parts.values())
    if parts["total"] != _unique_count(list(detector.parameters())):
        raise RuntimeError("parameter_breakdown: the components do not cover the detector.")
    return parts


@torch.no_grad()
def gmacs_per_frame(detector: Detector, height: int, width: int, seed: int = 0) -> dict[str, float]:
    """GMACs (FLOPs / 2, PyTorch's counter + vidbench.flops) of one ``height`` x ``width``
    frame: the feature network (counted on the meta device, no arithmetic run) and the task
    network on random features (its cost follows the number of proposals, ``rois``)."""
    detector = detector.eval()
    meta = copy.deepcopy(detector.features).to("meta")
    with flop_counter() as counter:
        meta(torch.zeros(1, 3, height, width, device="meta"))
    feature_flops = counter.get_total_flops()
    generator = torch.Generator().manual_seed(seed)
    grid = (math.ceil(height / 16), math.ceil(width / 16))
    features = torch.rand(1, detector.config.feature_channels, *grid, generator=generator)
    features = features.to(next(detector.parameters()).device)
    task = detector.task
    scores, deltas = task.rpn(features)
    anchors = task.anchors(*grid, features.device)
    rois = len(task.propose(scores, deltas, anchors, (height, width))[0])
    with flop_counter() as counter:
        task(features, (height, width))
    return {
        "feature": feature_flops / 2e9,
        "task": counter.get_total_flops() / 2e9,
        "rois": float(rois),
    }


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def components() -> pd.DataFrame:
    """(scheme, component, params) at the paper's scale: what each scheme adds to R-FCN."""
    rows = []
    rfcn = parameter_breakdown(Detector(DetectorConfig.paper()))
    rows += [("R-FCN", name, count) for name, count in rfcn.items() if name not in ("total", "dcn_offsets")]
    dcn = parameter_breakdown(Detector(DetectorConfig.paper(dcn=True)))
    flownet = FlowNetS(1024)
    rows += [("DFF", "flownet_s", _count(flownet) - _count(flownet.scale))]
    rows += [("DFF", "scale_field", _count(flownet.scale))]
    for setting in ("a", "c"):
        for name, module in PSLAFramework(paper_config(setting)).components().items():
            rows.append((f"PSLA ({setting})", name, _count(module)))
    rows += [("PSLA (c) + DCN", f"PSLA (c) {name}", count) for s, name, count in rows if s == "PSLA (c)"]
    rows += [("PSLA (c) + DCN", "dcn_offsets (res5)", dcn["dcn_offsets"])]
    return pd.DataFrame(rows, columns=["scheme", "component", "params"])


def increments() -> pd.DataFrame:
    """Per scheme: built total, increment over the built R-FCN, the paper's total and
    increment over its 59.6 M, and the gap between the increments (M)."""
    parts = components()
    rfcn = parts[parts.scheme == "R-FCN"].params.sum()
    rows = []
    for scheme, paper in PAPER_TOTALS_M.items():
        added = 0 if scheme == "R-FCN" else parts[parts.scheme == scheme].params.sum()
        rows.append({
            "scheme": scheme,
            "built_m": (rfcn + added) / 1e6,
            "built_increment_m": added / 1e6,
            "paper_m": paper,
            "paper_increment_m": paper - PAPER_TOTALS_M["R-FCN"],
        })
    table = pd.DataFrame(rows)
    table["gap_m"] = table.built_increment_m - table.paper_increment_m
    return table.round(3)


def _gmacs(forward: Callable[..., object], *inputs: torch.Tensor) -> float:
    with torch.no_grad(), flop_counter() as counter:
        forward(*inputs)
    return counter.get_total_flops() / 2e9


def non_key_gmacs(height: int = PAPER_FRAME[0], width: int = PAPER_FRAME[1]) -> pd.DataFrame:
    """GMACs of a non-key frame before the task network (which both share): PSLA (c)'s N_l
    (ResNet-101 to res4b3), Transform Net, PSLA and Quality Net; DFF's FlowNetS (both frames at
    half resolution, as DFF) with its scale field; N_f for reference."""
    features = copy.deepcopy(Detector(DetectorConfig.paper()).features).to("meta").eval()
    framework = PSLAFramework(paper_config("c")).to("meta").eval()
    image = torch.zeros(1, 3, height, width, device="meta")
    cells = torch.zeros(1, 1024, math.ceil(height / 16), math.ceil(width / 16), device="meta")
    dense = framework.dense
    rows = [
        ("PSLA (c)", "N_l (to res4b3)", _gmacs(features.low_level, image)),
        ("PSLA (c)", "Transform Net", _gmacs(dense.transform, cells)),
        ("PSLA (c)", "PSLA (d = 4)", _gmacs(dense.attention, cells, cells)),
        ("PSLA (c)", "Quality Net", _gmacs(dense.quality_net, cells, cells)),
        ("DFF", "FlowNetS + scale field", _gmacs(FlowNetS(1024).to("meta").eval(), image, image)),
        ("key frame", "N_f", _gmacs(features, image)),
    ]
    return pd.DataFrame(rows, columns=["scheme", "component", "gmacs"])


def rfcn_breakdown() -> None:
    """Print the R-FCN detector's parameters and GMACs by component, with and without DCN."""
    torch.manual_seed(0)
    frame = f"GMACs per {PAPER_FRAME[0]}x{PAPER_FRAME[1]} frame"
    for dcn in (False, True):
        detector = Detector(DetectorConfig.paper(dcn=dcn))
        parts = parameter_breakdown(detector)
        cost = gmacs_per_frame(detector, *PAPER_FRAME)
        print(f"ResNet-101 R-FCN, dcn={dcn}")
        for name, count in parts.items():
            print(f"  {name:14s} {count / 1e6:8.3f} M params")
        for name, value in cost.items():
            print(f"  {name:14s} {value:8.2f} {'RoIs' if name == 'rois' else frame}")


def main() -> None:
    """Print R-FCN's breakdown, the components and the increments beside the paper's, and the
    non-key cost."""
    rfcn_breakdown()
    print()
    parts = components().assign(params_m=lambda t: (t.params / 1e6).round(3))
    print(parts.drop(columns="params").to_string(index=False))
    print()
    print(increments().to_string(index=False))
    print(f"\nGMACs of a {PAPER_FRAME[0]}x{PAPER_FRAME[1]} non-key frame before the task network")
    print(non_key_gmacs().round(2).to_string(index=False))


if __name__ == "__main__":
    main()
