"""The file helpers every dataset cache uses (vidbench.files): manifests written atomically and
read back with errors that name the file, and the lock that lets one process fill a cache."""

from __future__ import annotations

import fcntl
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from vidbench.files import DamagedFile, file_lock, read_json, write_json_atomic


def test_an_interrupted_write_leaves_the_old_manifest_whole(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    write_json_atomic(path, {"a": 1})
    with pytest.raises(TypeError):  # fails after the first keys were written out
        write_json_atomic(path, {"a": 2, "b": 3, "z": object()})
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]
    write_json_atomic(path, {"b": [1, 2], "a": None})
    assert path.read_text() == '{\n "a": null,\n "b": [\n  1,\n  2\n ]\n}'


def test_read_json_names_the_file_or_treats_it_as_missing(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    named = re.escape(str(path))
    with pytest.raises(DamagedFile, match=f"{named}: test manifest missing"):
        read_json(path, "test manifest")
    assert read_json(path, "test manifest", {}) == {}
    path.write_text('{"entries": {"a"')
    with pytest.raises(DamagedFile, match=f"{named}: damaged test manifest, not readable JSON"):
        read_json(path, "test manifest")
    with pytest.warns(UserWarning, match=f"{named}: damaged test manifest.*rebuilt"):
        assert read_json(path, "test manifest", None) is None


def _lock_state(path: Path) -> str:
    """'free' or 'held', trying the lock without waiting."""
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return "held"
        fcntl.flock(handle, fcntl.LOCK_UN)
        return "free"


def test_the_lock_is_exclusive_and_dies_with_its_holder(tmp_path: Path) -> None:
    lock = tmp_path / "cache" / "prepare.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from vidbench.files import file_lock\n"
         f"with file_lock({str(lock)!r}):\n    print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        assert _lock_state(lock) == "held"
        holder.kill()  # no clean exit: the kernel releases the lock
        started = time.monotonic()
        with file_lock(lock):
            assert time.monotonic() - started < 10
        assert _lock_state(lock) == "free"
    finally:
        holder.kill()
        holder.wait()
