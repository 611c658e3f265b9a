"""synthaction as a dataset: class-labelled videos rendered, encoded to H.264 and cached.

Each video is rendered by vidbench.datasets.recognition.synthaction.world, encoded with libx264 like
synthdet (no B-frames, one reference frame, a single I-frame). Classes are balanced per split
(counts differ by at most one) in a seeded order. Beside each ``<name>.mp4`` an
``<name>_object.npz`` holds the class (``label``) and the object's per-frame truth: ``boxes``
(T, 4) float32 xyxy inclusive, ``visibility`` (T,) uint8 (0 visible, 1 absent, 2 blurred) and
``visible_fraction`` (T,) float32. A ``manifest.json`` (written atomically) records both files'
SHA-256; missing, damaged or swapped files are rendered again, one process at a time
(``prepare.lock``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from tqdm import tqdm
from vidbench.api import Frame, RecognitionTarget, VideoInfo
from vidbench.datasets.recognition.sampled_video import TrainAugment
from vidbench.datasets.recognition.synthaction.world import (
    AREA_RANGE,
    CLASS_NAMES,
    VISIBILITY_NAMES,
    render_clip,
)
from vidbench.datasets.scenery import check_world_size
from vidbench.datasets.video.codec import X264_PARAMS, VideoError, encode_h264
from vidbench.datasets.video.encoded import EncodedVideo, load_arrays
from vidbench.files import file_lock, file_sha256, read_json, write_json_atomic

GENERATOR_VERSION = 1
SPLITS = ("train", "val")
TRACK_KEYS = ("label", "boxes", "visibility", "visible_fraction")


@dataclass(frozen=True)
class SynthActionConfig:
    """Size of the world; T = 16 frames as the paper samples, 112-pixel square frames; the
    object's square extent is a share in [``min_area``, ``max_area``] of the frame (3-6 % by
    default); ``train_flip`` mirrors training clips at random (a training augmentation, not
    part of the rendered data)."""

    train_videos: int = 160
    val_videos: int = 80
    frames: int = 16
    height: int = 112
    width: int = 112
    fps: int = 25
    crf: int = 20
    seed: int = 0
    min_area: float = AREA_RANGE[0]
    max_area: float = AREA_RANGE[1]
    train_flip: bool = False

    def __post_init__(self) -> None:
        if self.train_videos < 1 or self.val_videos < 1:
            raise ValueError(
                f"synthaction needs at least 1 video per split, got train_videos="
                f"{self.train_videos}, val_videos={self.val_videos}"
            )
        if self.frames < 2:
            raise ValueError(f"synthaction needs at least 2 frames per video, got {self.frames}")
        if min(self.height, self.width) < 64:
            raise ValueError(f"frames of {self.height}x{self.width} are too small (min 64)")
        check_world_size(self, "synthaction")
        if not 0 <= self.crf <= 51:
            raise ValueError(f"crf must be in [0, 51], got {self.crf}")
        if self.fps <= 0:
            raise ValueError(f"fps must be positive, got {self.fps}")
        if self.seed < 0:
            raise ValueError(f"seed must be non-negative, got {self.seed}")
        if not 0 < self.min_area <= self.max_area <= 0.25:
            raise ValueError(
                f"object area range [{self.min_area}, {self.max_area}] must satisfy "
                "0 < min_area <= max_area <= 0.25"
            )


def _check_split(split: str) -> None:
    """Refuse a split name other than train and val, listing those."""
    if split not in SPLITS:
        raise ValueError(f"Unknown split '{split}' of synthaction; available: {', '.join(SPLITS)}.")


class ActionVideo:
    """An H.264 file of one class, with the object's per-frame ground truth beside it."""

    def __init__(
        self, name: str, video_path: Path, track_path: Path, class_id: int, frames: int, fps: float,
        train_augment: TrainAugment | None = None,
    ) -> None:
        self.name = name
        self.train_augment = train_augment
        self.video_path = Path(video_path)
        self.track_path = Path(track_path)
        self.class_id = class_id
        self.label_indices = tuple(range(frames))
        # recognition methods use no motion: the vectors are not rasterised
        self._video = EncodedVideo(
            name, video_path, track_path, self.label_indices, fps, motion=False
        )

    @property
    def info(self) -> VideoInfo:
        """Name, size, frame count and rate (decodes the file on first use)."""
        return self._video.info

    def frame(self, index: int, is_key: bool = False) -> Frame:
        """Decoded frame ``index`` (no motion field), marked as the protocol says."""
        return self._video.frame(index, is_key)

    def label(self, index: int | None = None) -> RecognitionTarget:
        """The video's class, the same for every frame and for ``index`` None."""
        if index is not None and not 0 <= index < len(self.label_indices):
            last = len(self.label_indices) - 1
            raise IndexError(f"{self.name}: frame {index} is outside 0..{last}")
        return RecognitionTarget(labels=np.array([self.class_id], np.int64))

    @cached_property
    def _track(self) -> dict[str, np.ndarray]:
        """The arrays of the track file, checked against this video's frames and class."""
        arrays = load_arrays(self.track_path, TRACK_KEYS, "the object track")
        count = len(self.label_indices)
        if arrays["boxes"].shape != (count, 4) or arrays["visibility"].shape != (count,):
            raise VideoError(
                f"{self.track_path}: boxes {arrays['boxes'].shape} and visibility "
                f"{arrays['visibility'].shape} do not match the {count} frames of "
                f"{self.video_path}."
            )
        if int(arrays["label"]) != self.class_id:
            raise VideoError(
                f"{self.track_path}: class {int(arrays['label'])} but the dataset says "
                f"{self.class_id}."
            )
        return arrays

    def object_track(self) -> tuple[np.ndarray, np.ndarray]:
        """The object's (T, 4) float32 boxes (xyxy, inclusive corners, hidden parts included)
        and (T,) uint8 visibility (0 visible, 1 absent, 2 blurred; see VISIBILITY_NAMES)."""
        return self._track["boxes"].astype(np.float32), self._track["visibility"].astype(np.uint8)

    def release(self) -> None:
        """Drop decoded frames and the track (they are read again on next use)."""
        self._video.release()
        self.__dict__.pop("_track", None)


class SynthAction:
    """The embedded default recognition dataset (10 classes, one object per video)."""

    name = "synthaction"
    tasks = ("recognition",)
    Config = SynthActionConfig
    num_classes = len(CLASS_NAMES)
    class_names = CLASS_NAMES
    visibility_names = VISIBILITY_NAMES

    def __init__(self, config: SynthActionConfig, data_root: Path) -> None:
        self.config = config
        self.root = Path(data_root) / self.name / self.fingerprint()

    def fingerprint(self) -> str:
        """Identifies the generated data: config (less ``train_flip``, which renders nothing, and
        the area bounds where they are the default, so older caches stay valid), generator and
        encoder settings."""
        config = asdict(self.config)
        config.pop("train_flip")
        for key, default in (("min_area", AREA_RANGE[0]), ("max_area", AREA_RANGE[1])):
            if config[key] == default:
                config.pop(key)
        identity = {"config": config, "generator": GENERATOR_VERSION, "x264": X264_PARAMS}
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]

    def describe(self) -> dict:
        """Name, config and fingerprint, for a record's provenance."""
        return {"name": self.name, "config": asdict(self.config), "fingerprint": self.fingerprint()}

    def labels(self, split: str) -> list[int]:
        """The class of each video of ``split``: balanced, in an order fixed by the seed."""
        _check_split(split)
        count = self.config.train_videos if split == "train" else self.config.val_videos
        rng = np.random.default_rng([self.config.seed, SPLITS.index(split), GENERATOR_VERSION])
        return [int(k) for k in rng.permutation(np.arange(count) % self.num_classes)]

    def _videos(self) -> list[tuple[str, int, int]]:
        """(name, render seed, class) of every video of both splits."""
        c = self.config
        return [
            (f"{split}_{i:04d}", c.seed * 1_000_003 + s * 100_003 + i, label)
            for s, split in enumerate(SPLITS)
            for i, label in enumerate(self.labels(split))
        ]

    def _files(self, name: str) -> tuple[Path, Path]:
        """The video file and the object-track file of video ``name``."""
        return self.root / f"{name}.mp4", self.root / f"{name}_object.npz"

    def _is_cached(self, name: str, entry: dict | None) -> bool:
        """Both files of ``name`` exist and match the checksums of the manifest ``entry``."""
        digests = entry.get("sha256") if isinstance(entry, dict) else None
        if not isinstance(digests, dict):
            return False
        files = self._files(name)
        return all(f.is_file() and digests.get(f.name) == file_sha256(f) for f in files)

    def _manifest(self) -> dict:
        """The manifest; a missing or damaged one is empty (every file is rendered again)."""
        manifest = read_json(self.root / "manifest.json", "synthaction manifest", {})
        return manifest if isinstance(manifest, dict) else {}

    def _todo(self, manifest: dict) -> list[tuple[str, int, int]]:
        """The videos (``_videos``) whose files the manifest does not vouch for."""
        return [v for v in self._videos() if not self._is_cached(v[0], manifest.get(v[0]))]

    def prepare(self) -> Path:
        """Render and encode whatever is missing or damaged, holding the cache's lock (another
        process preparing the same data waits, then finds it done); write the manifest."""
        if not self._todo(self._manifest()):
            return self.root
        with file_lock(self.root / "prepare.lock"):
            manifest = self._manifest()
            todo = self._todo(manifest)
            for name, seed, label in tqdm(todo, desc="synthaction: render + encode", unit="video"):
                manifest[name] = self._render(name, seed, label)
                write_json_atomic(self.root / "manifest.json", manifest)
        return self.root

    def _render(self, name: str, seed: int, label: int) -> dict:
        """Render, encode and annotate one video; its manifest entry."""
        c = self.config
        clip = render_clip(seed, label, c.height, c.width, c.frames, (c.min_area, c.max_area))
        video, track = self._files(name)
        encode_h264(clip.frames, video, fps=c.fps, crf=c.crf)
        np.savez_compressed(
            track,
            label=np.int64(clip.label),
            boxes=clip.boxes,
            visibility=clip.visibility,
            visible_fraction=clip.visible_fraction,
        )
        states = np.bincount(clip.visibility, minlength=len(VISIBILITY_NAMES))
        return {
            "seed": seed,
            "class": CLASS_NAMES[label],
            "frames": dict(zip(VISIBILITY_NAMES, map(int, states))),
            "sha256": {f.name: file_sha256(f) for f in (video, track)},
        }

    def split(self, name: str) -> list[ActionVideo]:
        """The videos of ``train`` or ``val`` in a fixed order (prepares the data if needed)."""
        _check_split(name)
        self.prepare()
        c = self.config
        augment = TrainAugment(flip=True) if name == "train" and c.train_flip else None
        return [
            ActionVideo(video, *self._files(video), label, c.frames, float(c.fps), augment)
            for video, _, label in self._videos()
            if video.startswith(f"{name}_")
        ]
