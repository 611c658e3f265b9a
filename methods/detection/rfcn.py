"""R-FCN detector, the per-frame baseline of seed 001, split into a feature and a task network.

Seed 001 sec. 3.5 builds on DFF's R-FCN (docs/reference-notes.md §2): ResNet-101 with a
dilated res5 (output stride 16, all res5 3x3 convs at dilation 2), a 3x3 conv at dilation 6 to
1024 channels + ReLU (DFF's ``feat_conv_3x3``) closing the feature network N_f. The task network
N_t splits those channels in halves as DFF does: the RPN reads the first half (1x1 convs to
2 objectness logits and 4 box deltas per anchor; 3 sizes x 3 ratios at stride 16), R-FCN the
second half (1x1 convs to k*k*(C+1) position-sensitive score maps and k*k*4 class-agnostic box
maps, position-sensitive RoI align with k = 7, vote by average, softmax). Detections are decoded
from the proposals, clipped, kept per class by NMS and cut to the top N per image.
PSLA's DenseFT splits N_f after res4b3 (sec. 3.5): ``low_level`` / ``high_level`` below.

Deviations: torchvision's bilinear ``ps_roi_align`` (fixed ``sampling_ratio``) stands in for
MXNet's PSROIPooling; the box maps have k*k*4 channels (R-FCN paper) where DFF's code keeps
k*k*8 (background + foreground deltas, of which only the foreground half is used); weights are
trained from scratch (no ImageNet weights can be downloaded). ``dcn=True`` makes the res5 3x3
convs deformable as Deformable R-FCN (4 offset groups, offsets from a zero-initialised 3x3
conv) but keeps R-FCN's plain position-sensitive pooling.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from torchvision.models.detection._utils import BoxCoder
from torchvision.models.resnet import ResNet
from torchvision.ops import batched_nms, clip_boxes_to_image, nms, ps_roi_align, remove_small_boxes
from vidbench.api import DetectionPrediction
from vidbench.methods.common.deformable import DeformableConv
from vidbench.methods.common.resnet import bottleneck_with_expansion

FEATURE_STRIDE = 16
FEATURE_DILATION = 6  # DFF's feat_conv_3x3
RES5_DILATION = 2
RPN_BOX_WEIGHTS = (10.0, 10.0, 2.5, 2.5)  # DFF's ANCHOR_STDS (0.1, 0.1, 0.4, 0.4)
RFCN_BOX_WEIGHTS = (10.0, 10.0, 5.0, 5.0)  # DFF's BBOX_STDS (0.1, 0.1, 0.2, 0.2)
MIN_BOX_SIZE_PX = 1.0  # so that inclusive corners keep x1 <= x2
INIT_STD = 0.01  # DFF's init of every new conv of the detector


@dataclass(frozen=True)
class DetectorConfig:
    """Architecture and box-handling options of the R-FCN detector.

    ``layers``/``width_per_group``/``expansion`` are torchvision ResNet's knobs (ResNet-101:
    (3, 4, 23, 3), 64, 4). ``low_level`` ends after ``low_level_blocks`` res4 blocks
    (ResNet-101: 4, i.e. res4a..res4b3, an early point of res4). Anchors are ``anchor_sizes``
    px squares reshaped to each h/w ratio. ``rpn_pre_nms``/``rpn_post_nms`` serve training and
    testing alike (DFF's yaml). ``sampling_ratio`` is ps_roi_align's (fixed, so the cost is).

    The default is a small CPU network for 128x256 frames (2.7 M parameters, ~0.2 s per
    training step of 4 frames on one core): ResNet (1, 1, 2, 1) at width 32 without expansion,
    split after the first of its two res4 blocks (the analogue of res4b3), 256 feature
    channels, anchors of 16-64 px, 50 proposals. ``paper()`` is seed 001's setting.
    """

    layers: tuple[int, int, int, int] = (1, 1, 2, 1)
    width_per_group: int = 32
    expansion: int = 1
    low_level_blocks: int = 1
    dcn: bool = False
    deformable_groups: int = 4
    feature_channels: int = 256
    anchor_sizes: tuple[float, ...] = (16.0, 32.0, 64.0)
    anchor_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
    rpn_pre_nms: int = 300
    rpn_post_nms: int = 50
    rpn_nms_threshold: float = 0.7
    rpn_batch: int = 256
    rpn_positive_fraction: float = 0.5
    rpn_positive_iou: float = 0.7
    rpn_negative_iou: float = 0.3
    roi_positive_iou: float = 0.5
    ohem_rois: int = 128
    position_grid: int = 7
    sampling_ratio: int = 2
    num_classes: int = 3
    nms_threshold: float = 0.3
    score_threshold: float = 1e-3
    detections_per_image: int = 100

    def __post_init__(self) -> None:
        if not 1 <= self.low_level_blocks <= self.layers[2]:
            raise ValueError(
                f"DetectorConfig.low_level_blocks={self.low_level_blocks}: must split res4, "
                f"which has {self.layers[2]} blocks (allowed 1..{self.layers[2]})."
            )
        if self.feature_channels % 2:
            raise ValueError(
                f"DetectorConfig.feature_channels={self.feature_channels}: must be even "
                "(RPN and R-FCN each read one half, as DFF)."
            )

    @property
    def num_anchors(self) -> int:
        return len(self.anchor_sizes) * len(self.anchor_ratios)

    @property
    def trunk_channels(self) -> int:
        """Channels of res5's output (2048 in ResNet-101)."""
        return 512 * self.expansion

    @property
    def low_level_channels(self) -> int:
        """Channels of ``low_level``'s output, res4 (1024 in ResNet-101)."""
        return 256 * self.expansion

    @classmethod
    def paper(cls, dcn: bool = False, num_classes: int = 30) -> DetectorConfig:
        """Seed 001 / DFF: ResNet-101, 1024 feature channels, anchors 16 x (8, 16, 32) px,
        RPN 6000 -> NMS 0.7 -> 300 proposals, OHEM on 128 RoIs, NMS 0.3, 300 per image."""
        return cls(
            layers=(3, 4, 23, 3),
            width_per_group=64,
            expansion=4,
            low_level_blocks=4,
            dcn=dcn,
            feature_channels=1024,
            anchor_sizes=(128.0, 256.0, 512.0),
            rpn_pre_nms=6000,
            rpn_post_nms=300,
            num_classes=num_classes,
            detections_per_image=300,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DetectorConfig:
        tuples = ("layers", "anchor_sizes", "anchor_ratios")
        return cls(**{k: tuple(v) if k in tuples else v for k, v in data.items()})


@dataclass(frozen=True)
class Detections:
    """Detections of one image: ``boxes`` (N, 4) float32 xyxy pixels with inclusive corners
    (width = x2 - x1 + 1, as vidbench.api.DetectionTarget), ``scores`` (N,) float32,
    ``labels`` (N,) int64 class ids 0..C-1; sorted by decreasing score."""

    boxes: torch.Tensor
    scores: torch.Tensor
    labels: torch.Tensor

    def prediction(self, index: int, **meta: Any) -> DetectionPrediction:
        """The harness's typed prediction for frame ``index`` (same tensors, same convention)."""
        return DetectionPrediction(index, self.boxes, self.scores, self.labels, dict(meta))


def inclusive_to_edges(boxes: torch.Tensor) -> torch.Tensor:
    """Inclusive pixel corners -> pixel-edge coordinates (x2 + 1), used inside the network."""
    return boxes + boxes.new_tensor([0.0, 0.0, 1.0, 1.0])


def edges_to_inclusive(boxes: torch.Tensor) -> torch.Tensor:
    """Pixel-edge coordinates -> inclusive pixel corners (x2 - 1), the harness's convention."""
    return boxes - boxes.new_tensor([0.0, 0.0, 1.0, 1.0])


class FeatureNetwork(nn.Module):
    """N_f: (N,3,H,W) in [0,1] -> (N, feature_channels, ceil(H/16), ceil(W/16)).

    ``low_level`` runs the ResNet to the ``low_level_blocks``-th res4 block (res4b3 in
    ResNet-101, PSLA's N_l); ``high_level`` runs the rest (res4, dilated res5, 3x3 conv to
    ``feature_channels``, ReLU), so ``forward(x) == high_level(low_level(x))``.
    """

    def __init__(self, config: DetectorConfig) -> None:
        super().__init__()
        trunk = ResNet(
            bottleneck_with_expansion(config.expansion),
            list(config.layers),
            width_per_group=config.width_per_group,
            replace_stride_with_dilation=[False, False, True],
        )
        # torchvision keeps res5a's 3x3 conv at dilation 1; DFF dilates all res5 3x3 convs.
        first = trunk.layer4[0].conv2
        first.dilation, first.padding = (RES5_DILATION,) * 2, (RES5_DILATION,) * 2
        if config.dcn:
            for block in trunk.layer4:
                block.conv2 = DeformableConv(block.conv2, config.deformable_groups)
        split = config.low_level_blocks
        self.low = nn.Sequential(
            trunk.conv1,
            trunk.bn1,
            trunk.relu,
            trunk.maxpool,
            trunk.layer1,
            trunk.layer2,
            trunk.layer3[:split],
        )
        self.high = nn.Sequential(trunk.layer3[split:], trunk.layer4)
        self.conv = nn.Conv2d(
            config.trunk_channels,
            config.feature_channels,
            3,
            padding=FEATURE_DILATION,
            dilation=FEATURE_DILATION,
        )
        nn.init.normal_(self.conv.weight, std=INIT_STD)
        nn.init.zeros_(self.conv.bias)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def low_level(self, images: torch.Tensor) -> torch.Tensor:
        """(N,3,H,W) in [0,1] -> res4 features after ``low_level_blocks`` blocks (stride 16)."""
        return self.low((images - self.mean) / self.std)

    def high_level(self, low: torch.Tensor) -> torch.Tensor:
        """``low_level``'s output -> the detector's features."""
        return F.relu(self.conv(self.high(low)))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.high_level(self.low_level(images))


def _new_conv(in_channels: int, out_channels: int) -> nn.Conv2d:
    conv = nn.Conv2d(in_channels, out_channels, 1)
    nn.init.normal_(conv.weight, std=INIT_STD)
    nn.init.zeros_(conv.bias)
    return conv


class TaskNetwork(nn.Module):
    """N_t: RPN on the first half of the feature channels, R-FCN on the second half (DFF).

    ``forward(features, image_size)`` returns one ``Detections`` per image; the pieces
    (``rpn``, ``propose``, ``head``, ``anchors``) are public for training and for methods
    that reuse proposals.
    """

    def __init__(self, config: DetectorConfig) -> None:
        super().__init__()
        self.config = config
        half = config.feature_channels // 2
        k2 = config.position_grid**2
        self.rpn_score = _new_conv(half, 2 * config.num_anchors)
        self.rpn_box = _new_conv(half, 4 * config.num_anchors)
        self.ps_score = _new_conv(config.feature_channels - half, k2 * (config.num_classes + 1))
        self.ps_box = _new_conv(config.feature_channels - half, k2 * 4)
        self.rpn_coder = BoxCoder(RPN_BOX_WEIGHTS)
        self.rfcn_coder = BoxCoder(RFCN_BOX_WEIGHTS)

    def anchors(self, height: int, width: int, device: torch.device) -> torch.Tensor:
        """(height*width*A, 4) anchors in pixel-edge xyxy, ordered (y, x, anchor) as ``rpn``'s
        outputs; centred on each stride-16 cell (DFF's base anchor [0, 0, 15, 15])."""
        sizes = torch.tensor(self.config.anchor_sizes, dtype=torch.float32, device=device)
        ratios = torch.tensor(self.config.anchor_ratios, dtype=torch.float32, device=device)
        half_w = (sizes[None, :] / ratios[:, None].sqrt()).reshape(-1) / 2
        half_h = (sizes[None, :] * ratios[:, None].sqrt()).reshape(-1) / 2
        base = torch.stack([-half_w, -half_h, half_w, half_h], dim=1)
        ys = (torch.arange(height, device=device, dtype=torch.float32) + 0.5) * FEATURE_STRIDE
        xs = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) * FEATURE_STRIDE
        cy, cx = torch.meshgrid(ys, xs, indexing="ij")
        centres = torch.stack([cx, cy, cx, cy], dim=-1).reshape(-1, 1, 4)
        return (centres + base[None]).reshape(-1, 4)

    def rpn(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Objectness logits (N, HWA, 2) (background, object) and deltas (N, HWA, 4)."""
        rpn_features = features[:, : features.shape[1] // 2]
        n = features.shape[0]
        scores = self.rpn_score(rpn_features).permute(0, 2, 3, 1).reshape(n, -1, 2)
        deltas = self.rpn_box(rpn_features).permute(0, 2, 3, 1).reshape(n, -1, 4)
        return scores, deltas

    def propose(
        self,
        scores: torch.Tensor,
        deltas: torch.Tensor,
        anchors: torch.Tensor,
        image_size: tuple[int, int],
    ) -> list[torch.Tensor]:
        """Per image (R, 4) proposals in pixel-edge xyxy: top ``rpn_pre_nms`` by objectness,
        decoded, clipped, NMS at ``rpn_nms_threshold``, top ``rpn_post_nms``."""
        config = self.config
        proposals = []
        objectness = scores.softmax(-1)[..., 1]
        for image_scores, image_deltas in zip(objectness, deltas):
            top = image_scores.topk(min(config.rpn_pre_nms, len(image_scores))).indices
            boxes = self.rpn_coder.decode_single(image_deltas[top], anchors[top])
            boxes = clip_boxes_to_image(boxes, image_size)
            keep = remove_small_boxes(boxes, MIN_BOX_SIZE_PX)
            boxes, kept_scores = boxes[keep], image_scores[top][keep]
            keep = nms(boxes, kept_scores, config.rpn_nms_threshold)[: config.rpn_post_nms]
            proposals.append(boxes[keep])
        return proposals

    def head(
        self, features: torch.Tensor, proposals: list[torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """R-FCN on concatenated ``proposals``: class logits (R, C+1) (0 = background) and
        class-agnostic deltas (R, 4), each the average vote over the k x k bins."""
        k = self.config.position_grid
        rfcn_features = features[:, features.shape[1] // 2 :]
        rois = torch.cat(
            [
                torch.cat([boxes.new_full((len(boxes), 1), float(i)), boxes], dim=1)
                for i, boxes in enumerate(proposals)
            ]
        )
        pool = {
            "output_size": k,
            "spatial_scale": 1.0 / FEATURE_STRIDE,
            "sampling_ratio": self.config.sampling_ratio,
        }
        logits = ps_roi_align(self.ps_score(rfcn_features), rois, **pool).mean((2, 3))
        deltas = ps_roi_align(self.ps_box(rfcn_features), rois, **pool).mean((2, 3))
        return logits, deltas

    def detect(
        self,
        proposals: list[torch.Tensor],
        logits: torch.Tensor,
        deltas: torch.Tensor,
        image_size: tuple[int, int],
    ) -> list[Detections]:
        """Softmax, box decoding, per-class NMS, top N; boxes leave with inclusive corners."""
        config = self.config
        height, width = image_size
        probabilities = logits.softmax(-1)
        boxes = self.rfcn_coder.decode_single(deltas, torch.cat(proposals))
        boxes = clip_boxes_to_image(boxes, image_size)
        out = []
        for image_probabilities, image_boxes in zip(
            probabilities.split([len(p) for p in proposals]),
            boxes.split([len(p) for p in proposals]),
        ):
            classes = config.num_classes
            scores = image_probabilities[:, 1:].reshape(-1)
            labels = torch.arange(classes, device=scores.device).repeat(len(image_boxes))
            candidates = image_boxes.repeat_interleave(classes, dim=0)
            keep = torch.where(scores > config.score_threshold)[0]
            keep = keep[remove_small_boxes(candidates[keep], MIN_BOX_SIZE_PX)]
            candidates, scores, labels = candidates[keep], scores[keep], labels[keep]
            keep = batched_nms(candidates, scores, labels, config.nms_threshold)
            keep = keep[: config.detections_per_image]
            corners = edges_to_inclusive(candidates[keep])
            limit = corners.new_tensor([width - 1, height - 1, width - 1, height - 1])
            corners = torch.minimum(corners.clamp(min=0), limit)
            out.append(Detections(corners, scores[keep], labels[keep]))
        return out

    def forward(self, features: torch.Tensor, image_size: tuple[int, int]) -> list[Detections]:
        scores, deltas = self.rpn(features)
        anchors = self.anchors(features.shape[2], features.shape[3], features.device)
        proposals = self.propose(scores, deltas, anchors, image_size)
        logits, box_deltas = self.head(features, proposals)
        return self.detect(proposals, logits, box_deltas, image_size)


class Detector(nn.Module):
    """N_f followed by N_t: (N,3,H,W) images in [0,1] -> one ``Detections`` per image."""

    def __init__(self, config: DetectorConfig) -> None:
        super().__init__()
        self.config = config
        self.features = FeatureNetwork(config)
        self.task = TaskNetwork(config)

    def forward(self, images: torch.Tensor) -> list[Detections]:
        return self.task(self.features(images), (images.shape[-2], images.shape[-1]))

