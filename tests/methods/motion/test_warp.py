"""warp: exact cell geometry, gradients, and the sign convention on real H.264 vectors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from vidbench.datasets.video.codec import DecodedVideo, decode_with_motion, encode_h264
from vidbench.datasets.video.motion import rasterise
from vidbench.methods.motion.sources import regrid
from vidbench.methods.motion.warp import warp


def pan(height: int, width: int, frames: int, step: tuple[int, int]) -> np.ndarray:
    """(T, H, W, 3) uint8 windows of a smooth random texture whose content moves ``step``
    px per frame (luma detail of 8 px, colour detail of 32 px, which 4:2:0 keeps)."""
    rng = np.random.default_rng(0)
    sx, sy = step
    big_h, big_w = height + sy * frames, width + sx * frames

    def smooth(channels: int, factor: int) -> torch.Tensor:
        noise = rng.uniform(-1, 1, (1, channels, big_h // factor + 2, big_w // factor + 2))
        up = torch.nn.functional.interpolate(
            torch.from_numpy(noise), scale_factor=factor, mode="bicubic"
        )
        return up[0, :, :big_h, :big_w]

    big = (128 + 70 * smooth(1, 8) + 40 * smooth(3, 32)).clamp(0, 255)
    big = big.permute(1, 2, 0).numpy().astype(np.uint8)
    y0, x0 = sy * frames, sx * frames
    return np.stack(
        [
            big[y0 - sy * t : y0 - sy * t + height, x0 - sx * t : x0 - sx * t + width]
            for t in range(frames)
        ]
    )


@pytest.mark.parametrize("stride", [1.0, 8.0, 16.0])
def test_one_cell_shift_is_exact(stride: float) -> None:
    features = torch.randn(2, 3, 5, 7)
    right = torch.zeros(2, 2, 5, 7)
    right[:, 0] = stride
    out = warp(features, right, stride)
    torch.testing.assert_close(out[..., :-1], features[..., 1:])
    torch.testing.assert_close(out[..., -1], features[..., -1])  # border padding
    up = torch.zeros(2, 5, 7)
    up[1] = -stride  # (2, h, w), shared by the batch
    out = warp(features, up, stride)
    torch.testing.assert_close(out[..., 1:, :], features[..., :-1, :])
    half = torch.zeros(2, 5, 7)
    half[0] = stride / 2
    out = warp(features, half, stride)
    torch.testing.assert_close(out[..., :-1], (features[..., :-1] + features[..., 1:]) / 2)


def test_zero_displacement_is_identity_and_gradients_flow() -> None:
    features = torch.randn(1, 4, 6, 9, dtype=torch.float64, requires_grad=True)
    torch.testing.assert_close(warp(features, torch.zeros(1, 2, 6, 9), 16), features)
    displacement = torch.randn(1, 2, 6, 9, dtype=torch.float64) * 20
    torch.autograd.gradcheck(lambda f: warp(f, displacement, 16.0), (features,))
    warp(features, displacement, 16.0).square().sum().backward()
    assert features.grad is not None and features.grad.abs().sum() > 0


def test_shape_errors() -> None:
    with pytest.raises(ValueError, match="displacement"):
        warp(torch.zeros(1, 3, 4, 4), torch.zeros(1, 2, 4, 5), 1.0)
    with pytest.raises(ValueError, match="features"):
        warp(torch.zeros(3, 4, 4), torch.zeros(2, 4, 4), 1.0)


def encoded(tmp_path_factory: pytest.TempPathFactory, step: tuple[int, int]) -> DecodedVideo:
    path = tmp_path_factory.mktemp("warp") / "pan.mp4"
    encode_h264(pan(96, 160, 6, step), path)
    return decode_with_motion(path)


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> DecodedVideo:
    """Content moving (+3, +2) px per frame: codec vectors (-3, -2)."""
    return encoded(tmp_path_factory, (3, 2))


@pytest.fixture(scope="module")
def video_by_cells(tmp_path_factory: pytest.TempPathFactory) -> DecodedVideo:
    """Content moving (+8, +8) px per frame: one cell of a stride-8 map."""
    return encoded(tmp_path_factory, (8, 8))


def as_tensor(image: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (1, 3, H, W) float."""
    return torch.from_numpy(image).permute(2, 0, 1)[None].float()


def interior_error(a: torch.Tensor, b: torch.Tensor, margin: int = 16) -> float:
    """Mean absolute difference away from the borders (where content enters the frame)."""
    return float((a - b)[..., margin:-margin, margin:-margin].abs().mean())


def pixel_displacement(video: DecodedVideo, t: int) -> torch.Tensor:
    height, width = video.frames.shape[1:3]
    field = rasterise(video.motion[t], height, width, grid=8)
    return regrid(
        torch.from_numpy(field.vectors),
        torch.from_numpy(field.valid),
        field.grid,
        1,
        (height, width),
    )[0]


def test_forward_warp_of_real_video_matches_next_frame(video: DecodedVideo) -> None:
    for t in range(1, len(video.frames)):
        prev, cur = as_tensor(video.frames[t - 1]), as_tensor(video.frames[t])
        d = pixel_displacement(video, t)
        still = interior_error(prev, cur)
        right = interior_error(warp(prev, d, 1.0), cur)
        wrong = interior_error(warp(prev, -d, 1.0), cur)
        assert right < 0.1 * still, (t, right, still)
        assert wrong > 10 * right, (t, right, wrong)


def test_backward_warp_of_real_video_matches_previous_frame(video: DecodedVideo) -> None:
    for t in range(1, len(video.frames)):
        prev, cur = as_tensor(video.frames[t - 1]), as_tensor(video.frames[t])
        d = pixel_displacement(video, t)
        still = interior_error(cur, prev)
        right = interior_error(warp(cur, -d, 1.0), prev)
        wrong = interior_error(warp(cur, d, 1.0), prev)
        assert right < 0.1 * still, (t, right, still)
        assert wrong > 10 * right, (t, right, wrong)


def test_strided_warp_on_pooled_frames(video_by_cells: DecodedVideo) -> None:
    # stand-in for stride-8 features: 8x8 average pooling; the motion is one cell per frame,
    # so the warped map must match the next one almost exactly
    video, stride = video_by_cells, 8
    height, width = video.frames.shape[1:3]
    pool = torch.nn.AvgPool2d(stride)
    for t in range(1, len(video.frames)):
        prev, cur = pool(as_tensor(video.frames[t - 1])), pool(as_tensor(video.frames[t]))
        field = rasterise(video.motion[t], height, width, grid=16)
        d, _ = regrid(
            torch.from_numpy(field.vectors),
            torch.from_numpy(field.valid),
            field.grid,
            stride,
            (height, width),
        )
        assert d.shape == (2, height // stride, width // stride)
        assert (d.flatten(1).median(dim=1).values == -stride).all()
        still = interior_error(prev, cur, margin=2)
        right = interior_error(warp(prev, d, stride), cur, margin=2)
        wrong = interior_error(warp(prev, -d, stride), cur, margin=2)
        assert right < 0.05 * still and wrong > 20 * right, (t, right, still, wrong)
