"""Streaming segmentation metric state (confusion matrices per keyframe offset) and its pure
computation. mIoU follows the Cityscapes definition (docs/datasets.md §8.1): one
confusion matrix accumulated over every scored pixel, ignored ground truth dropped, IoU per
class with zero-denominator classes excluded, mean over the rest.
"""

from __future__ import annotations

import numpy as np
from vidbench.api import SegmentationPrediction
from vidbench.evaluators import Evaluator, Stratum

ConfusionState = dict[int, np.ndarray]


def miou(confusion: np.ndarray) -> float:
    """Mean IoU (in %) of a (C, C) confusion matrix C[gt, pred]; NaN if no class has pixels."""
    iou = class_iou(confusion)
    return float(np.nanmean(iou) * 100) if np.isfinite(iou).any() else float("nan")


def class_iou(confusion: np.ndarray) -> np.ndarray:
    """(C,) IoU per class, NaN where TP + FP + FN = 0."""
    tp = np.diag(confusion).astype(np.float64)
    denominator = confusion.sum(0) + confusion.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, tp / denominator, np.nan)


class SegmentationEvaluator(Evaluator[ConfusionState]):
    """Confusion matrices keyed by stratum (the keyframe offset); ``merge`` is associative."""

    prefix = "seg"

    def __init__(self, num_classes: int, ignore_index: int = 255) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index

    def empty(self) -> ConfusionState:
        return {}

    def update(
        self,
        state: ConfusionState,
        prediction: SegmentationPrediction | np.ndarray,
        target: np.ndarray,
        stratum: Stratum,
    ) -> ConfusionState:
        """Add one frame: a prediction (or its (H, W) labels) and (H, W) integer train ids."""
        pred = prediction.labels() if isinstance(prediction, SegmentationPrediction) else prediction
        if pred.shape != target.shape:
            raise ValueError(f"Prediction shape {pred.shape} != label shape {target.shape}.")
        keep = target != self.ignore_index
        if (target[keep] >= self.num_classes).any():
            raise ValueError(f"Label ids >= {self.num_classes} that are not the ignore id.")
        c = self.num_classes
        counts = np.bincount(c * target[keep].astype(np.int64) + pred[keep], minlength=c * c)
        previous = state.get(stratum, np.zeros((c, c), np.int64))
        return {**state, stratum: previous + counts.reshape(c, c)}

    def merge(self, a: ConfusionState, b: ConfusionState) -> ConfusionState:
        return {k: a.get(k, 0) + b.get(k, 0) for k in sorted(set(a) | set(b))}

    def compute(self, state: ConfusionState) -> dict[str, object]:
        """``seg/miou_avg`` over all scored frames, ``seg/miou_min`` the lowest per-offset mIoU."""
        if not state:
            raise ValueError("No scored frames: the evaluator state is empty.")
        per_offset = {offset: miou(confusion) for offset, confusion in sorted(state.items())}
        total = sum(state.values())
        return {
            "seg/miou_avg": miou(total),
            "seg/miou_min": float(np.nanmin(list(per_offset.values()))),
            "seg/offsets_scored": len(per_offset),
            "seg/miou_per_offset": per_offset,
            "seg/iou_per_class": [float(v) * 100 for v in class_iou(total)],
        }

    def to_json(self, state: ConfusionState) -> dict[str, dict[str, list]]:
        return {
            "confusion_per_offset": {
                str(offset): confusion.tolist() for offset, confusion in state.items()
            }
        }

    def from_json(self, data: dict[str, dict[str, list]]) -> ConfusionState:
        return {
            int(offset): np.asarray(confusion, np.int64)
            for offset, confusion in data["confusion_per_offset"].items()
        }
