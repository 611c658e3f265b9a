"""The focus study's table (where AdaFocus looks), from ``kind == "focus"`` records only."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd
from vidbench.report.tables import to_markdown


def focus_table(records: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """One row per (method label, visibility): hit rate of the chosen patch against a random
    candidate's; the newest record per label wins."""
    latest: dict[str, dict[str, Any]] = {}
    for record in sorted(records, key=lambda r: r.get("created", 0)):
        if record.get("kind") == "focus":
            latest[record["label"]] = record
    rows = [
        {
            "method": label,
            "frames of the object": part,
            "frames": values["frames"],
            "patch holds the object (%)": 100 * values["hit_rate"],
            "random patch would (%)": 100 * values["random_rate"],
        }
        for label, record in sorted(latest.items())
        for part, values in record["summary"].items()
    ]
    return pd.DataFrame(rows)


def render_focus(records: Iterable[dict[str, Any]], out_dir: Path) -> dict[str, Path]:
    """Write focus.md (the table and the figures the study drew)."""
    records = list(records)
    table = focus_table(records)
    if table.empty:
        raise ValueError("No focus records: run `bench focus` first.")
    figures = sorted({r["figure"] for r in records if r.get("kind") == "focus"})
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "focus.md"
    path.write_text(
        "# Where AdaFocus looks (seed 002, Fig. 7)\n\n"
        "A hit: the chosen patch contains the centre of the class-deciding object's box. "
        "'random patch would': the share of candidates that contain it, on the same frames.\n\n"
        + to_markdown(table)
        + "\n\n"
        + "\n".join(f"![{Path(f).stem}]({Path(f).resolve()})" for f in figures)
        + "\n"
    )
    return {"focus_md": path}
