from __future__ import annotations

from dataclasses import dataclass

import pytest
from vidbench.api import VideoInfo
from vidbench.protocols import Episode, ProtocolError, RotatingOffset, stream_keys


@dataclass
class Snippet:
    """What the protocol reads of a video: its length and its labelled frame."""

    info: VideoInfo
    scored_index: int


class Method:
    uses_keyframes = True
    needs_next_keyframe = False


class LookAhead(Method):
    needs_next_keyframe = True


def rotating_offset_episodes(
    videos: int, frames: int, labelled: int, interval: int, needs_next_keyframe: bool
) -> list[Episode]:
    snippets = [Snippet(VideoInfo("v", 8, 8, frames, 17.0), labelled)] * videos
    method = LookAhead if needs_next_keyframe else Method
    return RotatingOffset().episodes(snippets, {"interval": interval}, method)


@pytest.mark.parametrize("interval", range(1, 11))
def test_offsets_rotate_uniformly_and_keys_sit_before_the_label(interval: int) -> None:
    episodes = rotating_offset_episodes(40, 30, 19, interval, needs_next_keyframe=False)
    offsets = [e.strata[0] for e in episodes]
    assert offsets == [j % interval for j in range(40)]
    for e in episodes:
        assert e.scored == (19,)
        assert e.frames[0] == 19 - e.strata[0] and e.frames[-1] == 19
        assert e.keys == {19 - e.strata[0]}


@pytest.mark.parametrize("interval", range(2, 11))
def test_lookahead_methods_are_fed_up_to_the_next_key(interval: int) -> None:
    for e in rotating_offset_episodes(20, 30, 19, interval, needs_next_keyframe=True):
        key = 19 - e.strata[0]
        if e.strata[0] == 0:
            assert e.frames == (19,) and e.keys == {19}
        else:
            assert e.frames == tuple(range(key, key + interval + 1))
            assert e.keys == {key, key + interval}
            assert max(e.frames) <= 29


def test_intervals_that_do_not_fit_the_snippet_are_refused() -> None:
    with pytest.raises(ProtocolError, match="next keyframe past the end"):
        rotating_offset_episodes(5, 30, 19, 12, needs_next_keyframe=True)
    with pytest.raises(ProtocolError, match="frames before the labelled frame"):
        rotating_offset_episodes(5, 12, 3, 6, needs_next_keyframe=False)
    with pytest.raises(ProtocolError):
        rotating_offset_episodes(5, 30, 19, 0, needs_next_keyframe=False)


def test_a_snippet_cut_short_takes_the_nearest_offset_that_fits() -> None:
    """CamVid's first still has no past frame and a still near a sequence's end few future
    ones: they are scored at the feasible offset closest to their turn, the rest rotate."""
    full = Snippet(VideoInfo("v", 8, 8, 19, 30.0), 9)
    no_past = Snippet(VideoInfo("first", 8, 8, 10, 30.0), 0)
    few_future = Snippet(VideoInfo("last", 8, 8, 12, 30.0), 9)
    videos = [full, full, full, no_past, full, full, few_future]
    plain = RotatingOffset().episodes(videos, {"interval": 5}, Method)
    assert [e.strata[0] for e in plain] == [0, 1, 2, 0, 4, 0, 1]
    ahead = RotatingOffset().episodes(videos, {"interval": 5}, LookAhead)
    # the last wants offset 1, whose next key 13 is past frame 11: offsets 0, 3, 4 fit
    assert [e.strata[0] for e in ahead] == [0, 1, 2, 0, 4, 0, 0]
    assert all(max(e.frames) < v.info.num_frames for e, v in zip(ahead, videos))


def test_stream_keys_every_nth_frame_from_zero() -> None:
    assert stream_keys(10, 3) == {0, 3, 6, 9}
    assert stream_keys(5, 1) == {0, 1, 2, 3, 4}


def test_streams_end_on_their_last_key() -> None:
    from vidbench.protocols import stream_frames

    assert list(stream_frames(30, 10)) == list(range(21))
    assert list(stream_frames(30, 7)) == list(range(29))
    assert list(stream_frames(30, 1)) == list(range(30))
    assert max(stream_frames(12, 5)) in stream_keys(12, 5)


def test_each_video_is_scored_on_its_own_labelled_frame() -> None:
    snippets = [Snippet(VideoInfo("a", 8, 8, 30, 17.0), 19), Snippet(VideoInfo("b", 8, 8, 30, 17.0), 12)]
    a, b = RotatingOffset().episodes(snippets, {"interval": 4}, Method)
    assert a.scored == (19,) and a.frames == (19,)
    assert b.scored == (12,) and b.strata == (1,) and b.frames == (11, 12)


def test_fixed_key_segments_keyed_at_their_middle_or_first_frame() -> None:
    from vidbench.protocols import FixedKey

    protocol = FixedKey()
    (setting,) = protocol.settings([10], Method)
    assert setting == {"interval": 10, "keys": "middle"}
    (e,) = protocol.episodes([Snippet(VideoInfo("v", 8, 8, 25, 25.0), 0)], setting, Method)
    assert e.frames == e.scored == tuple(range(25))
    assert e.keys == {5, 15, 22}  # the last, 5-frame segment is keyed at its own middle
    assert e.strata[:10] == tuple(range(-5, 5)) and e.strata[20:] == (-2, -1, 0, 1, 2)
    (first,) = protocol.settings([10], Method, {"keys": "first"})
    assert protocol.stream(25, first) == (range(25), frozenset({0, 10, 20}))
    with pytest.raises(ProtocolError, match="allowed: middle, first"):
        protocol.settings([10], Method, {"keys": "last"})
    with pytest.raises(ProtocolError, match="Unknown option"):
        RotatingOffset().settings([3], Method, {"keys": "first"})


class Online:
    online = True


class Offline:
    online = False


def test_clip_scores_each_step_and_the_video_for_online_methods() -> None:
    from vidbench.protocols import Clip

    video = Snippet(VideoInfo("v", 8, 8, 4, 25.0), 0)
    (online,) = Clip().episodes([video], {}, Online)
    assert online.frames == (0, 1, 2, 3) and online.keys == frozenset()
    assert online.scored == (0, 1, 2, 3, None) and online.strata == (1, 2, 3, 4, "video")
    (offline,) = Clip().episodes([video], {}, Offline)
    assert offline.frames == (0, 1, 2, 3)
    assert offline.scored == (None,) and offline.strata == ("video",)
    assert Clip().settings([1, 5], Online) == [{}]
    assert Clip().stream(4, {}) == (range(4), frozenset())
