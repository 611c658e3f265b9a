"""The regression gate on fixture records: noise-aware speed checks, INVALID timings not
judged, accuracy judged within one numerics class, one-sided rows named, and baselines and run
files refused before any work."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from vidbench.cli import main
from vidbench.provenance import machine, numerics
from vidbench.regression import GateError, compare_to_baseline, load_baseline, runs_from_file


def _provenance(cpu: str | None = None) -> dict:
    here = machine()
    return {"machine": {**here, **({"cpu": cpu} if cpu else {})}}


def accuracy(label: str, miou: float, cpu: str | None = None) -> dict:
    return {
        "record_id": f"a-{label}-{miou}",
        "kind": "accuracy",
        "label": label,
        "interval": 1,
        "protocol": "rotating-offset@v1",
        "created": 1.0,
        "provenance": _provenance(cpu),
        "metrics": {"seg/miou_avg": miou, "seg/miou_min": miou},
    }


def speed(
    label: str, speedup: float, noise: float, validity: str = "VALID", run: str = "r"
) -> dict:
    return {
        "record_id": f"s-{label}-{run}",
        "kind": "speed",
        "label": label,
        "interval": 1,
        "protocol": "stream@v2",
        "created": 1.0,
        "run_id": run,
        "provenance": _provenance(),
        "cost": {"gmacs_per_frame": 1.0, "params": 10},
        "speed": {
            "fps": 10 * speedup,
            "fps_iqr_over_median": noise,
            "validity": validity,
            "speedup": speedup,
            "speedup_iqr_over_median": noise,
            "baseline": {"label": "frame", "validity": "VALID", "fps": 10.0},
        },
    }


def _status(checks, word: str) -> list[str]:
    return [c.status for c in checks if word in c.name]


def test_speed_tolerance_grows_with_the_noise_of_both_runs() -> None:
    base = [speed("prop-mv", 2.0, 0.02)]
    assert _status(compare_to_baseline(base, [speed("prop-mv", 1.85, 0.02)]), "speedup") == ["ok"]
    assert _status(compare_to_baseline(base, [speed("prop-mv", 1.4, 0.02)]), "speedup") == ["FAIL"]
    # a noisy run widens the tolerance to 3 x hypot(0.02, 0.12) = 36%: 30% slower is not judged wrong
    assert _status(compare_to_baseline(base, [speed("prop-mv", 1.4, 0.12)]), "speedup") == ["ok"]


def test_an_invalid_timing_is_not_judged() -> None:
    base = [speed("prop-mv", 2.0, 0.02)]
    checks = compare_to_baseline(base, [speed("prop-mv", 0.5, 0.02, validity="INVALID")])
    check = next(c for c in checks if "speedup" in c.name)
    assert check.status == "not judged" and "INVALID timing in this run" in check.note


def test_accuracy_is_judged_within_this_machines_numerics_class() -> None:
    here = [accuracy("psla", 40.0)]
    assert set(_status(compare_to_baseline(here, [accuracy("psla", 30.0)]), "miou")) == {"FAIL"}
    other = [accuracy("psla", 40.0, cpu="Some Other CPU")]
    checks = compare_to_baseline(other, [accuracy("psla", 30.0)])
    assert set(_status(checks, "miou")) == {"not judged"}
    assert set(_status(compare_to_baseline(other, [accuracy("psla", 39.0)]), "miou")) == {"ok"}
    both = [*other, accuracy("psla", 30.5)]  # this class's own record decides
    assert set(_status(compare_to_baseline(both, [accuracy("psla", 30.0)]), "miou")) == {"ok"}
    assert numerics()["cpu"] != "Some Other CPU"


def test_rows_on_one_side_only_are_named() -> None:
    checks = compare_to_baseline([accuracy("frame", 40.0)], [accuracy("mine", 41.0)])
    statuses = {c.name: c.status for c in checks}
    assert statuses == {
        "accuracy frame interval=1": "only in baseline",
        "accuracy mine interval=1": "only in this run",
    }


def test_missing_empty_or_truncated_baselines_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "baseline.jsonl"
    with pytest.raises(GateError, match="No baseline at"):
        load_baseline(path)
    path.write_text("")
    with pytest.raises(GateError, match="empty"):
        load_baseline(path)
    line = json.dumps(accuracy("frame", 40.0))
    path.write_text(line + "\n" + line[:40])
    with pytest.raises(GateError, match="truncated"):
        load_baseline(path)
    path.write_text(line + "\n")
    assert len(load_baseline(path, ["segmentation"])) == 1
    with pytest.raises(GateError, match="no baseline records for task detection"):
        load_baseline(path, ["segmentation", "detection"])


@pytest.mark.parametrize("content", ["", '{"record_id": "x", "kind": "acc', None])
def test_bench_regress_refuses_a_bad_baseline_within_seconds(
    tmp_path: Path, content, capsys
) -> None:
    path = tmp_path / "baseline.jsonl"
    if content is not None:
        path.write_text(content)
    started = time.monotonic()
    code = main(["regress", "--baseline", str(path), "--work", str(tmp_path / "work")])
    assert code == 2 and time.monotonic() - started < 10
    assert str(path) in capsys.readouterr().err


def test_a_run_file_defines_the_gates_run(tmp_path: Path) -> None:
    path = tmp_path / "gate.toml"
    path.write_text(
        '[[run]]\ndataset = "synthcity"\nmethods = ["frame:train_steps=5", "prop-mv"]\n'
        "intervals = [1, 4]\ndataset_options = {val_videos = 3}\nspeed_rounds = 3\n"
    )
    (run,) = runs_from_file(path)
    assert run.task == "segmentation" and run.ci.intervals == (1, 4)
    assert run.ci.dataset_options == {"val_videos": "3"} and run.speed["speed_rounds"] == 3
    path.write_text('[[run]]\ndataset = "synthcity"\nmethods = ["frame:no_such_option=1"]\n')
    with pytest.raises(ValueError, match="Unknown option 'no_such_option'"):
        runs_from_file(path)
    path.write_text('[[run]]\ndataset = "synthcity"\nmethods = ["frame", "rfcn"]\n')
    with pytest.raises(GateError, match="methods of one task"):
        runs_from_file(path)
    path.write_text("[[run]\n")
    with pytest.raises(GateError, match="cannot read the gate's run file"):
        runs_from_file(path)


def test_a_failing_speed_up_is_judged_by_the_median_of_three_measurements() -> None:
    from vidbench.regression import _median_speedup

    first = speed("prop-mv", 1.2, 0.02)
    again = [speed("prop-mv", 1.9, 0.02, run="r2"), speed("prop-mv", 2.05, 0.02, run="r3")]
    confirmed = _median_speedup(first, again)
    assert confirmed["speed"]["speedup"] == 1.9
    assert confirmed["speed"]["speedup_measurements"] == [1.2, 1.9, 2.05]
    base = [speed("prop-mv", 2.0, 0.02)]
    assert _status(compare_to_baseline(base, [confirmed]), "speedup") == ["ok"]
    slow = [speed("prop-mv", 1.5, 0.02, run=r) for r in ("r2", "r3")]
    assert _status(compare_to_baseline(base, [_median_speedup(first, slow)]), "speedup") == ["FAIL"]
