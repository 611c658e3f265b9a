from __future__ import annotations

import pytest
from vidbench.protocols import ProtocolError, rotating_offset_episodes, stream_keys


@pytest.mark.parametrize("interval", range(1, 11))
def test_offsets_rotate_uniformly_and_keys_sit_before_the_label(interval: int) -> None:
    episodes = rotating_offset_episodes(40, 30, 19, interval, needs_next_keyframe=False)
    offsets = [e.offset for e in episodes]
    assert offsets == [j % interval for j in range(40)]
    for e in episodes:
        assert e.scored == 19
        assert e.frames[0] == 19 - e.offset and e.frames[-1] == 19
        assert e.keys == {19 - e.offset}


@pytest.mark.parametrize("interval", range(2, 11))
def test_lookahead_methods_are_fed_up_to_the_next_key(interval: int) -> None:
    for e in rotating_offset_episodes(20, 30, 19, interval, needs_next_keyframe=True):
        key = 19 - e.offset
        if e.offset == 0:
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


def test_stream_keys_every_nth_frame_from_zero() -> None:
    assert stream_keys(10, 3) == {0, 3, 6, 9}
    assert stream_keys(5, 1) == {0, 1, 2, 3, 4}


def test_streams_end_on_their_last_key() -> None:
    from vidbench.protocols import stream_frames

    assert list(stream_frames(30, 10)) == list(range(21))
    assert list(stream_frames(30, 7)) == list(range(29))
    assert list(stream_frames(30, 1)) == list(range(30))
    assert max(stream_frames(12, 5)) in stream_keys(12, 5)
