"""The R-FCN detector (vidbench.methods.detection.rfcn*): shapes, the DenseFT split, box conventions,
losses, training on tiny H.264 videos, the DCN variant, determinism, parameters and FLOPs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from vidbench.api import DetectionTarget
from vidbench.boxes import box_iou
from vidbench.datasets.detection.boxed_video import DetectionVideo
from vidbench.flops import flop_counter
from vidbench.methods.detection.paper_scale import gmacs_per_frame, parameter_breakdown
from vidbench.methods.detection.rfcn import (
    DeformableConv,
    Detections,
    Detector,
    DetectorConfig,
    FeatureNetwork,
    TaskNetwork,
)
from vidbench.methods.detection.rfcn_train import (
    DetectorTrainConfig,
    VideoSamples,
    detection_losses,
    feature_losses,
    flip_target,
    load_detector,
    train_detector,
    train_detector_on_videos,
)

from tests.boxes_fixture import tiny_video

TRAIN_STEPS = 200
CONFIG = DetectorConfig()


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> list[DetectionVideo]:
    """Three training videos and a held-out fourth."""
    root = tmp_path_factory.mktemp("rfcn_videos")
    return [tiny_video(root, f"tiny{i}", 100 + i) for i in range(4)]


@pytest.fixture(scope="module")
def trained(
    videos: list[DetectionVideo], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, list[dict[str, float]]]:
    path = tmp_path_factory.mktemp("rfcn_checkpoint") / "rfcn.pt"
    curve = train_detector_on_videos(videos[:3], CONFIG, TRAIN_STEPS, 0, path)
    return path, curve


def _untrained(seed: int = 0, config: DetectorConfig = CONFIG) -> Detector:
    torch.manual_seed(seed)
    return Detector(config).eval()


def _frames(video: DetectionVideo) -> torch.Tensor:
    return torch.stack([video.frame(i).image for i in video.label_indices])


def _mean_max_iou(detector: Detector, videos: list[DetectionVideo], top: int = 5) -> float:
    """Per ground-truth object, the best IoU among the ``top`` highest-scored detections of its
    class (0 when there is none), averaged over all objects of all frames."""
    values = []
    with torch.no_grad():
        for video in videos:
            for index, found in zip(video.label_indices, detector.eval()(_frames(video))):
                target = video.label(index)
                for box, label in zip(target.boxes, target.labels):
                    candidates = found.boxes[found.labels == int(label)][:top].numpy()
                    best = box_iou(box[None], candidates).max() if len(candidates) else 0.0
                    values.append(float(best))
    return float(np.mean(values))


def _assert_valid(found: list[Detections], height: int, width: int, config: DetectorConfig) -> None:
    for detections in found:
        boxes = detections.boxes
        assert boxes.dtype == torch.float32 and boxes.shape[1] == 4
        assert len(boxes) == len(detections.scores) == len(detections.labels)
        assert len(boxes) <= config.detections_per_image
        assert (boxes[:, 0] >= 0).all() and (boxes[:, 1] >= 0).all()
        assert (boxes[:, 2] <= width - 1).all() and (boxes[:, 3] <= height - 1).all()
        assert (boxes[:, 2] >= boxes[:, 0]).all() and (boxes[:, 3] >= boxes[:, 1]).all()
        assert detections.labels.dtype == torch.int64
        assert ((detections.labels >= 0) & (detections.labels < config.num_classes)).all()
        assert ((detections.scores > 0) & (detections.scores <= 1)).all()
        assert (detections.scores[:-1] >= detections.scores[1:]).all()


def test_feature_and_task_shapes() -> None:
    torch.manual_seed(0)
    features = FeatureNetwork(CONFIG).eval()
    images = torch.rand(2, 3, 70, 100)
    with torch.no_grad():
        low = features.low_level(images)
        out = features.high_level(low)
    grid = (math.ceil(70 / 16), math.ceil(100 / 16))
    assert low.shape == (2, CONFIG.low_level_channels, *grid)
    assert out.shape == (2, CONFIG.feature_channels, *grid)
    assert (out >= 0).all()  # the closing ReLU
    task = TaskNetwork(CONFIG)
    scores, deltas = task.rpn(out)
    anchors = task.anchors(*grid, out.device)
    assert scores.shape == (2, grid[0] * grid[1] * 9, 2)
    assert deltas.shape == (2, grid[0] * grid[1] * 9, 4)
    assert anchors.shape == (grid[0] * grid[1] * 9, 4)
    widths, heights = anchors[:9, 2] - anchors[:9, 0], anchors[:9, 3] - anchors[:9, 1]
    sides = (widths * heights).sqrt()  # float rounding can split one size: compare rounded
    assert torch.allclose(sides.round().unique(), torch.tensor([16.0, 32.0, 64.0]))
    assert torch.allclose(sides, sides.round(), atol=1e-3)
    assert torch.allclose((anchors[:9, :2] + anchors[:9, 2:]) / 2, torch.tensor([8.0, 8.0]))
    k2 = CONFIG.position_grid**2
    assert task.ps_score.out_channels == k2 * (CONFIG.num_classes + 1)
    assert task.ps_box.out_channels == k2 * 4


def test_features_equal_high_level_of_low_level() -> None:
    torch.manual_seed(1)
    features = FeatureNetwork(CONFIG).eval()
    images = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        assert torch.equal(features(images), features.high_level(features.low_level(images)))
    paper = DetectorConfig.paper()
    assert paper.low_level_blocks == 4 and paper.layers[2] == 23  # res4a, res4b1..res4b3
    with pytest.raises(ValueError, match="low_level_blocks=3"):
        DetectorConfig(layers=(1, 1, 2, 1), low_level_blocks=3)


def test_detections_have_inclusive_corners_inside_the_image(
    trained: tuple[Path, list[dict[str, float]]],
) -> None:
    images = torch.rand(2, 3, 70, 100)  # not a multiple of the stride: boxes clip at the edge
    with torch.no_grad():
        for detector in (_untrained(), load_detector(trained[0])):
            found = detector(images)
            assert len(found) == 2 and sum(len(d.boxes) for d in found) > 0
            _assert_valid(found, 70, 100, detector.config)
    prediction = found[0].prediction(4, key=True)
    assert prediction.index == 4 and prediction.boxes is found[0].boxes
    assert prediction.meta == {"key": True}


def test_losses_are_finite_and_decrease(trained: tuple[Path, list[dict[str, float]]]) -> None:
    curve = trained[1]
    assert len(curve) == TRAIN_STEPS
    assert all(math.isfinite(v) for step in curve for v in step.values())
    start, later = curve[:5], curve[25:30]

    def mean(steps: list[dict[str, float]], *names: str) -> float:
        return float(np.mean([sum(step[n] for n in names) for step in steps]))

    rpn = ("rpn_objectness", "rpn_box")
    rfcn = ("rfcn_class", "rfcn_box")
    assert mean(later, *rpn) < 0.5 * mean(start, *rpn)
    assert mean(later, *rfcn) < 0.5 * mean(start, *rfcn)
    assert curve[0]["rpn_objectness"] == pytest.approx(math.log(2), abs=0.01)
    assert curve[0]["rfcn_class"] == pytest.approx(math.log(CONFIG.num_classes + 1), abs=0.01)
    assert mean(curve[-10:], "total") < 0.25 * mean(start, "total")


def test_trained_detector_finds_the_objects(
    videos: list[DetectionVideo], trained: tuple[Path, list[dict[str, float]]]
) -> None:
    detector, untrained = load_detector(trained[0]), _untrained()
    seen, held_out = videos[:3], videos[3:]
    assert _mean_max_iou(detector, seen) > 0.6
    assert _mean_max_iou(untrained, seen) < 0.3
    trained_held_out = _mean_max_iou(detector, held_out)
    assert trained_held_out > 0.4
    assert trained_held_out > _mean_max_iou(untrained, held_out) + 0.2


def test_checkpoint_records_config_and_curve(trained: tuple[Path, list[dict[str, float]]]) -> None:
    checkpoint = torch.load(trained[0], map_location="cpu", weights_only=True)
    assert DetectorConfig.from_dict(checkpoint["config"]) == CONFIG
    paper = DetectorConfig.paper(dcn=True)
    assert DetectorConfig.from_dict(json.loads(json.dumps(paper.to_dict()))) == paper
    assert checkpoint["losses"] == trained[1]
    assert checkpoint["seed"] == 0 and checkpoint["steps"] == TRAIN_STEPS


def test_training_and_outputs_are_deterministic(
    videos: list[DetectionVideo], tmp_path: Path
) -> None:
    images = _frames(videos[0])[:2]
    with torch.no_grad():
        first, second = _untrained(5)(images), _untrained(5)(images)
    for a, b in zip(first, second):
        assert torch.equal(a.boxes, b.boxes) and torch.equal(a.scores, b.scores)
    samples = VideoSamples(videos[:1])
    runs = [
        train_detector(samples, CONFIG, 3, seed, tmp_path / f"{i}.pt")
        for i, seed in enumerate((7, 7, 8))
    ]
    assert runs[0] == runs[1] and runs[0] != runs[2]
    weights = [torch.load(tmp_path / f"{i}.pt", weights_only=True)["state_dict"] for i in (0, 1)]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_paper_sgd_recipe_runs_at_toy_scale(videos: list[DetectionVideo], tmp_path: Path) -> None:
    """Seed 001 / DFF's recipe: SGD at 2.5e-4, dropped tenfold after 2/3 of the steps; the
    default recipe's key and checkpoint keep their pre-SGD fields."""
    paper = DetectorTrainConfig.paper()
    detector = torch.nn.Linear(2, 2)
    optimiser, schedule = paper.optimiser_for(detector.parameters(), 6)
    rates = []
    for _ in range(6):
        rates.append(optimiser.param_groups[0]["lr"])
        optimiser.step()
        schedule.step()
    assert isinstance(optimiser, torch.optim.SGD) and optimiser.defaults["momentum"] == 0.9
    assert rates == pytest.approx([2.5e-4] * 4 + [2.5e-5] * 2)
    curve = train_detector(VideoSamples(videos[:1]), CONFIG, 3, 0, tmp_path / "sgd.pt", paper)
    saved = torch.load(tmp_path / "sgd.pt", weights_only=True)
    assert len(curve) == 3 and saved["train_config"]["optimiser"] == "sgd"
    assert set(DetectorTrainConfig().to_dict()) == {
        "batch_size", "lr", "weight_decay", "clip_grad_norm", "flip"
    }  # fmt: skip


def test_losses_without_objects_and_with_bad_labels() -> None:
    detector = _untrained().train()
    nothing = DetectionTarget(
        np.zeros((0, 4), np.float32), np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    )
    losses = detection_losses(detector, torch.rand(1, 3, 64, 96), [nothing])
    assert all(math.isfinite(v.item()) for v in losses.values())
    assert losses["rpn_box"].item() == 0 and losses["rfcn_box"].item() == 0
    bad = DetectionTarget(
        np.array([[1, 1, 20, 20]], np.float32), np.array([3]), np.array([0]), np.full(1, np.nan)
    )
    with pytest.raises(ValueError, match="outside 0..2"):
        detection_losses(detector, torch.rand(1, 3, 64, 96), [bad])


def test_feature_losses_train_through_the_features() -> None:
    """DFF/PSLA train their propagation through the frozen task network's losses."""
    task = _untrained().task
    for parameter in task.parameters():
        parameter.requires_grad_(False)
    features = torch.rand(2, CONFIG.feature_channels, 4, 6, requires_grad=True)
    target = DetectionTarget(
        np.array([[10, 10, 40, 30]], np.float32), np.array([2]), np.array([0]), np.full(1, np.nan)
    )
    losses = feature_losses(task, features, (64, 96), [target, target])
    sum(losses.values()).backward()
    half = CONFIG.feature_channels // 2
    assert features.grad is not None
    assert features.grad[:, :half].abs().sum() > 0  # through the RPN
    assert features.grad[:, half:].abs().sum() > 0  # through R-FCN


def test_flip_target_mirrors_the_pixels_of_each_box() -> None:
    image = torch.rand(3, 20, 30)
    target = DetectionTarget(
        np.array([[2, 3, 9, 12], [0, 0, 29, 19]], np.float32),
        np.array([0, 1]),
        np.array([0, 1]),
        np.full(2, np.nan, np.float32),
    )
    flipped = flip_target(target, 30)
    for box, mirrored in zip(target.boxes.astype(int), flipped.boxes.astype(int)):
        patch = image[:, box[1] : box[3] + 1, box[0] : box[2] + 1]
        x1, y1, x2, y2 = mirrored
        assert torch.equal(patch.flip(-1), image.flip(-1)[:, y1 : y2 + 1, x1 : x2 + 1])
    np.testing.assert_array_equal(flip_target(flipped, 30).boxes, target.boxes)


def test_dcn_variant_starts_as_the_plain_conv_and_trains() -> None:
    conv = torch.nn.Conv2d(8, 8, 3, padding=2, dilation=2, bias=False)
    deformable = DeformableConv(conv, groups=4)
    assert deformable.offset.out_channels == 72  # 2 x 4 groups x 9 taps, as Deformable R-FCN
    x = torch.rand(1, 8, 6, 9)
    torch.testing.assert_close(deformable(x), conv(x), rtol=1e-5, atol=1e-5)

    config = DetectorConfig(dcn=True)
    torch.manual_seed(0)
    detector = Detector(config)
    plain = parameter_breakdown(_untrained())
    parts = parameter_breakdown(detector)
    offsets = config.layers[3] * (config.trunk_channels // 2 * 72 * 9 + 72)
    assert parts["dcn_offsets"] == offsets and parts["total"] == plain["total"] + offsets
    images = torch.rand(2, 3, 64, 96)
    target = DetectionTarget(
        np.array([[10, 10, 40, 30]], np.float32), np.array([1]), np.array([0]), np.full(1, np.nan)
    )
    losses = detection_losses(detector.train(), images, [target, target])
    sum(losses.values()).backward()
    deformable = [m for m in detector.modules() if isinstance(m, DeformableConv)]
    offset_grads = [m.offset.weight.grad for m in deformable]
    assert len(offset_grads) == config.layers[3]
    assert all(g is not None and g.abs().sum() > 0 for g in offset_grads)
    with torch.no_grad():
        _assert_valid(detector.eval()(images), 64, 96, config)


def test_flop_formulas_for_torchvision_detection_ops() -> None:
    x = torch.rand(1, 49 * 4, 10, 12)
    rois = torch.tensor([[0, 0.0, 0.0, 50.0, 60.0], [0, 0.0, 0.0, 300.0, 200.0]])
    with flop_counter() as counter:
        torchvision.ops.ps_roi_align(x, rois, 7, 1 / 16, 2)
    assert counter.get_total_flops() == 2 * 4 * (2 * 4 * 49 * 2 * 2)  # 4 MACs per sample
    with flop_counter() as counter:
        torchvision.ops.ps_roi_align(x, rois, 7, 1 / 16, -1)
    # adaptive grid: ceil(3.125/7) x ceil(3.75/7) = 1 and ceil(18.75/7) x ceil(12.5/7) = 6
    assert counter.get_total_flops() == 2 * 4 * (4 * 49 * (1 + 6))

    weight, offset = torch.rand(8, 4, 3, 3), torch.rand(2, 2 * 9, 5, 6)
    with flop_counter() as counter:
        torchvision.ops.deform_conv2d(torch.rand(2, 4, 10, 12), offset, weight, padding=1, stride=2)
    positions = 2 * 5 * 6
    assert counter.get_total_flops() == 2 * (positions * 8 * 4 * 9 + positions * 4 * 9 * 4)


def test_task_network_count_matches_hand_formula() -> None:
    torch.manual_seed(0)
    task = TaskNetwork(CONFIG)
    features = torch.rand(1, CONFIG.feature_channels, 4, 8)
    proposals = [torch.tensor([[0.0, 0.0, 40.0, 30.0], [20.0, 10.0, 100.0, 60.0]])]
    with flop_counter() as counter:
        task.head(features, proposals)
    half, k2, classes = CONFIG.feature_channels // 2, CONFIG.position_grid**2, CONFIG.num_classes
    maps = 4 * 8 * half * (k2 * (classes + 1) + k2 * 4)
    pooling = 2 * (classes + 1 + 4) * k2 * CONFIG.sampling_ratio**2 * 4
    assert counter.get_total_flops() == 2 * (maps + pooling)


def test_meta_count_equals_real_count() -> None:
    detector = _untrained()
    cost = gmacs_per_frame(detector, 64, 128)
    with flop_counter() as counter, torch.no_grad():
        detector.features(torch.rand(1, 3, 64, 128))
    assert cost["feature"] == counter.get_total_flops() / 2e9
    assert cost["task"] > 0 and cost["rois"] == CONFIG.rpn_post_nms


def test_paper_scale_parameters() -> None:
    resnet101 = torchvision.models.resnet101()
    trunk = sum(p.numel() for p in resnet101.parameters()) - 2048 * 1000 - 1000  # without fc
    expected = {
        "resnet": trunk,
        "feature_conv": 2048 * 1024 * 9 + 1024,
        "rpn": 512 * 9 * (2 + 4) + 9 * (2 + 4),
        "rfcn_scores": 512 * 49 * 31 + 49 * 31,
        "rfcn_boxes": 512 * 49 * 4 + 49 * 4,
    }
    for dcn in (False, True):
        parts = parameter_breakdown(Detector(DetectorConfig.paper(dcn=dcn)))
        assert {k: parts[k] for k in expected} == expected
        assert parts["dcn_offsets"] == (3 * (512 * 72 * 9 + 72) if dcn else 0)
    assert sum(expected.values()) == 62_283_049  # the paper reports 59.6 M (see paper_scale)
