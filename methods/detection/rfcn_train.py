"""Training of the R-FCN detector (vidbench.methods.detection.rfcn): target assignment, losses, loop.

Losses as R-FCN / DFF (DFF's rfcn yaml, docs/reference-notes.md §2): the RPN samples 256
anchors per image, half positive at most (IoU >= 0.7 or an object's best anchor; negative below
0.3), 2-way softmax cross-entropy plus smooth-L1 on the positives' deltas, both normalised by
the sampled count. R-FCN labels every proposal (plus the ground-truth boxes) by IoU >= 0.5 with
an object, scores all of them and keeps the ``ohem_rois`` hardest per image (OHEM); the loss is
cross-entropy over C+1 classes plus smooth-L1 on the class-agnostic deltas of positives.

Recipe: DFF fine-tunes ImageNet weights with SGD (lr 2.5e-4, 2 epochs, 4 GPUs), which
``DetectorTrainConfig.paper()`` is (``rfcn:recipe=paper``, on a GPU when there is one). By
default the network is trained from scratch on a CPU, so AdamW with a one-cycle schedule and
gradient clipping (as mmtracking's DFF clips at 35) replaces it; horizontal flips as DFF's ``FLIP``. Anchors
that cross the image border take part in the RPN loss (torchvision's convention; DFF's anchor
loader drops them), which matters on small frames where most anchors cross it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.nn import functional as F
from torchvision.models.detection._utils import BalancedPositiveNegativeSampler, Matcher
from torchvision.ops import box_iou
from tqdm import tqdm
from vidbench.api import DetectionTarget, VideoSource, Workspace
from vidbench.methods.detection.rfcn import (
    Detector,
    DetectorConfig,
    TaskNetwork,
    inclusive_to_edges,
)

LOSS_NAMES = ("rpn_objectness", "rpn_box", "rfcn_class", "rfcn_box")


@dataclass(frozen=True)
class DetectorTrainConfig:
    """Optimiser settings of ``train_detector``: the CPU-sized default (AdamW, one-cycle; see
    the module docstring) or ``paper()``, DFF's / seed 001's SGD (lr 2.5e-4 -> 2.5e-5)."""

    batch_size: int = 4
    lr: float = 2e-3
    weight_decay: float = 1e-4
    clip_grad_norm: float = 10.0  # 0: no clipping
    flip: bool = True
    optimiser: Literal["adamw", "sgd"] = "adamw"
    momentum: float = 0.9  # SGD only
    lr_decay_at: float = 2 / 3  # SGD only: lr x 0.1 after this fraction of the steps

    @classmethod
    def paper(cls) -> DetectorTrainConfig:
        """Seed 001 sec. 4.1 / DFF: SGD, lr 2.5e-4 dropped to 2.5e-5 (after 1.333 of DFF's 2
        epochs), momentum 0.9, weight decay 5e-4, one image per GPU on 4 GPUs, no clipping."""
        return cls(lr=2.5e-4, weight_decay=5e-4, clip_grad_norm=0.0, optimiser="sgd")

    def to_dict(self) -> dict[str, Any]:
        """The fields, leaving out the SGD ones while AdamW is used (so keys made before the
        SGD recipe existed stay the same)."""
        data = asdict(self)
        if self.optimiser == "adamw":
            for name in ("optimiser", "momentum", "lr_decay_at"):
                data.pop(name)
        return data

    def optimiser_for(
        self, parameters: Any, steps: int
    ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
        """The optimiser and its per-step schedule."""
        if self.optimiser == "sgd":
            sgd = torch.optim.SGD(
                parameters, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay
            )
            drop = max(1, int(round(steps * self.lr_decay_at)))
            return sgd, torch.optim.lr_scheduler.MultiStepLR(sgd, [drop], gamma=0.1)
        adamw = torch.optim.AdamW(parameters, lr=self.lr, weight_decay=self.weight_decay)
        return adamw, torch.optim.lr_scheduler.OneCycleLR(adamw, self.lr, total_steps=steps)


@dataclass(frozen=True)
class Targets:
    """Ground truth of one image inside the network: pixel-edge boxes (M, 4) float32 and
    labels (M,) int64 with 0 = background, i.e. DetectionTarget's labels + 1."""

    boxes: torch.Tensor
    labels: torch.Tensor

    @classmethod
    def from_target(cls, target: DetectionTarget, device: torch.device) -> Targets:
        boxes = torch.as_tensor(np.asarray(target.boxes, np.float32).reshape(-1, 4), device=device)
        labels = torch.as_tensor(np.asarray(target.labels, np.int64), device=device)
        return cls(inclusive_to_edges(boxes), labels + 1)


def _smooth_l1(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-row smooth-L1 (sigma 1, as DFF with normalised deltas), summed over the 4 deltas."""
    return F.smooth_l1_loss(prediction, target, beta=1.0, reduction="none").sum(-1)


def rpn_losses(
    task: TaskNetwork,
    scores: torch.Tensor,
    deltas: torch.Tensor,
    anchors: torch.Tensor,
    targets: Sequence[Targets],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Objectness cross-entropy and box smooth-L1 over the sampled anchors of every image."""
    config = task.config
    matcher = Matcher(config.rpn_positive_iou, config.rpn_negative_iou, True)
    sampler = BalancedPositiveNegativeSampler(config.rpn_batch, config.rpn_positive_fraction)
    labels, matched_boxes = [], []
    for target in targets:
        if len(target.boxes) == 0:
            labels.append(torch.zeros(len(anchors), dtype=torch.int64, device=anchors.device))
            matched_boxes.append(torch.zeros_like(anchors))
            continue
        matches = matcher(box_iou(target.boxes, anchors))
        image_labels = (matches >= 0).long()
        image_labels[matches == Matcher.BETWEEN_THRESHOLDS] = -1
        labels.append(image_labels)
        matched_boxes.append(target.boxes[matches.clamp(min=0)])
    positive, negative = sampler(labels)
    positive_mask, negative_mask = torch.stack(positive).bool(), torch.stack(negative).bool()
    sampled = positive_mask | negative_mask
    count = max(int(sampled.sum()), 1)
    objectness = F.cross_entropy(scores[sampled], positive_mask[sampled].long(), reduction="sum")
    box_targets = task.rpn_coder.encode_single(
        torch.stack(matched_boxes)[positive_mask], anchors.expand_as(deltas)[positive_mask]
    )
    box = _smooth_l1(deltas[positive_mask], box_targets).sum()
    return objectness / count, box / count


def rfcn_losses(
    task: TaskNetwork,
    features: torch.Tensor,
    proposals: list[torch.Tensor],
    targets: Sequence[Targets],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy and positives' smooth-L1 of R-FCN on the OHEM-selected RoIs."""
    config = task.config
    matcher = Matcher(config.roi_positive_iou, config.roi_positive_iou, False)
    rois, labels, box_targets = [], [], []
    for image_proposals, target in zip(proposals, targets):
        image_rois = torch.cat([image_proposals, target.boxes])
        if len(target.boxes) == 0:
            image_labels = torch.zeros(len(image_rois), dtype=torch.int64, device=features.device)
            image_targets = torch.zeros_like(image_rois)
        else:
            matches = matcher(box_iou(target.boxes, image_rois))
            image_labels = torch.where(matches >= 0, target.labels[matches.clamp(min=0)], 0)
            image_targets = task.rfcn_coder.encode_single(
                target.boxes[matches.clamp(min=0)], image_rois
            )
        rois.append(image_rois)
        labels.append(image_labels)
        box_targets.append(image_targets)
    logits, deltas = task.head(features, rois)
    labels_all, targets_all = torch.cat(labels), torch.cat(box_targets)
    class_loss = F.cross_entropy(logits, labels_all, reduction="none")
    box_loss = _smooth_l1(deltas, targets_all) * (labels_all > 0)
    selected = []
    offset = 0
    for image_rois in rois:
        per_roi = (class_loss + box_loss)[offset : offset + len(image_rois)].detach()
        hardest = per_roi.topk(min(config.ohem_rois, len(image_rois))).indices
        selected.append(hardest + offset)
        offset += len(image_rois)
    chosen = torch.cat(selected)
    return class_loss[chosen].mean(), box_loss[chosen].sum() / len(chosen)


def feature_losses(
    task: TaskNetwork,
    features: torch.Tensor,
    image_size: tuple[int, int],
    targets: Sequence[DetectionTarget],
) -> dict[str, torch.Tensor]:
    """The four losses of the task network on a batch of feature maps (N, C, h, w) of
    ``image_size`` frames, one target per map; the features may be computed, warped or
    propagated (DFF and PSLA train through them)."""
    if len(targets) != len(features):
        raise ValueError(f"feature_losses: {len(features)} feature maps, {len(targets)} targets.")
    classes = task.config.num_classes
    for target in targets:
        labels = np.asarray(target.labels)
        if len(labels) and (labels.min() < 0 or labels.max() >= classes):
            raise ValueError(
                f"feature_losses: target labels {sorted(set(labels.tolist()))} are outside "
                f"0..{classes - 1} (DetectorConfig.num_classes={classes})."
            )
    scores, deltas = task.rpn(features)
    anchors = task.anchors(features.shape[2], features.shape[3], features.device)
    internal = [Targets.from_target(t, features.device) for t in targets]
    rpn_objectness, rpn_box = rpn_losses(task, scores, deltas, anchors, internal)
    with torch.no_grad():
        proposals = task.propose(scores.detach(), deltas.detach(), anchors, image_size)
    rfcn_class, rfcn_box = rfcn_losses(task, features, proposals, internal)
    return dict(zip(LOSS_NAMES, (rpn_objectness, rpn_box, rfcn_class, rfcn_box)))


def detection_losses(
    detector: Detector, images: torch.Tensor, targets: Sequence[DetectionTarget]
) -> dict[str, torch.Tensor]:
    """The four losses of one batch: ``images`` (N,3,H,W) in [0,1], one target per image."""
    size = (images.shape[-2], images.shape[-1])
    return feature_losses(detector.task, detector.features(images), size, targets)


def flip_target(target: DetectionTarget, width: int) -> DetectionTarget:
    """The target of the horizontally mirrored image (inclusive corners: x -> width-1-x)."""
    boxes = np.asarray(target.boxes, np.float32).reshape(-1, 4).copy()
    boxes[:, [0, 2]] = width - 1 - boxes[:, [2, 0]]
    return DetectionTarget(boxes, target.labels, target.track_ids, target.motion_iou)


def _batch(
    samples: Sequence[tuple[torch.Tensor, DetectionTarget]],
    indices: np.ndarray,
    flips: np.ndarray,
) -> tuple[torch.Tensor, list[DetectionTarget]]:
    """Images zero-padded at the bottom/right to the batch's largest size, and their targets."""
    chosen = [samples[int(i)] for i in indices]
    height = max(image.shape[1] for image, _ in chosen)
    width = max(image.shape[2] for image, _ in chosen)
    images = torch.zeros(len(chosen), 3, height, width)
    targets = []
    for row, ((image, target), flip) in enumerate(zip(chosen, flips)):
        if flip:
            image, target = image.flip(-1), flip_target(target, image.shape[2])
        images[row, :, : image.shape[1], : image.shape[2]] = image
        targets.append(target)
    return images, targets


def train_detector(
    samples: Sequence[tuple[torch.Tensor, DetectionTarget]],
    config: DetectorConfig,
    steps: int,
    seed: int,
    path: Path,
    train: DetectorTrainConfig = DetectorTrainConfig(),
    device: str = "cpu",
) -> list[dict[str, float]]:
    """Train a detector from scratch on (image (3,H,W) in [0,1], target) samples drawn at
    random with ``seed``; save the checkpoint (weights, config, recipe, loss curve) at ``path``
    and return the loss curve (one dict of the four losses and their ``total`` per step)."""
    if len(samples) == 0:
        raise ValueError("train_detector: no training samples (is the train split empty?).")
    if steps < 1:
        raise ValueError(f"train_detector: steps must be >= 1, got {steps}.")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    detector = Detector(config).train().to(device)
    optimiser, schedule = train.optimiser_for(detector.parameters(), steps)
    curve = []
    for _ in tqdm(range(steps), desc="train R-FCN", unit="step", leave=False):
        indices = rng.integers(len(samples), size=train.batch_size)
        flips = rng.random(train.batch_size) < 0.5 if train.flip else np.zeros(len(indices))
        images, targets = _batch(samples, indices, flips)
        losses = detection_losses(detector, images.to(device), targets)
        total = sum(losses.values())
        optimiser.zero_grad()
        total.backward()
        if train.clip_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(detector.parameters(), train.clip_grad_norm)
        optimiser.step()
        schedule.step()
        curve.append({"total": total.item(), **{k: v.item() for k, v in losses.items()}})
    torch.save(
        {
            "state_dict": detector.cpu().state_dict(),
            "config": config.to_dict(),
            "train_config": train.to_dict(),
            "steps": steps,
            "seed": seed,
            "losses": curve,
        },
        path,
    )
    return curve


class VideoSamples(Sequence[tuple[torch.Tensor, DetectionTarget]]):
    """Every labelled frame of ``videos`` as (image, target), decoded on access."""

    def __init__(self, videos: Sequence[VideoSource]) -> None:
        self.videos = list(videos)
        self.index = [(v, i) for v, video in enumerate(self.videos) for i in video.label_indices]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(  # type: ignore[override]
        self, position: int
    ) -> tuple[torch.Tensor, DetectionTarget]:
        video, index = self.index[position]
        target = self.videos[video].label(index)
        if not isinstance(target, DetectionTarget):
            raise TypeError(
                f"{self.videos[video].info.name}: label({index}) is {type(target).__name__}, "
                "not a DetectionTarget (a detection dataset is needed)."
            )
        return self.videos[video].frame(index).image, target


def train_detector_on_videos(
    videos: Sequence[VideoSource],
    config: DetectorConfig,
    steps: int,
    seed: int,
    path: Path,
    train: DetectorTrainConfig = DetectorTrainConfig(),
    device: str = "cpu",
) -> list[dict[str, float]]:
    """``train_detector`` on every labelled frame of box-annotated videos
    (vidbench.datasets.detection.boxed_video.DetectionVideo)."""
    return train_detector(VideoSamples(videos), config, steps, seed, path, train, device)


def load_detector(path: Path) -> Detector:
    """The detector saved by ``train_detector``, in eval mode."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    detector = Detector(DetectorConfig.from_dict(checkpoint["config"]))
    detector.load_state_dict(checkpoint["state_dict"])
    return detector.eval()


def trained_detector(
    workspace: Workspace,
    config: DetectorConfig,
    steps: int,
    train: DetectorTrainConfig,
    device: str = "cpu",
) -> Detector:
    """The per-frame detector for the workspace's dataset, trained once (on ``device``, which
    is not part of the key) and cached."""
    if config.num_classes != workspace.num_classes:
        raise ValueError(
            f"trained_detector: config has {config.num_classes} classes, the workspace's "
            f"dataset {workspace.num_classes}."
        )
    key = {"net": config.to_dict(), "train": train.to_dict(), "steps": steps, "seed": workspace.seed}
    path = workspace.checkpoint(
        "rfcn-detector",
        key,
        lambda out: train_detector_on_videos(
            workspace.train_videos(), config, steps, workspace.seed, out, train, device
        ),
    )
    return load_detector(path)
