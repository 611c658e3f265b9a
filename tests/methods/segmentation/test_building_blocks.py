"""Behaviour of the seed-000 building blocks beyond the adapter contract."""

from __future__ import annotations

import torch
from torch.nn import functional as F
from vidbench.flops import flop_counter
from vidbench.meter import FlopMeter
from vidbench.methods.segmentation.deeplab import ConvFusion, NetConfig, SegmentationNetwork
from vidbench.methods.segmentation.feature_reuse import motion_on_feature_grid, propagate
from vidbench.methods.segmentation.interpolation import fuse_simple, interpolate_features


def test_feature_map_is_stride_16_and_task_output_full_size() -> None:
    net = SegmentationNetwork(NetConfig()).eval()
    with torch.no_grad():
        features = net.features(torch.rand(1, 3, 72, 136))
        scores = net.task(features, (72, 136))
    assert features.shape == (1, 512, 5, 9)
    assert scores.shape == (1, 19, 72, 136)
    assert torch.allclose(scores.sum(1), torch.ones(1, 72, 136), atol=1e-5)


def test_conv_fusion_starts_as_average_fusion() -> None:
    net = SegmentationNetwork(NetConfig(num_classes=5)).eval()
    fusion = ConvFusion(net.task.project)
    forward, backward, alpha = torch.rand(1, 512, 3, 4), torch.rand(1, 512, 3, 4), 0.3
    with torch.no_grad():
        fused = fusion(alpha * forward, (1 - alpha) * backward)
        expected = net.task.project(fuse_simple("avg", forward, backward, alpha))
    assert torch.allclose(fused, expected, atol=1e-4)


def test_max_fusion_keeps_the_nearer_keys_scale() -> None:
    a, b = torch.tensor([1.0, 4.0]), torch.tensor([3.0, 2.0])
    assert torch.equal(fuse_simple("max", a, b, 0.5), torch.tensor([3.0, 4.0]))
    assert torch.allclose(fuse_simple("max", a, b, 0.75), torch.tensor([1.0, 4.0]))


def test_one_directional_fusion_keeps_one_keys_map_whatever_alpha() -> None:
    """Table 2's Forward and Backward columns: the preceding key's map alone, or the next's."""
    a, b = torch.tensor([1.0, 4.0]), torch.tensor([3.0, 2.0])
    for alpha in (0.1, 0.5, 0.9):
        assert torch.equal(fuse_simple("forward", a, b, alpha), a)
        assert torch.equal(fuse_simple("backward", a, b, alpha), b)


def test_codec_motion_predicts_the_labelled_frame_on_the_feature_grid(tiny_dataset) -> None:
    """Real H.264 vectors, pooled to the stride-16 grid and chained over 3 frames as prop-mv
    does, carry a key's 16x16-pooled image nearer the labelled frame's than copying does."""
    warped_error = copy_error = 0.0
    for video in tiny_dataset.split("val"):
        frames = [video.frame(i) for i in range(4, 8)]
        key = F.avg_pool2d(frames[0].image[None], 16)
        true = F.avg_pool2d(frames[-1].image[None], 16)
        warped = propagate(key, [motion_on_feature_grid(f) for f in frames[1:]])[-1]
        warped_error += float((warped - true).abs().mean())
        copy_error += float((key - true).abs().mean())
    assert warped_error < 0.95 * copy_error


def test_interpolation_chains_line_up_with_frames() -> None:
    """A feature that moves one cell right per frame: both chains put it where it is at p."""
    features = torch.zeros(1, 1, 1, 8)
    features[..., 1] = 1.0  # at cell 1 in the previous key (frame k)
    next_key = torch.zeros(1, 1, 1, 8)
    next_key[..., 4] = 1.0  # at cell 4 in the next key (frame k+3)
    step = torch.zeros(2, 1, 8)
    step[0] = -16.0  # every block came from one cell (16 px) to the left
    forward, backward = interpolate_features(features, next_key, [step, step], [step, step])
    for p in (1, 2):
        assert int(forward[p - 1].argmax()) == 1 + p
        assert int(backward[p - 1].argmax()) == 1 + p


def test_flop_meter_attributes_work_to_components() -> None:
    net = SegmentationNetwork(NetConfig()).eval()
    meter = FlopMeter()
    with meter, torch.no_grad():
        with meter("feature"):
            features = net.features(torch.rand(1, 3, 64, 128))
        with meter("task"):
            net.task(features, (64, 128))
    with flop_counter() as reference, torch.no_grad():
        net.features(torch.rand(1, 3, 64, 128))
    assert meter.flops["feature"] == reference.get_total_flops()
    assert 0 < meter.flops["task"] < meter.flops["feature"]
