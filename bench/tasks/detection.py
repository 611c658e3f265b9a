"""Video object detection (seed 001): boxes per frame, ImageNet VID mAP per key distance."""

from __future__ import annotations

from typing import Any

import torch
from vidbench.api import DetectionPrediction, VideoInfo
from vidbench.protocols import FixedKey
from vidbench.tasks import CiRun, Headline, Task
from vidbench.vid_eval import DetectionEvaluator


class Detection(Task):
    """Scores ``DetectionPrediction``s with ``fixed-key@v1``; speed on ``stream-fixed-key@v1``.
    Strata are each frame's signed distance from its key; the worst is the lowest mAP over them."""

    name = "detection"
    prediction_type = DetectionPrediction
    cost_unit = "frame"
    protocol = FixedKey()
    headline = (
        Headline("det/map", "mAP (%)", 3.0),
        Headline("det/map_worst", "mAP (worst key distance) (%)", 6.0),
    )
    per_stratum_metric = "det/map_per_stratum"
    worst_metric = "det/map_worst"
    default_dataset = "synthdet"
    speed_baseline = "rfcn"
    baseline_shares = (
        "layers", "width", "expansion", "feature_channels", "dcn", "train_steps", "recipe",
        "train_device",
    )
    must_count = ("feature", "task", "warp", "propagate")
    report = "vidbench.report.detection:render"
    ci = CiRun(
        dataset="synthdet",
        methods=(
            "rfcn:train_steps=200",
            "dff:train_steps=200:flownet_pretrain_steps=80:flownet_finetune_steps=40",
            "psla:train_steps=200:psla_steps=80",
        ),
        intervals=(1, 5),
        dataset_options={"train_videos": "8", "val_videos": "6", "frames": "32"},
    )

    def evaluator(self, dataset: Any) -> DetectionEvaluator:
        return DetectionEvaluator(dataset.num_classes)

    def check_prediction(self, prediction: Any, video: VideoInfo, num_classes: int) -> None:
        if not isinstance(prediction, DetectionPrediction):
            raise ValueError(f"Expected a DetectionPrediction, got {type(prediction).__name__}.")
        count = len(prediction.scores)
        if prediction.boxes.shape != (count, 4) or prediction.labels.shape != (count,):
            raise ValueError(
                f"boxes {tuple(prediction.boxes.shape)}, scores ({count},), labels "
                f"{tuple(prediction.labels.shape)}: expected (N, 4), (N,), (N,)."
            )
        boxes = prediction.boxes
        inside = (
            (boxes[:, 0] >= 0)
            & (boxes[:, 1] >= 0)
            & (boxes[:, 2] <= video.width - 1)
            & (boxes[:, 3] <= video.height - 1)
            & (boxes[:, 2] >= boxes[:, 0])
            & (boxes[:, 3] >= boxes[:, 1])
        )
        if not bool(inside.all()):
            raise ValueError("Boxes outside the frame or with x2 < x1 / y2 < y1.")
        if count and not (0 <= int(prediction.labels.min()) <= int(prediction.labels.max()) < num_classes):
            raise ValueError(f"Class ids outside 0..{num_classes - 1}.")
        if count and not bool(((prediction.scores >= 0) & (prediction.scores <= 1)).all()):
            raise ValueError("Scores outside [0, 1].")

    def agreement(self, a: DetectionPrediction, b: DetectionPrediction) -> float:
        """1.0 when both frames carry the same detections (boxes to 1e-4 px), else 0.0."""
        same = (
            a.boxes.shape == b.boxes.shape
            and torch.equal(a.labels, b.labels)
            and torch.allclose(a.boxes, b.boxes, atol=1e-4)
            and torch.allclose(a.scores, b.scores, atol=1e-5)
        )
        return 1.0 if same else 0.0
