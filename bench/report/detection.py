"""The detection report (seed 001 layouts): tables and figures from stored records only.

Rows are schemes (a method with its options); the paper's numbers from results/reference sit
beside the measured ones in the layouts of seed 001's Tables 1, 3, 4 and 5. Two figures: every
scheme's mAP against throughput over keyframe intervals, and Fig. 6's layout, one panel per max
displacement d with a line per PSLA configuration or ablation.
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
from vidbench.protocols import FIXED_KEY, FIXED_KEY_STREAM  # noqa: E402
from vidbench.report import intervals, plots  # noqa: E402
from vidbench.report.tables import (  # noqa: E402
    code_warning,
    provenance_section,
    to_markdown,
    with_cells,
)

REFERENCE_DIR = Path(__file__).resolve().parents[2] / "results" / "reference"
KIND_NAMES = {
    "psla": "PSLA",
    "dense-psla": "DensePSLA",
    "matchtrans": "MatchTrans",
    "nonlocal": "Nonlocal",
}
METRICS = (
    ("mAP (%)", "map"),
    ("mAP 95% interval", "map_ci"),
    ("mAP slow (%)", "map_slow"),
    ("mAP medium (%)", "map_medium"),
    ("mAP fast (%)", "map_fast"),
    ("mAP worst key distance (%)", "map_worst"),
    ("throughput (fps)", "fps"),
)


ACCURACY = ("map", "map_slow", "map_medium", "map_fast", "map_worst")


def paper_name(method: str, config: dict[str, Any]) -> str:
    """The name seed 001's tables give a scheme: "PSLA (c)", "MatchTrans S", "DFF", ..."""
    if method == "rfcn":
        return "R-FCN (frame baseline)"
    if method == "dff":
        return "DFF"
    if method != "psla":
        return method
    setting, kind = config.get("setting", "c"), config.get("attention", "psla")
    joint = config.get("joint", "none")
    suffix = "" if joint == "none" else f", joint={joint}"  # not the paper's: no paper row
    if kind == "psla" and setting in ("a", "S"):
        return f"PSLA (a){suffix}"
    if kind == "psla" and setting in ("c", "F"):
        return f"PSLA (c){suffix}"
    if kind == "psla":
        return f"PSLA ({setting}){suffix}"
    return f"{KIND_NAMES[kind]} {setting}{suffix}"


def runs(records: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """One row per (scheme, interval, key schedule); the newest record of each kind wins."""
    accuracy, speed, about = {}, {}, {}
    for r in sorted(records, key=lambda r: r.get("created", 0)):
        if "error" in r or r.get("protocol") not in (FIXED_KEY, FIXED_KEY_STREAM):
            continue
        key = (r["label"], r["interval"], r["keys"])
        about[key] = {
            "method": r["method"],
            "paper_name": paper_name(r["method"], r["config"]),
            "d": r["config"].get("d") if r["method"] == "psla" else None,
        }
        if r["kind"] == "accuracy":
            m = r["metrics"]
            accuracy[key] = {column: m[f"det/{column}"] for column in ACCURACY}
            accuracy[key].update(with_cells(intervals.columns(r, {"det/map": "map"})))
        else:
            s, c = r["speed"], r["cost"]
            speed[key] = {
                "fps": s["fps"],
                "steady_fps": s.get("steady_fps", s["fps"]),
                "fps_noise": s["fps_iqr_over_median"],
                "validity": s["validity"],
                "key_p50_ms": s["latency_ms_by_kind"].get("key", {}).get("p50"),
                "intermediate_p50_ms": s["latency_ms_by_kind"].get("intermediate", {}).get("p50"),
                "delay_max_frames": s["delay_frames"]["max"],
                "delay_p50_ms": s["delay_ms"]["p50"],
                "gmacs_per_frame": c["gmacs_per_frame"],
                "params_m": c["params"] / 1e6,
                "run_id": r["run_id"],
                "record_speedup": s.get("speedup", float("nan")),
            }
    rows = [
        {"scheme": k[0], "interval": k[1], "keys": k[2], **about[k], **accuracy.get(k, {}),
         **speed.get(k, {})}
        for k in sorted(set(accuracy) | set(speed), key=str)
    ]
    columns = ["scheme", "interval", "keys", "method", "paper_name", "d"]
    columns += [c for _, c in METRICS] + ["steady_fps", "gmacs_per_frame", "params_m", "run_id",
                                          "validity"]
    df = pd.DataFrame(rows).reindex(columns=list(dict.fromkeys([*columns, *pd.DataFrame(rows)])))
    base = df[(df.method == "rfcn") & df.fps.notna()].drop_duplicates("run_id")
    fps_of = dict(zip(base.run_id, base.fps))
    # the speed-up each record carries (timed beside rfcn in its own run); before records
    # carried one, the rfcn record of the same run
    df["speedup"] = [
        row.fps / fps_of.get(row.run_id, float("nan"))
        if pd.isna(getattr(row, "record_speedup", float("nan")))
        else row.record_speedup
        for row in df.itertuples()
    ]
    return df


def main_table(df: pd.DataFrame) -> pd.DataFrame:
    """Rows (metric, scheme, key schedule), columns segment lengths (the keyframe interval l);
    cost is in the speed-up table."""
    blocks = []
    for title, column in METRICS:
        if column not in df:
            continue
        wide = df.pivot_table(
            index=["scheme", "keys"], columns="interval", values=column, aggfunc="last"
        )
        wide.index = pd.MultiIndex.from_tuples(
            [(title, *key) for key in wide.index], names=["metric", "scheme", "keys"]
        )
        blocks.append(wide)
    return pd.concat(blocks) if blocks else pd.DataFrame()


def beside_paper(measured: pd.DataFrame, reference: pd.DataFrame, on: list[str]) -> pd.DataFrame:
    """Measured rows joined to the paper's rows on ``on`` (paper columns prefixed paper_)."""
    paper = reference.rename(columns={c: f"paper_{c}" for c in reference if c not in on})
    return measured.merge(paper, on=on, how="outer").sort_values(on)


def table3(df: pd.DataFrame, interval: int) -> pd.DataFrame:
    """Seed 001 Table 3: propagation modules (S settings) by max displacement d."""
    part = df[(df.method == "psla") & (df.interval == interval)]
    part = part[part.paper_name.isin(["PSLA (a)", "MatchTrans S", "DensePSLA S", "Nonlocal S"])]
    measured = part.drop(columns="method").rename(columns={"paper_name": "method", "d": "max_displacement"}).reindex(
        columns=["method", "max_displacement", "map", "map_ci", "fps", "params_m"]
    )
    reference = pd.read_csv(REFERENCE_DIR / "seed001_table3_propagation_vid.csv")
    reference = reference[["method", "max_displacement", "map", "fps", "params_m"]]
    measured["max_displacement"] = measured["max_displacement"].astype(float)
    reference = reference.assign(max_displacement=reference.max_displacement.astype(float))
    return beside_paper(measured, reference, ["method", "max_displacement"])


def table4(df: pd.DataFrame) -> pd.DataFrame:
    """Seed 001 Table 4: DFF against PSLA (a) (d = 4) by keyframe interval."""
    part = df[df.paper_name.isin(["DFF", "PSLA (a)"]) & ((df.d.isna()) | (df.d == 4))]
    measured = part.assign(
        method=part.paper_name.replace({"DFF": "DFF (re-implementation)"}),
        keyframe_interval=part.interval,
    )[["method", "keyframe_interval", "map", "map_ci"]]
    reference = pd.read_csv(REFERENCE_DIR / "seed001_table4_dff_vs_psla_vid.csv")
    return beside_paper(measured, reference[["method", "keyframe_interval", "map"]],
                        ["method", "keyframe_interval"])


def table5(df: pd.DataFrame, interval: int) -> pd.DataFrame:
    """Seed 001 Table 5: the framework's configurations and the ablations' S / F."""
    part = df[(df.method == "psla") & (df.interval == interval) & (df.d == 4)]
    measured = part.drop(columns="method").rename(columns={"paper_name": "method"}).reindex(columns=["method", "map", "map_ci", "fps"])
    reference = pd.read_csv(REFERENCE_DIR / "seed001_table5_framework_vid.csv")
    return beside_paper(measured, reference[["method", "map", "fps"]], ["method"])


def params_table(df: pd.DataFrame) -> pd.DataFrame:
    """Parameters of the measured schemes beside the paper's Table 1."""
    measured = df.dropna(subset=["params_m"]).drop_duplicates("paper_name")
    measured = measured.drop(columns="method").rename(columns={"paper_name": "method"})
    measured = measured[["method", "params_m"]]
    reference = pd.read_csv(REFERENCE_DIR / "seed001_table1_vid_selected.csv")
    reference = reference[["method", "params_m"]]
    return beside_paper(measured, reference.drop_duplicates("method"), ["method"])


def curve(df: pd.DataFrame) -> Figure:
    """mAP against throughput (seed 001 Fig. 6): a line per scheme over intervals; PSLA's
    schemes labelled with their max displacement d."""
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for scheme, part in df.dropna(subset=["steady_fps", "map"]).groupby("scheme"):
        part = part.sort_values("interval")
        plots.line_with_validity(ax, part, "steady_fps", "map", plots.method_style(scheme), scheme)
        for row in part.itertuples():
            ax.annotate(f"l={row.interval}", (row.steady_fps, row.map), fontsize=7,
                        textcoords="offset points", xytext=(3, 3))
    return plots.finish(fig, ax, ("throughput, steady state (fps, batch 1)", "mAP (%)",
                                  f"mAP vs throughput (labels: l)\n{plots.INVALID_NOTE}"))


def fig6(df: pd.DataFrame) -> Figure | None:
    """Seed 001 Fig. 6: mAP against throughput, one panel per max displacement d, a line per
    PSLA configuration or ablation over keyframe intervals; Nonlocal has no d and is drawn in
    every panel (as in the paper). None when no PSLA scheme has both mAP and fps."""
    part = df[df.method == "psla"].dropna(subset=["fps", "map"])
    nonlocal_ = part.paper_name.str.startswith(KIND_NAMES["nonlocal"])
    displacements = sorted(part[~nonlocal_].d.dropna().unique())
    if part.empty or not displacements:
        return None
    fig, axes = plt.subplots(
        1, len(displacements), figsize=(3.6 * len(displacements) + 1.2, 4.2), sharey=True,
        squeeze=False,
    )
    colours = {name: plots.method_style(name)["color"] for name in part.paper_name.unique()}
    for ax, d in zip(axes[0], displacements):
        panel = part[(part.d == d) & ~nonlocal_]
        panel = pd.concat([panel, part[nonlocal_].drop_duplicates(["paper_name", "interval"])])
        for name, line in panel.groupby("paper_name"):
            line = line.sort_values("interval")
            ax.plot(line.fps, line["map"], marker="o", color=colours[name], label=name)
            for row in line.itertuples():
                ax.annotate(str(row.interval), (row.fps, row.map), fontsize=6,
                            textcoords="offset points", xytext=(2, 2))
        ax.set_title(f"d = {int(d)}")
        ax.set_xlabel("throughput (fps)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("mAP (%)")
    handles, labels = {}, []
    for ax in axes[0]:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    labels = sorted(handles)
    fig.legend([handles[k] for k in labels], labels, loc="center right", fontsize=7)
    fig.suptitle("mAP vs throughput by max displacement d (seed 001 Fig. 6)\n"
                 "point labels: keyframe interval l", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1 - 1.2 / (3.6 * len(displacements) + 1.2), 1))
    return fig


def render(records: Iterable[dict[str, Any]], out_dir: Path) -> dict[str, Path]:
    """Write the seed-001 tables (markdown, CSV) and figures (PNG) for detection ``records``
    of the newest dataset fingerprint (rows never join records of two datasets)."""
    records = [r for r in records if r.get("protocol") in (FIXED_KEY, FIXED_KEY_STREAM)]
    if records:
        newest = max(records, key=lambda r: r.get("created", 0))["dataset"]["fingerprint"]
        records = [r for r in records if r["dataset"]["fingerprint"] == newest]
    df = runs(records)
    if df.empty or df.scheme.isna().all():
        raise ValueError("No detection records to report: run `bench compare` first.")
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {"detection_runs_csv": out_dir / "detection_runs.csv"}
    df.to_csv(written["detection_runs_csv"], index=False)
    default = 10 if (df.interval == 10).any() else int(df.interval.max())
    sections = [
        "# Video object detection (seed 001 layouts)\n",
        code_warning(records),
        f"mAP with the ILSVRC VID rule (`{FIXED_KEY}`, every frame scored); slow / medium / "
        "fast by FGFA's motion IoU; worst = the lowest mAP over distances from the key; fps on "
        f"continuous streams (`{FIXED_KEY_STREAM}`, batch 1, CPU); GMACs are multiply-adds.\n",
        "\n## mAP by segment length l, key schedule and motion speed\n",
        to_markdown(main_table(df)),
        f"\n{intervals.videos(records)}\n",
        "\n## Speed-up over R-FCN (steady state, same run), delay and cost\n",
        to_markdown(
            df.set_index(["scheme", "interval"])[
                [c for c in ("speedup", "delay_max_frames", "key_p50_ms", "intermediate_p50_ms",
                             "gmacs_per_frame", "params_m", "validity") if c in df]
            ],
            2,
        ),
    ]
    tables = {
        "table3": ("Table 3: propagation modules by max displacement d", lambda: table3(df, default)),
        "table4": ("Table 4: DFF vs PSLA (a) by keyframe interval", lambda: table4(df)),
        "table5": ("Table 5: framework configurations and ablations", lambda: table5(df, default)),
        "params": ("Parameters (M) beside the paper's Table 1", lambda: params_table(df)),
    }
    for name, (title, build) in tables.items():
        table = build()
        written[f"detection_{name}_csv"] = out_dir / f"detection_{name}.csv"
        table.to_csv(written[f"detection_{name}_csv"], index=False)
        sections += [f"\n## {title} (measured at l = {default} unless the table varies l; paper "
                     "columns prefixed paper_, on ImageNet VID)\n", to_markdown(table)]
    sections += provenance_section(records)
    written["detection_md"] = out_dir / "detection.md"
    written["detection_md"].write_text("\n".join(sections) + "\n")
    written["detection_curve"] = out_dir / "detection_curve.png"
    figure = curve(df)
    plots.save(figure, written["detection_curve"])
    per_d = fig6(df)
    if per_d is not None:
        written["detection_fig6"] = out_dir / "detection_fig6.png"
        plots.save(per_d, written["detection_fig6"])
    return written
