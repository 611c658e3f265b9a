"""The detection report is a pure function of records: seed 001 layouts with the paper beside."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from vidbench.protocols import FIXED_KEY, FIXED_KEY_STREAM
from vidbench.report.detection import fig6, paper_name, render, runs, table3, table4


def record(method: str, config: dict, interval: int, kind: str, value: float) -> dict:
    label = ":".join([method, *(f"{k}={v}" for k, v in config.items())])
    base = {
        "record_id": f"{label}-{interval}-{kind}",
        "method": method,
        "config": config,
        "label": label,
        "interval": interval,
        "keys": "middle",
        "kind": kind,
        "run_id": "r1",
        "created": 1.0,
        "dataset": {"fingerprint": "f1"},
    }
    if kind == "accuracy":
        metrics = {f"det/{m}": value for m in ("map", "map_slow", "map_medium", "map_fast")}
        return {**base, "protocol": FIXED_KEY, "metrics": {**metrics, "det/map_worst": value - 5}}
    speed = {
        "fps": value,
        "fps_iqr_over_median": 0.05,
        "validity": "VALID",
        "latency_ms_by_kind": {"key": {"p50": 10.0}, "intermediate": {"p50": 3.0}},
        "delay_frames": {"max": interval // 2},
        "delay_ms": {"p50": 1.0},
    }
    cost = {"gmacs_per_frame": 0.5, "params": 2_000_000}
    return {**base, "protocol": FIXED_KEY_STREAM, "speed": speed, "cost": cost}


RECORDS = [
    record("rfcn", {}, 1, "accuracy", 50.0),
    record("rfcn", {}, 1, "speed", 20.0),
    record("dff", {}, 10, "accuracy", 40.0),
    record("dff", {}, 10, "speed", 60.0),
    record("psla", {"attention": "psla", "setting": "a", "d": 4}, 10, "accuracy", 45.0),
    record("psla", {"attention": "psla", "setting": "a", "d": 4}, 10, "speed", 50.0),
    record("psla", {"attention": "matchtrans", "setting": "S", "d": 2}, 10, "accuracy", 42.0),
]


def test_paper_names_follow_the_tables() -> None:
    assert paper_name("psla", {"attention": "psla", "setting": "c"}) == "PSLA (c)"
    assert paper_name("psla", {"attention": "psla", "setting": "S"}) == "PSLA (a)"
    assert paper_name("psla", {"attention": "dense-psla", "setting": "F"}) == "DensePSLA F"
    assert paper_name("dff", {}) == "DFF"
    assert paper_name("psla", {"setting": "c", "joint": "all"}) == "PSLA (c), joint=all"


def test_runs_join_accuracy_and_speed_with_speedup_over_rfcn() -> None:
    df = runs(RECORDS).set_index("scheme")
    assert df.loc["dff", "map"] == 40.0 and df.loc["dff", "fps"] == 60.0
    assert df.loc["dff", "speedup"] == 3.0
    assert df.loc["psla:attention=psla:setting=a:d=4", "paper_name"] == "PSLA (a)"


def test_tables_put_the_paper_beside_the_measured_rows() -> None:
    df = runs(RECORDS)
    t3 = table3(df, 10)
    row = t3[(t3.method == "MatchTrans S") & (t3.max_displacement == 2)].iloc[0]
    assert row["map"] == 42.0 and row["paper_map"] == 71.4
    t4 = table4(df)
    assert set(t4.method) == {"DFF (re-implementation)", "PSLA (a)"}
    assert t4[(t4.method == "PSLA (a)") & (t4.keyframe_interval == 10)]["map"].item() == 45.0
    assert pd.isna(t4[(t4.method == "PSLA (a)") & (t4.keyframe_interval == 15)]["map"]).all()


def test_render_writes_tables_and_the_curve(tmp_path: Path) -> None:
    written = render(RECORDS, tmp_path)
    text = written["detection_md"].read_text()
    assert "Table 3" in text and "PSLA (a)" in text and "paper_map" in text
    assert written["detection_curve"].stat().st_size > 1000


def test_fig6_has_a_panel_per_displacement_with_nonlocal_in_each(tmp_path: Path) -> None:
    sweep = [
        record("psla", {"attention": kind, "setting": "S", "d": d}, interval, kind_, value)
        for kind in ("psla", "matchtrans")
        for d in (2, 3)
        for interval in (5, 10)
        for kind_, value in (("accuracy", 40.0 + d + interval / 10), ("speed", 30.0 + interval))
    ]
    sweep += [
        record("psla", {"attention": "nonlocal", "setting": "S", "d": 4}, 10, kind_, 35.0)
        for kind_ in ("accuracy", "speed")
    ]
    figure = fig6(runs(RECORDS + sweep))
    assert [ax.get_title() for ax in figure.axes] == ["d = 2", "d = 3", "d = 4"]
    lines = {ax.get_title(): sorted(line.get_label() for line in ax.lines) for ax in figure.axes}
    assert lines["d = 2"] == ["MatchTrans S", "Nonlocal S", "PSLA (a)"]
    assert lines["d = 4"] == ["Nonlocal S", "PSLA (a)"]  # RECORDS' PSLA (a) at d = 4
    matchtrans = next(line for line in figure.axes[0].lines if line.get_label() == "MatchTrans S")
    assert list(matchtrans.get_xdata()) == [35.0, 40.0] and list(matchtrans.get_ydata()) == [42.5, 43.0]
    assert fig6(runs(RECORDS[:4])) is None  # no PSLA speed record: nothing to draw
    assert "detection_fig6" in render(RECORDS + sweep, tmp_path)
