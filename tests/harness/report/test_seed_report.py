"""The report over training seeds: per-seed values, mean and spread, from records only."""

from __future__ import annotations

import math
from pathlib import Path

from vidbench.protocols import FIXED_KEY, ROTATING_OFFSET
from vidbench.report.seeds import over_seeds, render_seeds


def detection(label: str, interval: int, seed: int, value: float, created: float = 1.0) -> dict:
    return {
        "kind": "accuracy",
        "protocol": FIXED_KEY,
        "label": label,
        "interval": interval,
        "keys": "middle",
        "seed": seed,
        "created": created,
        "metrics": {"det/map": value, "det/map_worst": value - 4},
    }


RECORDS = [
    detection("psla", 10, 0, 60.0),
    detection("psla", 10, 1, 50.0),
    detection("psla", 10, 2, 40.0, created=1.0),
    detection("psla", 10, 2, 55.0, created=2.0),  # a newer run of seed 2 replaces the older
    detection("psla", 5, 0, 61.0),  # one seed only: no spread, left out
    detection("rfcn", 1, 0, 64.0),
    detection("rfcn", 1, 1, 62.0),
    {**detection("dff", 10, 1, 1.0), "error": "video broken"},
    {
        "kind": "accuracy",
        "protocol": ROTATING_OFFSET,
        "label": "frame",
        "interval": 1,
        "seed": 3,
        "metrics": {"seg/miou_avg": 50.0, "seg/miou_min": 45.0},
    },
    {
        **detection("frame", 1, 4, 0.0),
        "protocol": ROTATING_OFFSET,
        "metrics": {"seg/miou_avg": 54.0, "seg/miou_min": 41.0},
    },
]


def test_rows_carry_each_seed_the_mean_and_the_sample_sd() -> None:
    table = over_seeds(RECORDS)
    psla = table[(table.scheme == "psla") & (table.metric == "mAP (%)")].iloc[0]
    assert psla.setting == "interval=10, keys=middle"
    assert (psla["seed 0"], psla["seed 1"], psla["seed 2"]) == (60.0, 50.0, 55.0)
    assert psla["mean"] == 55.0 and math.isclose(psla["sd"], 5.0) and psla.seeds == 3
    worst = table[(table.scheme == "psla") & (table.metric != "mAP (%)")].iloc[0]
    assert worst["mean"] == 51.0
    assert not ((table.scheme == "psla") & (table.setting.str.contains("interval=5,"))).any()
    assert "dff" not in set(table.scheme)  # failed records never count
    frame = table[(table.task == "segmentation") & (table.metric == "mIoU (min.) (%)")].iloc[0]
    assert (frame["seed 3"], frame["seed 4"], frame["mean"]) == (45.0, 41.0, 43.0)
    rfcn = table[table.scheme == "rfcn"].iloc[0]
    assert math.isnan(rfcn["seed 2"]) and rfcn.seeds == 2


def test_single_seed_rows_stay_when_nothing_has_more(tmp_path: Path) -> None:
    table = over_seeds([detection("psla", 10, 0, 60.0)])
    assert len(table) == 2 and table.sd.isna().all()
    written = render_seeds(RECORDS, tmp_path)
    row = "| psla | interval=10, keys=middle | mAP (%) | 60.0 | 50.0 | 55.0 |"
    assert row in written["md"].read_text()
    assert written["png"].stat().st_size > 1000
