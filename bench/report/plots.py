"""Figures as pure functions of the runs table: accuracy-throughput curves (seed 000 Fig. 4
and 6), accuracy per keyframe offset, and the runtime breakdown per component."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from vidbench.report.tables import COMPONENTS, _scheme_order  # noqa: E402


def _schemes(df: pd.DataFrame) -> list[str]:
    return sorted(df.scheme.unique(), key=_scheme_order)


def curve(df: pd.DataFrame, y: str, ylabel: str) -> Figure:
    """Accuracy vs throughput, one line per scheme over keyframe intervals (labelled)."""
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for scheme in _schemes(df):
        part = df[df.scheme == scheme].dropna(subset=["fps", y]).sort_values("interval")
        if part.empty:
            continue
        marker = "*" if len(part) == 1 else "o"
        ax.plot(
            part.fps, part[y], marker=marker, markersize=10 if marker == "*" else 5, label=scheme
        )
        for row in part.itertuples():
            ax.annotate(
                str(row.interval),
                (row.fps, getattr(row, y)),
                fontsize=7,
                textcoords="offset points",
                xytext=(3, 3),
            )
    ax.set_xlabel("throughput (fps, stream, batch 1)")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(f"{ylabel} vs throughput (labels: keyframe interval)")
    fig.tight_layout()
    return fig


def curve_vs_paper(df: pd.DataFrame, paper: pd.DataFrame, y: str, ylabel: str) -> Figure:
    """Accuracy vs speed-up over the per-frame model, measured (solid) with the paper's points
    (dashed, same colour per scheme): speed-up, unlike fps, compares across machines."""
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    colours = {base: f"C{i}" for i, base in enumerate(("frame", "prop-flow", "prop-mv", "interp-mv"))}
    for scheme in _schemes(df):
        part = df[df.scheme == scheme].dropna(subset=["speedup", y]).sort_values("interval")
        if not part.empty:
            colour = colours.get(scheme.split(":")[0])
            ax.plot(part.speedup, part[y], marker="o", markersize=5, color=colour, label=scheme)
    for scheme in sorted(paper.scheme.unique(), key=_scheme_order):
        part = paper[paper.scheme == scheme].dropna(subset=["speedup", y]).sort_values("interval")
        ax.plot(
            part.speedup,
            part[y],
            linestyle="--",
            marker="x",
            color=colours.get(scheme),
            label=f"{scheme} (paper)",
        )
    return finish(
        fig,
        ax,
        ("speed-up over the per-frame model", ylabel, f"{ylabel} vs speed-up, measured and paper"),
    )


def per_offset(df: pd.DataFrame) -> Figure:
    """mIoU at each distance from the previous keyframe, one panel per scheme."""
    schemes = [s for s in _schemes(df) if df[df.scheme == s].interval.max() > 1]
    fig, axes = plt.subplots(
        1,
        max(len(schemes), 1),
        figsize=(4.2 * max(len(schemes), 1), 3.8),
        sharey=True,
        squeeze=False,
    )
    cmap = plt.get_cmap("viridis")
    for ax, scheme in zip(axes[0], schemes):
        part = df[(df.scheme == scheme) & df.per_offset.notna()].sort_values("interval")
        top = part.interval.max()
        for row in part.itertuples():
            offsets = sorted(row.per_offset)
            ax.plot(
                offsets,
                [row.per_offset[o] for o in offsets],
                marker=".",
                color=cmap(row.interval / max(top, 1)),
                label=f"n={row.interval}",
            )
        ax.set_title(scheme)
        ax.set_xlabel("offset from previous keyframe (frames)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("mIoU (%)")
    axes[0][-1].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def breakdown(df: pd.DataFrame) -> Figure:
    """Stacked ms per frame by component, per scheme and interval (all frames, and
    intermediate frames only: the seed's Fig. 2 view)."""
    data = df.dropna(subset=["fps"]).copy()
    data["name"] = [f"{s} n={i}" for s, i in zip(data.scheme, data.interval)]
    data = data.sort_values(
        ["scheme", "interval"], key=lambda c: c.map(_scheme_order) if c.name == "scheme" else c
    )
    fig, axes = plt.subplots(2, 1, figsize=(max(6, 0.35 * len(data)), 7.5))
    for ax, prefix, title in (
        (axes[0], "ms_", "mean ms per frame (stream)"),
        (axes[1], "intermediate_ms_", "mean ms per intermediate frame"),
    ):
        bottom = pd.Series(0.0, index=data.index)
        for component in COMPONENTS:
            values = data.get(f"{prefix}{component}", pd.Series(0.0, index=data.index)).fillna(0)
            ax.bar(data.name, values, bottom=bottom, label=component)
            bottom += values
        ax.set_ylabel("ms")
        ax.set_title(title)
        ax.tick_params(axis="x", rotation=90, labelsize=7)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(ncol=len(COMPONENTS), fontsize=8)
    fig.tight_layout()
    return fig


def save(figure: Figure, path: Path) -> Path:
    """Write ``figure`` as a PNG (dpi 120, no timestamps, so re-rendering is byte-stable)
    and free it; returns ``path`` so callers can record what was written."""
    figure.savefig(path, dpi=120, metadata={"Software": None})
    plt.close(figure)
    return path


def finish(fig: Figure, ax: plt.Axes, labels: tuple[str, str, str], legend_size: int = 7) -> Figure:
    """Label ``ax`` with (x label, y label, title), add a grid and legend, and tighten the
    layout: the closing lines every line or scatter plot repeats."""
    xlabel, ylabel, title = labels
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=legend_size)
    ax.set_title(title)
    fig.tight_layout()
    return fig
