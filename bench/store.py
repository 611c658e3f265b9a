"""The results store: append-only JSON lines, one record per run, plus in-flight partial state.

A record is a dict with ``record_id`` (a hash of what identifies the run), ``kind``
(``accuracy`` or ``speed``), what produced it and what it measured. Appends are flushed and
synced line by line, so an interrupted run loses at most the record in flight.

An accuracy record's evaluator ``state`` (what metrics are recomputed and shards merged from:
megabytes of scored boxes for detection) goes to a gzipped JSON sidecar in ``<stem>.states/``,
named by record id and content hash and written before the line that points to it; the line
keeps ``{"sidecar": name, "sha256": ...}`` and ``Store.state`` reads it back. Reports and the
gate read metrics only, so the record file stays small.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any

from vidbench.files import file_lock

# 2: records carry ``code`` and ``measured_id``, state in sidecars, strict JSON (null for NaN)
SCHEMA_VERSION = 2
SIDECAR_FIELDS = ("state", "state_per_video")  # written beside the store, referenced by hash


class StoreError(ValueError):
    """A store file that cannot be read; the message names the file and line."""


def record_id(identity: dict[str, Any]) -> str:
    """Stable 16-hex-digit id of a run's identity (canonical JSON, sorted keys)."""
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def strict_json(value: Any) -> Any:
    """``value`` with every NaN or infinite float as None: records are strict JSON, which
    every reader accepts (``NaN`` is a Python extension)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    return value


def read_records(path: Path) -> list[dict[str, Any]]:
    """All records in a JSON-lines file. A last line without its newline is a torn write (an
    interrupted append) and is skipped; any complete line that is not a record is an error
    naming the file and line."""
    if not path.exists():
        return []
    data = path.read_text()
    lines = data.split("\n")
    torn = lines.pop()  # "" when the file ends with a newline
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise StoreError(f"{path}:{number}: not a JSON record ({error.msg}).") from error
        if not isinstance(record, dict) or "record_id" not in record:
            raise StoreError(f"{path}:{number}: a JSON value but not a record (no record_id).")
        records.append(record)
    del torn
    return records


class Store:
    """A JSON-lines record file with a sibling folder for partial state of runs in flight."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def records(self) -> list[dict[str, Any]]:
        """Records in file order; for a repeated ``record_id`` the last one wins."""
        latest = {record["record_id"]: record for record in read_records(self.path)}
        return list(latest.values())

    def lock(self) -> contextlib.AbstractContextManager[None]:
        """Exclusive use of this store (and its partial timing rounds) by one process: a second
        ``bench compare`` on it waits until the first is done, then finds its records."""
        return file_lock(self.path.with_suffix(".lock"))

    def ids(self) -> set[str]:
        return {record["record_id"] for record in self.records()}

    def states_dir(self) -> Path:
        return self.path.with_suffix(".states")

    def append(self, record: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for name in SIDECAR_FIELDS:
            if name in record:
                record = {**record, name: self._write_state(record["record_id"], record[name])}
        line = json.dumps(
            strict_json({"schema_version": SCHEMA_VERSION, **record}), sort_keys=True, allow_nan=False
        )
        self._drop_torn_tail()
        read_records(self.path)  # never write after a line that is not a record
        with self.path.open("a") as handle:
            handle.write(line + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def _write_state(self, rid: str, state: Any) -> dict[str, str]:
        """Write ``state`` to its sidecar (atomically: a temporary file renamed) -> the reference."""
        data = json.dumps(strict_json(state), sort_keys=True, allow_nan=False).encode()
        sha = hashlib.sha256(data).hexdigest()
        name = f"{rid}-{sha[:16]}.json.gz"
        folder = self.states_dir()
        folder.mkdir(parents=True, exist_ok=True)
        if self._sidecar_sha(folder / name) != sha:  # absent or damaged: (re)write it
            partial = folder / f"{name}.tmp"
            with partial.open("wb") as handle:
                handle.write(gzip.compress(data, compresslevel=6, mtime=0))
                handle.flush()
                os.fsync(handle.fileno())
            partial.replace(folder / name)
        return {"sidecar": name, "sha256": sha}

    @staticmethod
    def _sidecar_sha(path: Path) -> str | None:
        try:
            return hashlib.sha256(gzip.decompress(path.read_bytes())).hexdigest()
        except (OSError, EOFError, gzip.BadGzipFile):
            return None

    def state(self, record: dict[str, Any], name: str = "state") -> Any:
        """The evaluator state of ``record`` (``name``: ``state``, or ``state_per_video``): read
        from its sidecar (checked against the hash the record holds) or, for records written
        before sidecars, the inline value."""
        if name not in record:
            raise StoreError(f"{self.path}: record {record.get('record_id')} has no {name}.")
        reference = record[name]
        if not (isinstance(reference, dict) and set(reference) == {"sidecar", "sha256"}):
            return reference
        path = self.states_dir() / reference["sidecar"]
        try:
            data = gzip.decompress(path.read_bytes())
        except (OSError, EOFError, gzip.BadGzipFile) as error:
            raise StoreError(f"{path}: cannot read the evaluator state ({error}).") from error
        if hashlib.sha256(data).hexdigest() != reference["sha256"]:
            raise StoreError(f"{path}: content does not match the sha256 its record holds.")
        return json.loads(data)

    def state_problem(self, record: dict[str, Any]) -> str | None:
        """Why ``record``'s evaluator state cannot be read back (None when it can)."""
        try:
            for name in SIDECAR_FIELDS:
                if name in record or name == "state":
                    self.state(record, name)
        except (StoreError, json.JSONDecodeError, UnicodeDecodeError) as error:
            return str(error)
        return None

    def state_intact(self, record: dict[str, Any]) -> bool:
        return self.state_problem(record) is None

    def _drop_torn_tail(self) -> None:
        """Cut a last line left unfinished by an interrupted append, so it stays the last."""
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            with self.path.open("r+b") as handle:
                handle.truncate(data.rfind(b"\n") + 1)

    def partial_dir(self) -> Path:
        folder = self.path.with_suffix(".partial")
        folder.mkdir(parents=True, exist_ok=True)
        return folder
