"""Versioned evaluation protocols: which frames are fed, which are keys, which are scored.

``rotating-offset@v1`` (seed 000, sec. 4.1): for keyframe interval n, the j-th labelled
example is scored with its labelled frame L at offset p = j mod n from the previous keyframe
(key at L - p), so every offset 0..n-1 gets 1/n of the examples. Frames key..L are fed; a
method that needs the next keyframe (interp-mv) is also fed up to the next key at L - p + n.
Throughput is measured separately on continuous streams (``stream@v2``): keys at i mod n == 0,
and the stream ends on its last key, so every intermediate frame lies in a complete key-to-key
segment and look-ahead methods run their full algorithm on every frame (v1 streamed every
frame, leaving interp-mv's tail to forward-only propagation).
"""

from __future__ import annotations

from dataclasses import dataclass

ROTATING_OFFSET = "rotating-offset@v1"
STREAM = "stream@v2"


class ProtocolError(ValueError):
    """A protocol setting that the data cannot support."""


@dataclass(frozen=True)
class Episode:
    """One scored example: feed ``frames`` of video ``video`` in order, keys in ``keys``."""

    video: int
    frames: tuple[int, ...]
    keys: frozenset[int]
    scored: int
    offset: int


def rotating_offset_episodes(
    num_videos: int, num_frames: int, labelled_index: int, interval: int, needs_next_keyframe: bool
) -> list[Episode]:
    """The episodes of ``rotating-offset@v1`` for one keyframe interval."""
    if interval < 1:
        raise ProtocolError(f"Keyframe interval must be >= 1, got {interval}.")
    if interval > labelled_index + 1:
        raise ProtocolError(
            f"Keyframe interval {interval} needs {interval - 1} frames before the labelled "
            f"frame {labelled_index}; the snippets have only {labelled_index}."
        )
    if needs_next_keyframe and labelled_index + interval - 1 >= num_frames:
        raise ProtocolError(
            f"Keyframe interval {interval} puts the next keyframe past the end of "
            f"{num_frames}-frame snippets (labelled frame {labelled_index}); use <= "
            f"{num_frames - labelled_index}."
        )
    return [
        episode(video, video % interval, interval, labelled_index, needs_next_keyframe)
        for video in range(num_videos)
    ]


def episode(
    video: int, offset: int, interval: int, labelled_index: int, needs_next_keyframe: bool
) -> Episode:
    """The frames to feed so that ``labelled_index`` sits ``offset`` frames after a key."""
    key = labelled_index - offset
    look_ahead = needs_next_keyframe and offset > 0
    last = key + interval if look_ahead else labelled_index
    keys = frozenset({key, last} if look_ahead else {key})
    return Episode(video, tuple(range(key, last + 1)), keys, labelled_index, offset)


def stream_keys(num_frames: int, interval: int) -> frozenset[int]:
    """Keyframes of a continuous stream: every ``interval``-th frame from the first."""
    return frozenset(range(0, num_frames, interval))


def stream_frames(num_frames: int, interval: int) -> range:
    """The frames ``stream@v2`` feeds: from the first frame to the last keyframe."""
    return range((num_frames - 1) // interval * interval + 1)
