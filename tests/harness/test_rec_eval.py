"""Recognition metrics: AR-Net-style mAP against sklearn's per-class AP, hand-worked cases,
top-1, per-step strata, and a merge that does not depend on how videos were sharded."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score
from vidbench.api import RecognitionPrediction, RecognitionTarget
from vidbench.rec_eval import RecognitionEvaluator, average_precision


def _score(evaluator, state, scores, labels, stratum):
    prediction = RecognitionPrediction(None, torch.tensor(scores, dtype=torch.float32))
    return evaluator.update(state, prediction, RecognitionTarget(np.array(labels)), stratum)


def test_ap_by_hand() -> None:
    scores = np.array([[0.9], [0.8], [0.7], [0.6]])
    positives = np.array([[True], [False], [True], [False]])
    assert average_precision(scores, positives)[0] == pytest.approx((1 / 1 + 2 / 3) / 2)


def test_tied_scores_form_one_threshold() -> None:
    scores = np.array([[0.5], [0.5], [0.1]])
    positives = np.array([[False], [True], [False]])
    assert average_precision(scores, positives)[0] == pytest.approx(0.5)
    assert average_precision(scores[::-1].copy(), positives[::-1].copy())[0] == pytest.approx(0.5)


@pytest.mark.parametrize("ties", [False, True])
def test_ap_equals_sklearn_per_class(ties: bool) -> None:
    rng = np.random.default_rng(3)
    scores = rng.random((60, 7))
    if ties:
        scores = np.round(scores, 1)
    positives = rng.random((60, 7)) < 0.3
    ours = average_precision(scores, positives)
    for k in range(7):
        assert ours[k] == pytest.approx(average_precision_score(positives[:, k], scores[:, k]))


def test_class_without_positives_is_excluded_and_counted() -> None:
    evaluator = RecognitionEvaluator(3)
    state = evaluator.empty()
    state = _score(evaluator, state, [0.7, 0.2, 0.1], [0], "video")
    state = _score(evaluator, state, [0.2, 0.7, 0.1], [1], "video")
    metrics = evaluator.compute(state)
    assert metrics["rec/map"] == pytest.approx(100.0)
    assert metrics["rec/classes_without_positives"] == 1
    assert metrics["rec/top1"] == pytest.approx(100.0)


def test_single_label_map_uses_the_first_label_and_mmap_all() -> None:
    evaluator = RecognitionEvaluator(2)
    state = evaluator.empty()
    state = _score(evaluator, state, [0.6, 0.4], [0, 1], "video")
    state = _score(evaluator, state, [0.3, 0.7], [1], "video")
    metrics = evaluator.compute(state)
    assert metrics["rec/map"] == pytest.approx(100.0)
    assert metrics["rec/mmap"] == pytest.approx(100 * (1.0 + 1.0) / 2)
    state = _score(evaluator, state, [0.9, 0.1], [1], "video")
    metrics = evaluator.compute(state)
    assert metrics["rec/top1"] == pytest.approx(100 * 2 / 3)


def test_steps_and_worst_step() -> None:
    evaluator = RecognitionEvaluator(2)
    state = evaluator.empty()
    for labels, step1, step2 in [([0], [0.4, 0.6], [0.8, 0.2]), ([1], [0.7, 0.3], [0.1, 0.9])]:
        state = _score(evaluator, state, step1, labels, 1)
        state = _score(evaluator, state, step2, labels, 2)
        state = _score(evaluator, state, step2, labels, "video")
    metrics = evaluator.compute(state)
    assert metrics["rec/top1_per_stratum"] == {"1": 0.0, "2": 100.0}
    assert metrics["rec/map_worst"] == pytest.approx(metrics["rec/map_per_stratum"]["1"])
    assert metrics["rec/map"] == pytest.approx(100.0)


def test_merge_of_strided_shards_equals_one_pass() -> None:
    rng = np.random.default_rng(0)
    evaluator = RecognitionEvaluator(5)
    rows = [(rng.dirichlet(np.ones(5)).tolist(), [int(rng.integers(5))]) for _ in range(23)]
    whole = evaluator.empty()
    for scores, labels in rows:
        whole = _score(evaluator, whole, scores, labels, "video")
    shards = []
    for rank in range(3):
        part = evaluator.empty()
        for scores, labels in rows[rank::3]:
            part = _score(evaluator, part, scores, labels, "video")
        shards.append(evaluator.from_json(evaluator.to_json(part)))
    merged = evaluator.empty()
    for part in shards:
        merged = evaluator.merge(merged, part)
    a, b = evaluator.compute(whole), evaluator.compute(merged)
    assert a == b and not math.isnan(a["rec/map"])


def test_wrong_score_shape_is_refused() -> None:
    evaluator = RecognitionEvaluator(4)
    with pytest.raises(ValueError, match="expected \\(4,\\)"):
        _score(evaluator, evaluator.empty(), [0.5, 0.5], [0], "video")
