"""Reports: tables and figures rendered from stored records only, one section per task."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from vidbench.tasks import Task, task_of_protocol


def render(records: Iterable[dict[str, Any]], out_dir: Path) -> dict[str, Path]:
    """Each task's report for its records (tasks found from the records' protocols)."""
    by_task: dict[str, tuple[Task, list[dict[str, Any]]]] = {}
    for record in records:
        if "protocol" not in record:
            continue
        task = task_of_protocol(record["protocol"])
        by_task.setdefault(task.name, (task, []))[1].append(record)
    if not by_task:
        raise ValueError("No records to report: run `bench compare` first.")
    written: dict[str, Path] = {}
    for task, task_records in by_task.values():
        written.update(task.render(task_records, out_dir))
    return written
