"""Class lists and split lists of the recognition datasets, parsed strictly
(docs/datasets.md §4-7).

Every parser returns ``ListEntry`` rows in list order and raises DataError naming the file, the
line and what was expected. Class ids:

* ActivityNet / FCVID (AR-Net / AdaFocus package): ``classInd.txt`` holds one class name per
  line and a class's id is its 0-based line number, as AR-Net reads it (``dataset_config.py``
  counts the lines); list labels are those ids.
* Mini-Kinetics (AdaFuse ``minik_classInd.txt``): the same rule; each list path names its class
  (``images/<split>/<class>/<clip>``) and must agree with the label's line.
* Sth-Sth V1: ``label_order`` "sorted" numbers the 174 templates in sorted order (TSM/TRN, and
  the order of V2's labels.json), "csv" in the order of the official labels CSV (mmaction2,
  AdaFuse); the split CSVs name templates, mapped through the chosen table.
* Sth-Sth V2: ids from ``something-something-v2-labels.json`` (template -> id string); split
  templates lose their brackets before lookup.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from vidbench.api import DataError

MAX_ARNET_LABELS = 3  # AR-Net's VideoRecord keeps three label slots padded with -1


@dataclass(frozen=True)
class ListEntry:
    """One listed video: its path as the list gives it, frame count (None: not listed) and
    ascending class ids."""

    path: str
    num_frames: int | None
    labels: tuple[int, ...]


def _error(path: Path, what: str, layout: str) -> DataError:
    return DataError(f"{path}: {what}; {layout}.")


def read_lines(path: Path, layout: str) -> list[str]:
    """Non-empty lines, stripped; a missing or unreadable file raises DataError naming it."""
    if not path.is_file():
        raise _error(path, "file missing", layout)
    try:
        return [line.strip() for line in path.read_text().splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as error:
        raise _error(path, f"unreadable ({error})", layout) from None


def read_json(path: Path, layout: str) -> object:
    """A parsed JSON file; missing or malformed raises DataError naming it."""
    if not path.is_file():
        raise _error(path, "file missing", layout)
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise _error(path, f"unreadable or malformed JSON ({error})", layout) from None


def class_lines(path: Path, layout: str) -> tuple[str, ...]:
    """Class names one per line (id = 0-based line); repeated names are an error."""
    names = tuple(read_lines(path, layout))
    if not names:
        raise _error(path, "no class names", layout)
    seen: set[str] = set()
    for number, name in enumerate(names, 1):
        if name in seen:
            raise _error(path, f"line {number}: class '{name}' is listed twice", layout)
        seen.add(name)
    return names


def _int(text: str, path: Path, number: int, what: str, layout: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise _error(path, f"line {number}: {what} is '{text}', not an integer", layout) from None


def _labels(values: list[int], path: Path, number: int, num_classes: int, layout: str) -> tuple:
    labels = tuple(sorted({v for v in values if v != -1}))
    if not labels or len(labels) > MAX_ARNET_LABELS:
        raise _error(path, f"line {number}: {len(labels)} labels, expected 1..3 (-1 pads)", layout)
    bad = [v for v in labels if not 0 <= v < num_classes]
    if bad:
        raise _error(
            path, f"line {number}: label {bad[0]} outside the {num_classes} classes", layout
        )
    return labels


def _frame_count(text: str, path: Path, number: int, layout: str) -> int:
    count = _int(text, path, number, "the frame count", layout)
    if count < 1:
        raise _error(path, f"line {number}: frame count {count}, expected >= 1", layout)
    return count


def arnet_list(path: Path, num_classes: int, layout: str) -> list[ListEntry]:
    """AR-Net ``<frame dir>,<num_frames>,<label>[,<label2>[,<label3>]]`` (ActivityNet, FCVID)."""
    entries = []
    for number, line in enumerate(read_lines(path, layout), 1):
        fields = [field.strip() for field in line.split(",")]
        if len(fields) < 3 or not fields[0]:
            expected = "expected <dir>,<num_frames>,<label>[,<label2>[,<label3>]]"
            raise _error(path, f"line {number} is '{line}', {expected}", layout)
        count = _frame_count(fields[1], path, number, layout)
        values = [_int(v, path, number, "a label", layout) for v in fields[2:]]
        labels = _labels(values, path, number, num_classes, layout)
        entries.append(ListEntry(fields[0], count, labels))
    return entries


def minik_list(path: Path, class_names: tuple[str, ...], layout: str) -> list[ListEntry]:
    """AdaFuse ``images/<split>/<class>/<clip> <num_frames> <label>``: class names hold spaces,
    so the last two tokens are the numbers and the rest is the path (as AR-Net parses it)."""
    entries = []
    for number, line in enumerate(read_lines(path, layout), 1):
        tokens = line.split(" ")
        if len(tokens) < 3:
            expected = "expected <path> <num_frames> <label>"
            raise _error(path, f"line {number} is '{line}', {expected}", layout)
        folder = " ".join(tokens[:-2])
        count = _frame_count(tokens[-2], path, number, layout)
        label = _int(tokens[-1], path, number, "the label", layout)
        labels = _labels([label], path, number, len(class_names), layout)
        parts = folder.split("/")
        if len(parts) >= 2 and parts[-2] != class_names[label]:
            raise _error(
                path,
                f"line {number}: '{folder}' is in class folder '{parts[-2]}' but label {label} is "
                f"'{class_names[label]}' in the class list",
                layout,
            )
        entries.append(ListEntry(folder, count, labels))
    return entries


def sth_v1_classes(path: Path, order: str, layout: str) -> tuple[str, ...]:
    """The 174 V1 templates in the chosen id order ("sorted" or "csv")."""
    names = class_lines(path, layout)
    return tuple(sorted(names)) if order == "sorted" else names


def sth_v1_list(path: Path, class_names: tuple[str, ...], layout: str) -> list[ListEntry]:
    """Official V1 split CSV ``<video_id>;<template>`` (no header, ``;``-separated)."""
    index = {name: k for k, name in enumerate(class_names)}
    entries = []
    for number, line in enumerate(read_lines(path, layout), 1):
        video, sep, template = line.partition(";")
        if not sep or not video.strip():
            raise _error(path, f"line {number} is '{line}', expected <video_id>;<template>", layout)
        if template.strip() not in index:
            raise _error(path, f"line {number}: unknown template '{template.strip()}'", layout)
        entries.append(ListEntry(video.strip(), None, (index[template.strip()],)))
    return entries


def sth_v2_classes(path: Path, layout: str) -> tuple[str, ...]:
    """Templates of ``something-something-v2-labels.json`` ordered by their id strings 0..N-1."""
    data = read_json(path, layout)
    if not isinstance(data, dict) or not data:
        raise _error(path, "expected a non-empty object mapping template -> id string", layout)
    by_id: dict[int, str] = {}
    for template, value in data.items():
        try:
            by_id[int(value)] = template
        except (TypeError, ValueError):
            raise _error(path, f"template '{template}' has id {value!r}, not a number", layout)
    if sorted(by_id) != list(range(len(data))):
        raise _error(path, f"ids are not 0..{len(data) - 1}, each once", layout)
    return tuple(by_id[k] for k in range(len(data)))


def sth_v2_list(path: Path, class_names: tuple[str, ...], layout: str) -> list[ListEntry]:
    """Official V2 split JSON: objects with ``id`` and a bracketed ``template``."""
    index = {name: k for k, name in enumerate(class_names)}
    data = read_json(path, layout)
    if not isinstance(data, list):
        raise _error(path, "expected a list of {id, template, ...} objects", layout)
    entries = []
    for position, item in enumerate(data):
        if not isinstance(item, dict) or "id" not in item or "template" not in item:
            raise _error(path, f"item {position} lacks 'id' or 'template'", layout)
        template = str(item["template"]).replace("[", "").replace("]", "")
        if template not in index:
            raise _error(path, f"item {position} (id {item['id']}): unknown template '{template}'",
                         layout)  # fmt: skip
        entries.append(ListEntry(str(item["id"]), None, (index[template],)))
    return entries
