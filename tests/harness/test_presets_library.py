"""Presets set budgets and sizes for every method at once, options given win; the Python API
plans like the CLI and reads a store into a DataFrame."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from vidbench import library, presets
from vidbench.registry import RegistryError, split_spec


def test_a_preset_fills_what_the_method_has_and_the_user_did_not_set() -> None:
    name, options = split_spec(presets.apply("interp-mv:fusion=avg", "method", "small"))
    assert name == "interp-mv" and options["fusion"] == "avg"
    assert options["train_steps"] == "200" and options["fusion_steps"] == "60"
    assert "psla_steps" not in options  # interp-mv has no such option
    given = split_spec(presets.apply("frame:train_steps=7", "method", "small"))[1]
    assert given["train_steps"] == "7"
    smoke = split_spec(presets.apply("psla", "method", "smoke"))[1]
    assert smoke == {"train_steps": "3", "psla_steps": "2"}
    paper = split_spec(presets.apply("dff", "method", "paper"))[1]
    assert paper["flownet"] == "flownets" and paper["feature_channels"] == "1024"
    world = split_spec(presets.apply("synthcity", "dataset", "small", "segmentation"))[1]
    assert world["val_videos"] == "12"


def test_the_library_plans_like_the_cli() -> None:
    plan = library.plan(["frame", "prop-mv"], preset="small", seed=2)
    assert plan.task == "segmentation" and plan.dataset.startswith("synthcity:")
    assert plan.results == Path("results/runs/synthcity-seed2.jsonl")
    assert all("train_steps=200" in m for m in plan.methods)
    with pytest.raises(RegistryError, match="has no labels for detection"):
        library.plan(["rfcn"], "synthcity")


def test_records_reads_a_store_into_one_row_per_record(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    rows = [
        {
            "record_id": "a",
            "kind": "accuracy",
            "label": "frame",
            "method": "frame",
            "protocol": "rotating-offset@v1",
            "interval": 1,
            "metrics": {"seg/miou_avg": 40.0, "seg/miou_min": 39.0},
            "dataset": {"fingerprint": "f"},
        },
        {
            "record_id": "b",
            "kind": "speed",
            "label": "frame",
            "method": "frame",
            "protocol": "stream@v2",
            "interval": 1,
            "scenario": "stream",
            "speed": {"fps": 10.0, "steady_fps": 10.0, "speedup": 1.0, "validity": "VALID"},
            "cost": {"gmacs_per_frame": 0.3, "params": 5},
            "dataset": {"fingerprint": "f"},
        },
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    table = library.records(path)
    assert list(table.kind) == ["accuracy", "speed"] and table["seg/miou_avg"].iloc[0] == 40.0
    assert table.steady_fps.iloc[1] == 10.0 and table.gmacs.iloc[1] == 0.3
    with pytest.raises(FileNotFoundError, match="No records at"):
        library.records(tmp_path / "missing.jsonl")
