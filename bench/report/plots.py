"""Figures as pure functions of the runs table: accuracy-throughput curves (seed 000 Fig. 4
and 6), accuracy per keyframe offset, and the runtime breakdown per component."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from vidbench.report.tables import COMPONENTS, _scheme_order  # noqa: E402

BUILT_IN = ("frame", "prop-flow", "prop-mv", "interp-mv", "rfcn", "dff", "psla", "psla-seg",
            "prop", "adafocus", "adafocus+", "adafocus-tsm", "tsm", "tsm+", "r50-avg", "r50-gru")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h")
INVALID_NOTE = "hollow markers: INVALID timings (see the records' reasons)"


def method_style(label: str) -> dict[str, str]:
    """Colour by method (the name before the options), marker by variant: the same in every
    figure of every report. Built-in methods have fixed colours; any other name gets one from
    a stable hash of it, so a user's method keeps its colour across runs and figures."""
    base, _, options = label.partition(":")
    tab20 = plt.get_cmap("tab20").colors
    palette = tab20[0::2] + tab20[1::2]  # the ten strong colours first, then their light ones
    index = BUILT_IN.index(base) if base in BUILT_IN else _stable_hash(base)
    marker = MARKERS[_stable_hash(options) % len(MARKERS)] if options else "o"
    return {"color": palette[index % len(palette)], "marker": marker}


def _stable_hash(text: str) -> int:
    """The same number for the same text in every process (``hash`` is salted)."""
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


def _schemes(df: pd.DataFrame) -> list[str]:
    return sorted(df.scheme.unique(), key=_scheme_order)


def line_with_validity(
    ax: plt.Axes, part: pd.DataFrame, x: str, y: str, style: dict, label: str
) -> None:
    """A scheme's line, VALID points filled and INVALID ones hollow, with the 95% interval
    over val videos as vertical error bars where the rows carry one (``{y}_lo``, ``{y}_hi``)."""
    ax.plot(part[x], part[y], color=style["color"], linewidth=1.2, label=label)
    if f"{y}_lo" in part and part[f"{y}_lo"].notna().any():
        below = (part[y] - part[f"{y}_lo"]).clip(lower=0).fillna(0)
        above = (part[f"{y}_hi"] - part[y]).clip(lower=0).fillna(0)
        ax.errorbar(part[x], part[y], yerr=[below, above], fmt="none", ecolor=style["color"],
                    elinewidth=0.8, capsize=2, alpha=0.6)
    valid = part.get("validity", pd.Series("VALID", index=part.index)).fillna("VALID") == "VALID"
    for chosen, face in ((valid, style["color"]), (~valid, "none")):
        ax.plot(part[x][chosen], part[y][chosen], linestyle="", marker=style["marker"],
                markersize=6, color=style["color"], markerfacecolor=face)


def curve(df: pd.DataFrame, y: str, ylabel: str) -> Figure:
    """Accuracy vs steady-state throughput, one line per scheme over keyframe intervals."""
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    x = "steady_fps" if "steady_fps" in df else "fps"
    for scheme in _schemes(df):
        part = df[df.scheme == scheme].dropna(subset=[x, y]).sort_values("interval")
        if part.empty:
            continue
        line_with_validity(ax, part, x, y, method_style(scheme), scheme)
        for row in part.itertuples():
            ax.annotate(str(row.interval), (getattr(row, x), getattr(row, y)), fontsize=7,
                        textcoords="offset points", xytext=(3, 3))
    return finish(fig, ax, ("throughput, steady state (fps, batch 1)", ylabel,
                            f"{ylabel} vs throughput (labels: keyframe interval)\n{INVALID_NOTE}"))


def curve_vs_paper(df: pd.DataFrame, paper: pd.DataFrame, y: str, ylabel: str) -> Figure:
    """Accuracy vs speed-up over the per-frame model, measured (solid) with the paper's points
    (dashed, the same colour per method): speed-up, unlike fps, compares across machines."""
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for scheme in _schemes(df):
        part = df[df.scheme == scheme].dropna(subset=["speedup", y]).sort_values("interval")
        if not part.empty:
            line_with_validity(ax, part, "speedup", y, method_style(scheme), scheme)
    for scheme in sorted(paper.scheme.unique(), key=_scheme_order):
        part = paper[paper.scheme == scheme].dropna(subset=["speedup", y]).sort_values("interval")
        ax.plot(part.speedup, part[y], linestyle="--", marker="x",
                color=method_style(scheme)["color"], label=f"{scheme} (paper)")
    return finish(
        fig,
        ax,
        ("speed-up over the per-frame model (steady state)", ylabel,
         f"{ylabel} vs speed-up, measured and paper\n{INVALID_NOTE}"),
    )


def per_offset(df: pd.DataFrame) -> Figure:
    """mIoU at each distance from the previous keyframe, one panel per scheme, with each
    point's 95% interval over val videos where the record carries one."""
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
            values = [row.per_offset[o] for o in offsets]
            colour = cmap(row.interval / max(top, 1))
            ax.plot(offsets, values, marker=".", color=colour, label=f"n={row.interval}")
            bounds = getattr(row, "per_offset_ci", None)
            if isinstance(bounds, dict) and bounds:
                pairs = [_pair(bounds.get(o), v) for o, v in zip(offsets, values)]
                low = [v - lo for (lo, _), v in zip(pairs, values)]
                high = [hi - v for (_, hi), v in zip(pairs, values)]
                ax.errorbar(offsets, values, yerr=[low, high], fmt="none", ecolor=colour,
                            elinewidth=0.6, capsize=1.5, alpha=0.5)
        ax.set_title(scheme)
        ax.set_xlabel("offset from previous keyframe (frames)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("mIoU (%)")
    if axes[0][-1].get_legend_handles_labels()[0]:
        axes[0][-1].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def _pair(bounds: Any, value: float) -> tuple[float, float]:
    """An interval's (low, high), collapsed onto ``value`` where a bound is missing."""
    low, high = bounds if bounds else (None, None)
    return (value if low is None else low, value if high is None else high)


def breakdown(df: pd.DataFrame) -> Figure:
    """ms per frame by component, one horizontal bar per scheme and interval: as the measured
    stream had them, and in the steady state (a key every n frames; a look-ahead method's
    work at keys is spread over the frames it serves, so no bar reads zero)."""
    data = df.dropna(subset=["fps"]).copy()
    data["name"] = [f"{s}  n={i}" for s, i in zip(data.scheme, data.interval)]
    data = data.sort_values(
        ["scheme", "interval"], key=lambda c: c.map(_scheme_order) if c.name == "scheme" else c
    )
    height = max(3.0, 0.32 * len(data) + 1.5)
    fig, axes = plt.subplots(1, 2, figsize=(13, height), sharey=True)
    colours = plt.get_cmap("Set2").colors
    for ax, prefix, title in (
        (axes[0], "ms_", "ms per frame, measured stream"),
        (axes[1], "steady_ms_", "ms per frame, steady state"),
    ):
        left = pd.Series(0.0, index=data.index)
        for number, component in enumerate(COMPONENTS):
            values = data.get(f"{prefix}{component}", pd.Series(0.0, index=data.index)).fillna(0)
            ax.barh(data.name, values, left=left, label=component, color=colours[number])
            left += values
        ax.set_xlabel("ms")
        ax.set_title(title)
        ax.grid(axis="x", alpha=0.3)
        ax.invert_yaxis()
    axes[0].tick_params(axis="y", labelsize=8)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="upper center",
               ncol=len(COMPONENTS), fontsize=8, bbox_to_anchor=(0.5, 1.0))
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    return fig


FIGURE_FORMATS = ["png"]  # what ``save`` writes; ``bench report --figure-format`` sets it


@contextlib.contextmanager
def figure_formats(formats: Sequence[str]) -> Iterator[None]:
    """Write figures in ``formats`` (png, pdf, svg; png always) inside the block."""
    unknown = sorted(set(formats) - {"png", "pdf", "svg"})
    if unknown:
        raise ValueError(f"Unknown figure format(s) {unknown}; allowed: png, pdf, svg.")
    formats = ["png", *[f for f in formats if f != "png"]]
    previous = list(FIGURE_FORMATS)
    FIGURE_FORMATS[:] = list(formats)
    try:
        yield
    finally:
        FIGURE_FORMATS[:] = previous


def save(figure: Figure, path: Path) -> Path:
    """Write ``figure`` as ``path`` (a PNG: dpi 120, no timestamps, so re-rendering is
    byte-stable) and in every other format of FIGURE_FORMATS beside it; free it; returns
    ``path`` so callers can record what was written."""
    stable = {"png": {"Software": None}, "svg": {"Date": None}, "pdf": {"CreationDate": None}}
    for suffix in FIGURE_FORMATS:
        figure.savefig(path.with_suffix(f".{suffix}"), dpi=120, metadata=stable[suffix])
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
