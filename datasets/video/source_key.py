"""What an encoded copy of a real dataset's snippet is keyed by: the files it was made from.

Frames are keyed by their size and mtime_ns (too many and too large to hash on every run),
small files (labels, annotations) by their SHA-256 where a loader asks for it, each with its
path under the dataset root, so another root or a changed file never reuses another tree's
encodes. A frame rewritten with the same size and mtime is not noticed."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

from vidbench.api import DataError
from vidbench.files import file_sha256


def source_key(root: Path, stat: Sequence[Path], hashed: Sequence[Path], layout: str) -> str:
    """The sha256 of each ``stat`` file's path under ``root`` with its size and mtime_ns and of
    each ``hashed`` file's path and sha256; a missing or unreadable file raises DataError
    naming it (``layout``: where the expected layout is described)."""

    def facts(path: Path, digest: bool) -> list:
        try:
            if digest:
                return [str(path.relative_to(root)), file_sha256(path)]
            info = path.stat()
            return [str(path.relative_to(root)), info.st_size, info.st_mtime_ns]
        except FileNotFoundError:
            raise DataError(f"{path}: missing; {layout}.") from None
        except OSError as error:
            raise DataError(f"{path}: unreadable ({error}); {layout}.") from None

    rows = [facts(p, False) for p in stat] + [facts(p, True) for p in hashed]
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()
