"""Video recognition (seed 002): class scores after each frame and for the whole video, mAP and
top-1 offline (per video) and online (after the first t frames); cost per video."""

from __future__ import annotations

from typing import Any

import torch
from vidbench.api import RecognitionPrediction, VideoInfo
from vidbench.protocols import Clip
from vidbench.rec_eval import RecognitionEvaluator
from vidbench.tasks import CiRun, Headline, Task


class Recognition(Task):
    """Scores ``RecognitionPrediction``s with ``clip@v1``; speed on ``stream-clip@v1`` (batch 1,
    the paper's latency) and ``offline`` (batch N, its throughput). Strata are online steps
    t = 1..T; the worst is the mAP after the first frame alone."""

    name = "recognition"
    prediction_type = RecognitionPrediction
    cost_unit = "video"
    video_level = True
    protocol = Clip()
    scenarios = ("stream", "offline")
    headline = (
        Headline("rec/map", "mAP (%)", 4.0),
        Headline("rec/top1", "top-1 (%)", 5.0),
    )
    per_stratum_metric = "rec/map_per_stratum"
    worst_metric = "rec/map_worst"
    default_dataset = "synthaction"
    speed_baseline = "tsm+"
    baseline_shares = ("scale", "epochs", "batch", "lr", "global_weights", "local_weights")
    must_count = ("glance", "policy", "focus", "classify")
    report = "vidbench.report.recognition:render"
    ci = CiRun(
        dataset="synthaction",
        methods=(
            "adafocus:epochs=1",
            "adafocus+:epochs=1",
            "tsm+:epochs=1",
            "adafocus-tsm:epochs=1",
        ),
        intervals=(1,),
        speed_videos=16,  # 4 videos of 16 small frames time 0.5 s over 5 rounds: too short
        dataset_options={
            "train_videos": "32",
            "val_videos": "32",
            "frames": "16",
            "height": "64",
            "width": "64",
        },
    )

    def evaluator(self, dataset: Any) -> RecognitionEvaluator:
        return RecognitionEvaluator(dataset.num_classes)

    def check_prediction(self, prediction: Any, video: VideoInfo, num_classes: int) -> None:
        if not isinstance(prediction, RecognitionPrediction):
            raise ValueError(
                f"Expected a RecognitionPrediction, got {type(prediction).__name__}."
            )
        scores = prediction.scores
        if scores.shape != (num_classes,):
            raise ValueError(f"scores {tuple(scores.shape)}: expected ({num_classes},).")
        if not bool(((scores >= 0) & (scores <= 1)).all()):
            raise ValueError("Class scores outside [0, 1]: return softmax probabilities.")
        if abs(float(scores.sum()) - 1.0) > 1e-3:
            raise ValueError(f"Class scores sum to {float(scores.sum()):.4f}, not 1.")

    def agreement(self, a: RecognitionPrediction, b: RecognitionPrediction) -> float:
        """1.0 when both carry the same class scores (to 1e-4; batching may reorder sums)."""
        return 1.0 if torch.allclose(a.scores, b.scores, atol=1e-4) else 0.0
