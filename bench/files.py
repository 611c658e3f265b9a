"""Files the harness and its plug-ins write and read back: content hashes, so a cache can
tell its own files from damaged or foreign ones; JSON written atomically (a kill mid-write
leaves the old file or the new one, never half of one) and read back with errors that name the
file; and a lock, so that one process at a time fills a cache."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import sys
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_RAISE = object()


class DamagedFile(ValueError):
    """A file the harness wrote cannot be read back; the message names it and what is wrong."""


def file_sha256(path: Path) -> str:
    """SHA-256 of the file at ``path``, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_json_atomic(path: Path, data: Any, indent: int | None = 1) -> None:
    """Write ``data`` as JSON (keys sorted) to ``path``: into a temporary file in the same
    folder, flushed and fsynced, then renamed over ``path``, so that readers and a run after a
    kill see either the old file or the new one whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.partial")
    try:
        # os.open with 0o666, not mkstemp's 0o600: the file gets the umask's usual mode
        with os.fdopen(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), "w") as f:
            json.dump(data, f, indent=indent, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)  # the rename itself survives a power cut
    finally:
        os.close(folder)


def read_json(path: Path, what: str, default: Any = _RAISE) -> Any:
    """The JSON value in ``path``, ``what`` naming it for messages ("synthcity manifest").

    A missing file, or one that cannot be read or parsed, raises DamagedFile naming the file
    and the problem; with ``default`` given, returns ``default`` instead (for a cache's
    manifest: what it listed is then checked or built again), warning when the file was there
    but damaged."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        problem = None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        problem = f"{path}: damaged {what}, not readable JSON ({error})"
    if default is _RAISE:
        raise DamagedFile(problem or f"{path}: {what} missing")
    if problem:
        warnings.warn(f"{problem}; treated as missing, so its cache is rebuilt", stacklevel=2)
    return default


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``fcntl.flock`` on the file ``path`` (created, with its folder, if
    need be) for the ``with`` block. Another process blocks until the holder leaves the block
    or dies (the kernel drops a dead process's lock). Not reentrant: a second ``file_lock``
    on the same path inside the block waits for ever."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"{path}: held by another process; waiting for it", file=sys.stderr)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
