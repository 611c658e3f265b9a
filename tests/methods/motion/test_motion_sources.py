"""Motion sources on real H.264 of known motion: the displacement convention (reference - current)
for codec vectors and DIS, and RAFT's plumbing with a randomly initialised network."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from vidbench.api import Frame
from vidbench.datasets.video.codec import encode_h264
from vidbench.datasets.video.encoded import EncodedVideo
from vidbench.methods.motion.dis import DISMotion
from vidbench.methods.motion.raft import RAFTMotion
from vidbench.methods.motion.sources import CodecMotion, Motion, MotionSource, build_source
from vidbench.methods.motion.warp import warp

from tests.datasets.video.test_codec import STEP_X, STEP_Y, pan

HEIGHT, WIDTH = 96, 160


@pytest.fixture(scope="module")
def frames(tmp_path_factory: pytest.TempPathFactory) -> list[Frame]:
    """Decoded frames (with codec vectors) of a texture moving (+3, +2) px per frame."""
    path = tmp_path_factory.mktemp("sources") / "pan.mp4"
    encode_h264(pan(HEIGHT, WIDTH, 6), path)
    # labels are never read: only frames are served
    video = EncodedVideo("pan", path, path.with_suffix(".npz"), (), fps=17)
    return [video.frame(index) for index in range(6)]


def median(motion: Motion) -> tuple[float, float]:
    """Median (dx, dy) over the valid cells."""
    valid = motion.valid if motion.valid is not None else torch.ones(motion.displacement.shape[1:])
    valid = valid.bool()
    assert valid.float().mean() > 0.6
    return tuple(float(motion.displacement[k][valid].median()) for k in range(2))


def interior_mse(a: torch.Tensor, b: torch.Tensor, margin: int = 8) -> float:
    """MSE away from the borders, where new content enters the pan."""
    return float(((a - b)[..., margin:-margin, margin:-margin] ** 2).mean())


@pytest.mark.parametrize("source", [CodecMotion(), DISMotion()], ids=["mv", "dis"])
@pytest.mark.parametrize("stride", [1, 16])
def test_pan_displacement_points_to_the_reference(
    frames: list[Frame], source: MotionSource, stride: int
) -> None:
    for index in (1, 3, 5):
        motion = source.estimate(frames[index], frames[index - 1], stride)
        grid = (-(-HEIGHT // stride), -(-WIDTH // stride))
        assert motion.displacement.shape == (2, *grid)
        assert motion.displacement.dtype == torch.float32
        assert motion.valid is not None and motion.valid.shape == grid
        # content moving (+3, +2) per frame sits (-3, -2) away in the previous frame
        # (measured: mv exactly, dis within 0.09 px)
        assert median(motion) == pytest.approx((-STEP_X, -STEP_Y), abs=0.2)


@pytest.mark.parametrize("source", [CodecMotion(), DISMotion()], ids=["mv", "dis"])
def test_warping_the_previous_frame_predicts_the_current(
    frames: list[Frame], source: MotionSource
) -> None:
    for index in (1, 4):
        previous, current = frames[index - 1].image, frames[index].image
        motion = source.estimate(frames[index], frames[index - 1], 1)
        warped = warp(previous[None], motion.displacement, 1)[0]
        # measured: the warp leaves 0.16-0.26% of the unwarped error (mv and dis alike)
        assert interior_mse(warped, current) < 0.03 * interior_mse(previous, current)


def test_dis_is_pairwise(frames: list[Frame]) -> None:
    assert DISMotion.pairwise and not CodecMotion.pairwise
    # measured (-6.01, -4.00); DIS "fast" loses (12, 8) px four frames apart on this small frame
    motion = DISMotion().estimate(frames[4], frames[2], 16)
    assert median(motion) == pytest.approx((-2 * STEP_X, -2 * STEP_Y), abs=0.3)
    with pytest.raises(ValueError, match="predecessor"):
        CodecMotion().estimate(frames[4], frames[2], 16)


def test_dis_options() -> None:
    source = build_source("dis", preset="ultrafast", threads=1)
    assert isinstance(source, DISMotion) and source.modules() == {}
    with pytest.raises(ValueError, match="'slow'.*ultrafast, fast, medium"):
        DISMotion(preset="slow")


def tiny_pair() -> tuple[Frame, Frame]:
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, 64, 96, generator=generator)
    return (Frame(1, images[1], None, None, 8, False), Frame(0, images[0], None, None, 8, False))


@pytest.fixture(scope="module")
def raft() -> RAFTMotion:
    return RAFTMotion(variant="small", iterations=3)


def test_raft_random_init_shapes(raft: RAFTMotion) -> None:
    assert raft.pretrained is False and RAFTMotion.pairwise
    assert set(raft.modules()) == {"raft"}
    current, reference = tiny_pair()
    for stride, grid in ((1, (64, 96)), (16, (4, 6))):
        motion = raft.estimate(current, reference, stride)
        assert motion.displacement.shape == (2, *grid)
        assert motion.valid is not None and motion.valid.all()
        assert torch.isfinite(motion.displacement).all()


def test_raft_weights_round_trip(raft: RAFTMotion, tmp_path: Path) -> None:
    path = tmp_path / "raft_small.pth"
    torch.save(raft.network.state_dict(), path)
    loaded = RAFTMotion(variant="small", weights=path, iterations=3)
    assert loaded.pretrained is True
    current, reference = tiny_pair()
    torch.testing.assert_close(
        loaded.estimate(current, reference, 1).displacement,
        raft.estimate(current, reference, 1).displacement,
    )
    with pytest.raises(ValueError, match=r"raft_small\.pth.*variant='small'"):
        RAFTMotion(variant="large", weights=path)


class RecordingFlow(torch.nn.Module):
    """Stands in for RAFT: records its inputs, returns flow = 8 * image1 - image2 (red, green)."""

    def __init__(self) -> None:
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(()))  # gives the source a device to use
        self.inputs: list[torch.Tensor] = []

    def forward(
        self, image1: torch.Tensor, image2: torch.Tensor, num_flow_updates: int
    ) -> list[torch.Tensor]:
        self.inputs = [image1, image2]
        return [torch.zeros_like(image1[:, :2])] * (num_flow_updates - 1) + [
            8 * image1[:, :2] - image2[:, :2]
        ]


def test_raft_inputs_and_direction() -> None:
    # torchvision's RAFT looks up image2's features at image1's pixels + flow, so the current
    # frame must be image1 for the flow to be reference - current
    raft = RAFTMotion(iterations=3)
    raft.network = RecordingFlow()
    current, reference = tiny_pair()
    motion = raft.estimate(current, reference, 1)
    image1, image2 = raft.network.inputs
    assert image1.shape == image2.shape == (1, 3, 128, 128)  # >= 128 and multiples of 8
    torch.testing.assert_close(image1[0, :, :64, :96], current.image * 2 - 1)
    torch.testing.assert_close(image2[0, :, :64, :96], reference.image * 2 - 1)
    torch.testing.assert_close(image1[0, :, 64:, :96], image1[0, :, 63:64, :96].expand(3, 64, 96))
    expected = 8 * (current.image[:2] * 2 - 1) - (reference.image[:2] * 2 - 1)
    torch.testing.assert_close(motion.displacement, expected)  # last iteration, cropped


def test_raft_missing_weights_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "raft_small_C_T_V2.pth"
    with pytest.raises(FileNotFoundError, match=str(path)):
        RAFTMotion(weights=path)
