"""ImageNet VID detection mAP (ILSVRC devkit rule, docs/datasets.md §3.6, §8.2-8.3) with FGFA's
slow / medium / fast motion-speed breakdown (docs/datasets.md §3.7), as a streaming Evaluator.

Definition:
    * Boxes use inclusive pixel corners (width = x2 - x1 + 1). Each ground-truth (GT) box of
      size w x h gets its own IoU threshold ``min(0.5, w*h / ((w + 10) * (h + 10)))``.
    * Per frame, detections are taken in descending confidence (stable in the prediction's row
      order); each one matches, among the not yet matched GT of its class, the one with the
      largest IoU subject to ``IoU >= threshold`` (first GT on equal IoU). A detection whose
      best GT is taken may match another GT that passes its threshold, else it is unmatched.
    * Motion ranges (FGFA): all, slow [0.9, 1], medium [0.7, 0.9], fast [0, 0.7], inclusive at
      both ends, on each GT's motion IoU. Matching is the same for every range. For a range,
      a detection matched to an in-range GT is TP; one matched to an out-of-range GT counts
      neither TP nor FP; an unmatched one is FP with weight 1 if its highest IoU (any class,
      any GT, matched or not, -1 when the set is empty) is with an in-range GT, 0 if with an
      out-of-range GT, the frame's fraction of out-of-range GT on a tie, and in a frame
      without GT the dataset's fraction of GT that are in range. A GT counts as a positive of
      its class only in the ranges that contain it.
    * Per class and range, the detections of all frames are sorted by confidence; recall =
      cumsum(TP) / positives, precision = cumsum(TP) / max(cumsum(TP) + cumsum(FP), eps);
      AP = all-points VOC AP (precision envelope summed over recall steps, not 11-point).
      mAP = mean AP over the classes that have positives in the range, in %.

Deviations from the devkit / FGFA code, each invisible on ImageNet VID val unless noted:
    * Unknown motion IoU (NaN, an object seen in no other frame of its window): the object is
      in the "all" range and ignored in slow, medium and fast. FGFA's file has no unknowns.
    * The empty-frame FP weight uses the GT objects of the frames in the state (all strata),
      NaN-speed objects in the denominator. FGFA uses its whole val file, whose loader turns
      each of the 4 046 GT-less frames into one extra motion IoU of 0 (so its fast fraction
      is slightly higher than the true fraction of fast objects).
    * Confidence ties in the global sort: FP-weighted rows go before TP rows (pessimistic),
      so the result does not depend on frame or merge order. The devkit's stable sort keeps
      frame order and FGFA's numpy quicksort is arbitrary; only tied scores are affected.
    * A class without positives in a range has AP NaN in ``det/ap_per_class`` (FGFA prints -1)
      and is left out of that range's mean, as FGFA does for the motion ranges; FGFA's plain
      evaluator would divide by zero instead. All 30 VID val classes have positives.
    * FGFA's area ranges are not implemented (the "all areas" range only).
    * ``det/map_per_stratum`` and ``det/map_worst`` use the "all" range only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, ClassVar, TypeAlias

import numpy as np
from vidbench.api import DetectionPrediction, DetectionTarget
from vidbench.boxes import box_iou
from vidbench.evaluators import Evaluator, Stratum

PIXEL_TOLERANCE = 10
DEFAULT_IOU_THRESHOLD = 0.5
RANGES: tuple[str, ...] = ("all", "slow", "medium", "fast")
MOTION_RANGES: dict[str, tuple[float, float]] = {
    "slow": (0.9, 1.0),
    "medium": (0.7, 0.9),
    "fast": (0.0, 0.7),
}
_EPS = float(np.finfo(np.float64).eps)


def iou_thresholds(gt_boxes: np.ndarray) -> np.ndarray:
    """(M,) ILSVRC VID per-GT IoU threshold min(0.5, wh / ((w + 10)(h + 10))), inclusive sizes
    (docs/datasets.md §8.3)."""
    boxes = np.asarray(gt_boxes, np.float64).reshape(-1, 4)
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    relaxed = w * h / ((w + PIXEL_TOLERANCE) * (h + PIXEL_TOLERANCE))
    return np.minimum(relaxed, DEFAULT_IOU_THRESHOLD)


def in_motion_ranges(motion_iou: np.ndarray) -> np.ndarray:
    """(R, M) bool: GT m lies in range ``RANGES[r]``; "all" holds every GT, the speed ranges
    the finite motion IoUs within their inclusive bounds (docs/datasets.md §3.7)."""
    values = np.asarray(motion_iou, np.float64).reshape(-1)
    rows = [np.ones(values.shape, bool)]
    for name in RANGES[1:]:
        low, high = MOTION_RANGES[name]
        rows.append(np.isfinite(values) & (values >= low) & (values <= high))
    return np.stack(rows)


def match_frame(
    iou: np.ndarray,
    det_scores: np.ndarray,
    det_labels: np.ndarray,
    gt_labels: np.ndarray,
    thresholds: np.ndarray,
) -> np.ndarray:
    """(D,) index of the GT each detection matches, -1 for none: greedy in descending
    confidence, to the unmatched same-class GT of largest IoU >= its threshold
    (docs/datasets.md §3.6).

    ``iou`` is (D, M) detections x GT, ``thresholds`` (M,) from ``iou_thresholds``.
    """
    matched = np.full(len(det_scores), -1, np.int64)
    free = np.ones(len(gt_labels), bool)
    for j in np.argsort(-np.asarray(det_scores, np.float64), kind="stable"):
        allowed = free & (gt_labels == det_labels[j]) & (iou[j] >= thresholds)
        if allowed.any():
            k = int(np.argmax(np.where(allowed, iou[j], -np.inf)))
            matched[j], free[k] = k, False
    return matched


def range_outcomes(
    iou: np.ndarray, matched: np.ndarray, in_range: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(D, R) TP flags and (D, R) FP weights of one frame with at least one GT
    (docs/datasets.md §3.7).

    ``iou`` (D, M), ``matched`` (D,) from ``match_frame``, ``in_range`` (R, M) from
    ``in_motion_ranges``. Frames without GT use the dataset-level weight instead (compute).
    """
    num_gt = iou.shape[1]
    if num_gt == 0:
        raise ValueError("range_outcomes needs a frame with ground truth; got M = 0.")
    hit = matched >= 0
    tp = hit[:, None] & in_range[:, np.maximum(matched, 0)].T
    fp = np.zeros(tp.shape, np.float64)
    for r, inside in enumerate(in_range):
        best_in = np.where(inside[None], iou, -1.0).max(1)
        best_out = np.where(inside[None], -1.0, iou).max(1)
        tie = np.count_nonzero(~inside) / num_gt
        weight = np.where(best_in > best_out, 1.0, np.where(best_out > best_in, 0.0, tie))
        fp[:, r] = np.where(hit, 0.0, weight)
    return tp, fp


def precision_recall(
    tp: np.ndarray, fp: np.ndarray, num_positives: int
) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative recall and precision of ranked rows with TP flags and FP weights
    (docs/datasets.md §3.6, step 3)."""
    ctp = np.cumsum(np.asarray(tp, np.float64))
    cfp = np.cumsum(np.asarray(fp, np.float64))
    return ctp / num_positives, ctp / np.maximum(ctp + cfp, _EPS)


def average_precision(recall: np.ndarray, precision: np.ndarray) -> float:
    """All-points VOC AP (VOC2010+, docs/datasets.md §8.2): area under the non-increasing
    envelope."""
    r = np.concatenate(([0.0], np.asarray(recall, np.float64), [1.0]))
    p = np.concatenate(([0.0], np.asarray(precision, np.float64), [0.0]))
    envelope = np.maximum.accumulate(p[::-1])[::-1]
    steps = np.flatnonzero(r[1:] != r[:-1])
    return float(np.sum((r[steps + 1] - r[steps]) * envelope[steps + 1]))


@dataclass(frozen=True, eq=False)
class Rows:
    """One row per scored detection: ``scores`` (D,) float64, ``labels`` (D,) int64,
    ``tp`` (D, R) bool, ``fp`` (D, R) float64 FP weights, ``empty`` (D,) bool for detections
    in frames without GT (their FP weight is set at compute time; ``fp`` holds 0 there)."""

    scores: np.ndarray
    labels: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    empty: np.ndarray

    @staticmethod
    def concat(parts: list[Rows]) -> Rows:
        """The rows of ``parts`` one after the other."""
        if not parts:
            r = len(RANGES)
            return Rows(
                np.zeros(0),
                np.zeros(0, np.int64),
                np.zeros((0, r), bool),
                np.zeros((0, r)),
                np.zeros(0, bool),
            )
        return Rows(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(Rows)))


# A rope of Rows: a leaf, an (older, newer) pair, or () for none. Appending and merging are
# O(1) and never copy arrays, so a long stream of ``state = update(state, ...)`` stays linear.
RowTree: TypeAlias = "Rows | tuple[()] | tuple[RowTree, RowTree]"


def _leaves(tree: RowTree) -> list[Rows]:
    """The Rows of a rope in order (iterative: a long stream makes a deep left spine)."""
    out: list[Rows] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, Rows):
            out.append(node)
        elif node:
            stack.extend(reversed(node))
    return out


@dataclass(frozen=True, eq=False)
class StratumStats:
    """Sufficient statistics of one stratum: the detection rows and ``positives`` (R, C) int64,
    the in-range GT count per motion range and class."""

    tree: RowTree
    positives: np.ndarray

    def rows(self) -> Rows:
        """All rows of the stratum, in the order they were added."""
        return Rows.concat(_leaves(self.tree))


DetectionState = dict[Stratum, StratumStats]


def _stratum_order(key: Stratum) -> tuple[bool, Any]:
    return isinstance(key, str), key


def _as_numpy(x: Any) -> np.ndarray:
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


def _mean_percent(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean() * 100) if finite.size else math.nan


class DetectionEvaluator(Evaluator[DetectionState]):
    """ImageNet VID mAP with FGFA's motion ranges, per stratum (e.g. offset from the keyframe).

    ``merge`` concatenates rows and sums positive counts, so it is associative and exact; the
    result of ``compute`` does not depend on the order frames were added or states merged.
    """

    prefix: ClassVar[str] = "det"

    def __init__(self, num_classes: int) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}.")
        self.num_classes = num_classes

    def empty(self) -> DetectionState:
        return {}

    def update(
        self,
        state: DetectionState,
        prediction: DetectionPrediction,
        target: DetectionTarget,
        stratum: Stratum,
    ) -> DetectionState:
        """Add one scored frame's detections and ground truth under ``stratum``."""
        det_boxes, scores, det_labels = self._checked_prediction(prediction)
        gt_boxes, gt_labels, motion = self._checked_target(target)
        in_range = in_motion_ranges(motion)
        positives = np.stack(
            [np.bincount(gt_labels[inside], minlength=self.num_classes) for inside in in_range]
        ).astype(np.int64)
        tree: RowTree = ()
        if len(scores):
            if len(gt_labels):
                iou = box_iou(det_boxes, gt_boxes)
                matched = match_frame(iou, scores, det_labels, gt_labels, iou_thresholds(gt_boxes))
                tp, fp = range_outcomes(iou, matched, in_range)
                empty = np.zeros(len(scores), bool)
            else:
                tp = np.zeros((len(scores), len(RANGES)), bool)
                fp = np.zeros((len(scores), len(RANGES)))
                empty = np.ones(len(scores), bool)
            tree = Rows(scores, det_labels, tp, fp, empty)
        previous = state.get(stratum)
        if previous is not None:
            tree = (previous.tree, tree) if isinstance(tree, Rows) else previous.tree
            positives = previous.positives + positives
        return {**state, stratum: StratumStats(tree, positives)}

    def merge(self, a: DetectionState, b: DetectionState) -> DetectionState:
        out = {}
        for key in sorted(set(a) | set(b), key=_stratum_order):
            if key in a and key in b:
                out[key] = StratumStats(
                    (a[key].tree, b[key].tree), a[key].positives + b[key].positives
                )
            else:
                out[key] = a[key] if key in a else b[key]
        return out

    def compute(self, state: DetectionState) -> dict[str, Any]:
        """``det/map`` (all range, the devkit number), ``det/map_{slow,medium,fast}``, per-class
        AP (NaN without positives), mAP per stratum and the lowest one among strata with
        positives (``det/map_worst``), all in %; ``det/strata_scored`` counts the strata."""
        if not state:
            raise ValueError("No scored frames: the detection evaluator state is empty.")
        strata = sorted(state, key=_stratum_order)
        positives = sum(state[s].positives for s in strata)
        rows = Rows.concat([state[s].rows() for s in strata])
        weights = positives.sum(1) / max(int(positives[0].sum()), 1)
        ap = np.stack(
            [self._class_ap(rows, positives[r], r, weights[r]) for r in range(len(RANGES))]
        )
        per_stratum = {
            s: _mean_percent(self._class_ap(state[s].rows(), state[s].positives[0], 0, 1.0))
            for s in strata
        }
        finite = [v for v in per_stratum.values() if not math.isnan(v)]
        return {
            "det/map": _mean_percent(ap[0]),
            **{f"det/map_{name}": _mean_percent(ap[r]) for r, name in enumerate(RANGES) if r},
            "det/ap_per_class": [float(v) * 100 for v in ap[0]],
            "det/map_per_stratum": per_stratum,
            "det/map_worst": min(finite) if finite else math.nan,
            "det/strata_scored": len(strata),
        }

    def to_json(self, state: DetectionState) -> dict[str, Any]:
        """Compact lists: per stratum ``[key, rows]`` (keys keep their int/str type); ``tp`` is
        a bit mask over the ranges, ``fp`` the flattened (D, R) weights, ``empty`` row indices."""
        strata = []
        for key in sorted(state, key=_stratum_order):
            rows = state[key].rows()
            bits = (rows.tp.astype(np.int64) << np.arange(len(RANGES))).sum(1)
            strata.append(
                [
                    key,
                    {
                        "scores": rows.scores.tolist(),
                        "labels": rows.labels.tolist(),
                        "tp": bits.tolist(),
                        "fp": [int(v) if v.is_integer() else v for v in rows.fp.ravel().tolist()],
                        "empty": np.flatnonzero(rows.empty).tolist(),
                        "positives": state[key].positives.tolist(),
                    },
                ]
            )
        return {"num_classes": self.num_classes, "ranges": list(RANGES), "strata": strata}

    def from_json(self, data: dict[str, Any]) -> DetectionState:
        if data.get("num_classes") != self.num_classes or data.get("ranges") != list(RANGES):
            raise ValueError(
                f"Detection state for num_classes={data.get('num_classes')} ranges="
                f"{data.get('ranges')} cannot load into num_classes={self.num_classes} "
                f"ranges={list(RANGES)}."
            )
        state: DetectionState = {}
        for key, item in data["strata"]:
            scores = np.asarray(item["scores"], np.float64)
            bits = np.asarray(item["tp"], np.int64).reshape(-1, 1)
            empty = np.zeros(len(scores), bool)
            empty[np.asarray(item["empty"], np.int64)] = True
            rows = Rows(
                scores,
                np.asarray(item["labels"], np.int64),
                (bits >> np.arange(len(RANGES))) & 1 == 1,
                np.asarray(item["fp"], np.float64).reshape(len(scores), len(RANGES)),
                empty,
            )
            positives = np.asarray(item["positives"], np.int64).reshape(len(RANGES), -1)
            state[key] = StratumStats(rows if len(scores) else (), positives)
        return state

    def _class_ap(
        self, rows: Rows, positives: np.ndarray, r: int, empty_weight: float
    ) -> np.ndarray:
        """(C,) AP (fraction) per class in range ``r``; NaN for classes without positives."""
        fp = np.where(rows.empty, empty_weight, rows.fp[:, r])
        tp = rows.tp[:, r]
        # Score descending; among tied scores FP-weighted rows first (see module docstring).
        order = np.lexsort((-fp, tp, -rows.scores))
        labels, tp, fp = rows.labels[order], tp[order], fp[order]
        out = np.full(self.num_classes, np.nan)
        for c in np.flatnonzero(positives > 0):
            mine = labels == c
            out[c] = average_precision(*precision_recall(tp[mine], fp[mine], int(positives[c])))
        return out

    def _checked_prediction(
        self, prediction: DetectionPrediction
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        boxes = _as_numpy(prediction.boxes).astype(np.float64).reshape(-1, 4)
        scores = _as_numpy(prediction.scores).astype(np.float64).reshape(-1)
        labels = _as_numpy(prediction.labels).astype(np.int64).reshape(-1)
        where = f"DetectionPrediction for frame {prediction.index}"
        if not len(boxes) == len(scores) == len(labels):
            raise ValueError(
                f"{where}: {len(boxes)} boxes, {len(scores)} scores, {len(labels)} labels; "
                "they must have one row per detection."
            )
        if not np.isfinite(scores).all():
            raise ValueError(f"{where}: non-finite scores {scores[~np.isfinite(scores)]}.")
        self._check_labels(labels, where)
        return boxes, scores, labels

    def _checked_target(self, target: DetectionTarget) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        boxes = np.asarray(target.boxes, np.float64).reshape(-1, 4)
        labels = np.asarray(target.labels, np.int64).reshape(-1)
        motion = np.asarray(target.motion_iou, np.float64).reshape(-1)
        if not len(boxes) == len(labels) == len(motion):
            raise ValueError(
                f"DetectionTarget: {len(boxes)} boxes, {len(labels)} labels, {len(motion)} "
                "motion IoUs; they must have one row per object."
            )
        self._check_labels(labels, "DetectionTarget")
        return boxes, labels, motion

    def _check_labels(self, labels: np.ndarray, where: str) -> None:
        bad = labels[(labels < 0) | (labels >= self.num_classes)]
        if bad.size:
            raise ValueError(
                f"{where}: class ids {sorted(set(bad.tolist()))} outside 0..{self.num_classes - 1}."
            )
