"""DFF's flow network as a motion source, its ground-truth chaining, and its training."""

from __future__ import annotations

import numpy as np
import torch
from vidbench.api import Frame
from vidbench.methods.motion.flownet import (
    FlowNetMotion,
    FlowNetSimple,
    FlowTrainConfig,
    compose_backward,
    pretrain_flow,
)
from vidbench.methods.motion.sources import regrid


def frame(image: torch.Tensor, index: int) -> Frame:
    return Frame(index, image, None, None, 8, False)


def test_outputs_sit_on_the_feature_grid_and_start_as_pure_warping() -> None:
    network = FlowNetSimple(feature_channels=24, width=8)
    with torch.no_grad():
        flow, scale = network(torch.rand(2, 3, 72, 136), torch.rand(2, 3, 72, 136))
    assert flow.shape == (2, 2, 5, 9) and scale.shape == (2, 24, 5, 9)
    assert torch.allclose(scale, torch.ones_like(scale))
    source = FlowNetMotion(network)
    with torch.no_grad():
        pixel = source.estimate(
            frame(torch.rand(3, 72, 136), 3), frame(torch.rand(3, 72, 136), 1), 1
        )
    assert pixel.displacement.shape == (2, 72, 136) and pixel.scale is None


def test_chained_ground_truth_adds_up_the_links() -> None:
    flows = np.zeros((5, 2, 32, 48), np.float32)
    flows[:, 0], flows[:, 1] = -3.0, -2.0  # each frame's pixels came from 3 px left, 2 px up
    valid = np.ones((5, 32, 48), bool)
    valid[2, :, :4] = False  # the link 3 -> 2 loses the left edge
    total, ok = compose_backward(flows, valid, current=4, distance=3)
    assert torch.allclose(total[:, 10:-10, 10:-10], torch.tensor([-9.0, -6.0]).view(2, 1, 1))
    assert not bool(ok[:, :6].any()) and bool(ok[10:, 12:].all())


def test_pretraining_fits_rendered_flow_better_than_zero_motion(tiny_dataset) -> None:
    """The training loop learns: on the pairs it trained on, EPE falls below zero motion's.
    (Generalisation is measured by `bench motion` on val videos, not asserted here.)"""
    torch.manual_seed(0)
    videos = tiny_dataset.split("train")
    network = FlowNetSimple(feature_channels=8, width=16)
    config = FlowTrainConfig(
        width=16, pretrain_steps=80, batch_size=4, lr=2e-3, pretrain_max_distance=2
    )
    losses = pretrain_flow(videos, network, config, seed=0)
    assert np.mean(losses[-10:]) < np.mean(losses[:10])
    network.eval()
    learned = zero = 0.0
    for video in videos:
        flows, valid = video.backward_flow()
        for t in range(1, video.info.num_frames):
            current, previous = video.frame(t), video.frame(t - 1)
            hw = (current.image.shape[-2], current.image.shape[-1])
            truth, ok = regrid(
                torch.from_numpy(flows[t - 1]), torch.from_numpy(valid[t - 1]), 1, 16, hw
            )
            with torch.no_grad():
                predicted = FlowNetMotion(network).estimate(current, previous, 16).displacement
            learned += float((predicted - truth).norm(dim=0)[ok].mean())
            zero += float(truth.norm(dim=0)[ok].mean())
    assert learned < 0.9 * zero


def test_published_flownets_layout_loads_and_starts_with_unit_scale(tmp_path) -> None:
    import pytest
    from vidbench.methods.motion.flownet import FlowNetS, load_flownet

    torch.manual_seed(0)
    original = FlowNetS(feature_channels=16).eval()
    published = {k: v for k, v in original.state_dict().items() if not k.startswith("scale")}
    for key in (
        "conv1.0.weight",
        "conv3_1.0.bias",
        "conv6_1.0.weight",
        "deconv2.0.weight",
        "predict_flow2.weight",
        "upsampled_flow3_to_2.weight",
    ):
        assert key in published
    torch.save({"arch": "flownets", "state_dict": published, "div_flow": 20}, tmp_path / "fns.pth")
    loaded = load_flownet(tmp_path / "fns.pth", feature_channels=16)
    a, b = torch.rand(1, 3, 72, 136), torch.rand(1, 3, 72, 136)
    with torch.no_grad():
        flow, scale = loaded(a, b)
        expected, _ = original(a, b)
    assert flow.shape == (1, 2, 5, 9) and torch.equal(flow, expected)
    assert torch.equal(scale, torch.ones_like(scale))

    batch_norm = FlowNetS(feature_channels=16, batch_norm=True).state_dict()
    torch.save({"state_dict": batch_norm}, tmp_path / "fns_bn.pth")
    assert isinstance(load_flownet(tmp_path / "fns_bn.pth", 16).conv1[1], torch.nn.BatchNorm2d)

    torch.save({"state_dict": {"fc.weight": torch.zeros(2)}}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="other.pth: neither a FlowNetS"):
        load_flownet(tmp_path / "other.pth", 16)
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        load_flownet(tmp_path / "missing.pth", 16)
