"""The focus study: patch boxes and hits computed by hand, and the whole study on the tiny
synthaction (records, table and Fig. 7 drawing)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
from vidbench.report.focus import render_focus
from vidbench.store import Store
from vidbench.studies.focus import contains, run_focus_study, summarise


def test_a_point_is_inside_inclusive_boxes() -> None:
    boxes = np.array([[0, 0, 9, 9], [10, 0, 19, 9]], dtype=float)
    points = np.array([[9, 9], [10, 5], [25, 5]], dtype=float)
    assert contains(boxes, points).tolist() == [[True, False], [False, True], [False, False]]


def test_summary_splits_by_visibility_beside_the_random_rate() -> None:
    per_video = [
        {"hit": [True, False, True], "chance": [0.5, 0.25, 0.25], "visibility": [0, 1, 0]},
    ]
    summary = summarise(per_video, ("visible", "absent", "blurred"))
    assert summary["all"] == {"hit_rate": 2 / 3, "random_rate": 1 / 3, "frames": 3}
    assert summary["visible"]["hit_rate"] == 1.0 and summary["absent"]["hit_rate"] == 0.0
    assert "blurred" not in summary


def test_the_study_writes_records_a_table_and_a_figure(
    tiny_recognition_dataset, tmp_path: Path
) -> None:
    options = {k: str(v) for k, v in asdict(tiny_recognition_dataset.config).items()}
    store = Store(tmp_path / "focus.jsonl")
    settings = {"methods": ("adafocus:epochs=1:candidates=25",), "videos": 2, "drawn": 1}
    records = run_focus_study(
        settings,
        "synthaction",
        options,
        tiny_recognition_dataset.root.parent.parent,
        tmp_path / "ckpt",
        store,
        tmp_path / "reports",
    )
    (record,) = records
    assert record["summary"]["all"]["frames"] == 2 * tiny_recognition_dataset.config.frames
    assert 0 <= record["summary"]["all"]["random_rate"] <= 1
    assert Path(record["figure"]).stat().st_size > 1000
    written = render_focus(store.records(), tmp_path / "reports")
    assert "adafocus:candidates=25:epochs=1" in written["focus_md"].read_text()
