"""Parameters and multiply-adds of the R-FCN detector by component (seed 001 Table 1 counts
59.6 M parameters for R-FCN on ResNet-101 and 72.2 M vs 63.7 M for PSLA with and without DCN).

``python -m vidbench.methods.rfcn_cost`` prints both at the paper's scale (600x1000 frames).
"""

from __future__ import annotations

import copy
import math

import torch
from vidbench.flops import flop_counter
from vidbench.methods.rfcn import DeformableConv, Detector, DetectorConfig

PAPER_FRAME = (600, 1000)


def _count(parameters: list[torch.nn.Parameter]) -> int:
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
        "resnet": _count(trunk),
        "dcn_offsets": _count(offsets),
        "feature_conv": _count(list(features.conv.parameters())),
        "rpn": _count([*task.rpn_score.parameters(), *task.rpn_box.parameters()]),
        "rfcn_scores": _count(list(task.ps_score.parameters())),
        "rfcn_boxes": _count(list(task.ps_box.parameters())),
    }
    parts["total"] = sum(parts.values())
    if parts["total"] != _count(list(detector.parameters())):
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


def main() -> None:
    """Print the paper-scale breakdown with and without DCN."""
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


if __name__ == "__main__":
    main()
