"""Real H.264 through PyAV: encode frames with libx264, decode them with block motion vectors.

The encoder settings make every P-frame vector point to the previous displayed frame
(no B-frames, one reference frame; docs/datasets.md §9.3 step 5). The decoder exports the
vectors with ``flags2=+export_mvs`` as FFmpeg ``AVMotionVector`` records (§9.1, §9.2);
vidbench.datasets.video.motion rasterises them into a per-block field.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.error
import numpy as np
from av.video.frame import PictureType
from vidbench.api import DataError

X264_PRESET = "medium"
# bframes=0:ref=1 -> every vector points to the previous frame; keyint=infinite and scenecut=0
# -> one I-frame at the start; fixed frame threads (no sliced threads, whose slice count follows
# the core count) -> the same vectors on every machine. mbtree=0: with x264's macroblock-tree
# rate control, about 1 in 60 encodes of the same frames under CPU load came out different
# (0 in 750 without it; its propagation uses approximate-reciprocal SIMD).
X264_PARAMS = "bframes=0:ref=1:keyint=infinite:scenecut=0:threads=4:sliced-threads=0:mbtree=0"
PIX_FMT = "yuv420p"

# Container comment that records the true frame size when encode_h264 padded an odd size.
_SIZE_TAG = "vidbench:frame_size="
_SIZE_RE = re.compile(re.escape(_SIZE_TAG) + r"(\d+)x(\d+)")
# x264 writes its options into an unregistered SEI message of the first frame.
_X264_REF_RE = re.compile(rb"x264 - core .*? ref=(\d+)", re.DOTALL)
_REENCODE = (
    "re-encode it with libx264 and x264-params bframes=0:ref=1 "
    "(vidbench.datasets.video.codec.encode_h264 does this)"
)


class VideoError(DataError):
    """Bad or unreadable video; the message names the file and what is wrong."""


def encoder_settings(crf: int = 20) -> dict[str, str]:
    """The encoder settings encode_h264 uses, for the provenance of a record."""
    return {
        "codec": "libx264",
        "preset": X264_PRESET,
        "crf": str(crf),
        "pix_fmt": PIX_FMT,
        "x264-params": X264_PARAMS,
        "libavcodec": ".".join(map(str, av.library_versions["libavcodec"])),
        "pyav": av.__version__,
    }


def encode_h264(frames: np.ndarray, path: Path, fps: int = 17, crf: int = 20) -> float:
    """(T,H,W,3) uint8 RGB -> H.264 file with libx264 (container from the suffix, e.g. .mp4);
    returns the wall time per frame in ms (the seed reports this cost per Cityscapes frame).

    No B-frames, one reference frame and a single I-frame at the start, so every P-frame
    vector points to the previous frame (docs/datasets.md §9.3 step 5). yuv420p needs even
    sizes: an odd height or width is padded by one replicated row/column and the true size is
    stored in the container comment, which decode_with_motion uses to crop the frames back.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(
            f"encode_h264({path}): frames must be (T, H, W, 3) uint8 RGB, "
            f"got shape {frames.shape} dtype {frames.dtype}"
        )
    if len(frames) == 0:
        raise ValueError(f"encode_h264({path}): no frames to encode")
    if fps <= 0:
        raise ValueError(f"encode_h264({path}): fps must be positive, got {fps}")
    if not 0 <= crf <= 51:
        raise ValueError(f"encode_h264({path}): crf must be in [0, 51], got {crf}")
    height, width = frames.shape[1:3]
    pad_h, pad_w = height % 2, width % 2
    if pad_h or pad_w:
        frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")

    start = time.perf_counter()
    with av.open(str(path), mode="w") as container:
        if pad_h or pad_w:
            container.metadata["comment"] = f"{_SIZE_TAG}{height}x{width}"
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = PIX_FMT
        stream.time_base = Fraction(1, fps)
        stream.options = {"preset": X264_PRESET, "crf": str(crf), "x264-params": X264_PARAMS}
        for index, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return (time.perf_counter() - start) * 1000 / len(frames)


def encode_cost(entries: Iterable[dict]) -> dict[str, float | int]:
    """Frame-weighted encode ms per frame over cache-manifest entries that carry
    ``encode_ms_per_frame`` and ``frames`` (entries written before timing existed are skipped);
    ``{}`` when none was timed."""
    timed = [e for e in entries if e.get("encode_ms_per_frame") is not None]
    frames = sum(e["frames"] for e in timed)
    if not frames:
        return {}
    total = sum(e["encode_ms_per_frame"] * e["frames"] for e in timed)
    return {"encode_ms_per_frame": round(total / frames, 3), "encoded_frames": frames}


@dataclass(frozen=True, eq=False)
class DecodedVideo:
    """A decoded video with the raw motion-vector records of every frame, in display order.

    ``motion[t]`` is the structured array of FFmpeg AVMotionVector records of frame t
    (fields source, w, h, src_x, src_y, dst_x, dst_y, flags, motion_x, motion_y,
    motion_scale), or None when the frame carries no vectors (I-frames, all-intra P-frames).
    Record coordinates are frame pixels; for a padded odd size they may reach past the
    cropped frame, which rasterise clips.
    """

    path: Path
    frames: np.ndarray
    motion: list[np.ndarray | None]
    pict_types: list[str]
    fps: float


def _pict_type_name(value: object) -> str:
    """'I', 'P', 'B', ... whether PyAV gives an int (18.x) or an enum member."""
    name = getattr(value, "name", None)
    return name if isinstance(name, str) else PictureType(int(value)).name  # type: ignore[arg-type]


def _recorded_size(container: av.container.InputContainer) -> tuple[int, int] | None:
    """The (H, W) encode_h264 stored when it padded an odd size, else None."""
    for key, value in container.metadata.items():
        if key.lower() == "comment":
            match = _SIZE_RE.search(value)
            if match:
                return int(match.group(1)), int(match.group(2))
    return None


def _x264_refs(frame: av.VideoFrame) -> int | None:
    """Number of reference frames an x264 stream was encoded with, from its SEI; else None."""
    for side_data in frame.side_data:
        match = _X264_REF_RE.search(bytes(side_data))
        if match:
            return int(match.group(1))
    return None


def decode_with_motion(
    path: Path,
    max_frames: int | None = None,
    allow_bframes: bool = False,
    allow_multiref: bool = False,
) -> DecodedVideo:
    """Decode a video with its exported block motion vectors (flags2=+export_mvs).

    Strict by default, because a vector is only "motion since the previous frame" in a stream
    without B-frames and with one reference frame: B-frames raise VideoError unless
    ``allow_bframes``, and an x264 stream encoded with ref > 1 (read from the x264 SEI; other
    encoders cannot be checked) raises unless ``allow_multiref``; with either flag the raw
    records are returned as they are. An intra-only stream decodes with every ``motion`` None.
    A stream with inter frames none of which carries vectors raises (the decoder does not
    export them, e.g. HEVC or VP9). Missing, unreadable, truncated or corrupt files raise
    VideoError; truncation is detected from decode errors and, where the container records
    it, from the frame count.
    """
    path = Path(path)
    if max_frames is not None and max_frames <= 0:
        raise ValueError(f"decode_with_motion({path}): max_frames must be positive or None")
    if not path.is_file():
        raise VideoError(f"{path}: no such file")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as error:
        raise VideoError(
            f"{path}: cannot open the container, unreadable or corrupt ({error})"
        ) from error

    with container:
        if not container.streams.video:
            raise VideoError(f"{path}: no video stream in the container")
        stream = container.streams.video[0]
        stream.codec_context.options = {"flags2": "+export_mvs"}
        codec = stream.codec_context.name
        expected = stream.frames  # 0 where the container does not record it (mkv, raw .h264)
        crop = _recorded_size(container)
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else float("nan")

        images: list[np.ndarray] = []
        motion: list[np.ndarray | None] = []
        pict_types: list[str] = []
        try:
            for frame in container.decode(stream):
                pict_type = _pict_type_name(frame.pict_type)
                vectors = frame.side_data.get("MOTION_VECTORS")
                records = None if vectors is None else vectors.to_ndarray()
                if not allow_bframes and (
                    pict_type == "B" or (records is not None and (records["source"] > 0).any())
                ):
                    raise VideoError(
                        f"{path}: frame {len(images)} is a B-frame; its vectors may point into "
                        f"the future, so they are not motion since the previous frame; "
                        f"{_REENCODE}, or pass allow_bframes=True to get the raw records"
                    )
                if not images and not allow_multiref:
                    refs = _x264_refs(frame)
                    if refs is not None and refs > 1:
                        raise VideoError(
                            f"{path}: encoded by x264 with ref={refs}, so vectors may point "
                            f"up to {refs} frames back; {_REENCODE}, or pass "
                            f"allow_multiref=True to get the raw records"
                        )
                image = frame.to_ndarray(format="rgb24")
                if crop is not None:
                    image = image[: crop[0], : crop[1]]
                images.append(image)
                motion.append(records)
                pict_types.append(pict_type)
                if max_frames is not None and len(images) >= max_frames:
                    break
        except av.error.FFmpegError as error:
            raise VideoError(
                f"{path}: decoding failed after {len(images)} frames, the stream is truncated "
                f"or corrupt ({error})"
            ) from error

    if not images:
        raise VideoError(f"{path}: no frame could be decoded ({codec} stream, truncated?)")
    if expected and len(images) < expected and (max_frames is None or len(images) < max_frames):
        raise VideoError(
            f"{path}: truncated, decoded {len(images)} frames but the container says {expected}"
        )
    inter = [t for t, kind in enumerate(pict_types) if kind != "I"]
    if inter and all(motion[t] is None for t in inter):
        raise VideoError(
            f"{path}: no motion vectors exported on any of its {len(inter)} inter frames; the "
            f"{codec} decoder does not export block motion vectors (FFmpeg exports them for "
            f"H.264 and MPEG-1/2/4, not HEVC, VP9 or AV1) or every block is intra-coded; "
            f"{_REENCODE}"
        )
    return DecodedVideo(
        path=path, frames=np.stack(images), motion=motion, pict_types=pict_types, fps=fps
    )
