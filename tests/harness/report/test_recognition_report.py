"""The recognition report is a pure function of records: seed 002 layouts with the paper beside."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from vidbench.protocols import CLIP, CLIP_STREAM
from vidbench.report.recognition import paper_ratios, ratio_table, render, runs

DATASET = {
    "name": "synthaction",
    "config": {"frames": 8, "height": 112, "width": 112},
    "fingerprint": "f1",
}
ADAFOCUS = {"scale": "toy", "patch": 0, "candidates": 49, "policy": "learned", "reward": "eq7",
            "reuse_global": True}


def record(method: str, config: dict, kind: str, scenario: str = "", **result: Any) -> dict:
    """A stored record of the shape the runner writes (only the fields the report reads)."""
    shown = ("policy", "reuse_global", "eta")
    label = ":".join([method, *(f"{k}={v}" for k, v in config.items() if k in shown)])
    base = {
        "record_id": f"{label}-{kind}-{scenario}",
        "method": method,
        "label": label,
        "config": config,
        "dataset": DATASET,
        "kind": kind,
        "protocol": CLIP if kind == "accuracy" else CLIP_STREAM,
        "provenance": {"machine": "m", "threads": 2},
        "run_id": "r1",
        "created": 1.0,
    }
    if scenario:
        base["scenario"] = scenario
    return {**base, **result}


def accuracy(method: str, config: dict, map_: float, top1: float, online: bool = True) -> dict:
    metrics = {"rec/map": map_, "rec/mmap": map_, "rec/top1": top1, "rec/videos": 20,
               "rec/classes_without_positives": 0, "rec/map_worst": map_ - 20}
    if online:
        metrics["rec/map_per_stratum"] = {str(t): map_ - 20 + 2.5 * t for t in range(1, 9)}
    return record(method, config, "accuracy", metrics=metrics)


def stream(method: str, config: dict, fps: float, gmacs: float) -> dict:
    speed = {"fps": fps, "latency_ms": {"p50": 1e3 / fps, "p90": 1e3 / fps, "p99": 1e3 / fps},
             "validity": "VALID", "fps_iqr_over_median": 0.02,
             "component_ms_per_frame": {"glance": 1.0, "policy": 0.1, "focus": 2.0,
                                        "classify": 0.1}}
    cost = {"gmacs_per_video": gmacs, "gmacs_per_component": {}, "params": 3_000_000}
    return record(method, config, "speed", "stream", speed=speed, cost=cost)


def offline(method: str, config: dict, videos_per_s: float) -> dict:
    speed = {"videos_per_s": videos_per_s, "fps": 8 * videos_per_s, "validity": "VALID",
             "batch_latency_ms": {"p50": 8e3 / videos_per_s}}
    return record(method, config, "speed", "offline", batch=8, speed=speed)


RANDOM = {**ADAFOCUS, "policy": "random"}
CENTRAL = {**ADAFOCUS, "policy": "central", "reuse_global": False}
PLUS = {**ADAFOCUS, "eta": 0.7, "penalty": 0.0}
RECORDS = [
    accuracy("adafocus", ADAFOCUS, 70.0, 75.0),
    stream("adafocus", ADAFOCUS, 80.0, 2.0),
    accuracy("adafocus", RANDOM, 60.0, 65.0),
    accuracy("adafocus", CENTRAL, 55.0, 58.0),
    accuracy("adafocus+", PLUS, 68.0, 72.0),
    stream("adafocus+", PLUS, 100.0, 1.5),
    accuracy("tsm+", {"scale": "toy"}, 66.0, 70.0, online=False),
    stream("tsm+", {"scale": "toy"}, 40.0, 3.0),
    offline("tsm+", {"scale": "toy"}, 10.0),
    accuracy("adafocus-tsm", {"scale": "toy", "patch": 48}, 67.0, 71.0, online=False),
    stream("adafocus-tsm", {"scale": "toy", "patch": 48}, 50.0, 2.2),
    offline("adafocus-tsm", {"scale": "toy", "patch": 48}, 15.0),
]


def row(markdown: str, first: str, contains: str = "") -> list[str]:
    """The cells of the first body row whose cells hold ``first`` (and ``contains``)."""
    for line in markdown.splitlines()[6:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        if first in cells and contains in line:
            return cells
    raise AssertionError(f"no row with {first!r} {contains!r} in\n{markdown}")


def column(markdown: str, name: str) -> int:
    """The index of column ``name`` in a markdown table."""
    header = [c.strip() for c in markdown.splitlines()[4].strip("|").split("|")]
    return header.index(name)


@pytest.fixture
def report(tmp_path: Path) -> dict[str, Path]:
    return render(RECORDS, tmp_path)


def test_runs_join_kinds_and_resolve_the_preset_patch() -> None:
    df = runs(RECORDS).set_index("label")
    ada = df.loc["adafocus:policy=learned:reuse_global=True"]
    assert ada["map"] == 70.0 and ada["gmacs"] == 2.0 and ada["patch"] == 48.0
    assert ada["p224"] == 96 and ada["backbones"] == "MN2x0.5+RN18"
    assert ada["latency_video_s"] == pytest.approx(8 / 80.0)
    assert df.loc["tsm+", "videos_per_s"] == 10.0 and df.loc["tsm+", "batch"] == 8


def test_main_table_puts_ours_and_the_paper_in_their_own_rows(report: dict) -> None:
    text = report["recognition_main_md"].read_text()
    cells = row(text, "adafocus:policy=learned:reuse_global=True")
    assert cells[0].startswith("measured (synthaction, CPU)")
    assert cells[column(text, "mAP (%)")] == "70.00"
    assert cells[column(text, "GMACs/video")] == "2.00" and cells[column(text, "patch (px)")] == "48"
    paper = row(text, "AdaFocus (128x128)", "ActivityNet")
    assert paper[column(text, "mAP (%)")] == "75.00"
    assert paper[column(text, "paper GFLOPs/video")] == "26.60"


def test_ratios_come_from_one_run_beside_the_paper(report: dict) -> None:
    text = report["recognition_ratios_md"].read_text()
    cells = row(text, "adafocus-tsm")
    assert cells[column(text, "latency ratio")] == "0.80"  # (8/50) / (8/40)
    assert cells[column(text, "throughput ratio")] == "1.50"
    paper = {r["adafocus-tsm"]: r for r in paper_ratios()}["AdaFocus-TSM (144x144)"]
    assert paper["latency ratio"] == pytest.approx(0.32 / 0.42)
    assert paper["throughput ratio"] == pytest.approx(143.8 / 105.0)


def test_table3_gives_latency_per_video_and_offline_throughput(report: dict) -> None:
    text = report["recognition_table3_md"].read_text()
    cells = row(text, "tsm+")
    assert cells[column(text, "latency/video (s, bs=1)")] == "0.200"  # 8 frames at 40 fps
    assert cells[column(text, "throughput (videos/s)")] == "10.000"
    assert cells[column(text, "batch")] == "8"
    paper = row(text, "AdaFocus-TSM (144x144)")
    assert paper[column(text, "latency/video (s, bs=1)")] == "0.320"


def test_ratios_need_the_same_run() -> None:
    other = [{**r, "run_id": "r2"} if r["method"] == "tsm+" else r for r in RECORDS]
    table = ratio_table(runs(other), "measured")
    assert not (table.source == "measured").any()


def test_policy_and_reuse_tables_join_the_paper_at_the_equivalent_patch(report: dict) -> None:
    t5 = report["recognition_table5_md"].read_text()
    central = row(t5, "central", "adafocus")
    assert central[column(t5, "map")] == "55.0" and central[column(t5, "paper_map")] == "61.9"
    random = row(t5, "random", "adafocus")  # reuse_global True: the paper's never reuses
    assert random[column(t5, "map")] == "60.0" and random[column(t5, "paper_map")] == ""
    t4 = report["recognition_table4_md"].read_text()
    reused = row(t4, "adafocus:policy=learned:reuse_global=True")
    assert reused[column(t4, "paper_map")] == "71.9" and reused[column(t4, "map")] == "70.0"


def test_adafocus_plus_saves_against_the_same_patch(report: dict) -> None:
    text = report["recognition_plus_md"].read_text()
    cells = row(text, "adafocus+:policy=learned:reuse_global=True:eta=0.7")
    assert cells[column(text, "GMACs saved (%)")] == "25.00"
    assert cells[column(text, "Δ mAP (pp)")] == "-2.00"
    assert cells[column(text, "Δ top-1 (pp)")] == "-3.00"


def test_newest_record_wins_and_errors_are_skipped(tmp_path: Path) -> None:
    newer = {**accuracy("adafocus", ADAFOCUS, 72.5, 76.0), "created": 2.0}
    failed = {**accuracy("adafocus", ADAFOCUS, 1.0, 1.0), "created": 3.0, "error": "boom"}
    df = runs([*RECORDS, newer, failed]).set_index("label")
    assert df.loc["adafocus:policy=learned:reuse_global=True", "map"] == 72.5


def test_figures_are_drawn_or_skipped(report: dict, tmp_path: Path) -> None:
    assert report["recognition_fig5"].stat().st_size > 1000
    assert report["recognition_fig6"].stat().st_size > 1000
    offline_only = [r for r in RECORDS if r["method"] == "tsm+" and r["kind"] == "accuracy"]
    written = render(offline_only, tmp_path / "empty")
    assert "recognition_fig5" not in written and "recognition_fig6" not in written
    assert "nothing to draw" in written["index_md"].read_text()


def test_index_lists_every_section(report: dict) -> None:
    index = report["index_md"].read_text()
    for name in ("main", "table3", "ratios", "table4", "table5", "plus"):
        assert f"recognition_{name}.md" in index


def test_render_is_pure(tmp_path: Path) -> None:
    first = render(RECORDS, tmp_path / "a")
    second = render(list(reversed(RECORDS)), tmp_path / "b")
    assert first.keys() == second.keys()
    for name, path in first.items():
        assert path.read_bytes() == second[name].read_bytes(), name


def test_no_records_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        render([{**RECORDS[0], "error": "boom"}], tmp_path)
