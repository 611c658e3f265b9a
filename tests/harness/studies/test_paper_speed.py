"""The paper-scale speed study at toy size: methods built on one world and timed on another,
speed-only records in their own store, the report from records, the harness's own costs."""

from __future__ import annotations

from pathlib import Path

import pytest
from vidbench.building import RunSettings
from vidbench.cli import main
from vidbench.report.paper_speed import render_paper_speed
from vidbench.store import Store
from vidbench.studies.paper_speed import PLANS, decode_throughput, run_part, seed000_part

TOY = seed000_part("toy", 96, 160, (1, 10), 11, network="")  # a CPU-sized network


@pytest.mark.slow
def test_the_study_times_on_the_paper_size_world_and_reports(tmp_path: Path) -> None:
    store = Store(tmp_path / "paper-speed.jsonl")
    settings = RunSettings(data_root=tmp_path / "data", checkpoint_dir=tmp_path / "ckpt")
    records = run_part(TOY, store, settings)
    assert records and {r["kind"] for r in records} == {"speed"}  # speed only, no accuracy
    flow = next(r for r in records if r["method"] == "prop-flow" and r["interval"] == 10)
    assert flow["dataset"]["timed_on"]["config"]["width"] == 160
    assert flow["dataset"]["trained_on"]["config"]["width"] == 128
    assert flow["cost"]["params"] > 38e6  # the published FlowNetS, not the CPU-sized one
    speed = flow["speed"]
    assert speed["baseline"]["label"] == "frame:train_steps=1" and speed["speedup"] > 0
    assert speed["steady_key_fraction"] == 0.1 and 0 <= speed["harness_overhead"] < 0.5
    written = render_paper_speed(store.records(), tmp_path / "reports")
    text = written["paper_speed_md"].read_text()
    assert "Seed 000 at 160x96" in text and "Intermediate frame" in text
    again = ["speed", "--report-only", "--results", str(store.path), "--reports"]
    assert main([*again, str(tmp_path / "again")]) == 0  # a pure function of the records
    assert (tmp_path / "again" / "paper_speed.md").read_text() == text
    assert main(["speed", "--report-only", "--results", str(tmp_path / "none.jsonl")]) == 2


def test_decode_throughput_is_measured_on_one_core() -> None:
    (row,) = decode_throughput(((64, 96),), frames=6)
    assert row["frames"] == 6 and row["fps"] > 0 and len(row["fps_rounds"]) == 3


def test_the_plans_name_every_paper_method() -> None:
    full = {m.split(":")[0] for part in PLANS["full"] for m in part.methods}
    assert {
        "frame",
        "prop-mv",
        "interp-mv",
        "prop-flow",
        "rfcn",
        "dff",
        "psla",
        "tsm",
        "tsm+",
        "adafocus-tsm",
        "adafocus",
        "r50-avg",
    } <= full
    sizes = {(p.timed["height"], p.timed["width"]) for p in PLANS["full"] if p.seed == "000"}
    assert sizes == {("720", "960"), ("1024", "2048")}
