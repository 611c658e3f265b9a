"""Segmentation's accuracy records stay bit-identical across refactors
(tests/data/synthcity_tiny_accuracy.jsonl): same record ids, metrics, evaluator state and frame
counts. Written first by the release before tasks existed, which the task refactor matched
exactly; re-written when the encoder settings changed (mbtree=0 in X264_PARAMS: the encoded
videos, and so every number, changed), and when the paper-scale network options joined the
method configs and checkpoint keys (record ids changed; every metric and state stayed the same)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from vidbench.building import RunSettings, prepare_method
from vidbench.passes import accuracy_pass, task_of
from vidbench.records import Record

GOLDEN = Path(__file__).parent / "data" / "synthcity_tiny_accuracy.jsonl"
COMPARED = ("metrics", "state", "scored_frames", "fed_frames", "key_frames", "label")


def _golden() -> list[dict]:
    return [json.loads(line) for line in GOLDEN.read_text().splitlines()]


@pytest.mark.slow
def test_accuracy_records_match_the_release_before_tasks(tiny_dataset, tmp_path: Path) -> None:
    golden = _golden()
    settings = RunSettings(intervals=(1, 2, 3), checkpoint_dir=tmp_path / "ckpt")
    threads = torch.get_num_threads()
    torch.set_num_threads(settings.threads)  # as the runner does: training numerics follow it
    videos = tiny_dataset.split("val")
    specs = list(dict.fromkeys(r["label"] for r in golden))
    produced = {}
    for spec in specs:
        item = prepare_method(spec, tiny_dataset, settings)
        protocol = task_of(item.method).protocol
        for setting in item.settings:
            identity = {**item.identity, "kind": "accuracy", "protocol": protocol.name}
            with torch.inference_mode():
                result = accuracy_pass(item, tiny_dataset, videos, setting)
            record = Record({**identity, **setting}, item.label, {}, result).to_json()
            produced[record["record_id"]] = json.loads(json.dumps(record))
    torch.set_num_threads(threads)
    assert set(produced) == {r["record_id"] for r in golden}
    for expected in golden:
        got = produced[expected["record_id"]]
        for key in COMPARED:
            assert json.dumps(got[key], sort_keys=True) == json.dumps(
                expected[key], sort_keys=True
            ), (expected["label"], expected["interval"], key)
