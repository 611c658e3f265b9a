"""Cityscapes labelId -> trainId table and gtFine name parsing (data.md §1.2, §1.4, §1.6)."""

from __future__ import annotations

import numpy as np
import pytest
from vidbench.api import DataError
from vidbench.datasets.cityscapes import label_table, parse_gt_name, to_train_ids


def test_table_maps_the_19_classes_and_voids_to_255() -> None:
    table = label_table()
    assert [int(table[i]) for i in (7, 8, 11, 26, 33)] == [0, 1, 2, 13, 18]
    assert all(table[i] == 255 for i in (0, 1, 2, 3, 4, 5, 6, 9, 10, 14, 15, 16, 18, 29, 30))
    assert sorted(set(table[:34].tolist()) - {255}) == list(range(19))


def test_unknown_label_id_names_the_file() -> None:
    ids = np.array([[7, 0], [26, 40]], dtype=np.uint8)
    with pytest.raises(DataError, match="a/b.png.*label id 40"):
        to_train_ids(ids, "a/b.png")
    assert to_train_ids(ids[:1], "x").tolist() == [[0, 255]]


def test_scored_index_from_the_name() -> None:
    usual = parse_gt_name("aachen_000000_000019_gtFine_labelIds.png")
    assert (usual.city, usual.sequence, usual.frame, usual.scored_index) == ("aachen", 0, 19, 19)
    long_sequence = parse_gt_name("frankfurt_000001_054640_gtFine_labelIds.png")
    assert long_sequence.first_frame == 54621 and long_sequence.scored_index == 19
    early = parse_gt_name("bonn_000002_000004_gtFine_labelIds.png")
    assert early.scored_index == 4
    assert early.sequence_name(0) == "bonn_000002_000000_leftImg8bit.png"
    with pytest.raises(DataError, match="not a gtFine"):
        parse_gt_name("aachen_19_gtFine_labelIds.png")
