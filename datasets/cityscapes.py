"""Cityscapes (data.md §1): the labelId -> trainId table and the official file-name parser.

First part of the loader (issue 8): the 256-entry lookup that maps gtFine labelIds to the 19
train ids (everything else 255, §1.4) and the name parser that derives the labelled frame's
position inside its 30-frame snippet from the gtFine file name (§1.2, §1.6).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from vidbench.api import DataError

SNIPPET_FRAMES = 30
FRAMES_BEFORE = 19  # the labelled frame is the 20th of its snippet: frames F-19 .. F+10
IGNORE_INDEX = 255
MAX_LABEL_ID = 33

# labelId -> trainId for the 19 evaluated classes (cityscapesScripts helpers/labels.py).
_TRAIN_IDS = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9,
    23: 10, 24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18,
}
CLASS_NAMES = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
    "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
    "motorcycle", "bicycle",
)
_GT_NAME = re.compile(r"^([A-Za-z_-]+?)_(\d{6})_(\d{6})_gtFine_labelIds\.png$")


def label_table() -> np.ndarray:
    """(256,) uint8 labelId -> trainId; ids 0..33 without a train id map to 255."""
    table = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    for label_id, train_id in _TRAIN_IDS.items():
        table[label_id] = train_id
    return table


def to_train_ids(label_ids: np.ndarray, source: str) -> np.ndarray:
    """Map a labelIds image to train ids; an id outside 0..33 raises DataError naming ``source``."""
    bad = label_ids > MAX_LABEL_ID
    if bad.any():
        raise DataError(
            f"{source}: label id {int(label_ids[bad].max())} is not a Cityscapes labelId "
            f"(expected 0..{MAX_LABEL_ID}, helpers/labels.py)"
        )
    return label_table()[label_ids]


@dataclass(frozen=True)
class LabelledFrame:
    """A gtFine file name parsed: city, sequence number and the labelled frame number F."""

    city: str
    sequence: int
    frame: int

    @property
    def first_frame(self) -> int:
        """Frame number of the snippet's first frame (F - 19, never below 0)."""
        return max(0, self.frame - FRAMES_BEFORE)

    @property
    def scored_index(self) -> int:
        """Position of the labelled frame inside its snippet, derived from the name."""
        return self.frame - self.first_frame

    def sequence_name(self, frame: int) -> str:
        """File name of frame ``frame`` of this sequence in leftImg8bit_sequence."""
        return f"{self.city}_{self.sequence:06d}_{frame:06d}_leftImg8bit.png"


def parse_gt_name(name: str) -> LabelledFrame:
    """Parse ``{city}_{seq:06d}_{frame:06d}_gtFine_labelIds.png`` (§1.2)."""
    match = _GT_NAME.match(name)
    if match is None:
        raise DataError(
            f"{name}: not a gtFine labelIds name; expected "
            f"{{city}}_{{seq:06d}}_{{frame:06d}}_gtFine_labelIds.png"
        )
    return LabelledFrame(match.group(1), int(match.group(2)), int(match.group(3)))
