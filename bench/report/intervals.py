"""A record's bootstrap intervals as table columns and cells (vidbench.bootstrap)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


def columns(record: Mapping[str, Any], names: Mapping[str, str]) -> dict[str, float]:
    """``{column}_lo`` and ``{column}_hi`` for each ``metric -> column`` in ``names``; NaN where
    the record has no interval (made before intervals, or fewer than two videos)."""
    bounds = record.get("intervals", {}).get("metrics", {})
    out = {}
    for metric, column in names.items():
        low, high = bounds.get(metric) or (None, None)
        out[f"{column}_lo"] = math.nan if low is None else float(low)
        out[f"{column}_hi"] = math.nan if high is None else float(high)
    return out


def cell(low: Any, high: Any, digits: int = 1) -> str:
    """``[low, high]`` for a table, empty when either bound is missing."""
    if low is None or high is None or _missing(low) or _missing(high):
        return ""
    return f"[{low:.{digits}f}, {high:.{digits}f}]"


def _missing(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def videos(records: list[Mapping[str, Any]]) -> str:
    """How the intervals in a table were drawn, for its note."""
    drawn = sorted({r["intervals"]["videos"] for r in records if "intervals" in r})
    if not drawn:
        return "No record here carries a bootstrap interval (made before intervals existed)."
    counts = ", ".join(map(str, drawn))
    return (
        "Brackets: 95% percentile-bootstrap interval over val videos (1000 redraws of "
        f"{counts} videos, seeded; docs/measurement.md §15). Two methods whose intervals "
        "overlap are not told apart by this val set."
    )
