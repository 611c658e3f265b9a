"""Bootstrap intervals over videos (vidbench.bootstrap): seeded and so reproducible, around the
point estimate, narrower with more videos, null with one video, and usable with any evaluator."""

from __future__ import annotations

import numpy as np
import torch
from vidbench import bootstrap
from vidbench.api import RecognitionPrediction, RecognitionTarget
from vidbench.rec_eval import RecognitionEvaluator
from vidbench.seg_eval import SegmentationEvaluator

CLASSES = 3


def _segmentation_videos(count: int, accuracy: float, seed: int) -> tuple[SegmentationEvaluator, list]:
    """``count`` videos of two offsets whose pixels are right with probability ``accuracy``
    (each video's own rate jittered, as real videos differ)."""
    rng = np.random.default_rng(seed)
    evaluator = SegmentationEvaluator(CLASSES)
    units = []
    for _ in range(count):
        rate = float(np.clip(accuracy + rng.normal(0, 0.1), 0, 1))
        state = evaluator.empty()
        for offset in (0, 1):
            target = rng.integers(0, CLASSES, (16, 16))
            wrong = rng.random(target.shape) > rate
            prediction = np.where(wrong, (target + 1) % CLASSES, target)
            state = evaluator.update(state, prediction, target, offset)
        units.append(state)
    return evaluator, units


def test_the_interval_is_seeded_and_holds_the_point_estimate() -> None:
    evaluator, units = _segmentation_videos(20, 0.7, seed=1)
    first = bootstrap.intervals(evaluator, units, ["seg/miou_avg", "seg/miou_min"])
    again = bootstrap.intervals(evaluator, units, ["seg/miou_avg", "seg/miou_min"])
    assert first == again
    merged = evaluator.empty()
    for unit in units:
        merged = evaluator.merge(merged, unit)
    point = evaluator.compute(merged)
    for metric in ("seg/miou_avg", "seg/miou_min"):
        low, high = first["metrics"][metric]
        assert low < point[metric] < high
    assert first["videos"] == 20 and first["resamples"] == bootstrap.RESAMPLES


def test_more_videos_give_a_narrower_interval() -> None:
    widths = []
    for count in (16, 256):
        evaluator, units = _segmentation_videos(count, 0.7, seed=2)
        drawn = bootstrap.intervals(evaluator, units, ["seg/miou_avg"], resamples=300)
        low, high = drawn["metrics"]["seg/miou_avg"]
        widths.append(high - low)
    assert widths[1] < 0.5 * widths[0]  # 1/sqrt(16) = 0.25 of it in expectation


def test_one_video_has_no_interval() -> None:
    evaluator, units = _segmentation_videos(1, 0.7, seed=3)
    out = bootstrap.intervals(evaluator, units, ["seg/miou_avg"])
    assert out["metrics"] == {"seg/miou_avg": [None, None]} and out["videos"] == 1


def test_recognition_top1_interval_brackets_the_share_of_right_videos() -> None:
    """40 videos, 30 right: top-1 75%, its interval about +-13 points (binomial)."""
    evaluator = RecognitionEvaluator(CLASSES)
    units = []
    for video in range(40):
        label = video % CLASSES
        guess = label if video < 30 else (label + 1) % CLASSES
        scores = torch.full((CLASSES,), 0.1).index_fill(0, torch.tensor(guess), 0.8)
        state = evaluator.update(
            evaluator.empty(), RecognitionPrediction(None, scores), RecognitionTarget(np.array([label])), "video"
        )
        units.append(state)
    low, high = bootstrap.intervals(evaluator, units, ["rec/top1"])["metrics"]["rec/top1"]
    assert 55 < low < 70 and 82 < high < 92


def test_a_per_stratum_metric_gets_an_interval_per_stratum() -> None:
    evaluator, units = _segmentation_videos(20, 0.7, seed=4)
    out = bootstrap.intervals(evaluator, units, ["seg/miou_per_offset"], resamples=200)
    per_offset = out["metrics"]["seg/miou_per_offset"]
    assert set(per_offset) == {0, 1}
    for low, high in per_offset.values():
        assert low < high


def test_a_paired_difference_is_narrower_than_either_side_and_signed() -> None:
    """Two methods on the same 30 videos, the second a few points worse on every video: the
    paired interval excludes 0 although the two methods' own intervals overlap."""
    evaluator, better = _segmentation_videos(30, 0.75, seed=6)
    _, worse = _segmentation_videos(30, 0.70, seed=6)  # same videos and jitter, 5 points lower
    names = [f"v{i:02d}" for i in range(30)]
    first, second = dict(zip(names, better)), dict(zip(names, worse))
    paired = bootstrap.paired_difference(evaluator, first, second, "seg/miou_avg", resamples=300)
    low, high = paired["interval"]
    assert 0 < low < paired["difference"] < high
    own = [
        bootstrap.intervals(evaluator, units, ["seg/miou_avg"], resamples=300)["metrics"]["seg/miou_avg"]
        for units in (better, worse)
    ]
    assert own[1][1] > own[0][0]  # the unpaired intervals overlap
    assert high - low < min(h - lo for lo, h in own)
