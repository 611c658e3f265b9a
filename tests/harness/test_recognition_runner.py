"""Recognition end to end on a tiny synthaction: accuracy (offline and online strata), the
batch-1 stream and the batch-N offline scenario, cost per video, the report and the gate."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pytest
from vidbench.regression import compare_to_baseline
from vidbench.report import render
from vidbench.runner import Runner, RunSettings
from vidbench.store import Store

METHODS = ["adafocus:epochs=1:candidates=25", "tsm+:epochs=1:glance_frames=4"]


@pytest.fixture(scope="module")
def records(tiny_recognition_dataset, tmp_path_factory) -> list[dict]:
    tmp = tmp_path_factory.mktemp("recognition-run")
    settings = RunSettings(
        speed_videos=2,
        speed_rounds=3,
        batch=3,
        data_root=tiny_recognition_dataset.root.parent.parent,
        checkpoint_dir=tmp / "ckpt",
    )
    options = {k: str(v) for k, v in asdict(tiny_recognition_dataset.config).items()}
    store = Store(tmp / "records.jsonl")
    return Runner(store, settings).compare(METHODS, "synthaction", options)


def _one(records: list[dict], label: str, kind: str, scenario: str | None = None) -> dict:
    found = [
        r
        for r in records
        if r["label"].startswith(label) and r["kind"] == kind
        and (scenario is None or r.get("scenario") == scenario)
    ]
    assert len(found) == 1, found
    return found[0]


def test_accuracy_scores_the_video_and_each_online_step(records) -> None:
    adafocus = _one(records, "adafocus", "accuracy")
    metrics = adafocus["metrics"]
    assert 0 <= metrics["rec/map"] <= 100 and 0 <= metrics["rec/top1"] <= 100
    assert metrics["rec/videos"] == 4
    assert sorted(metrics["rec/map_per_stratum"], key=int) == [str(t) for t in range(1, 9)]
    assert adafocus["protocol"] == "clip@v1" and adafocus["scored_frames"] == 4 * 9
    tsm = _one(records, "tsm+", "accuracy")
    assert "rec/map_per_stratum" not in tsm["metrics"]  # offline-only: the video is scored


def test_stream_and_offline_scenarios_with_cost_per_video(records) -> None:
    stream = _one(records, "adafocus", "speed", "stream")
    assert stream["cost"]["gmacs_per_video"] > 0
    assert set(stream["cost"]["gmacs_per_component"]) == {"glance", "policy", "focus", "classify"}
    assert stream["spot_check"]["agreement"] == 1.0
    offline = _one(records, "adafocus", "speed", "offline")
    assert offline["batch"] == 3 and offline["speed"]["batch"] == 3
    assert offline["speed"]["videos_per_s"] > 0 and offline["spot_check"]["agreement"] == 1.0
    tsm = _one(records, "tsm+:glance_frames=4", "speed", "stream")
    assert tsm["speed"]["delay_frames"]["max"] == 7  # a clip model predicts at the clip's end


def test_each_speed_record_carries_the_baseline_timed_beside_it(records) -> None:
    """adafocus's baseline is tsm+ built like it (epochs=1, not the run's glance_frames=4
    variant): it joins the same rounds and is stored too."""
    for scenario in ("stream", "offline"):
        speed = _one(records, "adafocus", "speed", scenario)["speed"]
        base = _one(records, "tsm+:epochs=1", "speed", scenario)
        assert speed["baseline"]["label"] == "tsm+:epochs=1"
        assert speed["baseline"]["record_id"] == base["record_id"]
        assert speed["speedup"] == speed["fps"] / base["speed"]["fps"]
        assert len(speed["speedup_rounds"]) == 3 and speed["speedup_iqr_over_median"] >= 0
    own = _one(records, "tsm+:epochs=1", "speed", "stream")["speed"]
    assert own["speedup"] == 1.0 and own["baseline"]["label"] == "tsm+:epochs=1"


def test_report_and_gate_read_the_records(records, tmp_path: Path) -> None:
    written = render(records, tmp_path / "reports")
    assert written and all(path.exists() for path in written.values())
    checks = compare_to_baseline(records, records)
    names = [c.name for c in checks]
    # the tiny run's timings are too short to be VALID: their speed-ups are "not judged"
    assert all(c.status == "ok" for c in checks if "speedup" not in c.name)
    assert all(c.status in ("ok", "not judged") for c in checks)
    assert any("offline" in n and "speedup" in n for n in names)
    assert any("cost/gmacs_per_video" in n for n in names)
