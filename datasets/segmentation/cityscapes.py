"""Cityscapes (docs/datasets.md §1) as a vidbench dataset: gtFine labels on 30-frame snippets of
``leftImg8bit_sequence``, encoded to H.264.

The labelId -> trainId lookup maps gtFine labelIds to the 19 train ids (everything else 255,
§1.4); the name parser derives the labelled frame F and its position inside its snippet from the
gtFine file name (§1.2, §1.6). Each labelled frame becomes one video of frames F-19 .. F+10 of
its sequence (fewer before F where F < 19), with labels only at F (255 elsewhere), encoded once
with encode_h264's settings under ``<data_root>/cityscapes-h264/<encoding key>/``; the key
hashes the loader version, the x264 parameters, crf, fps and scale, so subsets share the files.

Each encoded snippet is keyed by its source (``video.source_key``): the size and mtime_ns of its
frames (hashing some 90,000 full-size frames on every run would dominate) and the SHA-256 of
its gtFine file (small). So another root, or a changed file, never reuses another tree's
encodes, and the fingerprint (records' dataset identity; the encode timing stays out of it)
changes with the content. A frame rewritten with the same size and mtime is not noticed.

Before the first encode, everything to be encoded is checked: every file present with a
readable, whole PNG header (seconds), then every image's data (``png.check_png_data``: about
one more read of the frames, so that a frame whose data is broken fails before anything is
written, not after other snippets were encoded), then every label id. Entries are written
under temporary names and renamed, one process at a time (``SnippetCache.fill``).

``SnippetCache`` and the helpers here are shared with
vidbench.datasets.segmentation.camvid.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import cached_property, partial
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from PIL import Image
from tqdm import tqdm
from vidbench.api import DataError
from vidbench.datasets.segmentation.png import check_png_data, png_size, read_png
from vidbench.datasets.video.codec import X264_PARAMS, encode_cost, encode_h264, encoder_settings
from vidbench.datasets.video.encoded import EncodedVideo
from vidbench.datasets.video.source_key import source_key
from vidbench.files import file_lock, file_sha256, read_json, write_json_atomic

T = TypeVar("T")

SNIPPET_FRAMES = 30
FRAMES_BEFORE = 19  # the labelled frame is the 20th of its snippet: frames F-19 .. F+10
IGNORE_INDEX = 255
MAX_LABEL_ID = 33

# labelId -> trainId for the 19 evaluated classes (cityscapesScripts helpers/labels.py).
_TRAIN_IDS = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9,
    23: 10, 24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18,
}
CLASS_NAMES = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
    "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
    "motorcycle", "bicycle",
)
_GT_SUFFIX = "_gtFine_labelIds.png"
_GT_NAME = re.compile(r"^([A-Za-z_-]+?)_(\d{6})_(\d{6})_gtFine_labelIds\.png$")


def label_table() -> np.ndarray:
    """(256,) uint8 labelId -> trainId; ids 0..33 without a train id map to 255."""
    table = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    for label_id, train_id in _TRAIN_IDS.items():
        table[label_id] = train_id
    return table


def to_train_ids(label_ids: np.ndarray, source: str) -> np.ndarray:
    """Map a labelIds image to train ids; an id outside 0..33 raises DataError naming ``source``."""
    bad = label_ids > MAX_LABEL_ID
    if bad.any():
        raise DataError(
            f"{source}: label id {int(label_ids[bad].max())} is not a Cityscapes labelId "
            f"(expected 0..{MAX_LABEL_ID}, helpers/labels.py)"
        )
    return label_table()[label_ids]


@dataclass(frozen=True)
class LabelledFrame:
    """A gtFine file name parsed: city, sequence number and the labelled frame number F."""

    city: str
    sequence: int
    frame: int

    @property
    def first_frame(self) -> int:
        """Frame number of the snippet's first frame (F - 19, never below 0)."""
        return max(0, self.frame - FRAMES_BEFORE)

    @property
    def scored_index(self) -> int:
        """Position of the labelled frame inside its snippet, derived from the name."""
        return self.frame - self.first_frame

    def sequence_name(self, frame: int) -> str:
        """File name of frame ``frame`` of this sequence in leftImg8bit_sequence."""
        return f"{self.city}_{self.sequence:06d}_{frame:06d}_leftImg8bit.png"


def parse_gt_name(name: str) -> LabelledFrame:
    """Parse ``{city}_{seq:06d}_{frame:06d}_gtFine_labelIds.png`` (docs/datasets.md §1.2)."""
    match = _GT_NAME.match(name)
    if match is None:
        raise DataError(
            f"{name}: not a gtFine labelIds name; expected "
            f"{{city}}_{{seq:06d}}_{{frame:06d}}_gtFine_labelIds.png"
        )
    return LabelledFrame(match.group(1), int(match.group(2)), int(match.group(3)))


# ---- the snippet cache and helpers (shared with vidbench.datasets.segmentation.camvid)


def resize(image: np.ndarray, size: tuple[int, int], nearest: bool) -> np.ndarray:
    """``image`` at (width, height) ``size``: nearest for labels, bilinear for frames."""
    if (image.shape[1], image.shape[0]) == size:
        return image
    method = Image.Resampling.NEAREST if nearest else Image.Resampling.BILINEAR
    return np.asarray(Image.fromarray(image).resize(size, method))


def scaled(size: tuple[int, int], scale: float) -> tuple[int, int]:
    """(width, height) ``size`` times ``scale``, rounded."""
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def cache_key(identity: dict) -> str:
    """12 hex digits of the sha256 of a JSON-able identity."""
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]


def cache_header(config: Any, loader: int) -> dict:
    """What a snippet cache's manifest records about how its entries were made."""
    c = config
    return {"loader": loader, "encoder": encoder_settings(c.crf), "fps": c.fps, "scale": c.scale}


class SnippetCache:
    """Encoded snippets under ``folder``, listed in ``manifest.json`` with the source key they
    were encoded from (``source_key``), sizes, sha256 and encode ms per frame; an entry's files
    are ``<key>-<source key[:12]>.mp4`` and ``..._labels.npz``.

    An entry counts as intact when its source key is the one asked for and its files are there
    with the recorded sizes (hashing every cached file on each run would dominate); anything
    else is encoded again, one process at a time (``fill`` holds ``prepare.lock``). Files are
    written under temporary names and renamed, the manifest is replaced atomically.
    """

    def __init__(self, folder: Path, header: dict) -> None:
        self.folder = folder
        self.header = header  # loader version, encoder settings, fps: recorded in the manifest

    def manifest(self) -> dict:
        """The manifest; a missing or damaged one is empty (every entry is encoded again)."""
        manifest = read_json(self.folder / "manifest.json", "snippet-cache manifest", None)
        if not isinstance(manifest, dict) or not isinstance(manifest.get("entries"), dict):
            return {**self.header, "entries": {}}
        return manifest

    def paths(self, key: str, source: str) -> dict[str, Path]:
        """The video and labels files of entry ``key`` encoded from ``source``."""
        stem = f"{key}-{source[:12]}"
        return {"video": self.folder / f"{stem}.mp4", "labels": self.folder / f"{stem}_labels.npz"}

    def intact(self, entry: dict | None, source: str) -> bool:
        """``entry`` was encoded from ``source`` and its files are there, of their sizes."""
        if not isinstance(entry, dict) or entry.get("source") != source:
            return False
        try:
            files = [(self.folder / entry[k], entry[f"{k}_bytes"]) for k in ("video", "labels")]
        except KeyError:
            return False
        return all(path.is_file() and path.stat().st_size == size for path, size in files)

    def missing(
        self, items: Sequence[T], key: Callable[[T], str], source: Callable[[T], str]
    ) -> list[T]:
        """The ``items`` whose entry is not intact for their source key."""
        entries = self.manifest()["entries"]
        return [i for i in items if not self.intact(entries.get(key(i)), source(i))]

    def save(self, manifest: dict) -> None:
        """Write the manifest atomically, with the frame-weighted encode cost of all entries."""
        manifest.update(encode_cost(manifest["entries"].values()))
        write_json_atomic(self.folder / "manifest.json", manifest)

    def write(
        self, key: str, source: str, frames: np.ndarray, labels: np.ndarray, crf: int, fps: int
    ) -> dict:
        """Encode (T,H,W,3) ``frames`` and store (T,H,W) ``labels`` as entry ``key`` made
        from ``source``."""
        final = self.paths(key, source)
        final["video"].parent.mkdir(parents=True, exist_ok=True)
        partial = {k: p.with_name(f".{p.stem}.partial{p.suffix}") for k, p in final.items()}
        try:
            encode_ms = encode_h264(frames, partial["video"], fps=fps, crf=crf)
            np.savez_compressed(partial["labels"], labels=labels)
            for name, path in partial.items():
                path.replace(final[name])
        finally:
            for path in partial.values():
                path.unlink(missing_ok=True)
        entry: dict = {
            "source": source,
            "frames": len(frames),
            "height": frames.shape[1],
            "width": frames.shape[2],
            "encode_ms_per_frame": round(encode_ms, 3),
        }
        for name, path in final.items():
            entry[name] = str(path.relative_to(self.folder))
            entry[f"{name}_bytes"] = path.stat().st_size
            entry[f"{name}_sha256"] = file_sha256(path)
        return entry

    def fill(
        self,
        todo: Sequence[T],
        key: Callable[[T], str],
        source: Callable[[T], str],
        build: Callable[[T], dict],
        notes: dict[str, dict] | None = None,
    ) -> None:
        """Holding the cache's lock, run ``build`` (which encodes one entry via ``write``) for
        each item still missing (another process may have encoded some meanwhile), recording
        its entry under ``key(item)`` (the files of the entry it replaces are removed) and
        merging ``notes`` into the manifest's top-level dicts; what was encoded stays listed
        after a failure."""
        with file_lock(self.folder / "prepare.lock"):
            manifest = self.manifest()
            entries = manifest["entries"]
            todo = [i for i in todo if not self.intact(entries.get(key(i)), source(i))]
            for name, values in (notes or {}).items():
                manifest[name] = {**manifest.get(name, {}), **values}
            saved = time.monotonic()
            try:
                for item in tqdm(todo, desc=f"{self.folder.parent.name}: encode", unit="snippet"):
                    entry = build(item)
                    old = manifest["entries"].get(key(item))
                    manifest["entries"][key(item)] = entry
                    self._remove_replaced(old, entry)
                    if time.monotonic() - saved > 30:  # a large manifest: not rewritten per entry
                        self.save(manifest)
                        saved = time.monotonic()
            finally:
                self.save(manifest)

    def _remove_replaced(self, old: dict | None, new: dict) -> None:
        """Delete the files of entry ``old`` that entry ``new`` does not reuse."""
        for name in ("video", "labels"):
            stale = old.get(name) if isinstance(old, dict) else None
            if isinstance(stale, str) and stale != new[name]:
                (self.folder / stale).unlink(missing_ok=True)


# ---- the dataset

LOADER_VERSION = 1
SPLITS = ("train", "val")
ROOT_ENV = "CITYSCAPES_ROOT"
FRAMES_AFTER = SNIPPET_FRAMES - FRAMES_BEFORE - 1
LAYOUT = (
    "expected the official Cityscapes layout: <root>/gtFine/{train,val}/<city>/"
    "<city>_<seq:06d>_<frame:06d>_gtFine_labelIds.png and, from leftImg8bit_sequence_trainvaltest"
    ".zip, <root>/leftImg8bit_sequence/{train,val}/<city>/<city>_<seq:06d>_<frame:06d>_"
    "leftImg8bit.png for frames F-19 .. F+10 of every labelled frame F (docs/datasets.md §1.1, §1.6)"
)


@dataclass(frozen=True)
class CityscapesConfig:
    """Where the data is and how to encode it; ``root`` "" means $CITYSCAPES_ROOT, else
    ``<data_root>/cityscapes``; ``max_*`` 0 means all (the first N in name order otherwise);
    ``scale`` resizes frames (bilinear) and labels (nearest): 0.5 gives 1024x512."""

    root: str = ""
    max_train_videos: int = 0
    max_val_videos: int = 0
    scale: float = 1.0
    crf: int = 20
    fps: int = 17  # the sequences' rate (docs/datasets.md §1.6)

    def __post_init__(self) -> None:
        check_options(self)


def check_options(config: object) -> None:
    """Refuse negative ``max_*`` counts, a non-positive scale or fps and a crf outside 0..51."""
    for name, value in vars(config).items():
        if name.startswith("max_") and value < 0:
            raise ValueError(f"{name} is {value}; it must be >= 0 (0 means all)")
    scale, fps, crf = getattr(config, "scale"), getattr(config, "fps"), getattr(config, "crf")
    if not 0 < scale <= 4:
        raise ValueError(f"scale is {scale}; it must be in (0, 4]")
    if fps <= 0 or not 0 <= crf <= 51:
        raise ValueError(f"fps {fps} must be > 0 and crf {crf} in 0..51")


@dataclass(frozen=True)
class Snippet:
    """One labelled frame: its gtFine file and the sequence frames of its snippet, in order."""

    split: str
    gt: Path
    labelled: LabelledFrame
    frames: tuple[Path, ...]

    @property
    def key(self) -> str:
        """``<split>/<city>/<city>_<seq>_<frame>``: the entry's name in the cache."""
        return f"{self.split}/{self.labelled.city}/{self.gt.name.removesuffix(_GT_SUFFIX)}"


class Cityscapes:
    """Cityscapes: 2975 / 500 snippets of 30 frames at 17 fps around each gtFine frame.

    The gtFine frame is scored; 19 train ids, ignore 255 (docs/datasets.md §1)."""

    name = "cityscapes"
    tasks = ("segmentation",)
    Config = CityscapesConfig
    num_classes = len(CLASS_NAMES)
    ignore_index = IGNORE_INDEX
    class_names = CLASS_NAMES
    eval_split = "val"

    def __init__(self, config: CityscapesConfig, data_root: Path) -> None:
        self.config = config
        self.data_root = Path(data_root)
        self.source = Path(
            config.root or os.environ.get(ROOT_ENV, "") or self.data_root / "cityscapes"
        )
        self._snippets: dict[str, list[Snippet]] = {}
        self._sources: dict[str, str] = {}

    # ---- the tree and identity

    def _gt_files(self, split: str) -> list[Path]:
        """Every ``*_gtFine_labelIds.png`` of ``split``, sorted; a missing folder raises."""
        if not self.source.is_dir():
            raise DataError(
                f"{self.source}: Cityscapes root not found (set the dataset option root=, "
                f"${ROOT_ENV}, or put it at <data-root>/cityscapes); {LAYOUT}."
            )
        folder = self.source / "gtFine" / split
        files = sorted(folder.glob(f"*/*{_GT_SUFFIX}")) if folder.is_dir() else []
        if not files:
            raise DataError(f"{folder}: no */*{_GT_SUFFIX} files; {LAYOUT}.")
        return files

    def snippets(self, split: str) -> list[Snippet]:
        """The labelled frames of ``split`` in name order, cut to ``max_<split>_videos``."""
        if split not in SPLITS:
            raise ValueError(f"Unknown split '{split}' of cityscapes; available: train, val.")
        if split not in self._snippets:
            limit = getattr(self.config, f"max_{split}_videos")
            files = self._gt_files(split)
            self._snippets[split] = [self._snippet(split, gt) for gt in files[: limit or None]]
        return self._snippets[split]

    def _snippet(self, split: str, gt: Path) -> Snippet:
        try:
            labelled = parse_gt_name(gt.name)
        except DataError as error:
            raise DataError(f"{gt.parent}/{error}; {LAYOUT}.") from None
        if gt.parent.name != labelled.city:
            raise DataError(f"{gt}: city '{labelled.city}' is not its folder's; {LAYOUT}.")
        folder = self.source / "leftImg8bit_sequence" / split / labelled.city
        numbers = range(labelled.first_frame, labelled.frame + FRAMES_AFTER + 1)
        frames = tuple(folder / labelled.sequence_name(n) for n in numbers)
        return Snippet(split, gt, labelled, frames)

    def fingerprint(self) -> str:
        """Identifies the data as runs and checkpoints see it: options (not where the root is),
        the encoding key, the list of gtFine files and the source key of every snippet used."""
        return self._fingerprint

    @cached_property
    def _fingerprint(self) -> str:
        files = [str(p.relative_to(self.source)) for s in SPLITS for p in self._gt_files(s)]
        options = {k: v for k, v in asdict(self.config).items() if k != "root"}
        sources = {s.key: self._source(s) for split in SPLITS for s in self.snippets(split)}
        identity = {"config": options, "encoding": self._encoding_key, "files": files}
        return cache_key({**identity, "sources": sources})

    def _source(self, snippet: Snippet) -> str:
        """The snippet's source key: its frames' sizes and mtimes, its gtFine file's sha256."""
        if snippet.key not in self._sources:
            self._sources[snippet.key] = source_key(
                self.source, snippet.frames, (snippet.gt,), LAYOUT
            )
        return self._sources[snippet.key]

    @cached_property
    def _encoding_key(self) -> str:
        """What an encoded snippet depends on, so that subsets share one cache."""
        c = self.config
        identity = {"loader": LOADER_VERSION, "x264": X264_PARAMS, "crf": c.crf, "fps": c.fps}
        return cache_key({**identity, "scale": c.scale})

    @property
    def cache(self) -> SnippetCache:
        """``<data_root>/cityscapes-h264/<encoding key>/`` (outside the source tree, which may
        be read-only or at ``<data_root>/cityscapes``)."""
        folder = self.data_root / "cityscapes-h264" / self._encoding_key
        return SnippetCache(folder, cache_header(self.config, LOADER_VERSION))

    def describe(self) -> dict:
        """Identity for records: config, fingerprint, encoder, snippet shape (the encode cost,
        which varies run to run, goes to ``preparation``, outside the identity)."""
        return {
            "name": self.name,
            "config": asdict(self.config),
            "fingerprint": self.fingerprint(),
            "encoder": encoder_settings(self.config.crf),
            "snippet": {"frames_before": FRAMES_BEFORE, "frames_after": FRAMES_AFTER},
        }

    def preparation(self) -> dict:
        """What encoding the cache cost (ms per frame, frames timed), for the records' context."""
        return encode_cost(self.cache.manifest()["entries"].values())

    # ---- preparation

    def prepare(self, splits: Sequence[str] = SPLITS) -> Path:
        """Check the whole tree of what is missing from the cache (headers, every image's
        data, label ids), then encode it holding the cache's lock."""
        cache = self.cache
        snippets = [s for split in splits for s in self.snippets(split)]
        todo = cache.missing(snippets, lambda s: s.key, self._source)
        if todo:
            for snippet in tqdm(todo, desc="cityscapes: check files", unit="gt"):
                self._check_files(snippet)
            pngs = [p for s in todo for p in (s.gt, *s.frames)]
            check_png_data(pngs, LAYOUT, "cityscapes: check image data")
            for snippet in tqdm(todo, desc="cityscapes: check label ids", unit="gt"):
                self._train_ids(snippet)
            cache.fill(todo, lambda s: s.key, self._source, partial(self._encode, cache))
        return cache.folder

    def _check_files(self, snippet: Snippet) -> tuple[int, int]:
        """Every file of a snippet is there with a readable, whole header of one size."""
        size = png_size(snippet.gt, LAYOUT)
        for path in snippet.frames:
            if png_size(path, LAYOUT) != size:
                raise DataError(
                    f"{path}: {png_size(path, LAYOUT)} but its label {snippet.gt} is {size} "
                    f"(width, height); frames and labels must have one size; {LAYOUT}."
                )
        return size

    def _train_ids(self, snippet: Snippet) -> np.ndarray:
        """(H, W) uint8 train ids of the labelled frame; unknown ids raise DataError."""
        return to_train_ids(read_png(snippet.gt, LAYOUT, rgb=False), str(snippet.gt))

    def _labels(self, snippet: Snippet, size: tuple[int, int]) -> np.ndarray:
        """(T, H', W') uint8 train ids at the scaled size, 255 on every unlabelled frame."""
        train_ids = self._train_ids(snippet)
        width, height = scaled(size, self.config.scale)
        labels = np.full((len(snippet.frames), height, width), IGNORE_INDEX, np.uint8)
        labels[snippet.labelled.scored_index] = resize(train_ids, (width, height), nearest=True)
        return labels

    def _encode(self, cache: SnippetCache, snippet: Snippet) -> dict:
        size = png_size(snippet.gt, LAYOUT)
        target = scaled(size, self.config.scale)
        frames = np.stack(
            [resize(read_png(p, LAYOUT, rgb=True), target, nearest=False) for p in snippet.frames]
        )
        labels = self._labels(snippet, size)
        source = self._source(snippet)
        entry = cache.write(snippet.key, source, frames, labels, self.config.crf, self.config.fps)
        return {**entry, "scored_index": snippet.labelled.scored_index}

    # ---- access

    def split(self, name: str) -> list[EncodedVideo]:
        """The snippets of ``train`` or ``val`` in name order (encoding what is missing)."""
        snippets = self.snippets(name)
        self.prepare((name,))
        videos = []
        for s in snippets:
            files = self.cache.paths(s.key, self._source(s))
            index = s.labelled.scored_index
            videos.append(
                EncodedVideo(
                    s.key.rsplit("/", 1)[1], files["video"], files["labels"], (index,),
                    float(self.config.fps), scored_index=index,
                )  # fmt: skip
            )
        return videos
