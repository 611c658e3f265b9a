"""The segmentation report's interval columns and its Table 2 (fusion) layout, from hand-made
accuracy records (reports are pure functions of records)."""

from __future__ import annotations

from vidbench.protocols import ROTATING_OFFSET
from vidbench.report import tables
from vidbench.report.segmentation import REFERENCE_DIR


def accuracy(fusion: str | None, interval: int, base: float) -> dict:
    config = {"fusion": fusion or "conv"}  # records hold the whole config, defaults included
    label = "interp-mv" + ("" if fusion is None else f":fusion={fusion}")
    per_offset = {str(o): base - o for o in range(interval)}
    bounds = {str(o): [base - o - 2, base - o + 1] for o in range(interval)}
    return {
        "record_id": f"{label}-{interval}",
        "method": "interp-mv",
        "config": config,
        "label": label,
        "interval": interval,
        "kind": "accuracy",
        "protocol": ROTATING_OFFSET,
        "created": 1.0,
        "scored_frames": 100,
        "dataset": {"fingerprint": "f1", "name": "synthcity"},
        "metrics": {"seg/miou_avg": base, "seg/miou_min": base - 3, "seg/miou_per_offset": per_offset},
        "intervals": {
            "videos": 100,
            "metrics": {
                "seg/miou_avg": [base - 1.5, base + 1.25],
                "seg/miou_min": [None, None],
                "seg/miou_per_offset": bounds,
            },
        },
    }


RECORDS = [
    accuracy(fusion, 2 * d, base)
    for fusion, base in (("forward", 60.0), ("backward", 55.0), ("avg", 62.0), (None, 61.0))
    for d in (1, 2, 3, 4)
]


def test_runs_carry_each_headline_interval_and_a_text_cell() -> None:
    df = tables.runs([accuracy("avg", 4, 62.0)])
    row = df.iloc[0]
    assert (row.miou_avg_lo, row.miou_avg_hi) == (60.5, 63.25)
    assert row.miou_avg_ci == "[60.5, 63.2]" and row.miou_min_ci == ""
    assert row.per_offset_ci[2] == [58.0, 61.0]


def test_fusion_table_reads_the_midway_frame_of_interval_2d_beside_the_paper() -> None:
    reference = REFERENCE_DIR / "seed000_table2_fusion_cityscapes.csv"
    table = tables.fusion_table(tables.runs(RECORDS), reference)
    assert list(table["distance to keyframes"]) == [1, 2, 3, 4]
    third = table.set_index("distance to keyframes").loc[3]
    assert third["forward"] == 57.0 and third["backward"] == 52.0 and third["conv"] == 58.0
    assert third["avg 95%"] == "[57.0, 60.0]"
    assert third["max"] != third["max"]  # no max-fusion record: NaN, not a number from elsewhere
    assert third["paper forward"] == 64.9 and third["paper conv"] == 66.4


def test_no_interp_mv_records_no_fusion_table() -> None:
    frame = dict(accuracy(None, 2, 50.0), method="frame", label="frame", config={})
    table = tables.fusion_table(tables.runs([frame]), REFERENCE_DIR / "seed000_table2_fusion_cityscapes.csv")
    assert table.empty
