"""The results store: append-only JSON lines, one record per run, plus in-flight partial state.

A record is a dict with ``record_id`` (a hash of what identifies the run), ``kind``
(``accuracy`` or ``speed``), what produced it and what it measured. Appends are flushed and
synced line by line, so an interrupted run loses at most the record in flight.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1


class StoreError(ValueError):
    """A store file that cannot be read; the message names the file and line."""


def record_id(identity: dict[str, Any]) -> str:
    """Stable 16-hex-digit id of a run's identity (canonical JSON, sorted keys)."""
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def read_records(path: Path) -> list[dict[str, Any]]:
    """All records in a JSON-lines file; a torn last line (interrupted write) is skipped."""
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as error:
            if number == len(lines):
                break
            raise StoreError(f"{path}:{number}: not a JSON record ({error.msg}).") from error
    return records


class Store:
    """A JSON-lines record file with a sibling folder for partial state of runs in flight."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def records(self) -> list[dict[str, Any]]:
        """Records in file order; for a repeated ``record_id`` the last one wins."""
        latest = {record["record_id"]: record for record in read_records(self.path)}
        return list(latest.values())

    def ids(self) -> set[str]:
        return {record["record_id"] for record in self.records()}

    def append(self, record: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"schema_version": SCHEMA_VERSION, **record}, sort_keys=True)
        self._drop_torn_tail()
        with self.path.open("a") as handle:
            handle.write(line + "\n")
            handle.flush()
            os.fsync(handle.fileno())

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
