"""psla-seg's N_l ends at res4b3 (seed 001 sec. 4.1): res4's first four blocks, or all of res4
when the network has fewer (the small default)."""

from __future__ import annotations

import torch
from vidbench.methods.segmentation.deeplab import NetConfig, SegmentationNetwork
from vidbench.methods.segmentation.psla_segmentation import RES4, low_blocks, low_level


def test_low_level_network_stops_at_res4b3() -> None:
    torch.manual_seed(0)
    deep = SegmentationNetwork(NetConfig(layers=(1, 1, 6, 1), width_per_group=8)).eval()
    assert low_blocks(deep, 4) == 4
    images = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        stem = deep.features.body[:RES4]((images - deep.features.mean) / deep.features.std)
        expected = deep.features.body[RES4][:4](stem)
        assert torch.equal(low_level(deep, images, 4), expected)
        whole_res4 = deep.features.body[RES4](stem)
        assert not torch.equal(expected, whole_res4)  # blocks 5 and 6 of res4 are left out
    small = SegmentationNetwork(NetConfig()).eval()
    assert low_blocks(small, 4) == 1
