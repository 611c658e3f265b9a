"""H.264 encode/decode with exported motion vectors, and their rasterisation
(docs/datasets.md §9)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from vidbench.datasets.segmentation.synthcity.render import render_snippet
from vidbench.datasets.video.codec import VideoError, decode_with_motion, encode_h264
from vidbench.datasets.video.motion import MotionField, rasterise
from vidbench.methods.motion.sources import regrid

# content moves this many pixels right and down per frame
STEP_X, STEP_Y = 3, 2


def texture(height: int, width: int, seed: int = 0, scale: int = 8) -> np.ndarray:
    """(H, W, 3) uint8 smooth random texture that x264 tracks well: bicubic-upsampled noise,
    detail of ``scale`` px in luma and of 4 * scale px in colour (4:2:0 halves colour detail)."""
    rng = np.random.default_rng(seed)

    def smooth(channels: int, factor: int) -> torch.Tensor:
        noise = rng.uniform(-1, 1, (1, channels, height // factor + 2, width // factor + 2))
        up = torch.nn.functional.interpolate(
            torch.from_numpy(noise), scale_factor=factor, mode="bicubic"
        )
        return up[0, :, :height, :width]

    image = 128 + 70 * smooth(1, scale) + 40 * smooth(3, 4 * scale)
    return image.clamp(0, 255).permute(1, 2, 0).numpy().astype(np.uint8)


def pan(
    height: int,
    width: int,
    frames: int,
    step: tuple[int, int] = (STEP_X, STEP_Y),
    seed: int = 0,
    scale: int = 8,
) -> np.ndarray:
    """(T, H, W, 3) windows of a larger texture; the content moves by ``step`` px per frame."""
    sx, sy = step
    big = texture(height + sy * frames, width + sx * frames, seed, scale)
    y0, x0 = sy * frames, sx * frames
    return np.stack(
        [
            big[y0 - sy * t : y0 - sy * t + height, x0 - sx * t : x0 - sx * t + width]
            for t in range(frames)
        ]
    )


def encode_with(
    path: Path, frames: np.ndarray, codec: str, options: dict[str, str], pix_fmt: str = "yuv420p"
) -> None:
    """Encode directly through PyAV with arbitrary settings (streams encode_h264 never makes)."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=17)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = pix_fmt
        stream.time_base = Fraction(1, 17)
        stream.options = options
        for index, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def median_vector(field: MotionField) -> tuple[float, float]:
    """Median (dx, dy) over the valid cells."""
    # x264 intra-codes some border blocks of a small frame, the interior is inter-coded
    assert field.valid.mean() > 0.6, "most blocks of a textured pan are inter-coded"
    return (
        float(np.median(field.vectors[0][field.valid])),
        float(np.median(field.vectors[1][field.valid])),
    )


@pytest.fixture(scope="module")
def pan_video(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    frames = pan(96, 160, 8)
    path = tmp_path_factory.mktemp("codec") / "pan.mp4"
    encode_h264(frames, path)
    return path, frames


def test_pan_decodes_with_previous_frame_vectors(pan_video: tuple[Path, np.ndarray]) -> None:
    path, frames = pan_video
    video = decode_with_motion(path)
    assert video.frames.shape == frames.shape and video.frames.dtype == np.uint8
    assert video.fps == pytest.approx(17)
    assert np.abs(video.frames.astype(int) - frames).mean() < 3  # crf 20 is near-lossless
    assert video.pict_types == ["I"] + ["P"] * (len(frames) - 1)
    assert video.motion[0] is None
    for records in video.motion[1:]:
        assert records is not None and len(records) > 0
        assert (records["source"] == -1).all()
        assert (records["motion_scale"] == 4).all()  # quarter-pel
        sizes = set(zip(records["w"].tolist(), records["h"].tolist()))
        assert sizes <= {(16, 16), (16, 8), (8, 16), (8, 8)}
        # dst is the block centre: the top-left corner is aligned to the block size
        assert ((records["dst_x"] - records["w"] // 2) % records["w"] == 0).all()
        assert ((records["dst_y"] - records["h"] // 2) % records["h"] == 0).all()
        for grid in (8, 16):
            field = rasterise(records, 96, 160, grid=grid)
            assert field.vectors.shape == (2, 96 // grid, 160 // grid)
            assert field.vectors.dtype == np.float32
            # content moving (+3, +2) came from (-3, -2): src - dst
            assert median_vector(field) == (-STEP_X, -STEP_Y)
            assert (field.vectors[:, ~field.valid] == 0).all()


def test_encoding_the_same_frames_gives_the_same_file(tmp_path: Path) -> None:
    """Datasets are fingerprinted by their settings, so an encode must not vary between runs
    (with x264's mbtree on, about 1 in 60 encodes of this snippet differed under CPU load)."""
    frames = render_snippet(5, 96, 160, 30).frames
    encoded = set()
    for attempt in range(12):
        path = tmp_path / f"{attempt}.mp4"
        encode_h264(frames, path)
        encoded.add(path.read_bytes())
    assert len(encoded) == 1


def test_subpixel_motion_keeps_quarter_pel(tmp_path: Path) -> None:
    # render at 4x and box-downsample: the content moves (1.5, 0.75) px per frame
    fine = pan(64 * 4, 96 * 4, 5, step=(6, 3), seed=1, scale=32)
    frames = fine.reshape(5, 64, 4, 96, 4, 3).mean(axis=(2, 4)).round().astype(np.uint8)
    path = tmp_path / "subpel.mp4"
    encode_h264(frames, path)
    video = decode_with_motion(path)
    for records in video.motion[1:]:
        assert median_vector(rasterise(records, 64, 96)) == (-1.5, -0.75)


@pytest.mark.parametrize("height,width", [(72, 136), (71, 135)])
def test_size_not_multiple_of_16(tmp_path: Path, height: int, width: int) -> None:
    frames = pan(height, width, 5)
    path = tmp_path / "odd.mp4"
    encode_h264(frames, path)
    video = decode_with_motion(path)
    # odd sizes are padded for yuv420p and cropped back on decode
    assert video.frames.shape == frames.shape
    assert np.abs(video.frames.astype(int) - frames).mean() < 3
    for grid in (8, 16):
        field = rasterise(video.motion[2], height, width, grid=grid)
        assert field.valid.shape == (-(-height // grid), -(-width // grid))
        assert median_vector(field) == (-STEP_X, -STEP_Y)
    # every block, clipped to the frame, lands on the 8-px cells it covers (border cells too;
    # x264 may intra-code some border blocks, so their cells may be invalid)
    crossing = 0
    for records in video.motion[1:]:
        field = rasterise(records, height, width, grid=8)
        for rec in records:
            x0, y0 = rec["dst_x"] - rec["w"] // 2, rec["dst_y"] - rec["h"] // 2
            x1, y1 = min(x0 + rec["w"], width), min(y0 + rec["h"], height)
            crossing += bool(x1 < x0 + rec["w"] or y1 < y0 + rec["h"])
            cells = (slice(y0 // 8, -(-y1 // 8)), slice(x0 // 8, -(-x1 // 8)))
            assert field.valid[cells].all()
            assert (field.vectors[0][cells] == rec["motion_x"] / 4).all()
            assert (field.vectors[1][cells] == rec["motion_y"] / 4).all()
    assert crossing > 0, "some blocks reach past the frame edge"


def test_bframes_are_rejected_unless_allowed(tmp_path: Path) -> None:
    path = tmp_path / "bframes.mp4"
    encode_with(
        path,
        pan(64, 96, 8),
        "libx264",
        {"x264-params": "bframes=2:b-adapt=0:ref=1:keyint=100:scenecut=0"},
    )
    with pytest.raises(VideoError, match="re-encode") as error:
        decode_with_motion(path)
    assert str(path) in str(error.value) and "bframes=0:ref=1" in str(error.value)
    video = decode_with_motion(path, allow_bframes=True)
    assert "B" in video.pict_types
    assert any(m is not None and (m["source"] > 0).any() for m in video.motion)


def test_multiple_references_are_rejected_unless_allowed(tmp_path: Path) -> None:
    path = tmp_path / "ref3.mp4"
    encode_with(
        path, pan(64, 96, 6), "libx264", {"x264-params": "bframes=0:ref=3:keyint=100:scenecut=0"}
    )
    with pytest.raises(VideoError, match="ref=3"):
        decode_with_motion(path)
    assert len(decode_with_motion(path, allow_multiref=True).frames) == 6


@pytest.mark.parametrize("fraction", [0.5, 0.97])
def test_truncated_file(
    pan_video: tuple[Path, np.ndarray], tmp_path: Path, fraction: float
) -> None:
    data = pan_video[0].read_bytes()
    path = tmp_path / "truncated.mp4"
    path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(VideoError, match="truncated|corrupt") as error:
        decode_with_motion(path)
    assert str(path) in str(error.value)


def test_missing_and_garbage_files(tmp_path: Path) -> None:
    with pytest.raises(VideoError, match="no such file"):
        decode_with_motion(tmp_path / "absent.mp4")
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(VideoError, match="garbage.mp4"):
        decode_with_motion(garbage)


def test_codec_without_vector_export(tmp_path: Path) -> None:
    # VP9 has inter frames but FFmpeg's decoder exports no block motion vectors
    path = tmp_path / "vp9.mkv"
    if "libvpx-vp9" in av.codecs_available:
        encode_with(path, pan(64, 96, 5), "libvpx-vp9", {"deadline": "realtime"})
    elif "libx265" in av.codecs_available:
        encode_with(path, pan(64, 96, 5), "libx265", {"x265-params": "bframes=0:log-level=0"})
    else:
        pytest.skip("neither libvpx-vp9 nor libx265 in this PyAV build")
    with pytest.raises(VideoError, match="no motion vectors exported") as error:
        decode_with_motion(path)
    assert "libx264" in str(error.value)


def test_intra_only_stream_has_no_vectors(tmp_path: Path) -> None:
    path = tmp_path / "intra.mp4"
    encode_with(path, pan(64, 96, 4), "libx264", {"x264-params": "keyint=1"})
    video = decode_with_motion(path)
    assert video.pict_types == ["I"] * 4
    assert video.motion == [None] * 4
    assert not rasterise(video.motion[1], 64, 96).valid.any()


def test_max_frames(pan_video: tuple[Path, np.ndarray]) -> None:
    video = decode_with_motion(pan_video[0], max_frames=3)
    assert len(video.frames) == len(video.motion) == len(video.pict_types) == 3


def records_of(*blocks: tuple[int, int, int, int, float, float], source: int = -1) -> np.ndarray:
    """AVMotionVector-like records from (dst_x, dst_y, w, h, dx, dy) tuples, quarter-pel."""
    dtype = np.dtype(
        [
            ("source", "<i4"),
            ("w", "u1"),
            ("h", "u1"),
            ("src_x", "<i2"),
            ("src_y", "<i2"),
            ("dst_x", "<i2"),
            ("dst_y", "<i2"),
            ("flags", "<u8"),
            ("motion_x", "<i4"),
            ("motion_y", "<i4"),
            ("motion_scale", "<u2"),
        ]
    )
    out = np.zeros(len(blocks), dtype)
    for i, (x, y, w, h, dx, dy) in enumerate(blocks):
        out[i] = (source, w, h, x + int(dx), y + int(dy), x, y, 0, round(dx * 4), round(dy * 4), 4)
    return out


def test_rasterise_blocks_and_grids() -> None:
    records = records_of(
        (8, 8, 16, 16, 1.0, -2.0),  # MB (0, 0)
        (20, 4, 8, 8, 0.25, 0.0),
        (28, 4, 8, 8, 0.75, 0.0),  # top half of MB (1, 0)
        (20, 12, 8, 8, 2.0, 0.0),  # bottom-left quadrant; bottom-right is intra
        (40, 8, 16, 16, 5.0, 5.0),  # MB (2, 0), half outside a 40-px-wide frame
    )
    field = rasterise(records, 16, 40, grid=8)
    assert field.vectors.shape == (2, 2, 5)
    np.testing.assert_array_equal(field.valid, [[1, 1, 1, 1, 1], [1, 1, 1, 0, 1]])
    np.testing.assert_array_equal(field.vectors[0], [[1, 1, 0.25, 0.75, 5], [1, 1, 2, 0, 5]])
    np.testing.assert_array_equal(field.vectors[1][:, :2], -2)

    coarse = rasterise(records, 16, 40, grid=16)
    assert coarse.vectors.shape == (2, 1, 3)
    assert coarse.valid.all()
    # three valid 8x8 quadrants averaged, the intra one left out; last cell clipped to 8 px
    np.testing.assert_allclose(coarse.vectors[0, 0], [1, (0.25 + 0.75 + 2) / 3, 5])

    assert not rasterise(records, 16, 40, source=1).valid.any()  # only list 0 present
    list1 = rasterise(records_of((8, 8, 16, 16, 3.0, 0.0), source=1), 16, 16, source=1)
    assert list1.valid.all() and (list1.vectors[0] == 3).all()
    assert not rasterise(records[:0], 16, 40).valid.any()
    with pytest.raises(ValueError, match="source"):
        rasterise(records, 16, 40, source=0)


def test_regrid_up_and_down() -> None:
    field = rasterise(records_of((8, 8, 16, 16, 4.0, 0.0), (20, 12, 8, 8, -2.0, 1.0)), 16, 32)
    vectors, valid = torch.from_numpy(field.vectors), torch.from_numpy(field.valid)
    pixels, pixel_valid = regrid(vectors, valid, field.grid, 1, (16, 32))
    # finer grid: block-constant replication
    assert (pixels[0, :, :16] == 4).all() and (
        pixels[:, 8:, 16:24] == torch.tensor([-2.0, 1.0]).view(2, 1, 1)
    ).all()
    assert pixel_valid[:, :16].all() and not pixel_valid[:8, 16:].any()
    assert (pixels[:, ~pixel_valid] == 0).all()
    # the stride-16 feature grid: the second cell averages only its valid quarter
    coarse, coarse_valid = regrid(vectors, valid, field.grid, 16, (16, 32))
    np.testing.assert_allclose(coarse[:, 0].numpy(), [[4, -2], [0, 1]])
    assert coarse_valid.all()
    # a frame that is not a multiple of 16: ceil-sized grid, the last cells partial
    odd = rasterise(records_of((8, 8, 16, 16, 4.0, 0.0)), 24, 40)
    odd_vectors, odd_valid = regrid(
        torch.from_numpy(odd.vectors), torch.from_numpy(odd.valid), odd.grid, 16, (24, 40)
    )
    assert odd_vectors.shape == (2, 2, 3)
    np.testing.assert_array_equal(odd_valid.numpy(), [[1, 0, 0], [0, 0, 0]])


def test_mid_stream_i_frame(tmp_path: Path) -> None:
    from vidbench.datasets.video.encoded import EncodedVideo
    from vidbench.methods.motion.sources import CodecMotion

    path = tmp_path / "keyint.mp4"
    encode_with(
        path,
        pan(64, 96, 14),
        "libx264",
        {"x264-params": "bframes=0:ref=1:keyint=10:min-keyint=10:scenecut=0"},
    )
    decoded = decode_with_motion(path)
    assert decoded.pict_types == ["I"] + ["P"] * 9 + ["I"] + ["P"] * 3
    video = EncodedVideo("keyint", path, path.with_suffix(".npz"), (), fps=17)  # no labels read
    key, after = video.frame(10), video.frame(11)
    assert key.motion is None and key.motion_valid is None
    assert after.motion is not None and after.motion_valid is not None
    assert after.motion_valid.float().mean() > 0.6
    motion = CodecMotion().estimate(key, video.frame(9), 16)
    assert motion.displacement.shape == (2, 4, 6) and not motion.displacement.any()
    assert motion.valid is not None and motion.valid.shape == (4, 6) and not motion.valid.any()
