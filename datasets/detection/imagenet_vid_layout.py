"""ImageNet VID (ILSVRC2015) on disk: the 30 classes by WordNet id, the VOC XMLs, the official
and FGFA image-set lists, and the fast tree check that runs before any encoding
(docs/datasets.md §3).

Index conventions: snippet frames are ``%06d.JPEG`` starting at 000000 and frame t is JPEG t;
``VID_train_15frames.txt``'s third column is that 0-based index as FGFA uses it (mmtracking's
converter subtracts 1 from it, which this loader does not do, docs/datasets.md §3.5).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from vidbench.api import DataError

# docs/datasets.md §3.3 in its index order (FGFA's 1..30 minus one): name, WordNet id.
CLASSES: tuple[tuple[str, str], ...] = (
    ("airplane", "n02691156"), ("antelope", "n02419796"), ("bear", "n02131653"),
    ("bicycle", "n02834778"), ("bird", "n01503061"), ("bus", "n02924116"),
    ("car", "n02958343"), ("cattle", "n02402425"), ("dog", "n02084071"),
    ("domestic_cat", "n02121808"), ("elephant", "n02503517"), ("fox", "n02118333"),
    ("giant_panda", "n02510455"), ("hamster", "n02342885"), ("horse", "n02374451"),
    ("lion", "n02129165"), ("lizard", "n01674464"), ("monkey", "n02484322"),
    ("motorcycle", "n03790512"), ("rabbit", "n02324045"), ("red_panda", "n02509815"),
    ("sheep", "n02411705"), ("snake", "n01726692"), ("squirrel", "n02355227"),
    ("tiger", "n02129604"), ("train", "n04468005"), ("turtle", "n01662784"),
    ("watercraft", "n04530566"), ("whale", "n02062744"), ("zebra", "n02391049"),
)  # fmt: skip
CLASS_NAMES = tuple(name for name, _ in CLASSES)
WNID_TO_CLASS = {wnid: index for index, (_, wnid) in enumerate(CLASSES)}

LAYOUT = (
    "expected the official ILSVRC2015 layout: <root>/Annotations/VID/{train,val}/.../<snippet>/"
    "%06d.xml, <root>/Data/VID/{train,val}/.../<snippet>/%06d.JPEG, <root>/ImageSets/VID/"
    "{train_1..train_30,val}.txt (FGFA's VID_train_15frames.txt, VID_val_videos.txt and "
    "DET_train_30classes.txt in <root>/ImageSets/ or <root>/Lists/), DET images under "
    "<root>/Data/DET/ with XMLs under <root>/Annotations/DET/"
)
FGFA_LISTS = {
    "train": "VID_train_15frames.txt",
    "val": "VID_val_videos.txt",
    "det": "DET_train_30classes.txt",
}
_FRAME_NAME = re.compile(r"^(\d{6})\.JPEG$")


@dataclass(frozen=True)
class FrameAnnotation:
    """One parsed XML: (M, 4) float32 inclusive xyxy boxes and (M,) int64 per-object fields in
    file order (non-VID wnids of a DET XML dropped); ``clipped`` counts boxes moved inside."""

    path: Path
    width: int
    height: int
    boxes: np.ndarray
    labels: np.ndarray
    track_ids: np.ndarray
    occluded: np.ndarray
    generated: np.ndarray
    clipped: int


@dataclass(frozen=True)
class Snippet:
    """A listed VID snippet: ``path`` under Data/VID (e.g. ``val/ILSVRC2015_val_00000000``),
    frame count from the list (None where the list does not say), the frames a training sampler
    draws (None: all), and the list position of its frame 0 (the FGFA ``.mat`` index)."""

    path: str
    num_frames: int | None
    label_indices: tuple[int, ...] | None
    list_position: int

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


def _error(path: Path, what: str) -> DataError:
    return DataError(f"{path}: {what}; {LAYOUT}.")


def _text(node: ET.Element, tag: str, path: Path) -> str:
    found = node.find(tag)
    if found is None or found.text is None or not found.text.strip():
        raise _error(path, f"malformed annotation, <{tag}> is missing or empty")
    return found.text.strip()


def _number(node: ET.Element, tag: str, path: Path) -> float:
    text = _text(node, tag, path)
    try:
        return float(text)
    except ValueError:
        raise _error(path, f"malformed annotation, <{tag}> is '{text}', not a number") from None


def parse_xml(path: Path, video: bool, clip_px: int) -> FrameAnnotation:
    """Parse one VOC XML (docs/datasets.md §3.2). In a VID XML an unknown wnid, a missing
    trackid or a repeated trackid is an error; a DET XML drops the non-VID wnids as FGFA does.
    Corners that overshoot the frame by at most ``clip_px`` are clipped to it (FGFA clips them
    all); a box further out or with x2 < x1 raises."""
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as error:
        raise _error(path, f"malformed or unreadable XML ({error})") from None
    size = root.find("size")
    if size is None:
        raise _error(path, "malformed annotation, no <size> element")
    width, height = int(_number(size, "width", path)), int(_number(size, "height", path))
    if width <= 0 or height <= 0:
        raise _error(path, f"size {width}x{height} is not positive")
    rows: list[tuple[list[float], int, int, int, int]] = []
    clipped = 0
    for k, obj in enumerate(root.findall("object")):
        wnid = _text(obj, "name", path)
        if wnid not in WNID_TO_CLASS:
            if video:
                raise _error(path, f"object {k} has wnid '{wnid}', not one of the 30 VID classes")
            continue
        box_node = obj.find("bndbox")
        if box_node is None:
            raise _error(path, f"malformed annotation, object {k} has no <bndbox>")
        box = [_number(box_node, tag, path) for tag in ("xmin", "ymin", "xmax", "ymax")]
        inside = [
            min(max(box[0], 0.0), width - 1.0),
            min(max(box[1], 0.0), height - 1.0),
            min(max(box[2], 0.0), width - 1.0),
            min(max(box[3], 0.0), height - 1.0),
        ]
        overshoot = max(abs(a - b) for a, b in zip(box, inside))
        if overshoot > clip_px or inside[2] < inside[0] or inside[3] < inside[1]:
            raise _error(
                path,
                f"object {k} box {box} (xmin, ymin, xmax, ymax) is not inside the "
                f"{width}x{height} image (inclusive corners 0..{width - 1}, 0..{height - 1}; "
                f"up to {clip_px} px overshoot is clipped)",
            )
        clipped += overshoot > 0
        if video:
            track = int(_number(obj, "trackid", path))
        else:
            track = len(rows)
        flags = [obj.find(tag) for tag in ("occluded", "generated")]
        occluded, generated = (int(f.text) if f is not None and f.text else 0 for f in flags)
        rows.append((inside, WNID_TO_CLASS[wnid], track, occluded, generated))
    tracks = [row[2] for row in rows]
    if len(set(tracks)) != len(tracks):
        raise _error(path, f"trackids {tracks} repeat within one frame")
    return FrameAnnotation(
        path=path,
        width=width,
        height=height,
        boxes=np.array([row[0] for row in rows], np.float32).reshape(-1, 4),
        labels=np.array([row[1] for row in rows], np.int64),
        track_ids=np.array(tracks, np.int64),
        occluded=np.array([row[3] for row in rows], np.int64),
        generated=np.array([row[4] for row in rows], np.int64),
        clipped=int(clipped),
    )


def jpeg_size(path: Path) -> tuple[int, int]:
    """(width, height) from the JPEG header; unreadable or non-JPEG files raise DataError."""
    try:
        with Image.open(path) as image:
            if image.format != "JPEG":
                raise _error(path, f"is a {image.format} file, not a JPEG")
            return image.size
    except (OSError, UnidentifiedImageError) as error:
        raise _error(path, f"unreadable JPEG ({error})") from None


def read_jpeg(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB; a truncated or corrupt file raises DataError naming it."""
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (OSError, UnidentifiedImageError, SyntaxError) as error:
        raise _error(path, f"unreadable or truncated JPEG ({error})") from None


def check_size(annotation: FrameAnnotation, image: Path, size: tuple[int, int]) -> None:
    if size != (annotation.width, annotation.height):
        raise _error(
            annotation.path,
            f"<size> says {annotation.width}x{annotation.height} but {image} is "
            f"{size[0]}x{size[1]} (width x height)",
        )


def find_list(root: Path, name: str) -> Path | None:
    """An FGFA list where FGFA (``ImageSets/``) or mmtracking (``Lists/``) keeps it."""
    for folder in ("ImageSets", "Lists"):
        if (root / folder / name).is_file():
            return root / folder / name
    return None


def _lines(path: Path) -> list[list[str]]:
    try:
        return [line.split() for line in path.read_text().splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as error:
        raise _error(path, f"unreadable list ({error})") from None


def _ints(path: Path, number: int, fields: list[str], count: int) -> list[int]:
    try:
        if len(fields) != count:
            raise ValueError
        return [int(v) for v in fields[1:]]
    except ValueError:
        raise _error(
            path, f"line {number} is '{' '.join(fields)}', expected {count} fields"
        ) from None


def fgfa_val(path: Path) -> list[Snippet]:
    """``VID_val_videos.txt``: ``<snippet> <global start> <first frame = 0> <num frames>``."""
    snippets, position = [], 0
    for number, fields in enumerate(_lines(path), 1):
        _, first, count = _ints(path, number, fields, 4)
        if first != 0 or count <= 0:
            raise _error(path, f"line {number}: first frame {first}, {count} frames (need 0, >0)")
        snippets.append(Snippet(fields[0], count, None, position))
        position += count
    return snippets


def official_val(path: Path) -> list[Snippet]:
    """``ImageSets/VID/val.txt``: one ``<snippet>/<%06d> <index>`` line per frame, in order."""
    order: dict[str, list[int]] = {}
    first_line: dict[str, int] = {}
    for number, fields in enumerate(_lines(path), 1):
        _ints(path, number, fields, 2)
        snippet, _, frame = fields[0].rpartition("/")
        if not snippet or not frame.isdigit():
            raise _error(path, f"line {number} is '{fields[0]}', expected <snippet>/%06d")
        first_line.setdefault(snippet, number - 1)
        order.setdefault(snippet, []).append(int(frame))
    snippets = []
    for snippet, frames in order.items():
        if frames != list(range(len(frames))):
            raise _error(path, f"frames of {snippet} are not listed as 0..{len(frames) - 1}")
        snippets.append(Snippet(f"val/{snippet}", len(frames), None, first_line[snippet]))
    return snippets


def fgfa_train(path: Path) -> list[Snippet]:
    """``VID_train_15frames.txt``: ``<snippet> 1 <frame_idx, 0-based> <num frames>``."""
    frames: dict[str, set[int]] = {}
    counts: dict[str, int] = {}
    for number, fields in enumerate(_lines(path), 1):
        _, index, count = _ints(path, number, fields, 4)
        if counts.setdefault(fields[0], count) != count or not 0 <= index < count:
            raise _error(
                path, f"line {number}: frame_idx {index} of {count} frames (0-based) or a "
                f"frame count that differs from an earlier line of {fields[0]}"
            )
        frames.setdefault(fields[0], set()).add(index)
    return [
        Snippet(snippet, counts[snippet], tuple(sorted(indices)), -1)
        for snippet, indices in frames.items()
    ]


def official_train(folder: Path) -> list[Snippet]:
    """Union of ``ImageSets/VID/train_{1..30}.txt`` (``<snippet> <label>``), sorted by name;
    every frame of these snippets is a training sample."""
    names: set[str] = set()
    for k in range(1, len(CLASSES) + 1):
        path = folder / f"train_{k}.txt"
        if not path.is_file():
            raise _error(path, "official training list missing")
        for number, fields in enumerate(_lines(path), 1):
            _ints(path, number, fields, 2)
            names.add(fields[0])
    return [Snippet(f"train/{name}", None, None, -1) for name in sorted(names)]


def det_list(path: Path) -> list[str]:
    """``DET_train_30classes.txt``: ``<image under Data/DET, no .JPEG> 1``."""
    out = []
    for number, fields in enumerate(_lines(path), 1):
        _ints(path, number, fields, 2)
        out.append(fields[0])
    return out


def check_snippet(root: Path, snippet: Snippet) -> int:
    """Fast tree check of one listed snippet: frames 000000..N-1 present, an XML for each,
    N as listed. Returns N."""
    data = root / "Data" / "VID" / snippet.path
    annotations = root / "Annotations" / "VID" / snippet.path
    names = sorted(p.name for p in data.iterdir()) if data.is_dir() else []
    indices = [int(m.group(1)) for m in map(_FRAME_NAME.match, names) if m]
    if not indices:
        raise _error(data, "listed snippet has no frames (no %06d.JPEG files)")
    if indices != list(range(len(indices))):
        missing = sorted(set(range(max(indices) + 1)) - set(indices))
        raise _error(data / f"{missing[0]:06d}.JPEG", "frame missing from the snippet")
    count = len(indices)
    if snippet.num_frames is not None and snippet.num_frames != count:
        raise _error(data, f"the list says {snippet.num_frames} frames, the folder has {count}")
    xmls = {p.name for p in annotations.iterdir()} if annotations.is_dir() else set()
    for t in range(count):
        if f"{t:06d}.xml" not in xmls:
            raise _error(annotations / f"{t:06d}.xml", f"frame {data / f'{t:06d}.JPEG'} has no XML")
    return count
