"""Tables as pure functions of stored records (no torch, no model runs).

``runs(records)`` flattens accuracy and speed records into one DataFrame row per
(scheme, interval); the other functions lay that frame out like the seed's tables.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd
from vidbench.report import intervals

METRICS = (
    ("mIoU (avg.) (%)", "miou_avg"),
    ("mIoU (avg.) 95% interval", "miou_avg_ci"),
    ("mIoU (min.) (%)", "miou_min"),
    ("mIoU (min.) 95% interval", "miou_min_ci"),
    ("throughput, steady state (fps)", "steady_fps"),
    ("throughput, measured stream (fps)", "fps"),
)
STEADY_FORMULA = (
    "Steady state: fps of an endless stream with a key every n frames, "
    "1 / ((T_key + (n-1) T_other) / n) from the mean latency of key steps (T_key) and of the "
    "others (T_other; a look-ahead method's held frames are timed at the key that emits them; "
    "a stream's opening key, which closes no segment, is left out of T_key); "
    "a measured stream ends on its last key and so holds more keys than 1/n."
)
COMPONENTS = ("feature", "motion", "warp", "fusion", "task")


def runs(records: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """One row per (dataset fingerprint, scheme, interval); the newest record of each kind wins."""
    accuracy, speed = {}, {}
    for r in sorted(records, key=lambda r: r.get("created", 0)):
        if "error" in r:
            continue
        key = (r["dataset"]["fingerprint"], r["label"], r["interval"])
        if r["kind"] == "accuracy":
            m = r["metrics"]
            accuracy[key] = {
                "miou_avg": m["seg/miou_avg"],
                "miou_min": m["seg/miou_min"],
                "per_offset": {int(k): v for k, v in m["seg/miou_per_offset"].items()},
                "scored_frames": r["scored_frames"],
                **with_cells(intervals.columns(r, SEG_INTERVALS)),
                "per_offset_ci": {
                    int(k): v
                    for k, v in r.get("intervals", {})
                    .get("metrics", {})
                    .get("seg/miou_per_offset", {})
                    .items()
                },
                "method": r["method"],
                "fusion": r.get("config", {}).get("fusion") if r["method"] == "interp-mv" else None,
            }
        elif r["kind"] == "speed":
            s, c = r["speed"], r["cost"]
            speed[key] = {
                "fps": s["fps"],
                "steady_fps": s.get("steady_fps", s["fps"]),
                "fps_noise": s["fps_iqr_over_median"],
                "validity": s["validity"],
                "latency_p50_ms": s["latency_ms"]["p50"],
                "latency_p90_ms": s["latency_ms"]["p90"],
                "key_p50_ms": s["latency_ms_by_kind"].get("key", {}).get("p50"),
                "intermediate_p50_ms": (
                    s["latency_ms_by_kind"].get("intermediate")
                    or s["latency_ms_by_kind"].get("waiting", {})  # look-ahead: buffered steps
                ).get("p50"),
                "delay_max_frames": s["delay_frames"]["max"],
                "delay_p50_ms": s["delay_ms"]["p50"],
                "gmacs_per_frame": c["gmacs_per_frame"],
                "params_m": c["params"] / 1e6,
                "run_id": r["run_id"],
                **own_speedup(s),
                **{f"ms_{k}": s["component_ms_per_frame"].get(k, 0.0) for k in COMPONENTS},
                **{
                    f"intermediate_ms_{k}": s["component_ms_by_kind"]
                    .get("intermediate", {})
                    .get(k, 0.0)
                    for k in COMPONENTS
                },
                **steady_components(s),
            }
    rows = [
        {
            "dataset": k[0],
            "scheme": k[1],
            "interval": k[2],
            **accuracy.get(k, {}),
            **speed.get(k, {}),
        }
        for k in sorted(set(accuracy) | set(speed), key=lambda k: (k[0], k[1], k[2]))
    ]
    return pd.DataFrame(rows)


SEG_INTERVALS = {"seg/miou_avg": "miou_avg", "seg/miou_min": "miou_min"}


def with_cells(bounds: dict[str, float]) -> dict[str, Any]:
    """``bounds`` (``{col}_lo``, ``{col}_hi``) and a ``{col}_ci`` text cell for each column."""
    out: dict[str, Any] = dict(bounds)
    for low in [k for k in bounds if k.endswith("_lo")]:
        column = low[: -len("_lo")]
        out[f"{column}_ci"] = intervals.cell(bounds[low], bounds[f"{column}_hi"])
    return out


def steady_components(speed: dict[str, Any]) -> dict[str, float]:
    """ms per frame by component in the steady state: key steps weighted by the key fraction
    f, the others (intermediate and held frames) by 1 - f."""
    fraction = speed.get("steady_key_fraction")
    by_kind = speed["component_ms_by_kind"]
    key = by_kind.get("key", {})
    counts = {k: v.get("count", 0) for k, v in speed["latency_ms_by_kind"].items()}
    others = [k for k in by_kind if k != "key"]
    total_others = sum(counts.get(k, 0) for k in others)
    out = {}
    for component in COMPONENTS:
        other = sum(by_kind[k].get(component, 0.0) * counts.get(k, 0) for k in others)
        other = other / total_others if total_others else key.get(component, 0.0)
        if fraction is None:
            out[f"steady_ms_{component}"] = speed["component_ms_per_frame"].get(component, 0.0)
        else:
            out[f"steady_ms_{component}"] = (
                fraction * key.get(component, 0.0) + (1 - fraction) * other
            )
    return out


def own_speedup(speed: dict[str, Any]) -> dict[str, Any]:
    """The speed-up a speed record carries (over its task's baseline, timed in the same
    rounds) and its baseline's label and stream fps; empty for records made before."""
    base = speed.get("baseline")
    if base is None:
        return {}
    return {"record_speedup": speed["speedup"], "baseline": base["label"], "baseline_fps": base["fps"]}


def with_speedup(df: pd.DataFrame) -> pd.DataFrame:
    """Add ``speedup``: steady-state fps over the per-frame baseline's, timed in the same
    rounds (the figure each speed record carries; for records made before they carried one,
    stream fps over the frame record of the same run), and ``stream_speedup``: the measured
    streams' fps ratio, keys as the finite streams had them."""
    df = df.copy()
    if "fps" not in df:  # accuracy records only
        return df.assign(speedup=float("nan"), stream_speedup=float("nan"))
    frames = df[df.scheme.str.split(":").str[0] == "frame"] if "run_id" in df else df.iloc[:0]
    base = frames.drop_duplicates("run_id").set_index("run_id") if len(frames) else None

    def of_base(row: Any) -> float:
        if base is None or row.run_id not in base.index:
            return float("nan")
        return float(base.loc[row.run_id, "fps"])

    def carried(row: Any, column: str) -> float:
        value = getattr(row, column, float("nan"))
        return float("nan") if value is None else float(value)

    df["speedup"] = [
        row.fps / of_base(row)
        if pd.isna(carried(row, "record_speedup"))
        else row.record_speedup
        for row in df.itertuples()
    ]
    df["stream_speedup"] = [
        row.fps / (of_base(row) if pd.isna(carried(row, "baseline_fps")) else row.baseline_fps)
        for row in df.itertuples()
    ]
    return df


def provenance_table(records: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """Where each row comes from: per scheme and kind, the settings, the run, the commit
    (``+dirty`` when the tree had uncommitted changes) and the code fingerprint."""
    rows: dict[tuple, dict[str, Any]] = {}
    for r in records:
        if "error" in r or r.get("kind") not in ("accuracy", "speed"):
            continue
        code = r.get("provenance", {}).get("code", {})
        commit = code.get("commit", "unknown")[:10] + ("+dirty" if code.get("dirty") else "")
        kind = r["kind"] + ("" if r.get("scenario", "stream") == "stream" else f"/{r['scenario']}")
        key = (r["label"], kind, r.get("run_id", ""), commit, r.get("code", "(before)"))
        row = rows.setdefault(key, {"settings": set()})
        row["settings"].add(r.get("interval", ""))
    table = [
        {
            "scheme": label,
            "kind": kind,
            "settings": ",".join(str(s) for s in sorted(row["settings"], key=str)),
            "run": run,
            "commit": commit,
            "code": fingerprint,
        }
        for (label, kind, run, commit, fingerprint), row in sorted(rows.items())
    ]
    return pd.DataFrame(table, columns=["scheme", "kind", "settings", "run", "commit", "code"])


def code_warning(records: Iterable[dict[str, Any]]) -> str:
    """A warning when the records come from more than one commit or a dirty tree (empty when
    they all come from one clean commit)."""
    table = provenance_table(records)
    commits = sorted(set(table.commit))
    if len(commits) <= 1 and not any(c.endswith("+dirty") for c in commits):
        return ""
    return (
        f"**Warning: these rows come from {len(commits)} code version(s) "
        f"({', '.join(commits)}); see 'Where each row comes from' below.**\n"
    )


def provenance_section(records: Iterable[dict[str, Any]]) -> list[str]:
    """The report section listing where each row comes from."""
    return [
        "\n## Where each row comes from\n",
        "Run, commit (+dirty: uncommitted changes) and code fingerprint (the source that can "
        "change the method's numbers; vidbench.source_fingerprint) of each scheme's records.\n",
        to_markdown(provenance_table(records)),
    ]


def seed_table(df: pd.DataFrame, schemes: list[str] | None = None) -> pd.DataFrame:
    """Seed 000 Table 1 layout: rows (metric, scheme), columns keyframe intervals."""
    schemes = schemes or sorted(df.scheme.unique(), key=_scheme_order)
    blocks = []
    for title, column in METRICS:
        if column not in df:
            continue
        wide = df.pivot_table(index="scheme", columns="interval", values=column, aggfunc="last")
        wide = wide.reindex([s for s in schemes if s in wide.index])
        wide.index = pd.MultiIndex.from_product([[title], wide.index], names=["metric", "scheme"])
        blocks.append(wide)
    return pd.concat(blocks) if blocks else pd.DataFrame()


def paper_table(reference_csv: Path, dataset: str = "cityscapes") -> pd.DataFrame:
    """The seed's own table from results/reference, in the same layout as ``seed_table``."""
    return seed_table(paper_runs(reference_csv, dataset), list(PAPER_SCHEMES))


FUSIONS = ("forward", "backward", "max", "avg", "conv")


def fusion_table(df: pd.DataFrame, reference_csv: Path) -> pd.DataFrame:
    """Seed 000 Table 2 layout: interp-mv's mIoU by fusion at distance d from both keys, read
    as the frame midway between them (interval 2d, offset d), with each cell's 95% interval
    over val videos and the paper's row beside; empty without such records."""
    part = df[(df.get("method") == "interp-mv") & df.per_offset.notna()] if "method" in df else df[:0]
    rows = []
    for distance in range(1, 5):
        row: dict[str, Any] = {"distance to keyframes": distance}
        for fusion in FUSIONS:
            chosen = part[(part.fusion == fusion) & (part.interval == 2 * distance)]
            value, bounds = float("nan"), (None, None)
            if not chosen.empty:
                last = chosen.iloc[-1]
                value = last.per_offset.get(distance, float("nan"))
                ci = last.per_offset_ci if isinstance(last.per_offset_ci, dict) else {}
                bounds = ci.get(distance) or (None, None)
            row[fusion] = value
            row[f"{fusion} 95%"] = intervals.cell(*bounds)
        rows.append(row)
    table = pd.DataFrame(rows)
    if table[list(FUSIONS)].isna().all().all():
        return pd.DataFrame()
    paper = pd.read_csv(reference_csv).rename(columns={"distance_to_keyframes": "distance to keyframes"})
    paper = paper.rename(columns={f"{name}_miou": f"paper {name}" for name in ("forward", "backward")})
    paper = paper.rename(
        columns={f"{name}_fusion_miou": f"paper {name}" for name in ("max", "avg", "conv")}
    )
    keep = ["distance to keyframes", *(f"paper {f}" for f in FUSIONS)]
    return table.merge(paper[keep], on="distance to keyframes", how="left")


PAPER_SCHEMES = ("prop-flow", "prop-mv", "interp-mv")
# seed 000's table per dataset; synthcity is Cityscapes-shaped, so it is read against Table 1
SEED_TABLES = {
    "cityscapes": ("seed000_table1_cityscapes.csv", "Table 1", "cityscapes"),
    "synthcity": ("seed000_table1_cityscapes.csv", "Table 1", "cityscapes"),
    "camvid": ("seed000_table3_camvid.csv", "Table 3", "camvid"),
}


def paper_runs(reference_csv: Path, dataset: str) -> pd.DataFrame:
    """The paper's rows as (scheme, interval, miou_avg, miou_min, fps, speedup), with the
    speed-up over its own interval-1 row (the per-frame model), the only speed figure that
    compares across machines."""
    ref = pd.read_csv(reference_csv)
    ref = ref[ref.dataset == dataset].rename(
        columns={"method": "scheme", "keyframe_interval": "interval"}
    )
    wide = ref.pivot_table(index=["scheme", "interval"], columns="metric", values="value")
    wide = wide.reset_index()
    base = wide[wide.interval == 1].set_index("scheme")["fps"]
    wide["speedup"] = wide.fps / wide.scheme.map(base)
    return wide


def paper_beside(df: pd.DataFrame, paper: pd.DataFrame) -> pd.DataFrame:
    """Measured beside the paper per (scheme, interval): mIoU avg and min, speed-up over the
    per-frame model, and each difference (measured - paper). A scheme run with options is
    matched to the paper's row of its base name."""
    measured = df[df.scheme.str.split(":").str[0].isin(PAPER_SCHEMES)].copy()
    measured["base"] = measured.scheme.str.split(":").str[0]
    joined = measured.merge(
        paper.rename(columns={"scheme": "base"}),
        on=["base", "interval"],
        how="inner",
        suffixes=("", "_paper"),
    )
    columns: dict[str, pd.Series] = {}
    for column, title in (
        ("miou_avg", "mIoU avg"),
        ("miou_min", "mIoU min"),
        ("speedup", "speed-up"),
    ):
        if column not in joined:
            continue
        columns[f"{title} measured"] = joined[column]
        columns[f"{title} paper"] = joined[f"{column}_paper"]
        columns[f"{title} diff"] = joined[column] - joined[f"{column}_paper"]
    table = pd.DataFrame(columns)
    table.index = pd.MultiIndex.from_arrays(
        [joined.scheme, joined.interval], names=["scheme", "interval"]
    )
    return table.sort_index(
        key=lambda idx: idx.map(_scheme_order) if idx.name == "scheme" else idx
    )


def run_header(records: Iterable[dict[str, Any]]) -> str:
    """Where the speed records were measured: device, GPU name, precision, threads."""
    seen = set()
    for record in records:
        if record.get("kind") != "speed" or "error" in record:
            continue
        settings = record.get("provenance", {}).get("settings", {})
        machine = record.get("provenance", {}).get("machine", {})
        device = settings.get("device", "cpu")
        where = (
            f"{device} ({settings.get('gpu_name', 'unknown GPU')}, CUDA "
            f"{settings.get('cuda', '?')}, driver {settings.get('driver', '?')}, TF32 "
            f"{settings.get('tf32_matmul', '?')}, cudnn.benchmark "
            f"{settings.get('cudnn_benchmark', '?')})"
            if device.startswith("cuda")
            else f"{device} ({machine.get('cpu', 'unknown CPU')}, {machine.get('cores', '?')} cores)"
        )
        seen.add(f"{where}, {settings.get('dtype', 'float32')}, {settings.get('threads', '?')} threads")
    return "; ".join(sorted(seen)) or "no speed records"


def preparation_line(records: Iterable[dict[str, Any]]) -> str:
    """The one-off cost of turning the dataset into H.264 (per frame, as the seed reports it:
    2.78 ms per Cityscapes frame), from the records' ``preparation`` context."""
    costs = {
        (p["encode_ms_per_frame"], p["encoded_frames"])
        for p in (r.get("preparation") or {} for r in records)
        if p.get("encode_ms_per_frame") is not None
    }
    if not costs:
        return "H.264 encode cost: not recorded (the cache was made before it was timed)."
    ms, frames = max(costs, key=lambda c: c[1])
    return (
        f"H.264 encode cost: {ms:.2f} ms per frame over {frames} frames (libx264 through PyAV, "
        "once per dataset; the seed: 2.78 ms per Cityscapes frame with ffmpeg)."
    )


def breakdown_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per scheme and interval: ms per frame by component, latency by frame type, delay."""
    columns = [f"ms_{c}" for c in COMPONENTS] + [
        "latency_p50_ms",
        "key_p50_ms",
        "intermediate_p50_ms",
        "delay_max_frames",
        "delay_p50_ms",
        "gmacs_per_frame",
        "params_m",
        "fps",
        "steady_fps",
        "speedup",
        "stream_speedup",
        "validity",
    ]
    present = [c for c in columns if c in df]
    return df.set_index(["scheme", "interval"])[present].sort_index(
        key=lambda idx: idx.map(_scheme_order) if idx.name == "scheme" else idx
    )


def intermediate_breakdown(df: pd.DataFrame) -> pd.DataFrame:
    """Seed 000 Fig. 2: ms per intermediate frame, motion + warp + task, prop-flow vs prop-mv,
    per interval, with prop-mv's time as a fraction of prop-flow's."""
    parts = ["intermediate_ms_motion", "intermediate_ms_warp", "intermediate_ms_task"]
    rows = []
    for interval in sorted(df.interval.unique()):
        at = df[df.interval == interval].assign(base=df.scheme.str.split(":").str[0])
        at = at[at.base.isin(["prop-flow", "prop-mv"])].drop_duplicates("base")
        if set(at.base) != {"prop-flow", "prop-mv"} or interval < 2:
            continue
        times = at.set_index("base")[parts]
        totals = times.sum(axis=1)
        for scheme in ("prop-flow", "prop-mv"):
            rows.append(
                {
                    "interval": interval,
                    "scheme": scheme,
                    **{p.removeprefix("intermediate_ms_"): times.loc[scheme, p] for p in parts},
                    "total_ms": totals[scheme],
                    "vs_prop_flow": totals[scheme] / totals["prop-flow"],
                }
            )
    return pd.DataFrame(rows)


def to_markdown(df: pd.DataFrame, digits: int = 1) -> str:
    """A GitHub markdown table (no extra dependency); index levels become leading columns."""
    plain = isinstance(df.index, pd.RangeIndex)
    flat = df.reset_index(drop=plain)
    header = [str(c) for c in flat.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in flat.itertuples(index=False):
        lines.append("| " + " | ".join(_cell(v, digits) for v in row) + " |")
    return "\n".join(lines)


def _cell(value: Any, digits: int) -> str:
    if isinstance(value, float):
        return "" if pd.isna(value) else f"{value:.{digits}f}"
    return str(value)


def _scheme_order(name: str) -> tuple[int, str]:
    base = name.split(":")[0]
    order = ["frame", "prop-flow", "prop-mv", "interp-mv"]
    return (order.index(base) if base in order else len(order), name)
