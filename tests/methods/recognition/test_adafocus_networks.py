"""AdaFocus / AdaFocus+ / TSM networks: shapes, policy, crop, rho, temporal shift, streaming
and GMACs per video against the paper's Tables 1-3 (data-free, CPU, batch 1)."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
import torch
from vidbench.methods.recognition.adafocus import (
    PATCH_SIZES,
    AdaFocus,
    AdaFocusConfig,
    BaselineConfig,
    FrameAverage,
    FrameGRU,
    StreamState,
    candidate_grid,
    crop_patches,
    patch_corners,
    solve_rho,
)
from vidbench.methods.recognition.flops import (
    adafocus_plus_gmacs,
    count_gmacs,
    tsm_video_gmacs,
    video_gmacs,
)
from vidbench.methods.recognition.tsm import (
    TSM,
    AdaFocusTSM,
    TemporalShift,
    TSMConfig,
    TSMPlus,
    mobilenet_v2_tsm,
    resnet50_tsm,
    temporal_shift,
)

CLASSES = 7


@pytest.fixture(autouse=True)
def _seed_and_threads() -> Iterator[None]:
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _model(**kwargs: object) -> AdaFocus:
    return AdaFocus(AdaFocusConfig(num_classes=CLASSES, **kwargs)).eval()


def _local_inputs(model: AdaFocus) -> list[torch.Tensor]:
    """Record what f_L receives."""
    seen: list[torch.Tensor] = []
    model.local_cnn.register_forward_hook(lambda _m, args, _o: seen.append(args[0]))
    return seen


@pytest.mark.parametrize(
    ("patch", "candidates"), [(p, 49) for p in PATCH_SIZES] + [(96, 25), (96, 36), (96, 64)]
)
def test_shapes_for_each_patch_and_grid(patch: int, candidates: int) -> None:
    model = _model(patch=patch, num_candidates=candidates)
    seen = _local_inputs(model)
    with torch.no_grad():
        out = model(torch.rand(1, 2, 3, 224, 224))
    assert out["logits"].shape == (1, 2, CLASSES)
    assert out["probs"].shape == (1, 2, candidates)
    assert out["actions"].shape == (1, 2)
    assert seen[0].shape == (2, 3, patch, patch)
    assert torch.allclose(out["probs"].sum(dim=-1), torch.ones(1, 2), atol=1e-5)


def test_candidate_grid_layout() -> None:
    grid = candidate_grid(49)
    assert grid.shape == (49, 2)
    assert grid[0].tolist() == [0.0, 0.0] and grid[-1].tolist() == [1.0, 1.0]
    assert grid[8].tolist() == pytest.approx([1 / 6, 1 / 6])
    assert grid[1].tolist() == pytest.approx([0.0, 1 / 6])
    with pytest.raises(ValueError, match="num_candidates=50"):
        candidate_grid(50)


def test_argmax_patch_deterministic_at_eval_and_sampled_in_training() -> None:
    model = _model(patch=96)
    video = torch.rand(1, 3, 3, 224, 224)
    with torch.no_grad():
        first, second = model(video), model(video)
    assert torch.equal(first["actions"], second["actions"])
    assert torch.equal(first["actions"], first["probs"].argmax(dim=-1))
    logits = torch.tensor([[0.0, 0.0, 5.0, 0.0]])
    model.train()
    draws = torch.stack([model.choose(logits, None) for _ in range(400)])
    assert 0.8 < (draws == 2).float().mean() < 1.0
    model.eval()
    assert model.choose(logits, None).item() == 2


def test_crop_takes_the_right_pixels() -> None:
    frames = torch.arange(2 * 3 * 224 * 224, dtype=torch.float32).reshape(2, 3, 224, 224)
    corners = patch_corners(candidate_grid(49)[[8, 48]], (224, 224), 128)
    assert corners.tolist() == [[16, 16], [96, 96]]
    patches = crop_patches(frames, corners, 128)
    assert torch.equal(patches[0], frames[0, :, 16:144, 16:144])
    assert torch.equal(patches[1], frames[1, :, 96:224, 96:224])
    model = _model(patch=128)
    seen = _local_inputs(model)
    video = torch.rand(1, 2, 3, 224, 224)
    with torch.no_grad():
        model(video, actions=torch.tensor([[3, 45]]))
    # candidate 3 = row 0, col 3 (0.5): left 48; candidate 45 = row 6, col 3: top 96, left 48
    assert torch.equal(seen[0][0], video[0, 0, :, 0:128, 48:176])
    assert torch.equal(seen[0][1], video[0, 1, :, 96:224, 48:176])


def test_patch_larger_than_frame_is_an_error() -> None:
    with pytest.raises(ValueError, match="patch 256"):
        AdaFocusConfig(patch=256)


@pytest.mark.parametrize("eta", [0.5, 0.7, 0.9, 1.0])
def test_rho_keeps_the_top_eta(eta: float) -> None:
    probs = torch.rand(40, 16)
    rho = solve_rho(probs, eta)
    kept = probs >= rho
    count = math.ceil(eta * probs.numel())
    assert int(kept.sum()) == count
    assert torch.equal(kept.flatten(), probs.flatten() >= probs.flatten().topk(count).values[-1])
    with pytest.raises(ValueError, match="eta=0"):
        solve_rho(probs, 0.0)


def test_temporal_shift_moves_the_right_channels() -> None:
    frames, channels = 4, 16
    x = torch.rand(2 * frames, channels, 3, 3)
    out = temporal_shift(x, frames).unflatten(0, (2, frames))
    video = x.unflatten(0, (2, frames))
    fold = channels // 8
    assert torch.equal(out[:, :-1, :fold], video[:, 1:, :fold])
    assert torch.equal(out[:, -1, :fold], torch.zeros_like(out[:, -1, :fold]))
    assert torch.equal(out[:, 1:, fold : 2 * fold], video[:, :-1, fold : 2 * fold])
    assert torch.equal(out[:, 0, fold : 2 * fold], torch.zeros_like(out[:, 0, fold : 2 * fold]))
    assert torch.equal(out[:, :, 2 * fold :], video[:, :, 2 * fold :])
    with pytest.raises(ValueError, match="T=3"):
        temporal_shift(x, 3)


def test_tsm_wraps_residual_branches() -> None:
    resnet = resnet50_tsm(8)
    mobilenet = mobilenet_v2_tsm(8)
    assert sum(isinstance(m, TemporalShift) for m in resnet.modules()) == 16
    assert sum(isinstance(m, TemporalShift) for m in mobilenet.modules()) == 10
    assert all(isinstance(block.conv1, TemporalShift) for block in resnet.layer1)


def test_streaming_equals_whole_video() -> None:
    model = _model(patch=96, num_candidates=25)
    video = torch.rand(2, 3, 3, 224, 224)
    with torch.no_grad():
        whole = model(video)
        state = StreamState()
        for t in range(video.shape[1]):
            step, state = model.step(video[:, t], state)
            assert torch.equal(step.action, whole["actions"][:, t])
            assert torch.allclose(step.logits, whole["logits"][:, t], atol=1e-4)


def test_adafocus_plus_skips_f_l_and_streams() -> None:
    model = _model(patch=96, skip_policy=True)
    seen = _local_inputs(model)
    video = torch.rand(1, 4, 3, 224, 224)
    keep = torch.tensor([[True, False, False, True]])
    with torch.no_grad():
        whole = model(video, keep=keep)
        assert seen[-1].shape[0] == 2
        state = StreamState()
        for t in range(4):
            step, state = model.step(video[:, t], state, keep=keep[:, t])
            assert torch.allclose(step.logits, whole["logits"][:, t], atol=1e-4)
        probs = model(video)["keep_prob"]
        rho = solve_rho(probs, 0.5)
        assert int(model(video, rho=rho)["kept"].sum()) == 2


def _close(measured: float, paper: float) -> bool:
    return abs(measured - paper) <= 0.01 * paper


@pytest.mark.parametrize(("patch", "paper"), [(128, 26.6), (160, 38.6)])
def test_adafocus_gmacs_match_tables_1_2(patch: int, paper: float) -> None:
    gmacs = video_gmacs(AdaFocus(AdaFocusConfig(num_classes=200, patch=patch)), 16)
    assert _close(gmacs, paper), f"P={patch}: {gmacs:.2f} GMACs vs paper {paper}"


def test_adafocus_plus_gmacs_follow_the_keep_mask() -> None:
    model = AdaFocus(AdaFocusConfig(num_classes=200, patch=160, skip_policy=True))
    resnet_at_160 = count_gmacs(model.local_cnn.eval(), torch.zeros(1, 3, 160, 160))
    everything = adafocus_plus_gmacs(model, torch.ones(16, dtype=torch.bool))
    half = adafocus_plus_gmacs(model, torch.arange(16) % 2 == 0)
    nothing = adafocus_plus_gmacs(model, torch.zeros(16, dtype=torch.bool))
    assert resnet_at_160 == pytest.approx(2.0853, abs=1e-4)  # ResNet-50 at 160, no fc
    assert everything - half == pytest.approx(8 * resnet_at_160, rel=1e-6)
    assert everything - nothing == pytest.approx(16 * resnet_at_160, rel=1e-6)


@pytest.mark.parametrize(
    ("name", "paper"),
    [("tsm", 32.7), ("tsm+", 35.1), ("144", 23.5), ("160", 27.5), ("176", 33.7)],
)
def test_table3_gmacs(name: str, paper: float) -> None:
    if name == "tsm":
        gmacs = tsm_video_gmacs(TSM(TSMConfig()), 8)
    elif name == "tsm+":
        gmacs = tsm_video_gmacs(TSMPlus(TSMConfig()), 8)
    else:
        gmacs = tsm_video_gmacs(AdaFocusTSM(TSMConfig(patch=int(name))), 8, 12)
    assert _close(gmacs, paper), f"{name}: {gmacs:.2f} GMACs vs paper {paper}"


def test_adafocus_tsm_one_location_per_video() -> None:
    model = AdaFocusTSM(TSMConfig(num_classes=CLASSES, patch=144)).eval()
    seen: list[torch.Tensor] = []
    model.backbone.register_forward_hook(lambda _m, args, _o: seen.append(args[0]))
    focus = torch.rand(1, 12, 3, 224, 224)
    with torch.no_grad():
        out = model(torch.rand(1, 8, 3, 224, 224), focus)
    assert out["logits"].shape == (1, CLASSES)
    top, left = patch_corners(out["location"], (224, 224), 144)[0].tolist()
    assert torch.equal(seen[0], focus[0, :, :, top : top + 144, left : left + 144])


def test_small_backbones_for_cpu_runs() -> None:
    config = AdaFocusConfig(
        num_classes=CLASSES, patch=48, num_candidates=25, frame_size=(112, 112),
        global_width=0.5, local_arch="resnet18", hidden=32, skip_policy=True,
    )
    model = AdaFocus(config).eval()
    seen = _local_inputs(model)
    with torch.no_grad():
        out = model(torch.rand(2, 3, 3, 112, 112))
    assert out["logits"].shape == (2, 3, CLASSES)
    assert out["keep_prob"].shape == (2, 3)
    assert seen[0].shape[1:] == (3, 48, 48)
    assert model.local_cnn.out_channels == 512 and model.classifier_gru.hidden_size == 32
    with pytest.raises(ValueError, match="local_arch"):
        AdaFocusConfig(local_arch="vgg")


def test_small_tsm_models() -> None:
    config = TSMConfig(
        num_classes=CLASSES, glance_frames=4, focus_frames=6, patch=32, frame_size=(64, 64),
        global_width=0.5, local_arch="resnet18", hidden=32,
    )
    glance, focus = torch.rand(2, 4, 3, 64, 64), torch.rand(2, 6, 3, 64, 64)
    with torch.no_grad():
        assert TSM(config).eval()(glance).shape == (2, CLASSES)
        assert TSMPlus(config).eval()(glance).shape == (2, CLASSES)
        out = AdaFocusTSM(config).eval()(glance, focus)
        given = AdaFocusTSM(config).eval()(glance, focus, location=torch.zeros(2, 2))
    assert out["logits"].shape == (2, CLASSES) and given["location"].tolist() == [[0, 0]] * 2


@pytest.mark.parametrize("baseline", [FrameAverage, FrameGRU])
def test_fig6_baselines(baseline: type) -> None:
    model = baseline(BaselineConfig(num_classes=CLASSES, arch="resnet18", hidden=32)).eval()
    video = torch.rand(2, 3, 3, 64, 64)
    with torch.no_grad():
        logits = model(video)["logits"]
    assert logits.shape == (2, 3, CLASSES)
    if baseline is FrameAverage:
        with torch.no_grad():
            frames = model.fc(model.backbone(video.flatten(0, 1))).unflatten(0, (2, 3))
        assert torch.allclose(logits[:, -1], frames.mean(dim=1), atol=1e-5)


def test_baseline_gmacs_are_resnet50_per_frame() -> None:
    model = FrameAverage(BaselineConfig(num_classes=200))
    assert video_gmacs(model, 2) == pytest.approx(2 * 4.11, rel=0.01)


def test_imagenet_weights_files_load_into_f_g_and_f_l(tmp_path) -> None:
    """torchvision classifier files (here random, in the ImageNet files' layout) initialise
    f_G and f_L strictly; the classifier layers are dropped; a wrong architecture is refused."""
    from torchvision.models import mobilenet_v2, resnet18, resnet34
    from vidbench.methods.recognition.adafocus import global_cnn, local_backbone
    from vidbench.methods.recognition.weights import load_backbone

    torch.manual_seed(0)
    mobile, resnet = mobilenet_v2(width_mult=0.5), resnet18()
    torch.save(mobile.state_dict(), tmp_path / "mobilenet.pth")
    torch.save(resnet.state_dict(), tmp_path / "resnet18.pth")
    torch.save(resnet34().state_dict(), tmp_path / "resnet34.pth")
    f_g, (f_l, _) = global_cnn(0.5), local_backbone("resnet18")
    assert load_backbone(f_g, tmp_path / "mobilenet.pth", "mobilenet_v2") == len(f_g.state_dict())
    assert load_backbone(f_l, tmp_path / "resnet18.pth", "resnet") == len(f_l.state_dict())
    for ours, theirs in ((f_g, mobile.features), (f_l.layer4, resnet.layer4)):
        for a, b in zip(ours.state_dict().values(), theirs.state_dict().values()):
            assert torch.equal(a, b)
    with pytest.raises(ValueError, match="resnet34.pth: does not fit the resnet backbone"):
        load_backbone(f_l, tmp_path / "resnet34.pth", "resnet")
    with pytest.raises(ValueError, match="nothing.pth: weights file not found"):
        load_backbone(f_l, tmp_path / "nothing.pth", "resnet")
