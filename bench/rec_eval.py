"""Video recognition metrics (docs/datasets.md §8.4–8.5): AR-Net-style mAP, multi-label mmAP
and top-1, per protocol stratum (online step t, and ``video`` for the offline, whole-video
prediction).

mAP: per class, the non-interpolated AP over videos ranked by the softmax probability of that
class; the mean is over classes that have a positive (classes without one are excluded and
counted in ``rec/classes_without_positives``; AR-Net's code counts them as 0). Tied scores are
grouped as sklearn's ``average_precision_score`` does (each tied group is one threshold), which
makes the metric independent of the order videos arrive in, so sharded evaluation merges to
exactly the single-process number; without ties it equals AR-Net's rank-based AP. ``map`` uses
each video's first (smallest) label, ``mmap`` all its labels (FCVID). Top-1 compares the
arg-max with the first label (AR-Net).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from vidbench.api import RecognitionPrediction, RecognitionTarget
from vidbench.evaluators import Evaluator, Stratum

VIDEO = "video"  # the stratum of the whole-video (offline) prediction

State = dict[str, dict[str, list]]  # stratum -> {"scores": [[C floats]], "labels": [[ids]]}


def average_precision(scores: np.ndarray, positives: np.ndarray) -> np.ndarray:
    """Per-class non-interpolated AP with tied scores grouped: ``scores`` (N, C) and
    ``positives`` (N, C) bool -> (C,), NaN for a class without positives."""
    out = np.full(scores.shape[1], np.nan)
    for k in range(scores.shape[1]):
        hits = positives[:, k]
        if not hits.any():
            continue
        order = np.argsort(-scores[:, k], kind="stable")
        ranked, ranked_hits = scores[order, k], hits[order]
        true_cum, ranks = np.cumsum(ranked_hits), np.arange(1, len(ranked) + 1)
        group_end = np.r_[ranked[1:] != ranked[:-1], True]  # last row of each tied group
        tp, seen = true_cum[group_end], ranks[group_end]
        gained = np.diff(np.r_[0, tp])
        out[k] = float(np.sum(gained * tp / seen) / hits.sum())
    return out


class RecognitionEvaluator(Evaluator[State]):
    """Keeps every scored video's class scores and labels per stratum (mAP needs the ranking
    over all videos, so there is no smaller sufficient statistic)."""

    prefix = "rec"

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes

    def empty(self) -> State:
        return {}

    def update(
        self,
        state: State,
        prediction: RecognitionPrediction,
        target: RecognitionTarget,
        stratum: Stratum,
    ) -> State:
        scores = prediction.scores.detach().float().cpu().numpy()
        if scores.shape != (self.num_classes,):
            raise ValueError(f"scores of shape {scores.shape}; expected ({self.num_classes},)")
        entry = state.setdefault(str(stratum), {"scores": [], "labels": []})
        entry["scores"].append(scores.tolist())
        entry["labels"].append([int(k) for k in target.labels])
        return state

    def merge(self, a: State, b: State) -> State:
        out: State = {}
        for part in (a, b):
            for stratum, entry in part.items():
                into = out.setdefault(stratum, {"scores": [], "labels": []})
                into["scores"] += entry["scores"]
                into["labels"] += entry["labels"]
        return out

    def _metrics(self, entry: dict[str, list]) -> dict[str, float]:
        scores = np.asarray(entry["scores"], dtype=np.float64).reshape(-1, self.num_classes)
        first = np.zeros_like(scores, dtype=bool)
        every = np.zeros_like(scores, dtype=bool)
        for row, labels in enumerate(entry["labels"]):
            first[row, labels[0]] = True
            every[row, labels] = True
        single, multi = average_precision(scores, first), average_precision(scores, every)
        top1 = scores.argmax(axis=1) == first.argmax(axis=1)
        return {
            "map": 100 * float(np.nanmean(single)) if np.isfinite(single).any() else float("nan"),
            "mmap": 100 * float(np.nanmean(multi)) if np.isfinite(multi).any() else float("nan"),
            "top1": 100 * float(top1.mean()),
            "videos": len(scores),
            "classes_without_positives": int(np.isnan(single).sum()),
        }

    def compute(self, state: State) -> dict[str, Any]:
        per = {stratum: self._metrics(entry) for stratum, entry in state.items()}
        steps = sorted((s for s in per if s != VIDEO), key=int)
        video = per.get(VIDEO) or (per[steps[-1]] if steps else {})
        out: dict[str, Any] = {f"rec/{name}": value for name, value in video.items()}
        if steps:
            out["rec/map_per_stratum"] = {s: per[s]["map"] for s in steps}
            out["rec/top1_per_stratum"] = {s: per[s]["top1"] for s in steps}
            out["rec/map_worst"] = min(per[s]["map"] for s in steps)
        else:
            out["rec/map_worst"] = out.get("rec/map", float("nan"))
        return out

    def to_json(self, state: State) -> Any:
        return state

    def from_json(self, data: Any) -> State:
        return {str(s): {"scores": e["scores"], "labels": e["labels"]} for s, e in data.items()}
