"""ActivityNet v1.3, FCVID, Mini-Kinetics and Something-Something V1/V2 as vidbench recognition
datasets, read in the layouts they are distributed or extracted in (docs/datasets.md §4-7, §0).

Each dataset is a root folder (the ``root`` option, else ``$<NAME>_ROOT``, else
``<data_root>/<name>``) holding the lists named in its ``LAYOUT``; class ids follow
vidbench.datasets.recognition.lists. ``prepare()`` parses the lists and checks, for every
listed video, that its frame folder (first and last listed frame) or video file is there, so a
missing or partial tree fails within seconds with a DataError naming the file. A listed video
whose data is wholly absent is an error unless ``allow_missing`` (ActivityNet and Mini-Kinetics
are fetched from YouTube and some videos are gone); ``describe()`` reports how many listed val
videos exist and how many are evaluated (docs/datasets.md §4.1, §8.5). Frames are read lazily
per video (vidbench.datasets.recognition.sampled_video), so one undecodable video spoils only
its own record.
"""

from __future__ import annotations

import abc
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

from vidbench.api import DataError
from vidbench.datasets.recognition.lists import (
    ListEntry,
    arnet_list,
    class_lines,
    minik_list,
    read_json,
    sth_v1_classes,
    sth_v1_list,
    sth_v2_classes,
    sth_v2_list,
)
from vidbench.datasets.recognition.sampled_video import (
    MULTI_SCALES,
    FrameFolder,
    Preprocess,
    RecognitionVideo,
    TrainAugment,
    VideoFile,
)

LOADER_VERSION = 1
SPLITS = ("train", "val")
# AR-Net / AdaFocus extract image_%05d.jpg (ops/video_jpg.py); AR-Net's Mini-K config reads
# %05d.jpg; an empty ``frame_template`` picks whichever the first listed folder holds.
FRAME_TEMPLATES = ("image_{:05d}.jpg", "{:05d}.jpg", "img_{:05d}.jpg", "{:06d}.jpg")
SAMPLING = (
    "TSN/AR-Net test-time segment centres: 0-based frame floor((2k+1)*n/(2T)), k=0..T-1, of the "
    "n listed (or decoded) frames; frame files are 1-based"
)


@dataclass(frozen=True)
class RecognitionConfig:
    """Where the data is and how it is sampled: ``frames`` T per video (AdaFocus: 16),
    ``resize``/``crop`` the test transform (sec. 4.1: resize to 256x256, centre crop 224;
    ``resize_mode="shorter"`` resizes the shorter side as AR-Net's code does),
    ``train_augment`` the training augmentation of sec. 4.1 (train frames resized to
    ``resize`` x ``resize``, a random multi-scale crop resized to ``crop``, and a random flip
    where ``flip``), ``max_*_videos`` 0 = all (else the first N present), ``frame_template``
    "" = detect, ``allow_missing`` skips listed videos without data."""

    root: str = ""
    frames: int = 16
    resize: int = 256
    crop: int = 224
    resize_mode: Literal["shorter", "square"] = "square"
    train_augment: bool = True
    flip: bool = True
    max_val_videos: int = 0
    max_train_videos: int = 0
    allow_missing: bool = False
    frame_template: str = ""

    def __post_init__(self) -> None:
        if self.frames < 1:
            raise ValueError(f"frames is {self.frames}; it must be >= 1")
        for name in ("max_val_videos", "max_train_videos"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} is {getattr(self, name)}; it must be >= 0")
        Preprocess(self.resize, self.crop, self.resize_mode)
        if self.frame_template and self.frame_template.count("{") != 1:
            raise ValueError(f"frame_template '{self.frame_template}' needs one {{:05d}} field")


@dataclass(frozen=True)
class SomethingConfig(RecognitionConfig):
    """Sth-Sth: AdaFocus-TSM's f_G sees 8 frames and f_L 12 distinct ones (Table 3), each the
    segment centres of the sampled clip, so the loader samples 24 (8 of them are the exact
    centres of 8 segments, 12 lie within 1/48 of the video of the 12 segments' centres); no
    flips in training (sec. 4.1: flipping changes Sth-Sth's left/right classes)."""

    frames: int = 24
    flip: bool = False


@dataclass(frozen=True)
class SomethingV1Config(SomethingConfig):
    """``label_order``: "sorted" (TSM/TRN, = V2's order; AdaFocus's Sth-Sth code is TSM-based)
    or "csv" (official labels CSV order: mmaction2, AdaFuse)."""

    label_order: Literal["sorted", "csv"] = "sorted"


@dataclass(frozen=True)
class _Scan:
    """The listed videos of one split whose data is present, and how many were absent."""

    present: list[ListEntry]
    listed: int
    missing: int


class RecognitionDataset(abc.ABC):
    """Shared machinery; a subclass names its files (``LAYOUT``, ``LIST_FILES``,
    ``CLASS_FILES``), parses its lists (``_parse``) and says where a listed video's data lives
    (``_source``)."""

    name = ""
    tasks = ("recognition",)
    Config: type = RecognitionConfig
    ROOT_ENV = ""
    LAYOUT = ""
    LIST_FILES: dict[str, str] = {}
    CLASS_FILES: tuple[str, ...] = ()

    def __init__(self, config: RecognitionConfig, data_root: Path) -> None:
        self.config = config
        self.data_root = Path(data_root)
        self.source = Path(
            config.root or os.environ.get(self.ROOT_ENV, "") or self.data_root / self.name
        )
        self.preprocess = Preprocess(config.resize, config.crop, config.resize_mode)
        self._scans: dict[str, _Scan] = {}
        self._lists: dict[str, list[ListEntry]] = {}

    # ---- classes and lists

    def _check_root(self) -> None:
        if not self.source.is_dir():
            raise DataError(
                f"{self.source}: {self.name} root not found (set the dataset option root=, "
                f"${self.ROOT_ENV}, or put it at <data-root>/{self.name}); {self.LAYOUT}."
            )

    @cached_property
    def class_names(self) -> tuple[str, ...]:
        """Class names by id, read from the class list file(s)."""
        self._check_root()
        return self._classes()

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def _classes(self) -> tuple[str, ...]:
        return class_lines(self.source / self.CLASS_FILES[0], self.LAYOUT)

    @abc.abstractmethod
    def _parse(self, split: str) -> list[ListEntry]:
        """The entries of ``split``'s list file in list order."""

    @abc.abstractmethod
    def _source(self, entry: ListEntry) -> FrameFolder | VideoFile:
        """Where a listed video's frames come from."""

    def _list(self, split: str) -> list[ListEntry]:
        """``split``'s entries, parsed once."""
        if split not in self._lists:
            self._check_root()
            self._lists[split] = self._parse(split)
        return self._lists[split]

    def _list_path(self, split: str) -> Path:
        if split not in SPLITS:
            raise ValueError(f"Unknown split '{split}' of {self.name}; available: train, val.")
        return self.source / self.LIST_FILES[split]

    # ---- identity

    def fingerprint(self) -> str:
        """Identifies the dataset as runs see it: options (not where the root is), loader
        version and the content of the class and split lists."""
        return self._fingerprint

    @cached_property
    def _fingerprint(self) -> str:
        self._check_root()
        files = [*self.CLASS_FILES, *self.LIST_FILES.values()]
        identity = {
            "name": self.name,
            "loader": LOADER_VERSION,
            "config": {k: v for k, v in asdict(self.config).items() if k != "root"},
            "files": {
                f: hashlib.sha256((self.source / f).read_bytes()).hexdigest()
                for f in files
                if (self.source / f).is_file()
            },
        }
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]

    def describe(self) -> dict:
        """Identity for records: config, fingerprint, lists, class table, sampling and how many
        listed val videos exist and are evaluated."""
        scan = self.prepare(("val",))["val"]
        return {
            "name": self.name,
            "config": asdict(self.config),
            "fingerprint": self.fingerprint(),
            "lists": dict(self.LIST_FILES),
            "class_files": list(self.CLASS_FILES),
            "class_names": list(self.class_names),
            "sampling": f"{self.config.frames} frames: {SAMPLING}",
            "preprocess": asdict(self.preprocess),
            "val_videos": {
                "listed": scan.listed,
                "present": len(scan.present),
                "missing": scan.missing,
                "evaluated": len(self._limited("val", scan.present)),
            },
        }

    # ---- checks and access

    def prepare(self, splits: Sequence[str] = SPLITS) -> dict[str, _Scan]:
        """Parse the class and split lists and check every listed video's data is there."""
        self._check_root()
        for split in splits:
            if split not in self._scans:
                self._scans[split] = self._scan(split, self._list(split))
        return {split: self._scans[split] for split in splits}

    def _scan(self, split: str, entries: list[ListEntry]) -> _Scan:
        present = [e for e in entries if self._present(e)]
        missing = len(entries) - len(present)
        if missing and not self.config.allow_missing:
            absent = next(e for e in entries if not self._present(e))
            raise DataError(
                f"{self._where(absent)}: listed in {self._list_path(split)} but missing "
                f"({missing} of {len(entries)} listed videos; allow_missing=true skips them and "
                f"describe() counts them); {self.LAYOUT}."
            )
        return _Scan(present, len(entries), missing)

    def _where(self, entry: ListEntry) -> Path:
        source = self._source(entry)
        return source.folder if isinstance(source, FrameFolder) else source.path

    def _present(self, entry: ListEntry) -> bool:
        """False when the video's data is wholly absent; partial data raises DataError."""
        source = self._source(entry)
        if isinstance(source, VideoFile):
            if not source.path.exists():
                return False
            if not source.path.is_file() or source.path.stat().st_size == 0:
                raise DataError(f"{source.path}: empty or not a file; {self.LAYOUT}.")
            return True
        if not source.folder.is_dir():
            return False
        ends = [1] if source.num_frames is None else [1, source.num_frames]
        for index in ends:
            path = source.folder / source.template.format(index)
            if not path.is_file():
                listed = "" if source.num_frames is None else f" of {source.num_frames} listed"
                raise DataError(f"{path}: frame {index}{listed} missing (partial frame folder); "
                                f"{self.LAYOUT}.")  # fmt: skip
        return True

    def _limited(self, split: str, entries: list[ListEntry]) -> list[ListEntry]:
        limit = self.config.max_val_videos if split == "val" else self.config.max_train_videos
        return entries[:limit] if limit else entries

    def split(self, name: str) -> list[RecognitionVideo]:
        """The present videos of ``train`` or ``val`` in list order, cut to ``max_*_videos``."""
        self._list_path(name)
        scan = self.prepare((name,))[name]
        return [
            RecognitionVideo(
                entry.path,
                entry.labels,
                self._source(entry),
                self.config.frames,
                self.preprocess,
                self.LAYOUT,
                self.train_augment if name == "train" else None,
            )
            for entry in self._limited(name, scan.present)
        ]

    @property
    def train_augment(self) -> TrainAugment | None:
        """The training augmentation of sec. 4.1 (None when ``train_augment`` is off)."""
        if not self.config.train_augment:
            return None
        return TrainAugment(MULTI_SCALES, self.config.crop, self.config.flip)


class ARNetFrames(RecognitionDataset):
    """AR-Net/AdaFocus packages: lists and a class file at the root, JPEG frames extracted by
    ``ops/video_jpg.py`` under ``frames/<list path>/``."""

    @cached_property
    def _template(self) -> str:
        """The frame file template: configured, else the one the first present folder holds."""
        if self.config.frame_template:
            return self.config.frame_template
        frames = self.source / "frames"
        for split in ("val", "train"):
            path = self._list_path(split)
            if not path.is_file():
                continue
            for entry in self._list(split):
                folder = frames / entry.path
                if folder.is_dir():
                    for template in FRAME_TEMPLATES:
                        if (folder / template.format(1)).is_file():
                            return template
                    raise DataError(
                        f"{folder}: none of {', '.join(FRAME_TEMPLATES)} for frame 1 (set "
                        f"frame_template=); {self.LAYOUT}."
                    )
        return FRAME_TEMPLATES[0]

    def _source(self, entry: ListEntry) -> FrameFolder:
        return FrameFolder(self.source / "frames" / entry.path, self._template, entry.num_frames)

    def _parse(self, split: str) -> list[ListEntry]:
        return arnet_list(self._list_path(split), self.num_classes, self.LAYOUT)


class ActivityNet(ARNetFrames):
    """ActivityNet v1.3 (200 classes) with AR-Net's split lists; the official annotation JSON,
    where present at the root, must know every class name of ``classInd.txt`` (kept verbatim,
    typos included), and ``describe()`` stores the name -> id table."""

    name = "activitynet"
    ROOT_ENV = "ACTIVITYNET_ROOT"
    LIST_FILES = {"train": "actnet_train_split.txt", "val": "actnet_val_split.txt"}
    CLASS_FILES = ("classInd.txt",)
    ANNOTATIONS = "activity_net.v1-3.min.json"
    LAYOUT = (
        "expected AR-Net's ActivityNet layout: <root>/classInd.txt (one class name per line, id = "
        "0-based line), <root>/actnet_{train,val}_split.txt (<frame dir>,<num_frames>,<label>"
        "[,<label2>[,<label3>]]), <root>/frames/<frame dir>/image_%05d.jpg from 00001, optional "
        "<root>/activity_net.v1-3.min.json"
    )

    def _classes(self) -> tuple[str, ...]:
        names = super()._classes()
        path = self.source / self.ANNOTATIONS
        if path.is_file():
            known = self._annotation_classes(path)
            unknown = [name for name in names if name not in known]
            if unknown:
                raise DataError(
                    f"{self.source / self.CLASS_FILES[0]}: class '{unknown[0]}' is not a label "
                    f"in {path} ({len(unknown)} unknown); {self.LAYOUT}."
                )
        return names

    def _annotation_classes(self, path: Path) -> set[str]:
        data = read_json(path, self.LAYOUT)
        database = data.get("database") if isinstance(data, dict) else None
        if not isinstance(database, dict):
            raise DataError(f"{path}: no 'database' object; {self.LAYOUT}.")
        return {
            str(a.get("label"))
            for video in database.values()
            for a in video.get("annotations", [])
        }

    def describe(self) -> dict:
        out = super().describe()
        out["class_ids"] = {name: k for k, name in enumerate(self.class_names)}
        return out


class FCVID(ARNetFrames):
    """FCVID (239 classes) with AR-Net's lists; the "val" list is the official test split."""

    name = "fcvid"
    ROOT_ENV = "FCVID_ROOT"
    LIST_FILES = {"train": "fcvid_train_split.txt", "val": "fcvid_val_split.txt"}
    CLASS_FILES = ("classInd.txt",)
    LAYOUT = (
        "expected AR-Net's FCVID layout: <root>/classInd.txt (one class name per line, id = "
        "0-based line), <root>/fcvid_{train,val}_split.txt (<frame dir>,<num_frames>,<label>"
        "[,<label2>[,<label3>]]), <root>/frames/<frame dir>/image_%05d.jpg from 00001"
    )


class MiniKinetics(ARNetFrames):
    """Mini-Kinetics, AR-Net/AdaFuse split (200 classes; val 9 867 clips)."""

    name = "mini-kinetics"
    ROOT_ENV = "MINIKINETICS_ROOT"
    LIST_FILES = {"train": "mini_train_videofolder.txt", "val": "mini_val_videofolder.txt"}
    CLASS_FILES = ("minik_classInd.txt",)
    LAYOUT = (
        "expected the AR-Net/AdaFuse Mini-Kinetics layout: <root>/minik_classInd.txt (200 names, "
        "id = 0-based line), <root>/mini_{train,val}_videofolder.txt (images/<split>/<class>/"
        "<clip> <num_frames> <label>), <root>/frames/images/<split>/<class>/<clip>/"
        "image_%05d.jpg (or %05d.jpg) from 00001"
    )

    def _parse(self, split: str) -> list[ListEntry]:
        return minik_list(self._list_path(split), self.class_names, self.LAYOUT)


class SomethingV1(RecognitionDataset):
    """Something-Something V1: official JPEG frames and ``;``-separated label CSVs (174 classes,
    val 11 522); frame counts come from the folders."""

    name = "sth-sth-v1"
    Config = SomethingV1Config
    ROOT_ENV = "STHSTH_V1_ROOT"
    LIST_FILES = {
        "train": "something-something-v1-train.csv",
        "val": "something-something-v1-validation.csv",
    }
    CLASS_FILES = ("something-something-v1-labels.csv",)
    FRAMES = "20bn-something-something-v1"
    LAYOUT = (
        "expected the official Something-Something V1 layout: <root>/something-something-v1-"
        "{labels,train,validation}.csv (';'-separated, no header) and <root>/"
        "20bn-something-something-v1/<video_id>/%05d.jpg from 00001"
    )

    def _classes(self) -> tuple[str, ...]:
        order = self.config.label_order  # type: ignore[attr-defined]
        return sth_v1_classes(self.source / self.CLASS_FILES[0], order, self.LAYOUT)

    def _parse(self, split: str) -> list[ListEntry]:
        return sth_v1_list(self._list_path(split), self.class_names, self.LAYOUT)

    def _source(self, entry: ListEntry) -> FrameFolder:
        template = self.config.frame_template or "{:05d}.jpg"
        return FrameFolder(self.source / self.FRAMES / entry.path, template, None)


class SomethingV2(RecognitionDataset):
    """Something-Something V2: official webm videos decoded with PyAV, JSON labels (174 classes,
    val 24 777)."""

    name = "sth-sth-v2"
    Config = SomethingConfig
    ROOT_ENV = "STHSTH_V2_ROOT"
    LIST_FILES = {
        "train": "something-something-v2-train.json",
        "val": "something-something-v2-validation.json",
    }
    CLASS_FILES = ("something-something-v2-labels.json",)
    VIDEOS = "20bn-something-something-v2"
    LAYOUT = (
        "expected the official Something-Something V2 layout: <root>/something-something-v2-"
        "labels.json (template -> id string), <root>/something-something-v2-{train,validation}"
        ".json ([{id, template, ...}]) and <root>/20bn-something-something-v2/<id>.webm"
    )

    def _classes(self) -> tuple[str, ...]:
        return sth_v2_classes(self.source / self.CLASS_FILES[0], self.LAYOUT)

    def _parse(self, split: str) -> list[ListEntry]:
        return sth_v2_list(self._list_path(split), self.class_names, self.LAYOUT)

    def _source(self, entry: ListEntry) -> VideoFile:
        return VideoFile(self.source / self.VIDEOS / f"{entry.path}.webm")
