"""Percentile-bootstrap intervals over videos for any evaluator (docs/measurement.md §15).

A record keeps one evaluator state per val video beside the merged one. Resampling videos with
replacement and merging their states (the evaluator's own associative ``merge``) redraws the
val set a run could have had; the 2.5th and 97.5th percentiles of a metric over the redraws
are its 95% interval. The draw is seeded, so an interval is a pure function of the states and
a report recomputes exactly what the record holds.
"""

from __future__ import annotations

from collections.abc import Sequence
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
    ``units``, with how it was drawn. With fewer than two videos there is nothing to redraw:
    the bounds are null."""
    bounds: dict[str, list[float | None]] = {}
    if len(units) >= 2:
        rng = np.random.default_rng(seed)
        draws = {metric: np.empty(resamples) for metric in metrics}
        for b in range(resamples):
            computed = evaluator.compute(_merged(evaluator, units, rng.integers(0, len(units), len(units))))
            for metric in metrics:
                value = computed.get(metric)
                draws[metric][b] = np.nan if value is None else float(value)
        tail = 100 * (1 - level) / 2
        for metric, values in draws.items():
            finite = values[np.isfinite(values)]
            bounds[metric] = (
                [float(np.percentile(finite, tail)), float(np.percentile(finite, 100 - tail))]
                if len(finite)
                else [None, None]
            )
    else:
        bounds = {metric: [None, None] for metric in metrics}
    return {
        "method": METHOD,
        "level": level,
        "resamples": resamples,
        "seed": seed,
        "videos": len(units),
        "metrics": bounds,
    }
