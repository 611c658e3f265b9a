"""synthaction: a deterministic recognition world where one small, smoothly moving object names
the class, hidden or blurred in some frames, encoded to real H.264."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections import Counter
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest
import torch
from vidbench.api import DataError, RecognitionTarget
from vidbench.datasets.recognition.synthaction.dataset import (
    GENERATOR_VERSION,
    SynthAction,
    SynthActionConfig,
)
from vidbench.datasets.recognition.synthaction.world import (
    ABSENT,
    BLURRED,
    CLASS_NAMES,
    CLASSES,
    VISIBLE,
    render_clip,
)
from vidbench.datasets.video.codec import X264_PARAMS
from vidbench.registry import DATASETS

LUMA = np.array([0.299, 0.587, 0.114], np.float32)
SMALL = SynthActionConfig(train_videos=6, val_videos=4, frames=8, height=64, width=64, seed=3)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> SynthAction:
    data = SynthAction(SMALL, tmp_path_factory.mktemp("synthaction"))
    data.prepare()
    return data


@pytest.fixture(scope="module")
def clips() -> list:
    return [render_clip(seed, seed % len(CLASSES), 112, 112, 16) for seed in range(20)]


def test_rendering_is_deterministic() -> None:
    a, b = render_clip(7, 4, 64, 64, 8), render_clip(7, 4, 64, 64, 8)
    assert np.array_equal(a.frames, b.frames)
    assert np.array_equal(a.boxes, b.boxes) and np.array_equal(a.visibility, b.visibility)
    assert not np.array_equal(a.frames, render_clip(8, 4, 64, 64, 8).frames)


def test_classes_are_conjunctions_of_shared_cues() -> None:
    assert len(set(CLASSES)) == len(CLASS_NAMES) == 10
    assert set(Counter(s for s, _ in CLASSES).values()) == {2}
    assert set(Counter(c for _, c in CLASSES).values()) == {2}


def test_classes_are_balanced_per_split(dataset: SynthAction) -> None:
    big = SynthAction(SynthActionConfig(train_videos=25, val_videos=20), dataset.root)
    for data in (dataset, big):
        for split in ("train", "val"):
            counts = Counter(data.labels(split))
            assert max(counts.values()) - min(counts.values(), default=0) <= 1
            assert len(counts) == min(len(data.labels(split)), data.num_classes)


def test_object_covers_three_to_six_percent(clips: list) -> None:
    boxes = np.concatenate([c.boxes for c in clips])
    area = (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1) / 112**2
    assert area.min() > 0.015 and area.max() < 0.075
    assert 0.03 < area.mean() < 0.06
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2:] <= 111).all()


def test_some_frames_are_absent_or_blurred(clips: list) -> None:
    states = np.stack([c.visibility for c in clips])
    redundant = (states != VISIBLE).mean(1)
    assert (states == ABSENT).any() and (states == BLURRED).any()
    assert (redundant > 0).all() and (redundant < 0.75).all()
    assert 0.2 <= redundant.mean() <= 0.5
    fraction = np.concatenate([c.visible_fraction for c in clips])
    assert (fraction[states.ravel() == ABSENT] < 0.25).all()


def test_object_moves_smoothly(clips: list) -> None:
    for clip in clips:
        centres = (clip.boxes[:, :2] + clip.boxes[:, 2:]) / 2
        steps = np.linalg.norm(np.diff(centres, axis=0), axis=1)
        assert steps.max() < 0.07 * 112
        assert steps.mean() > 0.3  # it does move


def test_the_object_is_drawn_where_its_box_says(clips: list) -> None:
    clip = clips[0]
    for t in np.flatnonzero(clip.visibility == VISIBLE)[:3]:
        x1, y1, x2, y2 = clip.boxes[t].astype(int)
        inside = clip.frames[t, y1 : y2 + 1, x1 : x2 + 1].reshape(-1, 3).astype(float)
        assert inside.std(0).max() > 5


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255**2 / np.mean((a - b) ** 2)))


def test_h264_round_trip_is_close_to_the_render(dataset: SynthAction) -> None:
    video = dataset.split("val")[1]
    seed = dict((n, s) for n, s, _ in dataset._videos())[video.name]
    clip = render_clip(seed, video.label().primary, SMALL.height, SMALL.width, SMALL.frames)
    assert (video.info.num_frames, video.info.height, video.info.width) == (8, 64, 64)
    for t in (0, 4, 7):
        frame = video.frame(t)
        image = frame.image
        assert image.shape == (3, 64, 64) and image.dtype == torch.float32
        assert frame.motion is None and frame.motion_valid is None  # recognition: no rasterising
        decoded = image.permute(1, 2, 0).numpy() * 255
        rendered = clip.frames[t].astype(np.float32)
        assert _psnr(decoded @ LUMA, rendered @ LUMA) > 30  # the codec's loss
        assert _psnr(decoded, rendered) > 24  # with yuv420p's halved chroma at colour edges
    boxes, visibility = video.object_track()
    assert np.array_equal(boxes, clip.boxes) and np.array_equal(visibility, clip.visibility)
    video.release()


def test_labels_for_the_video_and_every_frame(dataset: SynthAction) -> None:
    for video, label in zip(dataset.split("train"), dataset.labels("train")):
        assert video.label_indices == tuple(range(SMALL.frames))
        for index in (None, *video.label_indices):
            target = video.label(index)
            assert isinstance(target, RecognitionTarget) and target.primary == label
    with pytest.raises(IndexError):
        video.label(SMALL.frames)


def test_a_damaged_video_is_rendered_again(dataset: SynthAction) -> None:
    path = dataset.root / "val_0002.mp4"
    original = path.read_bytes()
    path.write_bytes(original[: len(original) // 2])
    dataset.prepare()
    assert path.read_bytes() == original


def test_a_swapped_track_file_is_rendered_again(dataset: SynthAction) -> None:
    path, other = dataset.root / "val_0000_object.npz", dataset.root / "val_0001_object.npz"
    with np.load(path) as arrays:
        boxes = arrays["boxes"]
    shutil.copyfile(other, path)
    dataset.prepare()
    with np.load(path) as arrays:
        np.testing.assert_array_equal(arrays["boxes"], boxes)


def test_a_truncated_manifest_is_rendered_again_not_a_json_error(dataset: SynthAction) -> None:
    manifest = dataset.root / "manifest.json"
    listed = json.loads(manifest.read_text())
    manifest.write_text(manifest.read_text()[:50])  # what a kill mid-write used to leave
    with pytest.warns(UserWarning, match=re.escape(f"{manifest}: damaged synthaction manifest")):
        dataset.prepare()
    assert json.loads(manifest.read_text()).keys() == listed.keys()


def test_a_damaged_file_is_reported_by_name(dataset: SynthAction, tmp_path) -> None:
    video = dataset.split("val")[3]
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(video.video_path.read_bytes()[:200])
    track = tmp_path / "broken_object.npz"
    track.write_bytes(b"not an npz")
    damaged = type(video)("broken", broken, track, video.class_id, SMALL.frames, 25.0)
    with pytest.raises(DataError, match="broken.mp4"):
        damaged.frame(0)
    with pytest.raises(DataError, match="broken_object.npz"):
        damaged.object_track()


def test_registry_and_config_errors() -> None:
    assert DATASETS.get("synthaction") is SynthAction
    assert SynthAction.tasks == ("recognition",) and SynthAction.num_classes == 10
    with pytest.raises(ValueError, match="too small"):
        SynthActionConfig(height=32)
    with pytest.raises(ValueError, match="at least 2 frames"):
        SynthActionConfig(frames=1)
    with pytest.raises(ValueError, match="at least 1 video"):
        SynthActionConfig(val_videos=0)
    with pytest.raises(ValueError, match="Unknown split 'test'"):
        SynthAction(SMALL, Path("/nonexistent")).labels("test")


def test_object_area_option_and_fingerprint() -> None:
    large = [render_clip(seed, seed % len(CLASSES), 64, 64, 4, (0.08, 0.12)) for seed in range(8)]
    boxes = np.concatenate([c.boxes for c in large])
    area = (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1) / 64**2
    assert 0.07 < area.mean() < 0.13
    with pytest.raises(ValueError, match="area"):
        SynthActionConfig(min_area=0.1, max_area=0.05)
    # the default area and train_flip leave the fingerprint as it was before they existed
    base = SynthAction(SMALL, Path("/nonexistent"))
    legacy = {k: v for k, v in asdict(SMALL).items() if k not in ("min_area", "max_area", "train_flip")}
    identity = {"config": legacy, "generator": GENERATOR_VERSION, "x264": X264_PARAMS}
    expected = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]
    assert base.fingerprint() == expected
    flipped = SynthAction(replace(SMALL, train_flip=True), Path("/nonexistent"))
    assert flipped.fingerprint() == expected
    assert SynthAction(replace(SMALL, max_area=0.1), Path("/x")).fingerprint() != expected


def test_train_flip_is_declared_on_train_videos_only(dataset: SynthAction) -> None:
    flipped = SynthAction(replace(SMALL, train_flip=True), dataset.root.parent.parent)
    assert all(v.train_augment.flip and not v.train_augment.scales for v in flipped.split("train"))
    assert all(v.train_augment is None for v in flipped.split("val"))
    assert all(v.train_augment is None for v in dataset.split("train"))
