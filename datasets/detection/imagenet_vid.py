"""ImageNet VID (ILSVRC2015 VID + the DET subset of its 30 classes) as a vidbench dataset
(docs/datasets.md §3; seed 001 sec. 4.1: trained on VID train + DET, evaluated on VID val).

Lists: val comes from FGFA's ``VID_val_videos.txt`` when present (it wins: the motion-IoU
``.mat`` is indexed in its order), else from the official ``ImageSets/VID/val.txt``; both list
the same 555 snippets. Train comes from FGFA's ``VID_train_15frames.txt`` when present (its 15
sampled frames per snippet, 0-based, become ``label_indices``), else from the official
``train_{1..30}.txt`` with every frame a sample. ``Config.lists`` forces one kind.

Every listed snippet is encoded once to H.264 (frame t = JPEG t, encode_h264 settings) under
``<data_root>/imagenet-vid/<encoding key>/`` (encoder, clipping and motion-IoU source only, so
that a larger ``max_*_videos`` or the other list reuses what is there; ``fingerprint()`` adds
the options and the lists' content), with its annotations (save_annotations) and a
sidecar ``<snippet>_flags.npz`` of ``occluded``/``generated`` in the same object order;
generated boxes are kept (the community protocol scores them all, docs/datasets.md §3.6). The
lists and the tree are checked before anything is encoded, every XML and JPEG header of what is
to be encoded next, then each snippet is written under a temporary name and renamed, one
process at a time (``prepare.lock``); the manifest (written atomically) records encoder
settings, sizes, sha256, encode ms per frame and the snippet's source key (the size and mtime of
each of its JPEGs and XMLs under the root, ``video.source_key``). Cached files count as intact
when present with their recorded sizes and made from the same source key, so another root or a
changed file is encoded again (hashing tens of GB on every run would dominate; a file
rewritten with the same size and mtime is not noticed).

DET images (``det_train()``) are one-frame sources read straight from their JPEGs: a still has
no temporal neighbour, so there is nothing for a codec to contribute.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm
from vidbench.api import DataError, DetectionTarget, Frame, VideoInfo
from vidbench.boxes import motion_iou
from vidbench.datasets.detection.boxed_video import DetectionVideo, save_annotations
from vidbench.datasets.detection.imagenet_vid_layout import (
    CLASS_NAMES,
    FGFA_LISTS,
    LAYOUT,
    FrameAnnotation,
    Snippet,
    check_size,
    check_snippet,
    det_list,
    fgfa_train,
    fgfa_val,
    find_list,
    jpeg_size,
    official_train,
    official_val,
    parse_xml,
    read_jpeg,
)
from vidbench.datasets.video.codec import X264_PARAMS, encode_cost, encode_h264, encoder_settings
from vidbench.datasets.video.encoded import MOTION_GRID
from vidbench.datasets.video.source_key import source_key
from vidbench.files import file_lock, file_sha256, read_json, write_json_atomic

LOADER_VERSION = 1
SPLITS = ("train", "val")
ROOT_ENV = "IMAGENET_VID_ROOT"
# Snippets whose RGB frames exceed this are staged in a memory-mapped file for encode_h264
# (the longest train snippet, 5492 frames of 1280x720, would need 15 GB of RAM).
IN_MEMORY_BYTES = 1 << 30


@dataclass(frozen=True)
class ImageNetVIDConfig:
    """Where the data is and what to encode; ``root`` "" means $IMAGENET_VID_ROOT, else
    ``<data_root>/ILSVRC2015``; ``max_*`` 0 means all (the first N of the list otherwise)."""

    root: str = ""
    max_train_videos: int = 0
    max_val_videos: int = 0
    max_det_images: int = 0
    lists: str = "auto"  # "auto" (FGFA where present), "fgfa" or "official"
    motion_iou_mat: str = ""  # FGFA's imagenet_vid_groundtruth_motion_iou.mat for val
    crf: int = 20
    fps: int = 30  # container rate; ILSVRC does not record a snippet's rate (25 or 30)
    box_clip_px: int = 1  # corners up to this far outside the frame are clipped onto it

    def __post_init__(self) -> None:
        if self.lists not in ("auto", "fgfa", "official"):
            raise ValueError(f"lists is '{self.lists}'; allowed: auto, fgfa, official")
        for name in ("max_train_videos", "max_val_videos", "max_det_images", "box_clip_px"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} is {getattr(self, name)}; it must be >= 0")
        if self.fps <= 0 or not 0 <= self.crf <= 51:
            raise ValueError(f"fps {self.fps} must be > 0 and crf {self.crf} in 0..51")


def _load_mat(path: Path) -> np.ndarray:
    """FGFA's per-frame motion-IoU cells (variable ``motion_iou``), through optional scipy."""
    try:
        from scipy.io import loadmat
    except ImportError:
        raise DataError(
            f"Config option motion_iou_mat={path} needs scipy to read the .mat file, which "
            f"vidbench does not depend on: pip install scipy (or leave motion_iou_mat empty to "
            f"compute motion IoU from the tracks)."
        ) from None
    if not path.is_file():
        raise DataError(f"{path}: motion_iou_mat file not found.")
    try:
        cells = loadmat(str(path))["motion_iou"]
    except (OSError, ValueError, KeyError) as error:
        raise DataError(f"{path}: cannot read variable motion_iou ({error}).") from None
    return cells.reshape(-1)


class DetImage:
    """One DET training image as a one-frame ``VideoSource`` (no motion: a still)."""

    def __init__(
        self, name: str, path: Path, target: DetectionTarget, size: tuple[int, int], fps: float
    ) -> None:
        self.name = name
        self.path = path
        self.target = target
        self.label_indices = (0,)
        self.info = VideoInfo(name, size[1], size[0], 1, fps)

    def frame(self, index: int, is_key: bool = False) -> Frame:
        if index != 0:
            raise IndexError(f"{self.path}: a DET image has only frame 0, not {index}")
        image = torch.from_numpy(read_jpeg(self.path).copy()).permute(2, 0, 1).float() / 255
        return Frame(0, image, None, None, MOTION_GRID, is_key)

    def label(self, index: int) -> DetectionTarget:
        if index != 0:
            raise IndexError(f"{self.path}: a DET image has only frame 0, not {index}")
        return self.target

    def release(self) -> None:
        """Nothing is cached (the JPEG is read on every ``frame`` call)."""


class ImageNetVID:
    """ImageNet VID val (555 snippets) / train (3862) with every frame box-labelled; 30 classes
    indexed as docs/datasets.md §3.3 (FGFA's index minus one: airplane 0 ... zebra 29), mapped
    by wnid."""

    name = "imagenet-vid"
    tasks = ("detection",)
    Config = ImageNetVIDConfig
    num_classes = len(CLASS_NAMES)
    class_names = CLASS_NAMES

    def __init__(self, config: ImageNetVIDConfig, data_root: Path) -> None:
        self.config = config
        self.data_root = Path(data_root)
        self.source = Path(
            config.root or os.environ.get(ROOT_ENV, "") or self.data_root / "ILSVRC2015"
        )
        self._snippets: dict[str, list[Snippet]] = {}
        self._list_paths: dict[str, Path] = {}
        self._sources: dict[str, str] = {}

    # ---- lists and identity

    def _check_root(self) -> None:
        if not self.source.is_dir():
            raise DataError(
                f"{self.source}: ImageNet VID root not found (set the dataset option root=, "
                f"${ROOT_ENV}, or put it at <data-root>/ILSVRC2015); {LAYOUT}."
            )
        for folder in ("Annotations", "Data", "ImageSets"):
            if not (self.source / folder).is_dir():
                raise DataError(f"{self.source / folder}: folder missing; {LAYOUT}.")

    def _list(self, split: str) -> tuple[Path, list[Snippet]]:
        """The list file chosen for ``split`` and its snippets (cut to ``max_*_videos``)."""
        if split not in self._snippets:
            self._check_root()
            fgfa = None if self.config.lists == "official" else find_list(
                self.source, FGFA_LISTS[split]
            )
            if fgfa is None and self.config.lists == "fgfa":
                raise DataError(
                    f"{self.source / 'ImageSets' / FGFA_LISTS[split]}: FGFA list missing "
                    f"(lists=fgfa); {LAYOUT}."
                )
            official = self.source / "ImageSets" / "VID"
            if fgfa is not None:
                path, snippets = fgfa, (fgfa_val if split == "val" else fgfa_train)(fgfa)
            elif split == "val":
                path = official / "val.txt"
                if not path.is_file():
                    raise DataError(f"{path}: official val list missing; {LAYOUT}.")
                snippets = official_val(path)
            else:
                path, snippets = official / "train_1.txt", official_train(official)
            limit = self.config.max_val_videos if split == "val" else self.config.max_train_videos
            self._list_paths[split] = path
            self._snippets[split] = snippets[:limit] if limit else snippets
        return self._list_paths[split], self._snippets[split]

    def fingerprint(self) -> str:
        """Identifies the dataset as runs and checkpoints see it: options (not where the root
        is), the encoded files' key and the content of the chosen lists."""
        return self._fingerprint

    @cached_property
    def _fingerprint(self) -> str:
        options = {
            k: v for k, v in asdict(self.config).items() if k not in ("root", "motion_iou_mat")
        }
        identity = {
            "config": options,
            "encoding": self._encoding_key,
            "lists": {s: file_sha256(self._list(s)[0]) for s in SPLITS},
        }
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]

    @cached_property
    def _encoding_key(self) -> str:
        """What an encoded snippet depends on (loader, encoder, clipping, motion-IoU source),
        so that subsets and list choices share one cache of per-snippet files."""
        mat = self.config.motion_iou_mat
        if mat and not Path(mat).is_file():
            raise DataError(f"{mat}: motion_iou_mat file not found.")
        identity = {
            "loader": LOADER_VERSION,
            "x264": X264_PARAMS,
            "crf": self.config.crf,
            "fps": self.config.fps,
            "box_clip_px": self.config.box_clip_px,
            "motion_iou_mat": file_sha256(Path(mat)) if mat else None,
        }
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]

    @property
    def cache(self) -> Path:
        """``<data_root>/imagenet-vid/<encoding key>/``: per-snippet files and the manifest."""
        return self.data_root / "imagenet-vid" / self._encoding_key

    def describe(self) -> dict:
        """Identity for records: config, fingerprint, the lists used, the motion-IoU source."""
        mat = self.config.motion_iou_mat
        return {
            "name": self.name,
            "config": asdict(self.config),
            "fingerprint": self.fingerprint(),
            "encoder": encoder_settings(self.config.crf),
            "lists": {s: str(self._list(s)[0].relative_to(self.source)) for s in SPLITS},
            "motion_iou": {
                "val": f"fgfa-mat:{Path(mat).name}" if mat else "computed (vidbench.boxes)",
                "train": "computed (vidbench.boxes)",
            },
        }

    # ---- preparation

    def _manifest(self) -> dict:
        """The manifest; a missing or damaged one is empty (every entry is encoded again)."""
        manifest = read_json(self.cache / "manifest.json", "imagenet-vid manifest", None)
        if isinstance(manifest, dict) and isinstance(manifest.get("entries"), dict):
            return manifest
        return {"loader": LOADER_VERSION, "encoder": encoder_settings(self.config.crf),
                "fps": self.config.fps, "entries": {}}

    def preparation(self) -> dict:
        """What encoding the cache cost (ms per frame, frames timed), for the records' context."""
        return encode_cost(self._manifest()["entries"].values())

    def _write_manifest(self, manifest: dict) -> None:
        manifest["encode_ms_per_frame"] = encode_cost(manifest["entries"].values()).get(
            "encode_ms_per_frame", 0.0
        )
        write_json_atomic(self.cache / "manifest.json", manifest)

    def _source_key(self, snippet: Snippet) -> str:
        """The snippet's source: size and mtime of each of its JPEGs and XMLs (1.3 M files in
        all: hashing them on every run would dominate), with their paths under the root."""
        if snippet.path not in self._sources:
            count = check_snippet(self.source, snippet)
            data = self.source / "Data" / "VID" / snippet.path
            annotations = self.source / "Annotations" / "VID" / snippet.path
            files = [data / f"{t:06d}.JPEG" for t in range(count)]
            files += [annotations / f"{t:06d}.xml" for t in range(count)]
            self._sources[snippet.path] = source_key(self.source, files, (), LAYOUT)
        return self._sources[snippet.path]

    def _intact(self, entry: dict | None, snippet: Snippet) -> bool:
        """The entry's files are there with their recorded sizes, made from this snippet as
        it is now (another root or a changed file is encoded again)."""
        if not isinstance(entry, dict) or entry.get("source") != self._source_key(snippet):
            return False
        try:
            files = [self.cache / entry[key] for key in ("video", "annotations", "flags")]
            sizes = [entry[f"{key}_bytes"] for key in ("video", "annotations", "flags")]
        except KeyError:
            return False
        return all(f.is_file() and f.stat().st_size == n for f, n in zip(files, sizes))

    def _todo(self, manifest: dict, splits: Sequence[str]) -> list[tuple[str, Snippet]]:
        """(split, snippet) of every listed snippet the manifest has no intact entry for."""
        return [
            (split, snippet)
            for split in splits
            for snippet in self._list(split)[1]
            if not self._intact(manifest["entries"].get(snippet.path), snippet)
        ]

    def prepare(self, splits: Sequence[str] = SPLITS) -> Path:
        """Check the lists and the tree, then parse and encode whatever is missing, holding
        the cache's lock (another process waits, then encodes only what is still missing)."""
        todo = self._todo(self._manifest(), splits)
        if not todo:
            return self.cache
        for _, snippet in todo:  # the tree: seconds even for all 4417 snippets
            check_snippet(self.source, snippet)
        cells = _load_mat(Path(self.config.motion_iou_mat)) if self.config.motion_iou_mat else None
        # Every XML and JPEG header before the first encode; parsed again when encoding rather
        # than held (1.3 M frames of annotations would not fit comfortably in memory).
        for split, snippet in tqdm(todo, desc="imagenet-vid: check annotations", unit="snippet"):
            annotations = self._parse(snippet)
            if split == "val":
                self._val_speeds(snippet, annotations, cells)
        with file_lock(self.cache / "prepare.lock"):
            manifest = self._manifest()
            todo = self._todo(manifest, splits)  # a subset of what was checked
            self._encode_all(manifest, todo, cells)
        return self.cache

    def _encode_all(
        self, manifest: dict, todo: list[tuple[str, Snippet]], cells: np.ndarray | None
    ) -> None:
        """Encode ``todo`` into the cache, listing each snippet in ``manifest`` as it goes."""
        written = time.monotonic()
        try:
            for split, snippet in tqdm(todo, desc="imagenet-vid: encode", unit="snippet"):
                annotations = self._parse(snippet)
                speeds = self._val_speeds(snippet, annotations, cells) if split == "val" else None
                entry = self._encode(split, snippet, annotations, speeds)
                manifest["entries"][snippet.path] = entry
                if time.monotonic() - written > 60:  # rewriting a 3 MB manifest per snippet: no
                    self._write_manifest(manifest)
                    written = time.monotonic()
        finally:
            self._write_manifest(manifest)  # what was encoded stays usable after a failure

    def _parse(self, snippet: Snippet) -> list[FrameAnnotation]:
        count = check_snippet(self.source, snippet)
        data = self.source / "Data" / "VID" / snippet.path
        annotations = self.source / "Annotations" / "VID" / snippet.path
        out = []
        for t in range(count):
            parsed = parse_xml(annotations / f"{t:06d}.xml", True, self.config.box_clip_px)
            check_size(parsed, data / f"{t:06d}.JPEG", jpeg_size(data / f"{t:06d}.JPEG"))
            if out and (parsed.width, parsed.height) != (out[0].width, out[0].height):
                raise DataError(
                    f"{data / f'{t:06d}.JPEG'}: {parsed.width}x{parsed.height}, but frame 0 of "
                    f"the snippet is {out[0].width}x{out[0].height} (a snippet has one size); "
                    f"{LAYOUT}."
                )
            out.append(parsed)
        return out

    def _val_speeds(
        self, snippet: Snippet, annotations: list[FrameAnnotation], cells: np.ndarray | None
    ) -> list[np.ndarray] | None:
        """FGFA's precomputed motion IoU of each val object (by list position), or None."""
        if cells is None:
            return None
        mat = self.config.motion_iou_mat
        end = snippet.list_position + len(annotations)
        if end > len(cells):
            raise DataError(
                f"{mat}: {len(cells)} cells, but {snippet.path} needs positions "
                f"{snippet.list_position}..{end - 1} of the val list"
            )
        speeds = []
        for t, frame in enumerate(annotations):
            values = np.asarray(cells[snippet.list_position + t], np.float32).reshape(-1)
            if len(values) != len(frame.labels):
                raise DataError(
                    f"{mat}: cell {snippet.list_position + t} has {len(values)} values but "
                    f"{frame.path} has {len(frame.labels)} objects (is the val list the one the "
                    f".mat was made from?)"
                )
            speeds.append(values)
        return speeds

    def _encode(
        self,
        split: str,
        snippet: Snippet,
        annotations: list[FrameAnnotation],
        speeds: list[np.ndarray] | None,
    ) -> dict:
        data = self.source / "Data" / "VID" / snippet.path
        if speeds is None:
            speeds = motion_iou([a.boxes for a in annotations], [a.track_ids for a in annotations])
        targets = [
            DetectionTarget(a.boxes, a.labels, a.track_ids, s) for a, s in zip(annotations, speeds)
        ]
        folder = self.cache / split
        folder.mkdir(parents=True, exist_ok=True)
        final = {
            "video": folder / f"{snippet.name}.mp4",
            "annotations": folder / f"{snippet.name}.npz",
            "flags": folder / f"{snippet.name}_flags.npz",
        }
        partial = {k: p.with_name(f".{p.stem}.partial{p.suffix}") for k, p in final.items()}
        count, (width, height) = len(annotations), (annotations[0].width, annotations[0].height)
        try:
            with tempfile.TemporaryFile(dir=folder) as staging:
                shape = (count, height, width, 3)
                frames = (
                    np.empty(shape, np.uint8)
                    if count * height * width * 3 <= IN_MEMORY_BYTES
                    else np.memmap(staging, np.uint8, "w+", shape=shape)
                )
                for t, frame in enumerate(annotations):
                    image = read_jpeg(data / f"{t:06d}.JPEG")
                    check_size(frame, data / f"{t:06d}.JPEG", (image.shape[1], image.shape[0]))
                    frames[t] = image
                encode_ms = encode_h264(
                    frames, partial["video"], fps=self.config.fps, crf=self.config.crf
                )
                del frames
            save_annotations(partial["annotations"], targets)
            np.savez_compressed(
                partial["flags"],
                occluded=np.concatenate([a.occluded for a in annotations]),
                generated=np.concatenate([a.generated for a in annotations]),
            )
            for key, path in partial.items():
                path.replace(final[key])
        finally:
            for path in partial.values():
                path.unlink(missing_ok=True)
        entry: dict = {
            "split": split,
            "frames": count,
            "height": height,
            "width": width,
            "boxes": int(sum(len(a.labels) for a in annotations)),
            "generated_boxes": int(sum(int(a.generated.sum()) for a in annotations)),
            "clipped_boxes": int(sum(a.clipped for a in annotations)),
            "encode_ms_per_frame": round(encode_ms, 3),
            "motion_iou": "fgfa-mat" if split == "val" and self.config.motion_iou_mat
            else "computed",
            "encoder": encoder_settings(self.config.crf),
            "source": self._source_key(snippet),
        }
        for key, path in final.items():
            entry[key] = str(path.relative_to(self.cache))
            entry[f"{key}_bytes"] = path.stat().st_size
            entry[f"{key}_sha256"] = file_sha256(path)
        return entry

    # ---- access

    def split(self, name: str) -> list[DetectionVideo]:
        """The snippets of ``train`` or ``val`` in list order (encoding what is missing)."""
        if name not in SPLITS:
            raise ValueError(f"Unknown split '{name}' of imagenet-vid; available: train, val.")
        self.prepare((name,))
        entries = self._manifest()["entries"]
        videos = []
        for snippet in self._list(name)[1]:
            entry = entries[snippet.path]
            indices = snippet.label_indices or tuple(range(entry["frames"]))
            videos.append(
                DetectionVideo(
                    snippet.name,
                    self.cache / entry["video"],
                    self.cache / entry["annotations"],
                    indices,
                    float(self.config.fps),
                )
            )
        return videos

    def det_train(self) -> list[DetImage]:
        """The DET images of ``DET_train_30classes.txt`` (objects of the 30 VID classes only) as
        one-frame sources for the training sampler; parsed once and cached in ``det.json``."""
        self._check_root()
        path = find_list(self.source, FGFA_LISTS["det"])
        if path is None:
            raise DataError(f"{self.source / 'ImageSets' / FGFA_LISTS['det']}: missing; {LAYOUT}.")
        names = det_list(path)
        if self.config.max_det_images:
            names = names[: self.config.max_det_images]
        images = [self.source / "Data" / "DET" / f"{n}.JPEG" for n in names]
        xmls = [self.source / "Annotations" / "DET" / f"{n}.xml" for n in names]
        for image, xml in zip(images, xmls):
            if not image.is_file():
                raise DataError(f"{image}: listed in {path} but missing; {LAYOUT}.")
            if not xml.is_file():
                raise DataError(f"{xml}: the annotation of {image} is missing; {LAYOUT}.")
        cache = self.data_root / "imagenet-vid" / f"det-{self._det_key(path)}.json"
        rows = read_json(cache, "imagenet-vid DET cache", None)
        if not isinstance(rows, list) or len(rows) != len(names):
            rows = []
            for image, xml in tqdm(list(zip(images, xmls)), desc="imagenet-vid: DET", unit="image"):
                parsed = parse_xml(xml, False, self.config.box_clip_px)
                check_size(parsed, image, jpeg_size(image))
                rows.append([parsed.width, parsed.height, parsed.boxes.tolist(),
                             parsed.labels.tolist()])
            write_json_atomic(cache, rows, indent=None)
        out = []
        for name, image, (width, height, boxes, labels) in zip(names, images, rows):
            count = len(labels)
            target = DetectionTarget(
                np.asarray(boxes, np.float32).reshape(-1, 4),
                np.asarray(labels, np.int64),
                np.arange(count, dtype=np.int64),
                np.full(count, np.nan, np.float32),
            )
            out.append(DetImage(name, image, target, (width, height), float(self.config.fps)))
        return out

    def _det_key(self, path: Path) -> str:
        identity = [file_sha256(path), self.config.max_det_images, self.config.box_clip_px,
                    LOADER_VERSION]
        return hashlib.sha256(json.dumps(identity).encode()).hexdigest()[:12]
