"""Versioned evaluation protocols: which frames are fed, which are keys, which are scored.

A protocol is data: a versioned name, the parameters that set it (``interval``, segment length,
T), and the episodes it replays. Every episode scores one or more frames, each tagged with a
stratum (keyframe offset, motion-speed bin, online step), so evaluators report per-stratum and
worst metrics for every task. Any change to sampling, scoring or timing bumps the version, and
records compare only within a version.

``rotating-offset@v1`` (seed 000, sec. 4.1): for keyframe interval n, the j-th labelled
example is scored with its labelled frame L at offset p = j mod n from the previous keyframe
(key at L - p), so every offset 0..n-1 gets 1/n of the examples. Frames key..L are fed; a
method that needs the next keyframe (interp-mv) is also fed up to the next key at L - p + n.
Each video names its labelled frame as ``scored_index``.

``fixed-key@v1`` (seed 001, sec. 3.5 and 4.1; DFF): each video is split into segments of
l frames; the key of a segment is its middle frame (``keys=middle``, PSLA's and DFF's test
schedule: frame l//2 of each segment, the last, shorter segment keyed at its own middle) or its
first frame (``keys=first``, a causal schedule). Every frame is fed and scored; its stratum is
its signed distance from the key of its segment. ``stream-fixed-key@v1`` replays the same
schedule on continuous streams, so a method that waits for a middle key shows its delay.
Throughput is measured separately on continuous streams (``stream@v2``): keys at i mod n == 0,
and the stream ends on its last key, so every intermediate frame lies in a complete key-to-key
segment and look-ahead methods run their full algorithm on every frame (v1 streamed every
frame, leaving interp-mv's tail to forward-only propagation).

``clip@v1`` (seed 002, sec. 4.1 and Fig. 6): each val video is fed as the T frames its dataset
samples from it (16 uniformly sampled frames, 8 or 12 for Something-Something), in order, with
no keys. The whole-video prediction (index None) is scored in stratum ``video`` (the offline
protocol); a method that predicts online (``online = True``) also has its prediction after
step t scored in stratum t = 1..T (the online protocol: the first t frames). ``stream-clip@v1``
feeds the same frames for speed.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

ROTATING_OFFSET = "rotating-offset@v1"
STREAM = "stream@v2"
FIXED_KEY = "fixed-key@v1"
FIXED_KEY_STREAM = "stream-fixed-key@v1"
CLIP = "clip@v1"
CLIP_STREAM = "stream-clip@v1"
KEY_SCHEDULES = ("middle", "first")

Setting = dict[str, Any]


class ProtocolError(ValueError):
    """A protocol setting that the data cannot support."""


@dataclass(frozen=True)
class Episode:
    """Feed ``frames`` of video number ``video`` in order, keys in ``keys``; score the frames in
    ``scored``, the i-th tagged with stratum ``strata[i]``."""

    video: int
    frames: tuple[int, ...]
    keys: frozenset[int]
    scored: tuple[int | None, ...]  # None: the whole-video prediction (video-level tasks)
    strata: tuple[int | str, ...]


class Protocol(abc.ABC):
    """An accuracy protocol with the stream schedule its speed scenario replays."""

    name: ClassVar[str]
    stream_name: ClassVar[str]
    params: ClassVar[tuple[str, ...]]

    options: ClassVar[dict[str, tuple[str, ...]]] = {}  # option -> allowed values, first default

    @abc.abstractmethod
    def settings(
        self, intervals: Sequence[int], method: type, options: dict[str, str] | None = None
    ) -> list[Setting]:
        """The settings to run for ``method`` (a Method class) given the requested intervals
        and protocol options (``--protocol keys=first``)."""

    def check_options(self, options: dict[str, str] | None) -> dict[str, str]:
        """Every option of this protocol, from ``options`` or its default; unknown options and
        values are refused."""
        options = options or {}
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            raise ProtocolError(
                f"Unknown option(s) {unknown} for protocol {self.name}; "
                f"options: {', '.join(self.options) or '(none)'}."
            )
        chosen = {name: options.get(name, allowed[0]) for name, allowed in self.options.items()}
        for name, value in chosen.items():
            if value not in self.options[name]:
                raise ProtocolError(
                    f"Protocol option {name}={value}; allowed: {', '.join(self.options[name])}."
                )
        return chosen

    @abc.abstractmethod
    def episodes(self, videos: Sequence[Any], setting: Setting, method: type) -> list[Episode]:
        """The scored episodes over ``videos``; raises ProtocolError when they cannot fit."""

    @abc.abstractmethod
    def stream(self, num_frames: int, setting: Setting) -> tuple[range, frozenset[int]]:
        """The frames a speed stream feeds and its keyframes."""

    @abc.abstractmethod
    def spot_episode(self, video: Any, setting: Setting, method: type) -> Episode | None:
        """An accuracy episode of ``video`` whose scored frames the stream also predicts with
        the same key schedule (MLPerf TEST01), or None when there is none."""

    def key_of(self, setting: Setting, keys: frozenset[int]) -> dict[int, int] | None:
        """Frame -> the key its prediction should use, where the schedule says (else None)."""
        return None

    def steady_key_fraction(self, setting: Setting) -> float | None:
        """The share of key frames in an endless stream under ``setting`` (1/n for a key every
        n frames), which steady-state throughput is computed at; None where a stream has no
        keys (its measured fps is already its steady state)."""
        return 1 / setting["interval"] if "interval" in setting else None

    def setting_of(self, record: dict[str, Any]) -> tuple[Any, ...]:
        """A record's protocol parameters, in ``params`` order."""
        return tuple(record[p] for p in self.params)


class RotatingOffset(Protocol):
    """``rotating-offset@v1`` with ``stream@v2`` for speed (module docstring)."""

    name = ROTATING_OFFSET
    stream_name = STREAM
    params = ("interval",)

    def settings(
        self, intervals: Sequence[int], method: type, options: dict[str, str] | None = None
    ) -> list[Setting]:
        self.check_options(options)
        return [{"interval": n} for n in (intervals if method.uses_keyframes else (1,))]

    def episodes(self, videos: Sequence[Any], setting: Setting, method: type) -> list[Episode]:
        interval = setting["interval"]
        fits = [fits_interval(video, interval, method) for video in videos]
        if videos and not any(fits):  # no snippet fits: the interval is refused, with the reason
            check_fits(videos[0].info.num_frames, videos[0].scored_index, interval, method)
        return [
            episode(
                j,
                j % interval if fit else nearest_offset(video, j % interval, interval, method),
                interval,
                video.scored_index,
                method.needs_next_keyframe,
            )
            for j, (video, fit) in enumerate(zip(videos, fits))
        ]

    def stream(self, num_frames: int, setting: Setting) -> tuple[range, frozenset[int]]:
        interval = setting["interval"]
        return stream_frames(num_frames, interval), stream_keys(num_frames, interval)

    def spot_episode(self, video: Any, setting: Setting, method: type) -> Episode | None:
        interval, label = setting["interval"], video.scored_index
        if label not in stream_frames(video.info.num_frames, interval):
            return None
        return episode(0, label % interval, interval, label, method.needs_next_keyframe)


def check_fits(num_frames: int, labelled_index: int, interval: int, method: type) -> None:
    """Refuse an interval whose keys cannot sit around the labelled frame of a snippet."""
    if interval < 1:
        raise ProtocolError(f"Keyframe interval must be >= 1, got {interval}.")
    if interval > labelled_index + 1:
        raise ProtocolError(
            f"Keyframe interval {interval} needs {interval - 1} frames before the labelled "
            f"frame {labelled_index}; the snippets have only {labelled_index}."
        )
    if method.needs_next_keyframe and labelled_index + interval - 1 >= num_frames:
        raise ProtocolError(
            f"Keyframe interval {interval} puts the next keyframe past the end of "
            f"{num_frames}-frame snippets (labelled frame {labelled_index}); use <= "
            f"{num_frames - labelled_index}."
        )


def fits_interval(video: Any, interval: int, method: type) -> bool:
    """Whether every offset of ``interval`` fits around ``video``'s labelled frame."""
    try:
        check_fits(video.info.num_frames, video.scored_index, interval, method)
    except ProtocolError:
        return False
    return True


def nearest_offset(video: Any, wanted: int, interval: int, method: type) -> int:
    """For a snippet cut short at a sequence's start or end (CamVid's first still has no past
    frame), the feasible offset closest to ``wanted``; offset 0 (the labelled frame is the key)
    always fits. Strata record the offsets actually used, so per-offset mIoU stays honest."""
    labelled, frames = video.scored_index, video.info.num_frames

    def feasible(offset: int) -> bool:
        key = labelled - offset
        ahead = method.needs_next_keyframe and offset > 0
        return key >= 0 and (not ahead or key + interval <= frames - 1)

    return min((o for o in range(interval) if feasible(o)), key=lambda o: (abs(o - wanted), o))


def episode(
    video: int, offset: int, interval: int, labelled_index: int, needs_next_keyframe: bool
) -> Episode:
    """The frames to feed so that ``labelled_index`` sits ``offset`` frames after a key."""
    key = labelled_index - offset
    look_ahead = needs_next_keyframe and offset > 0
    last = key + interval if look_ahead else labelled_index
    keys = frozenset({key, last} if look_ahead else {key})
    return Episode(video, tuple(range(key, last + 1)), keys, (labelled_index,), (offset,))


def stream_keys(num_frames: int, interval: int) -> frozenset[int]:
    """Keyframes of a continuous stream: every ``interval``-th frame from the first."""
    return frozenset(range(0, num_frames, interval))


def stream_frames(num_frames: int, interval: int) -> range:
    """The frames ``stream@v2`` feeds: from the first frame to the last keyframe."""
    return range((num_frames - 1) // interval * interval + 1)


class FixedKey(Protocol):
    """``fixed-key@v1`` with ``stream-fixed-key@v1`` for speed (module docstring). The
    ``interval`` is the segment length l; ``keys`` is the schedule (``middle`` or ``first``)."""

    name = FIXED_KEY
    stream_name = FIXED_KEY_STREAM
    params = ("interval", "keys")
    options = {"keys": KEY_SCHEDULES}

    def settings(
        self, intervals: Sequence[int], method: type, options: dict[str, str] | None = None
    ) -> list[Setting]:
        keys = self.check_options(options)["keys"]
        lengths = intervals if method.uses_keyframes else (1,)
        return [{"interval": n, "keys": keys} for n in lengths]

    def episodes(self, videos: Sequence[Any], setting: Setting, method: type) -> list[Episode]:
        if setting["interval"] < 1:
            raise ProtocolError(f"Segment length must be >= 1, got {setting['interval']}.")
        episodes = []
        for number, video in enumerate(videos):
            count = video.info.num_frames
            keys = segment_keys(count, setting["interval"], setting["keys"])
            strata = tuple(i - key_of(i, setting["interval"], keys) for i in range(count))
            episodes.append(Episode(number, tuple(range(count)), keys, tuple(range(count)), strata))
        return episodes

    def stream(self, num_frames: int, setting: Setting) -> tuple[range, frozenset[int]]:
        return range(num_frames), segment_keys(num_frames, setting["interval"], setting["keys"])

    def spot_episode(self, video: Any, setting: Setting, method: type) -> Episode | None:
        return self.episodes([video], setting, method)[0]

    def key_of(self, setting: Setting, keys: frozenset[int]) -> dict[int, int] | None:
        return KeyAssignment(setting["interval"], keys)


class KeyAssignment(dict):
    """Frame index -> the key of its segment, computed on first access (a lazy mapping)."""

    def __init__(self, length: int, keys: frozenset[int]) -> None:
        super().__init__()
        self.length, self.keys = length, keys

    def __missing__(self, index: int) -> int:
        self[index] = key_of(index, self.length, self.keys)
        return self[index]


def segment_keys(num_frames: int, length: int, schedule: str) -> frozenset[int]:
    """Keys of segments of ``length`` frames: each segment's middle frame or its first."""
    keys = set()
    for start in range(0, num_frames, length):
        size = min(length, num_frames - start)
        keys.add(start + (size // 2 if schedule == "middle" else 0))
    return frozenset(keys)


def key_of(index: int, length: int, keys: frozenset[int]) -> int:
    """The key of the segment that holds frame ``index``."""
    start = index // length * length
    return next(k for k in sorted(keys) if start <= k < start + length)


class Clip(Protocol):
    """``clip@v1`` with ``stream-clip@v1`` for speed (module docstring). No parameters: T is
    the dataset's sampling, recorded in the dataset's identity."""

    name = CLIP
    stream_name = CLIP_STREAM
    params = ()

    def settings(
        self, intervals: Sequence[int], method: type, options: dict[str, str] | None = None
    ) -> list[Setting]:
        self.check_options(options)
        return [{}]

    def episodes(self, videos: Sequence[Any], setting: Setting, method: type) -> list[Episode]:
        return [self._episode(number, video, method) for number, video in enumerate(videos)]

    def _episode(self, number: int, video: Any, method: type) -> Episode:
        count = video.info.num_frames
        if count < 1:
            raise ProtocolError(f"Video {video.info.name} has no frames to feed.")
        online = getattr(method, "online", False)
        steps = tuple(range(count)) if online else ()
        strata = tuple(t + 1 for t in steps)
        return Episode(number, tuple(range(count)), frozenset(), (*steps, None), (*strata, "video"))

    def stream(self, num_frames: int, setting: Setting) -> tuple[range, frozenset[int]]:
        return range(num_frames), frozenset()

    def spot_episode(self, video: Any, setting: Setting, method: type) -> Episode | None:
        return self._episode(0, video, method)
