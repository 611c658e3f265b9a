from __future__ import annotations

import numpy as np
import pytest
from vidbench.seg_eval import SegmentationEvaluator, class_iou, miou


def brute_force_miou(preds: list[np.ndarray], gts: list[np.ndarray], classes: int) -> float:
    ious = []
    for c in range(classes):
        tp = fp = fn = 0
        for p, g in zip(preds, gts):
            keep = g != 255
            tp += np.sum((p == c) & (g == c) & keep)
            fp += np.sum((p == c) & (g != c) & keep)
            fn += np.sum((p != c) & (g == c) & keep)
        if tp + fp + fn:
            ious.append(tp / (tp + fp + fn))
    return float(np.mean(ious) * 100)


def random_pair(rng: np.random.Generator, classes: int) -> tuple[np.ndarray, np.ndarray]:
    gt = rng.integers(0, classes, (16, 24))
    gt[rng.random(gt.shape) < 0.1] = 255
    pred = np.where(
        rng.random(gt.shape) < 0.7, np.where(gt == 255, 0, gt), rng.integers(0, classes, gt.shape)
    )
    return pred, gt


def test_matches_brute_force_and_ignores_void_pixels() -> None:
    rng = np.random.default_rng(0)
    evaluator = SegmentationEvaluator(5)
    pairs = [random_pair(rng, 5) for _ in range(6)]
    state = evaluator.empty()
    for i, (pred, gt) in enumerate(pairs):
        state = evaluator.update(state, pred, gt, i % 3)
    metrics = evaluator.compute(state)
    assert metrics["seg/miou_avg"] == pytest.approx(brute_force_miou(*zip(*pairs), 5))
    per_offset = [brute_force_miou(*zip(*pairs[o::3]), 5) for o in range(3)]
    assert metrics["seg/miou_per_offset"] == pytest.approx(dict(enumerate(per_offset)))
    assert metrics["seg/miou_min"] == pytest.approx(min(per_offset))


def test_merge_of_halves_equals_one_pass_and_is_associative() -> None:
    rng = np.random.default_rng(1)
    evaluator = SegmentationEvaluator(4)
    pairs = [random_pair(rng, 4) for _ in range(9)]
    parts = []
    for chunk in (pairs[:3], pairs[3:5], pairs[5:]):
        state = evaluator.empty()
        for i, (p, g) in enumerate(chunk):
            state = evaluator.update(state, p, g, i % 2)
        parts.append(state)
    left = evaluator.merge(evaluator.merge(parts[0], parts[1]), parts[2])
    right = evaluator.merge(parts[0], evaluator.merge(parts[1], parts[2]))
    for offset in left:
        np.testing.assert_array_equal(left[offset], right[offset])
    roundtrip = evaluator.from_json(evaluator.to_json(left))
    assert evaluator.compute(roundtrip) == evaluator.compute(left)


def test_absent_classes_are_excluded_not_zero() -> None:
    confusion = np.zeros((3, 3), np.int64)
    confusion[0, 0] = 10
    confusion[1, 1] = 5
    confusion[1, 0] = 5
    iou = class_iou(confusion)
    assert np.isnan(iou[2])
    assert miou(confusion) == pytest.approx((10 / 15 + 5 / 10) / 2 * 100)


def test_bad_input_is_refused() -> None:
    evaluator = SegmentationEvaluator(3)
    with pytest.raises(ValueError, match="shape"):
        evaluator.update({}, np.zeros((2, 2), int), np.zeros((3, 2), int), 0)
    with pytest.raises(ValueError, match="ids >= 3"):
        evaluator.update({}, np.zeros((2, 2), int), np.full((2, 2), 7), 0)
    with pytest.raises(ValueError, match="empty"):
        evaluator.compute({})
