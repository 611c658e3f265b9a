"""synthdet: a deterministic box-annotated world whose motion-speed bins are all populated,
with objects entering, leaving and occluding each other, encoded to real H.264."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from vidbench.datasets.detection.synthdet.dataset import SynthDet, SynthDetConfig
from vidbench.datasets.detection.synthdet.world import CLASS_NAMES, render_clip

SMALL = SynthDetConfig(train_videos=1, val_videos=8, height=64, width=128, frames=24, seed=5)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> SynthDet:
    data = SynthDet(SMALL, tmp_path_factory.mktemp("synthdet"))
    data.prepare()
    return data


def test_rendering_is_deterministic_and_boxes_lie_in_the_frame() -> None:
    a, b = render_clip(7, 64, 128, 12, 5), render_clip(7, 64, 128, 12, 5)
    assert np.array_equal(a.frames, b.frames)
    assert all(np.array_equal(x, y) for x, y in zip(a.boxes, b.boxes))
    assert not np.array_equal(a.frames, render_clip(8, 64, 128, 12, 5).frames)
    for boxes, labels in zip(a.boxes, a.labels):
        assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= 127).all() and (boxes[:, 3] <= 63).all()
        assert (boxes[:, 2] >= boxes[:, 0]).all() and (boxes[:, 3] >= boxes[:, 1]).all()
        assert set(labels.tolist()) <= set(range(len(CLASS_NAMES)))


def test_objects_differ_from_the_background_inside_their_boxes() -> None:
    clip = render_clip(11, 64, 128, 6, 4)
    again = render_clip(11, 64, 128, 6, 4)
    assert np.array_equal(clip.frames, again.frames)
    frame, boxes = clip.frames[3].astype(float), clip.boxes[3]
    for x1, y1, x2, y2 in boxes.astype(int):
        inside = frame[y1 : y2 + 1, x1 : x2 + 1].reshape(-1, 3)
        assert inside.std(0).max() > 5  # an object with texture, not an empty box


def test_tracks_enter_leave_and_are_occluded() -> None:
    lives, dropped = [], 0
    for seed in range(10):
        clip = render_clip(seed, 64, 128, 40, 6)
        seen = [set(ids.tolist()) for ids in clip.track_ids]
        for track in set().union(*seen):
            frames = [t for t, ids in enumerate(seen) if track in ids]
            lives.append((frames[0], frames[-1]))
        dropped += sum(len(a) - len(b) for a, b in zip(seen, seen[1:]) if len(a) > len(b))
    assert any(first > 0 for first, _ in lives)  # enters after the start
    assert any(last < 39 for _, last in lives)  # leaves (or is hidden) before the end
    assert dropped > 0


def test_all_three_speed_bins_are_populated(dataset: SynthDet) -> None:
    bins = dataset.speed_bins("val")
    assert all(fraction > 0.1 for fraction in bins.values()), bins
    assert sum(bins.values()) == pytest.approx(1.0)


def test_h264_round_trip_keeps_frames_and_annotations(dataset: SynthDet) -> None:
    video = dataset.split("val")[2]
    clip = render_clip(dataset._seed("val", 2), 64, 128, 24, SMALL.objects)
    assert (video.info.num_frames, video.info.height, video.info.width) == (24, 64, 128)
    for t in (0, 11, 23):
        target = video.label(t)
        assert np.array_equal(target.boxes, clip.boxes[t])
        assert np.array_equal(target.track_ids, clip.track_ids[t])
        decoded = (video.frame(t).image.permute(1, 2, 0).numpy() * 255).astype(float)
        assert np.abs(decoded - clip.frames[t]).mean() < 8  # lossy, but the same picture


def test_a_damaged_video_is_rendered_again(dataset: SynthDet) -> None:
    path = dataset.root / "val_0001.mp4"
    original = path.read_bytes()
    path.write_bytes(original[: len(original) // 2])
    dataset.prepare()
    assert path.read_bytes() == original


def test_damaged_annotations_are_rendered_again(dataset: SynthDet) -> None:
    path = dataset.root / "val_0003_boxes.npz"
    original = path.read_bytes()
    path.write_bytes(original[:100])
    dataset.prepare()
    assert path.read_bytes() == original


def test_a_truncated_manifest_is_rendered_again_not_a_json_error(dataset: SynthDet) -> None:
    manifest = dataset.root / "manifest.json"
    listed = json.loads(manifest.read_text())
    manifest.write_text(manifest.read_text()[:50])  # what a kill mid-write used to leave
    with pytest.warns(UserWarning, match=re.escape(f"{manifest}: damaged synthdet manifest")):
        dataset.prepare()
    assert json.loads(manifest.read_text()).keys() == listed.keys()


def test_config_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="too small"):
        SynthDetConfig(height=32)
