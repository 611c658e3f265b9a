"""Seed 000's network at the paper's scale: Deformable DeepLab on ResNet-101 (options, counts
by hand), weights from torchvision and mmsegmentation files, and the paper's training recipe
at toy scale. Fast: the big network is only ever built on the meta device."""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn
from torchvision.models.resnet import ResNet
from vidbench.methods.common.deformable import DeformableConv
from vidbench.methods.common.resnet import bottleneck_with_expansion
from vidbench.methods.segmentation.deeplab import (
    FeatureNetwork,
    NetConfig,
    SegmentationNetwork,
)
from vidbench.methods.segmentation.feature_reuse import (
    SegmentationConfig,
    TrainConfig,
    _optimiser,
    network_key,
    train_segmentation_network,
)
from vidbench.methods.segmentation.frame import FrameBaseline
from vidbench.methods.segmentation.interpolation import InterpConfig
from vidbench.methods.segmentation.paper_scale import cost_table, cost_text
from vidbench.methods.segmentation.propagation import PropConfig
from vidbench.methods.segmentation.weights import (
    InitWeights,
    load_mmseg_backbone,
    load_torchvision_resnet,
    to_mmseg_state_dict,
)
from vidbench.registry import RegistryError, parse_config
from vidbench.store import record_id

R101 = (3, 4, 23, 3)
SMALL = {"layers": (1, 1, 1, 1), "width_per_group": 32, "expansion": 1}

# --- identity: checkpoint keys made before the new options existed do not change -----------


def test_added_fields_leave_existing_checkpoint_keys_unchanged() -> None:
    assert NetConfig().to_dict() == {
        "layers": (1, 1, 1, 1),
        "width_per_group": 32,
        "expansion": 1,
        "num_classes": 19,
    }
    assert TrainConfig().to_dict() == {
        "steps": 900,
        "batch_size": 8,
        "lr": 1e-3,
        "weight_decay": 1e-4,
    }
    # the key trained_network used before: {"net": ..., "train": asdict(train), "seed": ...}
    old = {"net": NetConfig().to_dict(), "train": TrainConfig().to_dict(), "seed": 0}
    assert network_key(NetConfig(), TrainConfig(), 0) == old
    paper = NetConfig.paper()
    assert paper.to_dict()["deformable"] is True and "stem" not in paper.to_dict()
    deep = NetConfig(stem="deep")
    for config in (NetConfig(), paper, deep):
        data = config.to_dict()
        assert NetConfig.from_dict({**data, "layers": list(data["layers"])}) == config
    assert NetConfig.from_dict({**NetConfig().to_dict(), "deformable": False}) == NetConfig()
    assert TrainConfig.paper().to_dict()["optimiser"] == "sgd"


def test_options_express_the_papers_network() -> None:
    options = {"layers": "3-4-23-3", "width": "64", "expansion": "4", "deformable": "true"}
    for cls in (SegmentationConfig, PropConfig, InterpConfig):
        config = parse_config(cls, options, "test")
        assert config.net_config(19) == NetConfig.paper(19)
        assert config.net_config(11) == NetConfig.paper(11)
    config = parse_config(SegmentationConfig, {"recipe": "paper", "train_epochs": "2"}, "test")
    assert config.train_config() == TrainConfig.paper(epochs=2)
    assert SegmentationConfig().train_config() == TrainConfig(steps=900)
    assert parse_config(SegmentationConfig, {"stem": "deep"}, "t").net_config(5).stem == "deep"
    bad = [
        {"train_epochs": "3"},  # an option of the paper recipe under the cpu recipe
        {"recipe": "paper", "train_steps": "3"},
        {"imagenet_weights": "a.pth", "stem": "deep"},
        {"mmseg_weights": "a.pth"},  # ResNetV1c needs stem=deep
        {"imagenet_weights": "a.pth", "mmseg_weights": "b.pth", "stem": "deep"},
        {"train_device": "gpu"},
        {"stem": "v1c"},
    ]
    for options in bad:
        with pytest.raises(RegistryError):
            parse_config(SegmentationConfig, options, "test")
    with pytest.raises(FileNotFoundError, match="imagenet_weights: no file at"):
        SegmentationConfig(imagenet_weights="/nonexistent/resnet101.pth").init_weights()


# --- the paper's network, counted by hand -------------------------------------------------


def _resnet_by_hand(height: int, width: int) -> tuple[int, int, tuple[int, int]]:
    """ResNet-101 (torchvision v1.5, res5 dilated): parameters, conv multiply-adds at
    ``height`` x ``width`` and the output grid. BN: 2 parameters per channel, no MACs."""
    params = 3 * 64 * 49 + 2 * 64
    h, w = -(-height // 2), -(-width // 2)
    macs = h * w * 64 * 3 * 49
    h, w = -(-h // 2), -(-w // 2)  # max-pool
    channels = 64
    for stage, (planes, blocks) in enumerate(zip((64, 128, 256, 512), R101)):
        for block in range(blocks):
            stride = 2 if stage in (1, 2) and block == 0 else 1
            out_h, out_w = -(-h // stride), -(-w // stride)
            params += channels * planes + planes * planes * 9 + planes * 4 * planes
            params += 2 * (planes + planes + 4 * planes)
            # conv1 at the input grid, conv2 (the stride) and conv3 at the output grid
            macs += h * w * channels * planes
            macs += out_h * out_w * (planes * planes * 9 + planes * 4 * planes)
            if block == 0:
                params += channels * 4 * planes + 2 * 4 * planes
                macs += out_h * out_w * channels * 4 * planes
            h, w, channels = out_h, out_w, 4 * planes
    return params, macs, (h, w)


def test_paper_network_parameters_and_gmacs_match_hand_counts() -> None:
    trunk_params, trunk_macs, grid = _resnet_by_hand(1024, 2048)
    assert trunk_params == 44_549_160 - (2048 * 1000 + 1000)  # torchvision resnet101 minus fc
    assert grid == (64, 128)  # output stride 16
    positions = grid[0] * grid[1]
    offset_channels = 2 * 4 * 9  # (x, y) x 4 offset groups x 9 taps
    dcn_params = 3 * (512 * offset_channels * 9 + offset_channels)  # 3 res5 blocks, with bias
    dcn_macs = 3 * (positions * offset_channels * 512 * 9 + 4 * 512 * 9 * positions)
    project, score = 2048 * 1024 + 1024, 1024 * 19 + 19
    table = cost_table()
    params, gmacs = table["params"], table["gmacs"]
    assert params["trunk"] == trunk_params and params["dcn"] == dcn_params
    assert params["feature"] == trunk_params + dcn_params == 43_495_704
    assert params["project"] == project and params["score"] == score
    assert params["total"] == trunk_params + dcn_params + project + score == 45_613_355
    with torch.device("meta"):
        net = SegmentationNetwork(NetConfig.paper())
    assert params["total"] == sum(p.numel() for p in net.parameters())
    assert (table["paper_params"] == params).all()
    assert gmacs["trunk"] * 1e9 == pytest.approx(trunk_macs, rel=1e-12)
    assert gmacs["dcn"] * 1e9 == pytest.approx(dcn_macs, rel=1e-12)
    assert gmacs["feature"] * 1e9 == pytest.approx(trunk_macs + dcn_macs, rel=1e-12)
    assert gmacs["project"] * 1e9 == (project - 1024) * positions
    assert gmacs["upsample"] * 1e9 == 4 * 19 * 1024 * 2048
    assert gmacs["total"] == pytest.approx(gmacs["feature"] + gmacs["task"])
    assert "423.17" in cost_text() and "45.613" in cost_text()
    small = cost_table(NetConfig(num_classes=19), (64, 128))
    assert small["paper_params"].isna().all() and small.loc["dcn", "params"] == 0


def test_deformable_res5_is_dilated_and_trains_its_offsets() -> None:
    torch.manual_seed(0)
    net = SegmentationNetwork(NetConfig(**SMALL, num_classes=5, deformable=True))
    res5 = net.features.body[7]
    assert all(isinstance(block.conv2, DeformableConv) for block in res5)
    assert all(block.conv2.dilation == (2, 2) for block in res5)
    assert all(block.conv2.offset.out_channels == 72 for block in res5)
    images = torch.rand(2, 3, 48, 80)
    assert net.features(images).shape == (2, 512, 3, 5)
    # zero offsets: exactly the plain net with res5a dilated, until trained
    plain = SegmentationNetwork(NetConfig(**SMALL, num_classes=5))
    state = {k: v for k, v in net.state_dict().items() if ".offset." not in k}
    plain.load_state_dict(state)
    conv = plain.features.body[7][0].conv2
    conv.dilation, conv.padding = (2, 2), (2, 2)
    torch.testing.assert_close(net.eval()(images), plain.eval()(images), rtol=1e-4, atol=1e-4)
    labels = torch.randint(0, 5, (2, 48, 80))
    nn.functional.cross_entropy(net.train()(images), labels).backward()
    assert all(block.conv2.offset.weight.grad.abs().sum() > 0 for block in res5)


# --- weights -----------------------------------------------------------------------------


def _randomise_batch_norm(module: nn.Module, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    for bn in module.modules():
        if isinstance(bn, nn.BatchNorm2d):
            for tensor in (bn.weight.data, bn.bias.data, bn.running_mean):
                tensor.copy_(torch.randn(tensor.shape, generator=generator))
            bn.running_var.copy_(torch.rand(bn.running_var.shape, generator=generator) + 0.5)


def _torchvision_resnet(seed: int, width: int = 32) -> ResNet:
    torch.manual_seed(seed)
    resnet = ResNet(
        bottleneck_with_expansion(1),
        [1, 1, 1, 1],
        width_per_group=width,
        replace_stride_with_dilation=[False, False, True],
    )
    _randomise_batch_norm(resnet, seed)
    return resnet.eval()


def test_torchvision_resnet_file_loads_into_the_trunk(tmp_path: Path) -> None:
    resnet = _torchvision_resnet(1)
    path = tmp_path / "resnet-small.pth"
    torch.save(resnet.state_dict(), path)
    torch.manual_seed(2)
    net = SegmentationNetwork(NetConfig(**SMALL, num_classes=5, deformable=True))
    task_before = {k: v.clone() for k, v in net.task.state_dict().items()}
    summary = InitWeights("torchvision", path).apply(net)
    assert summary["unused"] == ["fc"] and summary["file"] == path.name
    assert summary["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    ours = net.features.state_dict()
    prefixes = net.features.trunk_prefixes()
    for key, value in resnet.state_dict().items():
        if key.startswith("fc."):
            continue
        name = next(n for n in prefixes if key.startswith(n + "."))
        assert torch.equal(ours[prefixes[name] + key[len(name) :]], value), key
    assert all(not block.conv2.offset.weight.any() for block in net.features.body[7])
    assert all(torch.equal(v, task_before[k]) for k, v in net.task.state_dict().items())
    # (the deformable res5a is dilated; the file's network is not, so compare a plain trunk)
    plain = FeatureNetwork(NetConfig(**SMALL)).eval()
    load_torchvision_resnet(plain, path)
    images = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        trunk = nn.Sequential(*list(resnet.children())[:-2])
        expected = trunk((images - plain.mean) / plain.std)
        torch.testing.assert_close(plain(images), expected)

    torch.save(_torchvision_resnet(3, width=16).state_dict(), tmp_path / "narrow.pth")
    with pytest.raises(ValueError, match=r"narrow\.pth.*shape mismatch"):
        load_torchvision_resnet(FeatureNetwork(NetConfig(**SMALL)), tmp_path / "narrow.pth")
    state = resnet.state_dict()
    del state["layer2.0.conv1.weight"]
    torch.save(state, tmp_path / "partial.pth")
    with pytest.raises(ValueError, match=r"partial\.pth.*missing.*body\.5\.0\.conv1\.weight"):
        load_torchvision_resnet(FeatureNetwork(NetConfig(**SMALL)), tmp_path / "partial.pth")
    with pytest.raises(ValueError, match="stem=torchvision"):
        load_torchvision_resnet(FeatureNetwork(NetConfig(**SMALL, stem="deep")), path)


class _ResNetV1c(nn.Module):
    """mmsegmentation's ResNetV1c layout (stem.0..8, layer1..4), built without mmseg."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        resnet = _torchvision_resnet(seed)
        self.stem = nn.Sequential(
            nn.Conv2d(3, 32, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1, bias=False),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(),
        )
        _randomise_batch_norm(self.stem, seed + 1)
        self.maxpool = resnet.maxpool
        self.layer1, self.layer2 = resnet.layer1, resnet.layer2
        self.layer3, self.layer4 = resnet.layer3, resnet.layer4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.stem(x))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


def test_mmseg_checkpoint_backbone_round_trips(tmp_path: Path) -> None:
    backbone = _ResNetV1c(4).eval()
    state = {f"backbone.{k}": v for k, v in backbone.state_dict().items()}
    for key in ("backbone.stem.0.weight", "backbone.stem.1.running_var", "backbone.stem.7.bias"):
        assert key in state
    heads = {
        "decode_head.conv_seg.weight": torch.rand(19, 512, 1, 1),
        "decode_head.image_pool.1.conv.weight": torch.rand(512, 64, 1, 1),
        "auxiliary_head.convs.0.conv.weight": torch.rand(256, 32, 3, 3),
    }
    meta = {"CLASSES": ("road", "sidewalk"), "PALETTE": [[128, 64, 128]], "iter": 80000}
    path = tmp_path / "deeplabv3_r101-d8_512x1024_80k_cityscapes.pth"
    torch.save({"meta": meta, "state_dict": {**state, **heads}}, path)

    torch.manual_seed(5)
    net = SegmentationNetwork(NetConfig(**SMALL, num_classes=19, stem="deep", deformable=True))
    summary = InitWeights("mmseg", path).apply(net)
    assert summary["unused"] == ["auxiliary_head", "decode_head"]
    assert summary["loaded"] == len(state)
    exported = to_mmseg_state_dict(net.features)
    assert set(exported) == set(state)
    for key, value in state.items():
        assert torch.equal(exported[key], value), key

    plain = FeatureNetwork(NetConfig(**SMALL, stem="deep")).eval()
    load_mmseg_backbone(plain, path)
    images = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        torch.testing.assert_close(plain(images), backbone((images - plain.mean) / plain.std))

    with pytest.raises(ValueError, match="stem=deep"):
        load_mmseg_backbone(FeatureNetwork(NetConfig(**SMALL)), path)
    torch.save({"state_dict": {**state, "backbone.extra.weight": torch.zeros(1)}}, path)
    with pytest.raises(ValueError, match=r"r101-d8.*unexpected key.*extra\.weight"):
        load_mmseg_backbone(FeatureNetwork(NetConfig(**SMALL, stem="deep")), path)


# --- the paper's recipe at toy scale -----------------------------------------------------


class _Frame:
    def __init__(self, image: torch.Tensor) -> None:
        self.image = image


class _Video:
    def __init__(self, seed: int, labelled: tuple[int, ...]) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.images = torch.rand(6, 3, 32, 48, generator=generator)
        rng = np.random.default_rng(seed)
        self.labels = rng.integers(0, 5, (6, 32, 48)).astype(np.uint8)
        self.label_indices = labelled

    def frame(self, index: int, is_key: bool = False) -> _Frame:
        return _Frame(self.images[index].clone())

    def label(self, index: int) -> np.ndarray:
        return self.labels[index]


class _Workspace:
    seed = 0
    num_classes = 5

    def __init__(self, root: Path) -> None:
        self.root = root
        self.keys: dict[str, dict[str, Any]] = {}
        self.videos = [_Video(1, (1, 3, 4)), _Video(2, (2, 5))]

    def train_videos(self) -> list[_Video]:
        return self.videos

    def checkpoint(self, name: str, key: dict[str, Any], build: Any) -> Path:
        path = self.root / f"{name}-{record_id(key)}.pt"
        if not path.exists():
            build(path)
        self.keys[name] = key
        return path


def test_paper_recipe_schedule_and_optimiser() -> None:
    net = SegmentationNetwork(NetConfig(**SMALL, num_classes=5))
    train = TrainConfig.paper(epochs=2)
    assert train.total_steps(5) == 2 * 2  # batch 4: ceil(5 / 4) steps per epoch
    optimiser, schedule = _optimiser(net, train, total_steps=8)
    assert isinstance(optimiser, torch.optim.SGD)
    group = optimiser.param_groups[0]
    assert (group["momentum"], group["weight_decay"], group["lr"]) == (0.9, 5e-4, 1e-3)
    lrs = []
    for _ in range(8):
        lrs.append(optimiser.param_groups[0]["lr"])
        optimiser.step()
        schedule.step()
    assert lrs == pytest.approx([1e-3] * 6 + [1e-4] * 2)  # / 10 after 3/4 of the steps


def test_paper_recipe_trains_from_imagenet_weights_at_toy_scale(tmp_path: Path) -> None:
    weights = tmp_path / "resnet-small.pth"
    torch.save(_torchvision_resnet(7).state_dict(), weights)
    options = {"recipe": "paper", "train_epochs": "2", "imagenet_weights": str(weights)}
    config = parse_config(SegmentationConfig, options, "frame")
    assert config.device() == ("cuda" if torch.cuda.is_available() else "cpu")
    workspace = _Workspace(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        method = FrameBaseline(config, workspace)
    assert not [w for w in caught if "from scratch" in str(w.message)]  # weights are given
    key = workspace.keys["segmentation-network"]
    assert key == method.net_key
    assert key["train"] == TrainConfig.paper(2).to_dict()
    assert key["init"] == {
        "format": "torchvision",
        "sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
    }
    checkpoint = torch.load(next(tmp_path.glob("segmentation-network-*.pt")), weights_only=True)
    assert len(checkpoint["losses"]) == 2 * 2  # 5 labelled frames, batch 4, 2 epochs
    assert all(np.isfinite(checkpoint["losses"]))
    assert checkpoint["init"]["unused"] == ["fc"]
    # BatchNorm frozen: statistics and affine parameters are the file's; convs have moved
    reference = _torchvision_resnet(7).state_dict()
    trunk = method.net.features.state_dict()
    assert torch.equal(trunk["body.1.running_mean"], reference["bn1.running_mean"])
    assert torch.equal(trunk["body.7.0.bn2.weight"], reference["layer4.0.bn2.weight"])
    assert not torch.equal(trunk["body.7.0.conv2.weight"], reference["layer4.0.conv2.weight"])

    with pytest.warns(UserWarning, match="from scratch"):
        FrameBaseline(SegmentationConfig(recipe="paper", train_epochs=1), _Workspace(tmp_path))


def test_paper_recipe_trains_the_deformable_deep_stem_net(tmp_path: Path) -> None:
    net_config = NetConfig(**SMALL, num_classes=5, deformable=True, stem="deep")
    path = tmp_path / "net.pt"
    videos = _Workspace(tmp_path).videos
    train_segmentation_network(videos, net_config, TrainConfig.paper(epochs=1), 0, path)
    checkpoint = torch.load(path, weights_only=True)
    assert NetConfig.from_dict(checkpoint["net_config"]) == net_config
    assert "init" not in checkpoint and "train_device" not in checkpoint
    net = SegmentationNetwork(net_config)
    net.load_state_dict(checkpoint["state_dict"])
    assert any(block.conv2.offset.weight.any() for block in net.features.body[7])


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without CUDA")
def test_cuda_training_is_refused_without_cuda() -> None:
    with pytest.raises(ValueError, match="no CUDA"):
        SegmentationConfig(recipe="paper", train_device="cuda").device()
