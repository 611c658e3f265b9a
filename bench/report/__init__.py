"""Reports: tables and figures rendered from stored records only, one section per task.

Records of different dataset configurations (fingerprints) never replace one another: the
newest configuration's report fills the folder, every other one gets its own report in
``configurations/<fingerprint>/``, and ``configurations.md`` lists them all.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from vidbench.tasks import Task, task_of_protocol


def render(records: Iterable[dict[str, Any]], out_dir: Path) -> dict[str, Path]:
    """Each task's report for its records (tasks found from the records' protocols), one per
    dataset fingerprint."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        if "protocol" in record:
            fingerprint = record.get("dataset", {}).get("fingerprint", "")
            groups.setdefault(fingerprint, []).append(record)
    if not groups:
        raise ValueError("No records to report: run `bench compare` first.")
    newest = max(groups, key=lambda fp: max(r.get("created", 0) for r in groups[fp]))
    written = _render_tasks(groups[newest], out_dir)
    if len(groups) > 1:
        lines = ["# Dataset configurations in this store\n",
                 "| fingerprint | dataset options | records | report |", "|---|---|---|---|"]
        for fingerprint, part in sorted(groups.items(), key=lambda kv: kv[0] != newest):
            where = Path(".") if fingerprint == newest else Path("configurations") / fingerprint
            if fingerprint != newest:
                written.update({f"{fingerprint}/{k}": v for k, v in
                                _render_tasks(part, out_dir / where).items()})
            options = json.dumps(part[0].get("dataset", {}).get("config", {}), sort_keys=True)
            lines.append(f"| {fingerprint} | `{options}` | {len(part)} | [{where}]({where}) |")
        written["configurations_md"] = out_dir / "configurations.md"
        written["configurations_md"].write_text("\n".join(lines) + "\n")
    return written


def _render_tasks(records: list[dict[str, Any]], out_dir: Path) -> dict[str, Path]:
    by_task: dict[str, tuple[Task, list[dict[str, Any]]]] = {}
    for record in records:
        task = task_of_protocol(record["protocol"])
        by_task.setdefault(task.name, (task, []))[1].append(record)
    written: dict[str, Path] = {}
    for task, task_records in by_task.values():
        written.update(task.render(task_records, out_dir))
    return written


TABLE_FORMATS = ("md", "csv", "tex")


def export_tables(written: dict[str, Path], formats: tuple[str, ...]) -> dict[str, Path]:
    """Every CSV table of ``written`` also as LaTeX (``tex`` in ``formats``); markdown and CSV
    are always written. A bad format name is refused, naming the allowed ones."""
    import pandas as pd

    unknown = sorted(set(formats) - set(TABLE_FORMATS))
    if unknown:
        raise ValueError(f"Unknown table format(s) {unknown}; allowed: {', '.join(TABLE_FORMATS)}.")
    extra: dict[str, Path] = {}
    if "tex" in formats:
        for key, path in written.items():
            if path.suffix == ".csv":
                extra[f"{key}_tex"] = path.with_suffix(".tex")
                table = pd.read_csv(path)
                latex = table.to_latex(index=False, float_format="%.2f", na_rep="")
                extra[f"{key}_tex"].write_text(latex)
    return extra
