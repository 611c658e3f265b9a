"""synthdet as a dataset: box-annotated videos rendered, encoded to H.264 and cached.

Each video is rendered by vidbench.datasets.detection.synthdet.world, encoded with libx264 like
synthcity (no B-frames, one reference frame, a single I-frame) and annotated on every frame
(boxes, classes, track ids, and FGFA's motion IoU computed from the whole tracks). A
``manifest.json`` (written atomically) records each file's SHA-256; missing, damaged or swapped
files are rendered again, one process at a time (``prepare.lock``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm
from vidbench.api import DetectionTarget
from vidbench.boxes import motion_iou
from vidbench.datasets.detection.boxed_video import DetectionVideo, save_annotations
from vidbench.datasets.detection.synthdet.world import CLASS_NAMES, render_clip
from vidbench.datasets.scenery import check_world_size
from vidbench.datasets.video.codec import X264_PARAMS, encode_cost, encode_h264
from vidbench.files import file_lock, file_sha256, read_json, write_json_atomic

GENERATOR_VERSION = 1
SPLITS = ("train", "val")


@dataclass(frozen=True)
class SynthDetConfig:
    """Size of the world; the defaults keep ``make demo-detection`` inside its time budget."""

    train_videos: int = 24
    val_videos: int = 16
    height: int = 128
    width: int = 256
    frames: int = 48
    objects: int = 6
    fps: int = 25
    crf: int = 20
    seed: int = 0

    def __post_init__(self) -> None:
        if min(self.height, self.width) < 64:
            raise ValueError(f"frames of {self.height}x{self.width} are too small (min 64)")
        check_world_size(self, "synthdet")
        if self.frames < 2 or self.objects < 1:
            raise ValueError("synthdet needs at least 2 frames and 1 object per video")


class SynthDet:
    """The embedded default detection dataset (6 classes, every frame annotated)."""

    name = "synthdet"
    tasks = ("detection",)
    Config = SynthDetConfig
    num_classes = len(CLASS_NAMES)
    class_names = CLASS_NAMES

    def __init__(self, config: SynthDetConfig, data_root: Path) -> None:
        self.config = config
        self.root = Path(data_root) / "synthdet" / self.fingerprint()

    def fingerprint(self) -> str:
        """Identifies the generated data: config, generator and encoder settings."""
        identity = {"config": asdict(self.config), "generator": GENERATOR_VERSION, "x264": X264_PARAMS}
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]

    def describe(self) -> dict:
        return {"name": self.name, "config": asdict(self.config), "fingerprint": self.fingerprint()}

    def _seed(self, split: str, index: int) -> int:
        return self.config.seed * 1_000_003 + SPLITS.index(split) * 100_003 + index

    def _names(self, split: str) -> list[str]:
        count = self.config.train_videos if split == "train" else self.config.val_videos
        return [f"{split}_{index:04d}" for index in range(count)]

    def prepare(self) -> Path:
        """Render and encode whatever is missing or damaged, holding the cache's lock (another
        process preparing the same data waits, then finds it done); write the manifest."""
        if not self._todo(self._manifest()):
            return self.root
        with file_lock(self.root / "prepare.lock"):
            manifest = self._manifest()
            for split, index, name in tqdm(
                self._todo(manifest), desc="synthdet: render + encode", unit="video"
            ):
                manifest[name] = self._generate(split, index, name)
                write_json_atomic(self.root / "manifest.json", manifest)
        return self.root

    def preparation(self) -> dict:
        """What encoding the cache cost (ms per frame, frames timed), for the records' context."""
        return encode_cost(self._manifest().values())

    def _manifest(self) -> dict:
        """The manifest; a missing or damaged one is empty (every file is rendered again)."""
        manifest = read_json(self.root / "manifest.json", "synthdet manifest", {})
        return manifest if isinstance(manifest, dict) else {}

    def _todo(self, manifest: dict) -> list[tuple[str, int, str]]:
        """(split, index, name) of every video whose files the manifest does not vouch for."""
        return [
            (split, i, name)
            for split in SPLITS
            for i, name in enumerate(self._names(split))
            if not self._intact(name, manifest.get(name))
        ]

    def _intact(self, name: str, entry: dict | None) -> bool:
        """Both files of ``name`` are there with the SHA-256 the manifest ``entry`` records."""
        if not isinstance(entry, dict):
            return False
        files = {"sha256": self.root / f"{name}.mp4",
                 "annotations_sha256": self.root / f"{name}_boxes.npz"}  # fmt: skip
        return all(f.is_file() and entry.get(k) == file_sha256(f) for k, f in files.items())

    def _generate(self, split: str, index: int, name: str) -> dict:
        c = self.config
        clip = render_clip(self._seed(split, index), c.height, c.width, c.frames, c.objects)
        speeds = motion_iou(clip.boxes, clip.track_ids)
        targets = [
            DetectionTarget(b, k, i, s)
            for b, k, i, s in zip(clip.boxes, clip.labels, clip.track_ids, speeds)
        ]
        self.root.mkdir(parents=True, exist_ok=True)
        video, annotations = self.root / f"{name}.mp4", self.root / f"{name}_boxes.npz"
        encode_ms = encode_h264(clip.frames, video, fps=c.fps, crf=c.crf)
        save_annotations(annotations, targets)
        return {
            "video": video.name,
            "annotations": annotations.name,
            "seed": self._seed(split, index),
            "objects": int(sum(len(b) for b in clip.boxes)),
            "sha256": file_sha256(video),
            "annotations_sha256": file_sha256(annotations),
            "frames": c.frames,
            "encode_ms_per_frame": round(encode_ms, 3),
        }

    def split(self, name: str) -> list[DetectionVideo]:
        """The videos of ``train`` or ``val`` in a fixed order (prepares the data if needed)."""
        if name not in SPLITS:
            raise ValueError(f"Unknown split '{name}' of synthdet; available: {', '.join(SPLITS)}.")
        self.prepare()
        frames = tuple(range(self.config.frames))
        return [
            DetectionVideo(
                entry,
                self.root / f"{entry}.mp4",
                self.root / f"{entry}_boxes.npz",
                frames,
                float(self.config.fps),
            )
            for entry in self._names(name)
        ]

    def speed_bins(self, split: str = "val") -> dict[str, float]:
        """Fractions of annotated objects per FGFA motion-speed bin (slow > 0.9, fast < 0.7)."""
        values = np.concatenate([v.label(i).motion_iou for v in self.split(split)
                                 for i in v.label_indices])
        values = values[np.isfinite(values)]
        return {
            "slow": float((values > 0.9).mean()),
            "medium": float(((values >= 0.7) & (values <= 0.9)).mean()),
            "fast": float((values < 0.7).mean()),
        }
