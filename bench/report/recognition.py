"""The recognition report (seed 002 layouts): tables and figures from stored records only.

One row per label (a method with its options) joins the newest accuracy record with the newest
``stream`` (batch 1) and ``offline`` (batch N) speed records. The paper's numbers from
results/reference sit beside ours in the layouts of seed 002's Tables 1-5, always in rows or
columns of their own: the paper measured real videos at 224x224 on ActivityNet, Mini-Kinetics
and Something-Something; we measure synthaction, so only the layout and the trends compare.

Patch sizes are compared by their share of the frame side: a measured patch p on s-pixel
frames sits beside the paper's P = 224 p / s (48 px at 112 beside the paper's 96 px at 224).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from vidbench.protocols import CLIP, CLIP_STREAM  # noqa: E402
from vidbench.report import intervals, plots  # noqa: E402
from vidbench.report.detection import beside_paper  # noqa: E402
from vidbench.report.tables import (  # noqa: E402
    code_warning,
    provenance_section,
    to_markdown,
    with_cells,
)

REFERENCE_DIR = Path(__file__).resolve().parents[2] / "results" / "reference"
PAPER_SIDE = 224
# methods/recognition/adafocus_method.py PRESETS: the preset patch as a share of the frame side (patch=0)
PRESET_PATCH_RATIO = {"toy": 3 / 7, "mini": 1 / 2, "paper": 4 / 7}
BACKBONES = {"toy": ("MN2x0.5", "RN18"), "mini": ("MN2x0.25", "RN10-mini"), "paper": ("MN2", "RN50")}
GLANCE_METHODS = ("adafocus", "adafocus+", "adafocus-tsm", "tsm+")
TSM_FAMILY = ("tsm", "tsm+", "adafocus-tsm")
ONLINE_METHODS_NOTE = "methods whose accuracy record has rec/map_per_stratum"
WHOLE_COLUMNS = ("patch", "patch (px)", "p224", "batch")
POLICY_ROWS = {"confidence": "rl-confidence-reward", "increments": "rl-increments-reward"}
PAPER_ACTIVITYNET = "paper (ActivityNet, 224², real data)"
PAPER_MINIKINETICS = "paper (Mini-Kinetics, 224², real data)"
PAPER_STHV1 = "paper (Sth-Sth V1, 224², real data; latency i7 CPU bs=1, throughput 2080Ti bs=64)"


def measured_source(records: list[dict[str, Any]]) -> str:
    """Our rows' label, e.g. "measured (synthaction, CPU)", so a GPU run never reads as CPU."""
    names = sorted({r["dataset"].get("name", "?") for r in records}) or ["?"]
    devices = sorted({str(r.get("provenance", {}).get("device", "cpu")).upper() for r in records})
    return f"measured ({', '.join(names)}, {', '.join(devices) or 'CPU'})"


def newest(records: Iterable[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    """Newest record per (label, kind, scenario) of the newest dataset; failures skipped."""
    usable = [
        r for r in records if "error" not in r and r.get("protocol") in (CLIP, CLIP_STREAM)
    ]
    if not usable:
        return {}
    fingerprint = max(usable, key=lambda r: r.get("created", 0))["dataset"]["fingerprint"]
    kept: dict[tuple[str, str, str], dict[str, Any]] = {}
    for r in sorted(usable, key=lambda r: r.get("created", 0)):
        if r["dataset"]["fingerprint"] == fingerprint:
            scenario = r.get("scenario", "stream") if r["kind"] == "speed" else ""
            kept[(r["label"], r["kind"], scenario)] = r
    return kept


def frame_side(dataset_config: dict[str, Any]) -> int | None:
    """The shorter frame side from the dataset's config (height/width, else crop or size)."""
    if "height" in dataset_config and "width" in dataset_config:
        return int(min(dataset_config["height"], dataset_config["width"]))
    for key in ("crop", "size"):
        if isinstance(dataset_config.get(key), int):
            return int(dataset_config[key])
    return None


def patch_px(method: str, config: dict[str, Any], side: int | None) -> float:
    """The patch side in pixels: the option, or AdaFocus's preset share of the frame side."""
    if config.get("patch"):
        return float(config["patch"])
    ratio = PRESET_PATCH_RATIO.get(config.get("scale", ""))
    if method in ("adafocus", "adafocus+") and ratio and side:
        return float(round(side * ratio / 8) * 8)
    return float("nan")


def backbones(record: dict[str, Any]) -> str:
    """"MN2+RN50"-style backbones: the record's own field, else the scale preset's."""
    if "backbones" in record:
        return str(record["backbones"])
    names = BACKBONES.get(record["config"].get("scale", ""))
    if names is None:
        return ""
    return "+".join(names) if record["method"] in GLANCE_METHODS else names[1]


def describe(record: dict[str, Any]) -> dict[str, Any]:
    """The options a table groups by, with the patch in pixels and its paper equivalent."""
    config, dataset = record["config"], record["dataset"].get("config", {})
    side = frame_side(dataset)
    patch = patch_px(record["method"], config, side)
    return {
        "method": record["method"],
        "backbones": backbones(record),
        "scale": config.get("scale", ""),
        "policy": config.get("policy", "learned"),
        "reward": config.get("reward", "eq7"),
        "reuse_global": bool(config.get("reuse_global", True)),
        "eta": config.get("eta", float("nan")),
        "patch": patch,
        "p224": round(patch * PAPER_SIDE / side) if side and not math.isnan(patch) else float("nan"),
        "frames": dataset.get("frames", float("nan")),
        "base_config": {k: v for k, v in config.items() if k not in ("eta", "penalty", "patch")},
    }


def accuracy_columns(record: dict[str, Any]) -> dict[str, Any]:
    """mAP, mmAP, top-1 (whole video) and the online per-step mAP of an accuracy record."""
    m = record["metrics"]
    steps = m.get("rec/map_per_stratum") or {}
    return {
        "map": m.get("rec/map"),
        "mmap": m.get("rec/mmap"),
        "top1": m.get("rec/top1"),
        "map_worst": m.get("rec/map_worst"),
        "videos": m.get("rec/videos"),
        "online": {int(k): v for k, v in steps.items()} or None,
        **with_cells(intervals.columns(record, {"rec/map": "map", "rec/top1": "top1"})),
    }


def stream_columns(record: dict[str, Any], frames: float) -> dict[str, Any]:
    """Cost, and batch-1 latency per video as summed step latency (frames / stream fps)."""
    speed, cost = record["speed"], record.get("cost", {})
    return {
        "gmacs": cost.get("gmacs_per_video"),
        "params_m": cost["params"] / 1e6 if "params" in cost else float("nan"),
        "fps": speed["fps"],
        "latency_video_s": frames / speed["fps"] if speed.get("fps") else float("nan"),
        "stream_validity": speed.get("validity"),
        "stream_run_id": record.get("run_id"),
    }


def offline_columns(record: dict[str, Any]) -> dict[str, Any]:
    """Throughput of the offline scenario (batch N)."""
    speed = record["speed"]
    return {
        "videos_per_s": speed["videos_per_s"],
        "batch": record.get("batch", speed.get("batch")),
        "offline_validity": speed.get("validity"),
        "offline_run_id": record.get("run_id"),
    }


def runs(records: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """One row per label joining its newest accuracy, stream and offline records."""
    rows: dict[str, dict[str, Any]] = {}
    for (label, kind, scenario), r in sorted(newest(records).items()):
        row = rows.setdefault(label, {"label": label, **describe(r)})
        if kind == "accuracy":
            row.update(accuracy_columns(r))
        elif scenario == "offline":
            row.update(offline_columns(r))
        else:
            row.update(stream_columns(r, row["frames"]))
    columns = [
        "label", "method", "backbones", "scale", "policy", "reward", "reuse_global", "eta",
        "patch", "p224", "frames", "map", "map_ci", "mmap", "top1", "top1_ci", "map_worst",
        "videos", "online", "map_lo", "map_hi", "top1_lo", "top1_hi",
        "gmacs", "params_m", "fps", "latency_video_s", "stream_validity", "stream_run_id",
        "videos_per_s", "batch", "offline_validity", "offline_run_id", "base_config",
    ]
    return pd.DataFrame(list(rows.values())).reindex(columns=columns)

HEADERS = {
    "map": "mAP (%)",
    "top1": "top-1 (%)",
    "map_ci": "mAP 95% interval",
    "top1_ci": "top-1 95% interval",
    "gmacs": "GMACs/video",
    "paper_gflops": "paper GFLOPs/video",
    "params_m": "params (M)",
    "patch": "patch (px)",
    "latency_video_s": "latency/video (s, bs=1)",
    "videos_per_s": "throughput (videos/s)",
}


def paper_rows(csv: str, source: str, renames: dict[str, str]) -> pd.DataFrame:
    """The paper's AdaFocus rows of one reference table, columns renamed to ours."""
    ref = pd.read_csv(REFERENCE_DIR / csv).rename(columns=renames)
    ref = ref[ref.method.str.startswith("AdaFocus")]
    return ref.assign(source=source).reindex(columns=["source", *renames.values()])


def main_table(df: pd.DataFrame, source: str) -> pd.DataFrame:
    """Tables 1/2: accuracy, cost and params per label, then the paper's AdaFocus rows."""
    ours = df.assign(source=source, method=df.label)[
        ["source", "method", "backbones", "patch", "map", "map_ci", "top1", "top1_ci", "gmacs",
         "params_m"]
    ]
    paper = pd.concat(
        [
            paper_rows(
                "seed002_table1_activitynet_fcvid.csv",
                PAPER_ACTIVITYNET,
                {"method": "method", "backbones": "backbones", "activitynet_map": "map",
                 "activitynet_gflops": "paper_gflops"},
            ),
            paper_rows(
                "seed002_table2_minikinetics.csv",
                PAPER_MINIKINETICS,
                {"method": "method", "backbones": "backbones", "top1": "top1",
                 "gflops": "paper_gflops"},
            ),
        ]
    )
    table = pd.concat([ours, paper], ignore_index=True)
    return table.rename(columns=HEADERS)




def tsm_table(df: pd.DataFrame, source: str) -> pd.DataFrame:
    """Table 3: TSM family top-1, cost, bs=1 latency and bs=N throughput, then the paper's."""
    part = df[df.method.isin(TSM_FAMILY)]
    ours = part.assign(source=source, method=part.label)[
        ["source", "method", "backbones", "top1", "gmacs", "latency_video_s", "videos_per_s",
         "batch"]
    ]
    ref = pd.read_csv(REFERENCE_DIR / "seed002_table3_sthsth.csv")
    ref = ref[ref.method.str.startswith(("TSM", "AdaFocus-TSM"))]
    paper = pd.DataFrame(
        {
            "source": PAPER_STHV1,
            "method": ref.method,
            "backbones": ref.backbones,
            "top1": ref.sthv1_top1,
            "paper_gflops": ref.sthv1_gflops,
            "latency_video_s": ref.cpu_latency_s_bs1,
            "videos_per_s": ref.gpu_throughput_videos_per_s_bs64,
            "batch": 64,
        }
    )
    return pd.concat([ours, paper], ignore_index=True).rename(columns=HEADERS)


def measured_ratios(df: pd.DataFrame, source: str) -> list[dict[str, Any]]:
    """AdaFocus-TSM over TSM+ latency and throughput, each only from records of one run."""
    rows = []
    focus, base = df[df.method == "adafocus-tsm"], df[df.method == "tsm+"]
    for a in focus.itertuples():
        for b in base.itertuples():
            same_stream = pd.notna(a.stream_run_id) and a.stream_run_id == b.stream_run_id
            same_offline = pd.notna(a.offline_run_id) and a.offline_run_id == b.offline_run_id
            if not (same_stream or same_offline):
                continue
            rows.append(
                {
                    "source": source,
                    "adafocus-tsm": a.label,
                    "tsm+": b.label,
                    "latency ratio": a.latency_video_s / b.latency_video_s
                    if same_stream else float("nan"),
                    "throughput ratio": a.videos_per_s / b.videos_per_s
                    if same_offline else float("nan"),
                    "run": a.stream_run_id if same_stream else a.offline_run_id,
                }
            )
    return rows


def paper_ratios() -> list[dict[str, Any]]:
    """The paper's AdaFocus-TSM / TSM+ ratios from its Table 3 rows (e.g. 0.32/0.42 s)."""
    ref = pd.read_csv(REFERENCE_DIR / "seed002_table3_sthsth.csv").set_index("method")
    base = ref.loc["TSM+"]
    return [
        {
            "source": PAPER_STHV1,
            "adafocus-tsm": method,
            "tsm+": "TSM+",
            "latency ratio": row.cpu_latency_s_bs1 / base.cpu_latency_s_bs1,
            "throughput ratio": row.gpu_throughput_videos_per_s_bs64
            / base.gpu_throughput_videos_per_s_bs64,
            "run": "",
        }
        for method, row in ref.iterrows()
        if method.startswith("AdaFocus-TSM")
    ]


def ratio_table(df: pd.DataFrame, source: str) -> pd.DataFrame:
    """AdaFocus-TSM / TSM+ latency and throughput ratios, measured (one run) then paper."""
    return pd.DataFrame(measured_ratios(df, source) + paper_ratios())


def beside_by_patch(
    measured: pd.DataFrame, reference: pd.DataFrame, on: list[str]
) -> pd.DataFrame:
    """Measured rows beside the paper's on ``on`` and the paper-equivalent patch P."""
    patch = {"p224": float}
    return beside_paper(measured.astype(patch), reference.astype(patch), [*on, "p224"])


def whole(table: pd.DataFrame) -> pd.DataFrame:
    """Pixel and batch columns as whole numbers ("" when absent) for the markdown."""
    table = table.copy()
    for name in set(WHOLE_COLUMNS) & set(table.columns):
        table[name] = [str(int(v)) if pd.notna(v) else "" for v in table[name]]
    return table


def learned_adafocus(df: pd.DataFrame) -> pd.DataFrame:
    """AdaFocus (not AdaFocus+) rows, the variants Tables 4 and 5 compare."""
    return df[df.method == "adafocus"]


def reuse_table(df: pd.DataFrame) -> pd.DataFrame:
    """Table 4: mAP with / without reusing glance features, per patch, beside the paper."""
    part = learned_adafocus(df)
    part = part[(part.policy == "learned") & (part.reward == "eq7")]
    measured = part[["reuse_global", "p224", "label", "patch", "map"]]
    ref = pd.read_csv(REFERENCE_DIR / "seed002_table4_reuse_global_features_activitynet.csv")
    reference = pd.DataFrame(
        {"reuse_global": ref.reuse_global_features.astype(bool), "p224": ref.patch_size,
         "map": ref["map"]}
    )
    return beside_by_patch(measured, reference, ["reuse_global"])


def policy_name(policy: str, reward: str) -> str:
    """Table 5's row name of a (policy, reward) option pair."""
    if policy != "learned":
        return policy
    return POLICY_ROWS.get(reward, "adafocus")


def policy_table(df: pd.DataFrame) -> pd.DataFrame:
    """Table 5: mAP per policy / reward and patch; the paper's (no reuse) joins reuse=False."""
    part = learned_adafocus(df)
    measured = part.assign(
        policy=[policy_name(p, r) for p, r in zip(part.policy, part.reward)]
    )[["policy", "reuse_global", "p224", "label", "patch", "map"]]
    ref = pd.read_csv(REFERENCE_DIR / "seed002_table5_policies_activitynet.csv")
    reference = pd.DataFrame(
        {"policy": ref.policy, "reuse_global": False, "p224": ref.patch_size, "map": ref["map"]}
    )
    return beside_by_patch(measured, reference, ["policy", "reuse_global"])


def base_of(plus: Any, df: pd.DataFrame) -> Any | None:
    """The AdaFocus row with AdaFocus+'s options (eta, penalty aside) and patch, or None."""
    for row in learned_adafocus(df).itertuples():
        if row.base_config == plus.base_config and row.patch == plus.patch:
            return row
    return None


def plus_table(df: pd.DataFrame, source: str) -> pd.DataFrame:
    """AdaFocus+ per eta: GMACs saved and accuracy change vs AdaFocus, then the paper's."""
    rows = []
    for plus in df[df.method == "adafocus+"].sort_values(["patch", "eta"]).itertuples():
        base = base_of(plus, df)
        rows.append(
            {
                "source": source,
                "adafocus+": plus.label,
                "adafocus": "" if base is None else base.label,
                "eta": plus.eta,
                "patch (px)": plus.patch,
                "GMACs/video": plus.gmacs,
                "GMACs saved (%)": float("nan") if base is None
                else 100 * (1 - plus.gmacs / base.gmacs),
                "Δ mAP (pp)": float("nan") if base is None else plus.map - base.map,
                "Δ top-1 (pp)": float("nan") if base is None else plus.top1 - base.top1,
            }
        )
    ref = pd.read_csv(REFERENCE_DIR / "seed002_table2_minikinetics.csv").set_index("method")
    paper, base = ref.loc["AdaFocus+ (160x160)"], ref.loc["AdaFocus (160x160)"]
    rows.append(
        {
            "source": PAPER_MINIKINETICS,
            "adafocus+": "AdaFocus+ (160x160)",
            "adafocus": "AdaFocus (160x160)",
            "eta": float("nan"),
            "patch (px)": 160.0,
            "GMACs/video": float("nan"),
            "GMACs saved (%)": 100 * (1 - paper.gflops / base.gflops),
            "Δ mAP (pp)": float("nan"),
            "Δ top-1 (pp)": paper.top1 - base.top1,
        }
    )
    return pd.DataFrame(rows)


def map_vs_gmacs(df: pd.DataFrame) -> Figure | None:
    """Fig. 5: mAP vs GMACs per video, one annotated point per label; None if none has both."""
    points = df.dropna(subset=["map", "gmacs"])
    if points.empty:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for method, part in points.groupby("method", sort=True):
        style = plots.method_style(method)
        ax.scatter(part.gmacs, part["map"], marker=style["marker"], color=style["color"],
                   label=method)
        for row in part.itertuples():
            ax.annotate(row.label, (row.gmacs, row.map), fontsize=6,
                        textcoords="offset points", xytext=(3, 3))
    return plots.finish(
        fig, ax, ("GMACs / video", "mAP (%)", "offline mAP vs cost (seed 002 Fig. 5; measured)")
    )


def online_curve(df: pd.DataFrame) -> Figure | None:
    """Fig. 6: mAP after the first t frames, one line per online label; None if none."""
    part = df[df.online.notna()] if "online" in df else df.iloc[:0]
    if part.empty:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for row in part.sort_values("label").itertuples():
        steps = sorted(row.online)
        style = plots.method_style(row.label)
        ax.plot(steps, [row.online[t] for t in steps], marker=style["marker"], markersize=4,
                color=style["color"], label=row.label)
    title = "online mAP vs frames seen (seed 002 Fig. 6; measured)"
    return plots.finish(fig, ax, ("frames seen t", "mAP (%)", title), legend_size=6)


def sections(df: pd.DataFrame, source: str) -> dict[str, tuple[str, str, pd.DataFrame, int]]:
    """name -> (title, note, table, digits) of every markdown section."""
    return {
        "main": (
            "Tables 1/2: accuracy and cost",
            f"{source}: offline (whole-video) mAP and top-1 on `{CLIP}`; GMACs are multiply-"
            "adds per video from the stream cost pass. The paper's rows are its own GFLOPs "
            "on real videos, shown beside ours, not the same experiment. Brackets: 95% "
            "percentile-bootstrap interval over val videos (docs/measurement.md §15).",
            main_table(df, source),
            2,
        ),
        "table3": (
            "Table 3: TSM family, latency and throughput",
            f"{source}: latency per video = sum of the batch-1 per-frame step latencies over a "
            f"video (frames per video / stream fps, `{CLIP_STREAM}`); throughput = videos/s of "
            "the offline scenario at batch N (column batch). The paper's latency is an i7 CPU "
            "at bs=1, its throughput a 2080Ti at bs=64.",
            tsm_table(df, source),
            3,
        ),
        "ratios": (
            "Table 3 ratios: AdaFocus-TSM / TSM+",
            "Latency ratio below 1 and throughput ratio above 1 mean AdaFocus-TSM is faster. "
            "A measured ratio appears only when both labels' records come from one run "
            "(same run_id); the paper's come from its Table 3 rows.",
            ratio_table(df, source),
            2,
        ),
        "table4": (
            "Table 4: reusing the glance features for recognition",
            f"{source} (map, learned policy, Eq. 7 reward) beside the paper's (paper_map); "
            "p224 = the patch as the paper's P on 224-pixel frames.",
            reuse_table(df),
            1,
        ),
        "table5": (
            "Table 5: patch-selection policies and rewards",
            f"{source} (map) beside the paper's (paper_map, no glance-feature reuse, so only "
            "rows with reuse_global False compare).",
            policy_table(df),
            1,
        ),
        "plus": (
            "AdaFocus+: skipping frames (eta = share of frames f_L runs on)",
            f"{source}: GMACs saved and accuracy change against AdaFocus with the same options "
            "and patch; the paper's pair is Table 2 (Mini-Kinetics, top-1, GFLOPs).",
            plus_table(df, source),
            2,
        ),
    }


def render(records: Iterable[dict[str, Any]], out_dir: Path) -> dict[str, Path]:
    """Write the seed-002 tables (markdown), figures (PNG), runs CSV and index.md."""
    records = list(records)
    df = runs(records)
    if df.empty:
        raise ValueError("No recognition records to report: run `bench compare` first.")
    used = list(newest(records).values())
    source = measured_source(used)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {"recognition_runs_csv": out_dir / "recognition_runs.csv"}
    df.drop(columns=["online", "base_config"]).to_csv(written["recognition_runs_csv"],
                                                     index=False)
    index = [
        "# Video recognition (seed 002 layouts)\n",
        f"Rows labelled `{source}` are ours; rows labelled `paper (...)` are the paper's numbers "
        "on real data, shown beside ours for layout and trend, never as the same experiment. "
        f"Dataset fingerprint {used[0]['dataset']['fingerprint']}.\n",
        code_warning(used),
    ]
    for name, (title, note, table, digits) in sections(df, source).items():
        written[f"recognition_{name}_md"] = out_dir / f"recognition_{name}.md"
        written[f"recognition_{name}_md"].write_text(
            f"# {title}\n\n{note}\n\n{to_markdown(whole(table), digits)}\n"
        )
        index.append(f"- [{title}](recognition_{name}.md)")
    figures = {
        "fig5": ("Fig. 5: mAP vs GMACs/video", map_vs_gmacs(df)),
        "fig6": (f"Fig. 6: online mAP vs frames seen ({ONLINE_METHODS_NOTE})", online_curve(df)),
    }
    for name, (title, figure) in figures.items():
        if figure is None:
            index.append(f"- {title}: nothing to draw")
            continue
        written[f"recognition_{name}"] = plots.save(figure, out_dir / f"recognition_{name}.png")
        index.append(f"- [{title}](recognition_{name}.png)")
    index.append("- Fig. 7 (patch locations): not drawn, records do not carry patch locations")
    index += provenance_section(used)
    written["index_md"] = out_dir / "index.md"
    written["index_md"].write_text("\n".join(index) + "\n")
    return written
