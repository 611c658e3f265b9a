"""docs/record.schema.json describes the store's lines: the records of tiny real runs (accuracy
and ``stream`` speed on the tiny synthcity, ``offline`` speed on the tiny synthaction) and
failure records validate against it, and records broken in the ways it guards against do not."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
from vidbench import bootstrap, passes
from vidbench.api import DataError
from vidbench.records import jsonable
from vidbench.runner import Runner, RunSettings
from vidbench.seg_eval import SegmentationEvaluator
from vidbench.store import Store
from vidbench.tasks import get_task

from tests.conftest import TINY

jsonschema = pytest.importorskip("jsonschema")

SCHEMA = Path(__file__).resolve().parents[2] / "docs" / "record.schema.json"
SEGMENTATION = "prop-mv:train_steps=3"
RECOGNITION = "tsm+:epochs=1"


def _lines(store: Store) -> list[dict[str, Any]]:
    """Every line of the store as written (``Store.records`` keeps only the last per id)."""
    return [json.loads(line) for line in store.path.read_text().splitlines()]


def _settings(data_root: Path, checkpoints: Path, **extra: Any) -> RunSettings:
    chosen = {"intervals": (1, 2), "speed_videos": 1, "speed_rounds": 2, **extra}
    return RunSettings(data_root=data_root, checkpoint_dir=checkpoints, **chosen)


@pytest.fixture(scope="module")
def validator() -> Any:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.fixture(scope="module")
def segmentation_run(tiny_dataset, tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, Path]:
    """A tiny run of one method at intervals 1 and 2: its store and checkpoint folder."""
    tmp = tmp_path_factory.mktemp("schema-segmentation")
    store = Store(tmp / "records.jsonl")
    settings = _settings(tiny_dataset.root.parent.parent, tmp / "ckpt")
    options = {k: str(v) for k, v in vars(TINY).items()}
    Runner(store, settings, log=lambda _: None).compare([SEGMENTATION], "synthcity", options)
    return store, tmp / "ckpt"


@pytest.fixture(scope="module")
def recognition_run(tiny_recognition_dataset, tmp_path_factory: pytest.TempPathFactory) -> Store:
    """A tiny recognition run: accuracy, and speed in both scenarios (batch 2)."""
    tmp = tmp_path_factory.mktemp("schema-recognition")
    store = Store(tmp / "records.jsonl")
    settings = _settings(tiny_recognition_dataset.root.parent.parent, tmp / "ckpt", batch=2)
    options = {k: str(v) for k, v in asdict(tiny_recognition_dataset.config).items()}
    Runner(store, settings, log=lambda _: None).compare([RECOGNITION], "synthaction", options)
    return store


def _errors(validator: Any, record: dict[str, Any]) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(record)]


def test_records_of_a_tiny_segmentation_run_validate(validator, segmentation_run) -> None:
    store, _ = segmentation_run
    lines = _lines(store)
    for record in lines:
        assert _errors(validator, record) == [], record["label"]
    kinds = sorted((r["kind"], r["label"], r["interval"]) for r in lines)
    assert kinds == [
        ("accuracy", SEGMENTATION, 1),
        ("accuracy", SEGMENTATION, 2),
        ("speed", "frame:train_steps=3", 1),  # the speed baseline, timed in the same rounds
        ("speed", SEGMENTATION, 1),
        ("speed", SEGMENTATION, 2),
    ]
    for record in lines:
        if record["kind"] == "accuracy":
            assert set(record["state"]) == {"sidecar", "sha256"}
            assert "confusion_per_offset" in store.state(record)  # the sidecar it points to
            _assert_intervals_come_from_the_per_video_states(store, record)


def _assert_intervals_come_from_the_per_video_states(store: Store, record: dict[str, Any]) -> None:
    """The per-video states merge to the record's state, and the bootstrap over them gives
    exactly the intervals the record holds (a pure function of the stored states)."""
    task = get_task("segmentation")
    evaluator = SegmentationEvaluator(len(record["metrics"]["seg/iou_per_class"]))
    per_video = store.state(record, "state_per_video")
    assert len(per_video) == record["intervals"]["videos"] >= 2
    units = [evaluator.from_json(per_video[name]) for name in sorted(per_video)]
    merged = evaluator.empty()
    for unit in units:
        merged = evaluator.merge(merged, unit)
    assert evaluator.to_json(merged) == store.state(record)
    again = bootstrap.intervals(evaluator, units, passes.interval_metrics(task))
    assert jsonable(again["metrics"]) == record["intervals"]["metrics"]
    for metric in (h.metric for h in task.headline):
        low, high = record["intervals"]["metrics"][metric]
        assert low <= high


def test_offline_and_stream_speed_records_of_a_tiny_recognition_run_validate(
    validator, recognition_run
) -> None:
    lines = _lines(recognition_run)
    for record in lines:
        assert _errors(validator, record) == [], record["label"]
    assert sorted((r["kind"], r.get("scenario")) for r in lines) == [
        ("accuracy", None), ("speed", "offline"), ("speed", "stream")
    ]


def test_failure_records_validate(
    validator, segmentation_run, tiny_dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A DataError in the accuracy pass and in the speed checks: every record of the run is a
    failure naming the file."""

    def unreadable(*args: Any, **kwargs: Any) -> None:
        raise DataError("val_0000.mp4: truncated H.264 stream")

    monkeypatch.setattr(passes, "accuracy_pass", unreadable)
    monkeypatch.setattr(passes, "cost_pass", unreadable)
    store = Store(tmp_path / "records.jsonl")
    settings = _settings(tiny_dataset.root.parent.parent, segmentation_run[1])
    options = {k: str(v) for k, v in vars(TINY).items()}
    Runner(store, settings, log=lambda _: None).compare([SEGMENTATION], "synthcity", options)
    lines = _lines(store)
    assert sorted(r["kind"] for r in lines) == ["accuracy"] * 2 + ["speed"] * 3
    for record in lines:
        assert record["error"] == "val_0000.mp4: truncated H.264 stream"
        assert _errors(validator, record) == [], record["label"]


def _pop(*path: str) -> Callable[[dict[str, Any]], None]:
    def apply(record: dict[str, Any]) -> None:
        for key in path[:-1]:
            record = record[key]
        del record[path[-1]]

    return apply


def _put(value: Any, *path: str) -> Callable[[dict[str, Any]], None]:
    def apply(record: dict[str, Any]) -> None:
        for key in path[:-1]:
            record = record[key]
        record[path[-1]] = value

    return apply


BROKEN: dict[str, tuple[str, Callable[[dict[str, Any]], None]]] = {
    "accuracy without metrics": ("accuracy", _pop("metrics")),
    "accuracy without code": ("accuracy", _pop("code")),
    "record id not 16 hex digits": ("accuracy", _put("0f4e9b26", "record_id")),
    "state inline, not a sidecar reference": ("accuracy", _put({"offsets": {}}, "state")),
    "sidecar reference with an extra field": ("accuracy", _put("x", "state", "size")),
    "failure that also has metrics": ("accuracy", _put("broken", "error")),
    "NaN written as a string": ("accuracy", _put("NaN", "metrics", "seg/miou_avg")),
    "speed without steady_fps": ("speed", _pop("speed", "steady_fps")),
    "speed validity neither VALID nor INVALID": ("speed", _put("MAYBE", "speed", "validity")),
    "speed without its same-run baseline": ("speed", _pop("speed", "baseline")),
    "stream speed without cost": ("speed", _pop("cost")),
    "offline scenario without batch": ("speed", _put("offline", "scenario")),
    "unknown kind": ("speed", _put("latency", "kind")),
}


@pytest.mark.parametrize("name", BROKEN)
def test_broken_records_do_not_validate(validator, segmentation_run, name: str) -> None:
    kind, breaks = BROKEN[name]
    record = copy.deepcopy(next(r for r in _lines(segmentation_run[0]) if r["kind"] == kind))
    assert validator.is_valid(record)
    breaks(record)
    assert not validator.is_valid(record)


COMMITTED = sorted((SCHEMA.parents[1] / "results" / "synthetic").glob("*.jsonl"))


@pytest.mark.parametrize("path", COMMITTED, ids=lambda path: path.name)
def test_committed_records_validate_and_their_states_match_their_hashes(
    validator, path: Path
) -> None:
    """The records behind the README's synthetic findings stay readable: every line validates
    and every accuracy record's states (merged and per video) match the hashes it holds."""
    store = Store(path)
    lines = _lines(store)
    assert lines
    for record in lines:
        assert _errors(validator, record) == [], record.get("label")
        if record["kind"] == "accuracy" and "error" not in record:
            assert store.state_problem(record) is None, record["label"]
