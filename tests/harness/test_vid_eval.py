from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from vidbench.api import DetectionPrediction, DetectionTarget
from vidbench.boxes import box_iou
from vidbench.vid_eval import (
    RANGES,
    DetectionEvaluator,
    DetectionState,
    average_precision,
    iou_thresholds,
    match_frame,
    precision_recall,
)

Pair = tuple[DetectionPrediction, DetectionTarget]


def det(boxes: list, scores: list, labels: list, index: int = 0) -> DetectionPrediction:
    return DetectionPrediction(
        index,
        torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        torch.tensor(scores, dtype=torch.float32),
        torch.tensor(labels, dtype=torch.int64),
    )


def gt(boxes: list, labels: list, motion: list | None = None) -> DetectionTarget:
    n = len(labels)
    return DetectionTarget(
        np.asarray(boxes, np.float32).reshape(-1, 4),
        np.asarray(labels, np.int64),
        np.arange(n, dtype=np.int64),
        np.asarray([1.0] * n if motion is None else motion, np.float32),
    )


def evaluate(frames: list[Pair], num_classes: int = 2) -> tuple[DetectionState, dict]:
    evaluator = DetectionEvaluator(num_classes)
    state = evaluator.empty()
    for prediction, target in frames:
        state = evaluator.update(state, prediction, target, stratum=0)
    return state, evaluator.compute(state)


def same(a: object, b: object) -> bool:
    """Exact equality of metric dicts, NaN equal to NaN (json writes floats by repr)."""
    return json.dumps(a) == json.dumps(b)


# ---- hand-worked cases -------------------------------------------------------------------


def test_small_object_threshold_lets_iou_04_match() -> None:
    assert iou_thresholds(np.array([[0, 0, 9, 9], [0, 0, 99, 99]])) == pytest.approx([0.25, 0.5])
    small = (det([[0, 0, 9, 3]], [0.9], [0]), gt([[0, 0, 9, 9]], [0]))  # IoU 40/100
    large = (det([[0, 0, 99, 39]], [0.9], [0]), gt([[0, 0, 99, 99]], [0]))  # IoU 0.4
    assert evaluate([small], 1)[1]["det/map"] == pytest.approx(100.0)
    assert evaluate([large], 1)[1]["det/map"] == 0.0


def test_duplicate_detection_is_a_false_positive() -> None:
    frames = [
        (det([[0, 0, 49, 49], [1, 0, 49, 49]], [0.9, 0.8], [0, 0]), gt([[0, 0, 49, 49]], [0])),
        (det([[0, 0, 49, 49]], [0.7], [0]), gt([[0, 0, 49, 49]], [0])),
    ]
    state, metrics = evaluate(frames, 1)
    rows = state[0].rows()
    assert rows.tp[:, 0].tolist() == [True, False, True]
    assert rows.fp[:, 0].tolist() == [0.0, 1.0, 0.0]
    # ranked TP, FP, TP over 2 positives: 0.5 * 1 + 0.5 * 2/3
    assert metrics["det/map"] == pytest.approx(100 * (0.5 + 0.5 * 2 / 3))


def test_detection_whose_best_gt_is_taken_needs_another_gt_above_threshold() -> None:
    gt_boxes = np.array([[0, 0, 49, 49], [20, 0, 69, 49]], np.float64)
    gt_labels = np.array([0, 0])
    thresholds = iou_thresholds(gt_boxes)
    # second detection: IoU 0.92 with the taken GT 0, 0.47 with GT 1 (below 0.5) -> unmatched
    below = np.array([[0, 0, 49, 49], [2, 0, 51, 49]], np.float64)
    # second detection: IoU 0.72 with the taken GT 0, 0.61 with GT 1 -> matches GT 1 (not VOC)
    above = np.array([[0, 0, 49, 49], [8, 0, 57, 49]], np.float64)
    scores, labels = np.array([0.9, 0.8]), np.array([0, 0])
    iou_below, iou_above = box_iou(below, gt_boxes), box_iou(above, gt_boxes)
    assert iou_below[1, 0] > iou_below[1, 1] and iou_below[1, 1] < 0.5
    assert iou_above[1, 0] > iou_above[1, 1] >= 0.5
    assert match_frame(iou_below, scores, labels, gt_labels, thresholds).tolist() == [0, -1]
    assert match_frame(iou_above, scores, labels, gt_labels, thresholds).tolist() == [0, 1]
    # confidence order, not row order, decides who takes GT 0
    assert match_frame(iou_below, scores[::-1], labels, gt_labels, thresholds).tolist() == [-1, 0]


def test_class_mismatch_never_matches() -> None:
    frame = (det([[0, 0, 49, 49]], [0.9], [1]), gt([[0, 0, 49, 49]], [0]))
    state, metrics = evaluate([frame], 2)
    assert state[0].rows().fp[:, 0].tolist() == [1.0]
    assert metrics["det/ap_per_class"][0] == 0.0
    assert math.isnan(metrics["det/ap_per_class"][1])  # class 1 has no positives
    assert metrics["det/map"] == 0.0


def test_perfect_detections_give_ap_100_in_every_range_with_positives() -> None:
    rng = np.random.default_rng(0)
    frames = []
    for i in range(6):
        boxes = [[x, 10, x + 30, 60] for x in (0, 100, 200)]
        labels = rng.integers(0, 3, 3).tolist()
        motion = [0.95, 0.8, 0.3]
        frames.append((det(boxes, rng.random(3).tolist(), labels, i), gt(boxes, labels, motion)))
    metrics = evaluate(frames, 3)[1]
    for key in ("det/map", "det/map_slow", "det/map_medium", "det/map_fast", "det/map_worst"):
        assert metrics[key] == pytest.approx(100.0)


def test_known_ap_of_a_hand_computed_pr_curve() -> None:
    # ranked TP, FP, TP, FP, TP with 4 positives: precision 1, 1/2, 2/3, 1/2, 3/5 at
    # recall 1/4, 1/4, 1/2, 1/2, 3/4; envelope 1, 2/3, 3/5 -> AP = (1 + 2/3 + 3/5) / 4
    expected = (1 + 2 / 3 + 3 / 5) / 4
    recall, precision = precision_recall(np.array([1, 0, 1, 0, 1]), np.array([0.0, 1, 0, 1, 0]), 4)
    assert precision.tolist() == pytest.approx([1, 1 / 2, 2 / 3, 1 / 2, 3 / 5])
    assert average_precision(recall, precision) == pytest.approx(expected)
    eleven_point = (3 * 1 + 3 * 2 / 3 + 2 * 3 / 5) / 11  # VOC2007, not what VID uses
    assert abs(eleven_point - expected) > 1e-3
    box, far = [0, 0, 49, 49], [200, 200, 249, 249]
    frames = [
        (det([box, far], [0.9, 0.8], [0, 0]), gt([box], [0])),
        (det([box], [0.7], [0]), gt([box], [0])),
        (det([far, box], [0.6, 0.5], [0, 0]), gt([box], [0])),
        (det([], [], []), gt([box], [0])),
    ]
    assert evaluate(frames, 1)[1]["det/map"] == pytest.approx(100 * expected)


def test_motion_ranges_ignore_rules_ties_and_empty_frames() -> None:
    a, b, c = [0, 0, 49, 49], [100, 0, 149, 49], [0, 0, 29, 29]
    partial_b = [100, 0, 149, 14]  # IoU 0.3 with b, 0 with a
    far = [300, 300, 349, 349]  # IoU 0 with both: a tie in every range
    frames = [
        # d3 (far), d1 (= a), d2 (partial b), d4 (= b); a is slow, b is fast
        (
            det([far, a, partial_b, b], [0.95, 0.9, 0.8, 0.5], [0, 0, 0, 0]),
            gt([a, b], [0, 0], [0.95, 0.5]),
        ),
        (det([c], [0.85], [1]), gt([c], [1], [float("nan")])),  # unknown speed
        (det([[0, 0, 20, 20]], [0.7], [0]), gt([], [], [])),  # a frame without GT
    ]
    state, metrics = evaluate(frames, 2)
    rows = state[0].rows()
    columns = {name: r for r, name in enumerate(RANGES)}
    expected_tp = {
        "all": [0, 1, 0, 1, 1, 0],
        "slow": [0, 1, 0, 0, 0, 0],
        "medium": [0, 0, 0, 0, 0, 0],
        "fast": [0, 0, 0, 1, 0, 0],
    }
    expected_fp = {
        "all": [1, 0, 1, 0, 0, 0],
        "slow": [0.5, 0, 0, 0, 0, 0],
        "medium": [0, 0, 0, 0, 0, 0],
        "fast": [0.5, 0, 1, 0, 0, 0],
    }
    for name, r in columns.items():
        assert rows.tp[:, r].astype(int).tolist() == expected_tp[name], name
        assert rows.fp[:, r].tolist() == expected_fp[name], name
    assert rows.empty.tolist() == [False] * 5 + [True]
    assert state[0].positives.tolist() == [[2, 1], [1, 0], [0, 0], [1, 0]]
    # empty-frame weight = share of the 3 GT in range: all 1, slow 1/3, medium 0, fast 1/3
    # all, class 0: TP at ranks 2 and 5 of 5, FP at 1, 3, 4 -> 0.5 * 1/2 + 0.5 * 2/5
    assert metrics["det/ap_per_class"] == pytest.approx([100 * 0.45, 100.0])
    assert metrics["det/map"] == pytest.approx((45 + 100) / 2)
    # slow, class 0: FP 1/2, TP (a), FP 0, FP 1/3, neither -> precision 1 / 1.5 at recall 1
    assert metrics["det/map_slow"] == pytest.approx(100 * 2 / 3)
    # fast, class 0: FP 1/2, neither, FP 1, FP 1/3, TP (b) -> precision 1 / (1 + 11/6)
    assert metrics["det/map_fast"] == pytest.approx(100 * 6 / 17)
    assert math.isnan(metrics["det/map_medium"])  # no positive in range: excluded, NaN


def test_update_rejects_bad_input_and_compute_rejects_empty_state() -> None:
    evaluator = DetectionEvaluator(2)
    with pytest.raises(ValueError, match="outside 0..1"):
        evaluator.update({}, det([[0, 0, 5, 5]], [0.5], [2]), gt([], []), 0)
    with pytest.raises(ValueError, match="one row per detection"):
        evaluator.update({}, det([[0, 0, 5, 5]], [0.5, 0.4], [0]), gt([], []), 0)
    with pytest.raises(ValueError, match="empty"):
        evaluator.compute(evaluator.empty())
    with pytest.raises(ValueError, match="num_classes=2"):
        DetectionEvaluator(3).from_json(evaluator.to_json(evaluator.empty()))


# ---- random frames: merge, order, JSON, brute force ----------------------------------------


def random_frame(
    rng: np.random.Generator, num_classes: int, index: int, tied_scores: bool = False
) -> Pair:
    """Small and large objects, duplicates, wrong classes, empty frames, NaN / 0.7 / 0.9 speeds."""
    m = int(rng.integers(0, 5))
    xy = rng.integers(0, 200, (m, 2))
    wh = rng.integers(4, 90, (m, 2))
    gt_boxes = np.concatenate([xy, xy + wh - 1], 1).astype(float)
    gt_labels = rng.integers(0, num_classes, m)
    motion = rng.choice([np.nan, 0.7, 0.9, 1.0, 0.0, *rng.random(4)], m)
    boxes, labels = [], []
    for box, label in zip(gt_boxes, gt_labels):
        for _ in range(int(rng.integers(0, 3))):
            jitter = rng.integers(-6, 7, 4)
            boxes.append(np.maximum(box + jitter, 0).tolist())
            labels.append(int(label) if rng.random() < 0.8 else int(rng.integers(num_classes)))
    for _ in range(int(rng.integers(0, 3))):
        x, y = rng.integers(0, 250, 2)
        boxes.append([x, y, x + rng.integers(5, 60), y + rng.integers(5, 60)])
        labels.append(int(rng.integers(num_classes)))
    scores = rng.random(len(boxes))
    if tied_scores:
        scores = np.round(scores, 1)
    target = DetectionTarget(
        gt_boxes.astype(np.float32),
        gt_labels.astype(np.int64),
        np.arange(m),
        motion.astype(np.float32),
    )
    return det(boxes, scores.tolist(), labels, index), target


def run(evaluator: DetectionEvaluator, items: list[tuple[Pair, object]]) -> DetectionState:
    state = evaluator.empty()
    for (prediction, target), stratum in items:
        state = evaluator.update(state, prediction, target, stratum)
    return state


def random_items(seed: int, n: int, num_classes: int, tied: bool) -> list[tuple[Pair, object]]:
    rng = np.random.default_rng(seed)
    strata: list[object] = [0, 1, 2, "late"]
    return [(random_frame(rng, num_classes, i, tied), strata[i % 4]) for i in range(n)]


def test_merge_of_random_splits_equals_one_pass_and_is_associative() -> None:
    evaluator = DetectionEvaluator(3)
    items = random_items(1, 60, 3, tied=True)
    one_pass = evaluator.compute(run(evaluator, items))
    assert one_pass["det/strata_scored"] == 4
    rng = np.random.default_rng(2)
    for _ in range(3):
        part = rng.integers(0, 3, len(items))
        a, b, c = (run(evaluator, [x for x, p in zip(items, part) if p == k]) for k in range(3))
        left = evaluator.merge(evaluator.merge(a, b), c)
        right = evaluator.merge(a, evaluator.merge(b, c))
        assert evaluator.to_json(left) == evaluator.to_json(right)
        assert same(evaluator.compute(evaluator.merge(c, evaluator.merge(b, a))), one_pass)
    shuffled = [items[i] for i in rng.permutation(len(items))]
    assert same(evaluator.compute(run(evaluator, shuffled)), one_pass)
    per_stratum = one_pass["det/map_per_stratum"]
    assert list(per_stratum) == [0, 1, 2, "late"]
    assert one_pass["det/map_worst"] == min(per_stratum.values())


def test_json_round_trip_is_exact() -> None:
    evaluator = DetectionEvaluator(3)
    state = run(evaluator, random_items(3, 40, 3, tied=False))
    text = json.dumps(evaluator.to_json(state), separators=(",", ":"))
    restored = evaluator.from_json(json.loads(text))
    assert json.dumps(evaluator.to_json(restored), separators=(",", ":")) == text
    assert list(restored) == list(state) == [0, 1, 2, "late"]
    for key in state:
        before, after = state[key].rows(), restored[key].rows()
        for field in ("scores", "labels", "tp", "fp", "empty"):
            np.testing.assert_array_equal(getattr(before, field), getattr(after, field))
        np.testing.assert_array_equal(state[key].positives, restored[key].positives)
    assert same(evaluator.compute(restored), evaluator.compute(state))


def brute_force(frames: list[Pair], num_classes: int) -> dict[str, list[float]]:
    """docs/datasets.md §3.6-3.7 restated with Python loops: AP per class (fraction) for each
    range."""
    bounds = {"all": None, "slow": (0.9, 1.0), "medium": (0.7, 0.9), "fast": (0.0, 0.7)}

    def inside(speed: float, name: str) -> bool:
        lim = bounds[name]
        return lim is None or (not math.isnan(speed) and lim[0] <= speed <= lim[1])

    def overlap(p: list[float], q: list[float]) -> float:
        iw = min(p[2], q[2]) - max(p[0], q[0]) + 1
        ih = min(p[3], q[3]) - max(p[1], q[1]) + 1
        if iw <= 0 or ih <= 0:
            return 0.0
        union = (p[2] - p[0] + 1) * (p[3] - p[1] + 1) + (q[2] - q[0] + 1) * (q[3] - q[1] + 1)
        return iw * ih / (union - iw * ih)

    plain = []
    for prediction, target in frames:
        dets = list(
            zip(prediction.boxes.tolist(), prediction.scores.tolist(), prediction.labels.tolist())
        )
        gts = list(zip(target.boxes.tolist(), target.labels.tolist(), target.motion_iou.tolist()))
        plain.append((sorted(dets, key=lambda d: -d[1]), gts))
    every_gt = [g for _, gts in plain for g in gts]
    out = {}
    for name in bounds:
        empty_fp = sum(inside(g[2], name) for g in every_gt) / len(every_gt)
        ranked: dict[int, list[tuple[float, float, float]]] = {c: [] for c in range(num_classes)}
        positives = [0] * num_classes
        for dets, gts in plain:
            for g in gts:
                positives[g[1]] += inside(g[2], name)
            used = [False] * len(gts)
            for box, score, label in dets:
                best, chosen = -1.0, None
                for k, (g_box, g_label, _) in enumerate(gts):
                    w, h = g_box[2] - g_box[0] + 1, g_box[3] - g_box[1] + 1
                    thr = min(0.5, w * h / ((w + 10) * (h + 10)))
                    o = overlap(box, g_box)
                    if not used[k] and g_label == label and o >= thr and o > best:
                        best, chosen = o, k
                if chosen is not None:
                    used[chosen] = True
                    ranked[label].append((score, float(inside(gts[chosen][2], name)), 0.0))
                elif not gts:
                    ranked[label].append((score, 0.0, empty_fp))
                else:
                    ins = [overlap(box, g[0]) for g in gts if inside(g[2], name)]
                    outs = [overlap(box, g[0]) for g in gts if not inside(g[2], name)]
                    hi_in, hi_out = max(ins, default=-1.0), max(outs, default=-1.0)
                    fp = 1.0 if hi_in > hi_out else 0.0 if hi_out > hi_in else len(outs) / len(gts)
                    ranked[label].append((score, 0.0, fp))
        aps = []
        for c in range(num_classes):
            if positives[c] == 0:
                aps.append(float("nan"))
                continue
            tp_sum = fp_sum = 0.0
            recall, precision = [0.0], []
            for _, tp, fp in sorted(ranked[c], key=lambda t: -t[0]):
                tp_sum, fp_sum = tp_sum + tp, fp_sum + fp
                recall.append(tp_sum / positives[c])
                precision.append(tp_sum / max(tp_sum + fp_sum, 1e-300))
            aps.append(
                sum((recall[i + 1] - recall[i]) * max(precision[i:]) for i in range(len(precision)))
            )
        out[name] = aps
    return out


def test_matches_a_brute_force_restatement_on_random_frames() -> None:
    num_classes = 4
    items = random_items(4, 80, num_classes, tied=False)
    frames = [frame for frame, _ in items]
    evaluator = DetectionEvaluator(num_classes)
    metrics = evaluator.compute(run(evaluator, items))
    reference = brute_force(frames, num_classes)
    assert metrics["det/ap_per_class"] == pytest.approx(
        [100 * v for v in reference["all"]], abs=1e-9, nan_ok=True
    )
    for name in RANGES:
        key = "det/map" if name == "all" else f"det/map_{name}"
        aps = [v for v in reference[name] if not math.isnan(v)]
        assert metrics[key] == pytest.approx(100 * float(np.mean(aps)), abs=1e-9), name
    # the speed ranges really differ from "all" here, so their rules were exercised
    assert len({round(metrics[f"det/map_{n}"], 6) for n in ("slow", "medium", "fast")}) == 3
    for stratum in (0, 1, 2, "late"):
        sub = [frame for frame, s in items if s == stratum]
        aps = [v for v in brute_force(sub, num_classes)["all"] if not math.isnan(v)]
        assert metrics["det/map_per_stratum"][stratum] == pytest.approx(100 * np.mean(aps))


# ---- independent check against pycocotools --------------------------------------------------


def test_agrees_with_pycocotools_where_the_definitions_coincide() -> None:
    """COCO at IoU 0.5 matches like the VID rule when every GT is >= 25 px a side (threshold
    0.5), per image and class, greedy by score, to the best free GT with IoU >= 0.5. Boxes
    convert as xywh = (x1, y1, x2 - x1 + 1, y2 - y1 + 1), so both IoUs are the same ratio of
    the same integers. COCO samples the precision envelope at 101 recall points instead of
    integrating it: its per-class curve must equal ours sampled there (to rounding), and the
    two APs differ by at most 1/101 (a monotone step function's 101-sample mean vs integral).
    """
    coco_module = pytest.importorskip("pycocotools.coco")
    cocoeval_module = pytest.importorskip("pycocotools.cocoeval")
    rng = np.random.default_rng(5)
    num_classes, evaluator = 3, DetectionEvaluator(3)
    state = evaluator.empty()
    images, annotations, results = [], [], []
    for image in range(40):
        gt_boxes, gt_labels = [], []
        for cell in range(4):  # one object per 150 px cell: no two GT tie for a detection
            if rng.random() < 0.8:
                x, y = 150 * np.array([cell % 2, cell // 2]) + rng.integers(0, 20, 2)
                w, h = rng.integers(30, 120, 2)
                gt_boxes.append([x, y, x + w - 1, y + h - 1])
                gt_labels.append(int(rng.integers(num_classes)))
        boxes, labels = [], []
        for box, label in zip(gt_boxes, gt_labels):
            for _ in range(int(rng.integers(0, 3))):
                boxes.append((np.asarray(box) + rng.integers(-8, 9, 4)).tolist())
                labels.append(label if rng.random() < 0.85 else int(rng.integers(num_classes)))
        for _ in range(int(rng.integers(0, 3))):
            x, y = rng.integers(0, 250, 2)
            boxes.append([x, y, x + rng.integers(30, 90), y + rng.integers(30, 90)])
            labels.append(int(rng.integers(num_classes)))
        scores = rng.random(len(boxes))
        state = evaluator.update(
            state, det(boxes, scores.tolist(), labels, image), gt(gt_boxes, gt_labels), 0
        )
        images.append({"id": image + 1})
        for box, label in zip(gt_boxes, gt_labels):
            w, h = box[2] - box[0] + 1, box[3] - box[1] + 1
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image + 1,
                    "iscrowd": 0,
                    "category_id": label + 1,
                    "bbox": [box[0], box[1], w, h],
                    "area": w * h,
                }
            )
        for box, label, score in zip(boxes, labels, np.float32(scores).tolist()):
            results.append(
                {
                    "image_id": image + 1,
                    "category_id": label + 1,
                    "score": score,
                    "bbox": [box[0], box[1], box[2] - box[0] + 1, box[3] - box[1] + 1],
                }
            )
    coco = coco_module.COCO()
    coco.dataset = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": c + 1} for c in range(num_classes)],
    }
    coco.createIndex()
    coco_eval = cocoeval_module.COCOeval(coco, coco.loadRes(results), "bbox")
    coco_eval.params.iouThrs = np.array([0.5])
    coco_eval.params.maxDets = [1000]
    coco_eval.params.areaRng, coco_eval.params.areaRngLbl = [[0, 1e10]], ["all"]
    coco_eval.evaluate()
    coco_eval.accumulate()
    coco_curves = coco_eval.eval["precision"][0, :, :, 0, 0]  # (101 recall points, K)

    ours = evaluator.compute(state)
    rows = state[0].rows()
    positives = state[0].positives[0]
    for c in range(num_classes):
        mine = rows.labels == c
        order = np.argsort(-rows.scores[mine])
        recall, precision = precision_recall(
            rows.tp[mine, 0][order], rows.fp[mine, 0][order], int(positives[c])
        )
        envelope = np.maximum.accumulate(precision[::-1])[::-1]
        at = np.searchsorted(recall, coco_eval.params.recThrs, side="left")
        sampled = np.where(at < len(recall), envelope[np.minimum(at, len(recall) - 1)], 0.0)
        np.testing.assert_allclose(sampled, coco_curves[:, c], rtol=0, atol=1e-12)
        assert abs(ours["det/ap_per_class"][c] / 100 - coco_curves[:, c].mean()) <= 1 / 101
        assert 0.2 < coco_curves[:, c].mean() < 0.95  # a non-trivial curve
