"""The motion benchmark's measurements on the tiny synthcity, and its report from records."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from vidbench.methods.motion.sources import build_source
from vidbench.report.motion import render_motion
from vidbench.studies.motion import epe, psnr, synthcity_motion


def test_metrics() -> None:
    truth = torch.zeros(2, 4, 4)
    predicted = torch.zeros(2, 4, 4)
    predicted[0] = 3.0
    predicted[1] = 4.0
    mask = torch.zeros(4, 4, dtype=torch.bool)
    assert math.isnan(epe(predicted, truth, mask))
    mask[1:3, 1:3] = True
    assert epe(predicted, truth, mask) == 5.0
    image = torch.rand(3, 40, 40)
    assert psnr(image, image) > 100
    assert 19.9 < psnr(torch.zeros(3, 40, 40), torch.full((3, 40, 40), 0.1)) < 20.1


def test_codec_and_dis_beat_zero_motion_on_rendered_flow(tiny_dataset) -> None:
    sources = {"mv": build_source("mv"), "dis": build_source("dis")}
    rows = {r["source"]: r for r in synthcity_motion(tiny_dataset.split("val")[:2], sources)}
    assert set(rows) == {"zero", "mv", "dis"}
    for name in ("mv", "dis"):
        assert rows[name]["epe_px_visible"] < 0.8 * rows["zero"]["epe_px_visible"]
        assert rows[name]["weights"] == "none"
    assert rows["mv"]["pairs"] == 2 * (tiny_dataset.split("val")[0].info.num_frames - 1)


def test_report_blanks_accuracy_of_random_networks(tmp_path: Path) -> None:
    epe_rows = [
        {
            "source": "zero",
            "weights": "none",
            "epe_px_visible": 3.0,
            "epe_px_occluded": 3.5,
            "epe_grid16": 3.1,
            "ms_per_frame": 0.0,
            "pairs": 10,
        },
        {
            "source": "raft",
            "weights": "random init",
            "epe_px_visible": 40.0,
            "epe_px_occluded": 41.0,
            "epe_grid16": 39.0,
            "ms_per_frame": 100.0,
            "pairs": 10,
        },
    ]
    real_rows = [
        {
            "clip": "c",
            "source": "mv",
            "weights": "none",
            "psnr_db": 35.0,
            "psnr_gain_db": 7.0,
            "ms_per_frame": 0.2,
            "frames": 5,
            "size": "176x144",
            "reencoded": True,
            "note": "why",
        }
    ]
    records = [
        {"record_id": p, "kind": "motion", "part": p, "rows": rows, "created": i}
        for i, (p, rows) in enumerate([("synthcity-epe", epe_rows), ("real-footage", real_rows)])
    ]
    written = render_motion(records, tmp_path)
    text = written["md"].read_text()
    assert "| raft | random init |  |  |  | 100.00 | 10 |" in text
    assert "| c | 176x144 | True | why |" in text
    assert written["png"].stat().st_size > 1000


def test_a_clip_that_does_not_decode_costs_only_its_own_rows() -> None:
    from vidbench.studies.motion import real_footage_motion

    rows = real_footage_motion([], {}, {"bikes": "/x/bikes.mp4: not a video"})
    assert rows == [{"clip": "bikes", "source": "-", "note": "FAILED: /x/bikes.mp4: not a video"}]
