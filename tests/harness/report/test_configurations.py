"""Records of different dataset configurations never replace one another in a report."""

from __future__ import annotations

from pathlib import Path

from vidbench.report import render


def _records(fingerprint: str, created: float, miou: float) -> list[dict]:
    common = {
        "dataset": {
            "name": "synthcity",
            "fingerprint": fingerprint,
            "config": {"val_videos": 4 if fingerprint == "a" else 12},
        },
        "label": "frame",
        "method": "frame",
        "interval": 1,
        "created": created,
        "run_id": f"run-{fingerprint}",
        "config": {},
    }
    accuracy = {
        **common,
        "record_id": f"acc-{fingerprint}",
        "kind": "accuracy",
        "protocol": "rotating-offset@v1",
        "scored_frames": 4,
        "metrics": {"seg/miou_avg": miou, "seg/miou_min": miou, "seg/miou_per_offset": {"0": miou}},
    }
    speed = {**common, "record_id": f"speed-{fingerprint}", "kind": "speed", "scenario": "stream",
             "protocol": "stream@v2", "cost": {"gmacs_per_frame": 0.3, "params": 10},
             "speed": {"fps": 50.0, "steady_fps": 50.0, "fps_iqr_over_median": 0.01,
                       "validity": "VALID", "latency_ms": {"p50": 20.0, "p90": 21.0},
                       "latency_ms_by_kind": {"key": {"p50": 20.0, "count": 8}},
                       "delay_frames": {"max": 0}, "delay_ms": {"p50": 0.0},
                       "component_ms_per_frame": {"feature": 18.0, "task": 2.0},
                       "component_ms_by_kind": {"key": {"feature": 18.0, "task": 2.0}},
                       "steady_key_fraction": 1.0}}
    return [accuracy, speed]


def test_each_fingerprint_gets_its_own_report(tmp_path: Path) -> None:
    records = _records("a", 1.0, 40.0) + _records("b", 2.0, 50.0)
    written = render(records, tmp_path)
    listing = written["configurations_md"].read_text()
    assert "| b |" in listing and "| a |" in listing and "configurations/a" in listing
    assert "50.0" in (tmp_path / "table1.md").read_text()  # the newest configuration on top
    assert "40.0" in (tmp_path / "configurations" / "a" / "table1.md").read_text()
