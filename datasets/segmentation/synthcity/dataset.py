"""synthcity as a dataset: Cityscapes-shaped snippets rendered, encoded to H.264 and cached.

Each snippet has 30 frames (configurable) with the labelled frame at index 19, like
Cityscapes' ``leftImg8bit_sequence``; synthcity labels every frame, and training uses them
all. Videos are encoded with libx264 (no B-frames, one reference frame, a single I-frame), so
every P-frame's vectors point to the previous frame. A ``manifest.json`` (written atomically)
records the SHA-256 of each video and labels file; files that match are reused, missing,
damaged or swapped ones are rendered again, one process at a time (``prepare.lock``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import numpy as np
from tqdm import tqdm
from vidbench.datasets.scenery import check_world_size
from vidbench.datasets.segmentation.synthcity.render import CLASS_NAMES, render_snippet
from vidbench.datasets.video.codec import X264_PARAMS, encode_cost, encode_h264
from vidbench.datasets.video.encoded import EncodedVideo
from vidbench.files import file_lock, file_sha256, read_json, write_json_atomic

GENERATOR_VERSION = 1
SPLITS = ("train", "val")


@dataclass(frozen=True)
class SynthCityConfig:
    """Size of the world; the defaults keep ``make demo`` inside its time budget."""

    train_videos: int = 48
    val_videos: int = 100
    height: int = 128
    width: int = 256
    frames: int = 30
    labelled_index: int = 19
    fps: int = 17
    crf: int = 20
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.labelled_index < self.frames:
            raise ValueError(
                f"labelled_index {self.labelled_index} is outside 0..{self.frames - 1}"
            )
        if min(self.height, self.width) < 32:
            raise ValueError(f"frames of {self.height}x{self.width} are too small (min 32)")
        check_world_size(self, "synthcity")


class SynthCity:
    """The embedded default segmentation dataset (19 Cityscapes train ids, ignore 255)."""

    name = "synthcity"
    tasks = ("segmentation",)
    Config = SynthCityConfig
    num_classes = 19
    ignore_index = 255
    class_names = CLASS_NAMES

    def __init__(self, config: SynthCityConfig, data_root: Path) -> None:
        self.config = config
        self.root = Path(data_root) / "synthcity" / self.fingerprint()
        self.labelled_index = config.labelled_index

    def fingerprint(self) -> str:
        """Identifies the generated data: config, generator and encoder settings."""
        identity = {
            "config": asdict(self.config),
            "generator": GENERATOR_VERSION,
            "x264": X264_PARAMS,
        }
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]

    def describe(self) -> dict:
        return {"name": self.name, "config": asdict(self.config), "fingerprint": self.fingerprint()}

    def _snippet_seed(self, split: str, index: int) -> int:
        return self.config.seed * 1_000_003 + SPLITS.index(split) * 100_003 + index

    def _entry_names(self, split: str) -> list[str]:
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
                self._todo(manifest), desc="synthcity: render + encode", unit="video"
            ):
                manifest[name] = self._generate(split, index, name)
                write_json_atomic(self.root / "manifest.json", manifest)
        return self.root

    def preparation(self) -> dict:
        """What encoding the cache cost (ms per frame, frames timed), for the records' context."""
        return encode_cost(self._manifest().values())

    def _manifest(self) -> dict:
        """The manifest; a missing or damaged one is empty (every file is rendered again)."""
        manifest = read_json(self.root / "manifest.json", "synthcity manifest", {})
        return manifest if isinstance(manifest, dict) else {}

    def _todo(self, manifest: dict) -> list[tuple[str, int, str]]:
        """(split, index, name) of every video whose files the manifest does not vouch for."""
        return [
            (split, i, name)
            for split in SPLITS
            for i, name in enumerate(self._entry_names(split))
            if not self._entry_intact(name, manifest.get(name))
        ]

    def _entry_intact(self, name: str, entry: dict | None) -> bool:
        """Both files of ``name`` are there with the SHA-256 the manifest ``entry`` records."""
        if not isinstance(entry, dict):
            return False
        files = {"sha256": self.root / f"{name}.mp4", "labels_sha256": self._labels_path(name)}
        return all(f.is_file() and entry.get(k) == file_sha256(f) for k, f in files.items())

    def _labels_path(self, name: str) -> Path:
        return self.root / f"{name}_labels.npz"

    def _generate(self, split: str, index: int, name: str) -> dict:
        c = self.config
        seed = self._snippet_seed(split, index)
        snippet = render_snippet(seed, c.height, c.width, c.frames)
        self.root.mkdir(parents=True, exist_ok=True)
        video_path, labels_path = self.root / f"{name}.mp4", self._labels_path(name)
        encode_ms = encode_h264(snippet.frames, video_path, fps=c.fps, crf=c.crf)
        np.savez_compressed(labels_path, labels=snippet.labels)
        return {
            "video": video_path.name,
            "labels": labels_path.name,
            "seed": seed,
            "frames": c.frames,
            "height": c.height,
            "width": c.width,
            "sha256": file_sha256(video_path),
            "labels_sha256": file_sha256(labels_path),
            "encode_ms_per_frame": round(encode_ms, 3),
        }

    def split(self, name: str) -> list[EncodedVideo]:
        """The videos of ``train`` or ``val`` in a fixed order (prepares the data if needed)."""
        if name not in SPLITS:
            raise ValueError(
                f"Unknown split '{name}' of synthcity; available: {', '.join(SPLITS)}."
            )
        self.prepare()
        labelled = tuple(range(self.config.frames))
        return [
            EncodedVideo(
                entry,
                self.root / f"{entry}.mp4",
                self.root / f"{entry}_labels.npz",
                labelled,
                float(self.config.fps),
                partial(self.backward_flow, name, i),
                scored_index=self.config.labelled_index,
            )
            for i, entry in enumerate(self._entry_names(name))
        ]

    def backward_flow(self, split: str, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Rendered ground-truth backward flow of a snippet (re-rendered: it is deterministic,
        and cheaper to redo than to store)."""
        c = self.config
        snippet = render_snippet(self._snippet_seed(split, index), c.height, c.width, c.frames)
        return snippet.backward_flow, snippet.backward_valid
