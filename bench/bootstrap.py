"""Percentile-bootstrap intervals over videos for any evaluator (docs/measurement.md §15).

A record keeps one evaluator state per val video beside the merged one. Resampling videos with
replacement and merging their states (the evaluator's own associative ``merge``) redraws the
val set a run could have had; the 2.5th and 97.5th percentiles of a metric over the redraws
are its 95% interval. The draw is seeded, so an interval is a pure function of the states and
a report recomputes exactly what the record holds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from vidbench.evaluators import Evaluator

RESAMPLES = 1000
LEVEL = 0.95
SEED = 0
METHOD = "percentile bootstrap over val videos"


def _merged(evaluator: Evaluator, units: Sequence[Any], picks: np.ndarray) -> Any:
    """The merge of ``units[i]`` for every ``i`` in ``picks`` (repeats included)."""
    state = evaluator.empty()
    for index in picks:
        state = evaluator.merge(state, units[index])
    return state


def intervals(
    evaluator: Evaluator,
    units: Sequence[Any],
    metrics: Sequence[str],
    resamples: int = RESAMPLES,
    level: float = LEVEL,
    seed: int = SEED,
) -> dict[str, Any]:
    """The ``level`` bootstrap interval of each of ``metrics`` over the per-video states
    ``units``, with how it was drawn. A metric whose value is a mapping (per-stratum mIoU or
    mAP) gets an interval per key, over the redraws that hold that key. With fewer than two
    videos there is nothing to redraw: the bounds are null."""
    draws: dict[str, list[Any]] = {metric: [] for metric in metrics}
    if len(units) >= 2:
        rng = np.random.default_rng(seed)
        for _ in range(resamples):
            picks = rng.integers(0, len(units), len(units))
            computed = evaluator.compute(_merged(evaluator, units, picks))
            for metric in metrics:
                draws[metric].append(computed.get(metric))
    tail = 100 * (1 - level) / 2
    bounds = {metric: _bounds(values, tail) for metric, values in draws.items()}
    return {
        "method": METHOD,
        "level": level,
        "resamples": resamples,
        "seed": seed,
        "videos": len(units),
        "metrics": bounds,
    }


def _bounds(values: list[Any], tail: float) -> Any:
    """[low, high] percentiles of scalar draws, or per key of mapping draws; null bounds where
    no draw has a finite value."""
    if values and all(isinstance(v, dict) for v in values if v is not None):
        keys = sorted({k for v in values if v for k in v}, key=str)
        return {k: _bounds([v.get(k) for v in values if v], tail) for k in keys}
    finite = np.array([float(v) for v in values if v is not None], dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if not len(finite):
        return [None, None]
    return [float(np.percentile(finite, tail)), float(np.percentile(finite, 100 - tail))]


def paired_difference(
    evaluator: Evaluator,
    first: Mapping[str, Any],
    second: Mapping[str, Any],
    metric: str,
    resamples: int = RESAMPLES,
    level: float = LEVEL,
    seed: int = SEED,
) -> dict[str, Any]:
    """``metric`` of ``first`` minus that of ``second`` (per-video states keyed by video name,
    the same val videos) with its ``level`` interval from redraws that pick the same videos
    for both: what two methods scored on one val set differ by, with the val set's noise
    shared rather than added, so it is narrower than either method's own interval."""
    if set(first) != set(second):
        raise ValueError("paired_difference needs states of the same val videos on both sides")
    names = sorted(first)
    a, b = [first[n] for n in names], [second[n] for n in names]
    everything = np.arange(len(names))
    point = _value(evaluator, a, everything, metric) - _value(evaluator, b, everything, metric)
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(resamples if len(names) >= 2 else 0):
        picks = rng.integers(0, len(names), len(names))
        draws.append(_value(evaluator, a, picks, metric) - _value(evaluator, b, picks, metric))
    tail = 100 * (1 - level) / 2
    return {"difference": point, "interval": _bounds(draws, tail), "videos": len(names)}


def _value(evaluator: Evaluator, units: Sequence[Any], picks: np.ndarray, metric: str) -> float:
    value = evaluator.compute(_merged(evaluator, units, picks)).get(metric)
    return float("nan") if value is None else float(value)
