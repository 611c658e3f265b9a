"""Accuracy over training seeds: each scheme's headline metrics per seed, their mean and spread.

Runs of several seeds (``bench compare --seed N``) live in one store per seed; this report
reads them together. A pure function of records: the newest accuracy record per (task,
scheme, protocol setting, seed) gives one value, and a row carries every seed's value, the
mean and the sample standard deviation. Rows measured at a single seed are left out (they
have no spread to show) unless no row has more.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from vidbench.report import plots  # noqa: E402
from vidbench.report.tables import to_markdown  # noqa: E402
from vidbench.tasks import get_task, task_of_protocol  # noqa: E402


def over_seeds(records: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """Rows (task, scheme, setting, metric); columns ``seed <n>``, ``mean``, ``sd``, ``seeds``."""
    values: dict[tuple, dict[int, float]] = {}
    for r in sorted(records, key=lambda r: r.get("created", 0)):
        if r.get("kind") != "accuracy" or "error" in r or "metrics" not in r:
            continue
        task = task_of_protocol(r["protocol"])
        setting = task.protocol.setting_of(r)
        for order, headline in enumerate(task.headline):
            key = (task.name, r["label"], setting, order, headline.title)
            values.setdefault(key, {})[int(r.get("seed", 0))] = r["metrics"][headline.metric]
    if any(len(by_seed) > 1 for by_seed in values.values()):
        values = {key: by_seed for key, by_seed in values.items() if len(by_seed) > 1}
    seeds = sorted({seed for by_seed in values.values() for seed in by_seed})
    rows = []
    def order(key: tuple) -> tuple:
        task, scheme, setting, position, _ = key
        return task, scheme, tuple(str(v).zfill(8) for v in setting), position

    for (task, scheme, setting, _, metric), by_seed in sorted(values.items(), key=lambda kv: order(kv[0])):
        series = pd.Series(by_seed, dtype=float)
        params = get_task(task).protocol.params
        rows.append({
            "task": task,
            "scheme": scheme,
            "setting": ", ".join(f"{p}={v}" for p, v in zip(params, setting)),
            "metric": metric,
            **{f"seed {s}": by_seed.get(s) for s in seeds},
            "mean": series.mean(),
            "sd": series.std(ddof=1) if len(series) > 1 else None,
            "seeds": len(series),
        })
    return pd.DataFrame(rows)


def spread_plot(table: pd.DataFrame) -> Figure:
    """Each scheme's headline metrics: every seed as a dot, the mean as a bar."""
    metrics = list(dict.fromkeys(table.metric))
    height = 1.0 + 0.3 * len(table) + 0.8 * len(metrics)
    fig, axes = plt.subplots(len(metrics), 1, figsize=(9.0, height), squeeze=False)
    seed_columns = [c for c in table if c.startswith("seed ")]
    for ax, metric in zip(axes[:, 0], metrics):
        part = table[table.metric == metric].reset_index(drop=True)
        names = [f"{row.scheme} ({row.setting})" for row in part.itertuples()]
        ax.barh(range(len(part)), part["mean"], color="0.85", label="mean")
        for column in seed_columns:
            ax.plot(part[column], range(len(part)), "o", markersize=4, label=column)
        ax.set_yticks(range(len(part)), names, fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel(metric)
        ax.grid(axis="x", alpha=0.3)
    axes[0, 0].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    axes[0, 0].set_title("accuracy over training seeds (dots: seeds, bars: mean)")
    fig.tight_layout()
    return fig


def render_seeds(records: Iterable[dict[str, Any]], out_dir: Path) -> dict[str, Path]:
    """Write ``seeds.md``, ``seeds.csv`` and ``seeds.png`` for ``records`` of any seeds."""
    table = over_seeds(records)
    if table.empty:
        raise ValueError("No accuracy records to set side by side over seeds.")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {name: out_dir / f"seeds.{name}" for name in ("md", "csv", "png")}
    table.to_csv(written["csv"], index=False)
    written["md"].write_text(
        "# Accuracy over training seeds\n\nThe newest record per seed; sd is the sample "
        "standard deviation over the seeds present; rows run at one seed only are left out "
        "when others have more.\n\n" + to_markdown(table) + "\n"
    )
    figure = spread_plot(table)
    plots.save(figure, written["png"])
    return written
