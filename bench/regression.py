"""CI regression gate (measurement.md rule 11) on each task's small, fast configuration.

Deterministic tier (fails CI): each task's headline metrics within the task's tolerance of the
committed baseline, GMACs and parameter counts exact. Timing tier: each scheme's speed-up over
its task's speed baseline (``frame`` for segmentation) measured in the same run, against the
baseline's speed-up; it fails only when the drop exceeds max(10%, 3x the baseline's own
round-to-round noise), and only warns on a machine whose fingerprint differs from the
baseline's.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vidbench.provenance import machine
from vidbench.registry import TASKS
from vidbench.runner import Runner, RunSettings
from vidbench.store import Store, read_records
from vidbench.tasks import Task, get_task, task_of_protocol

CI_SPEED = {"speed_videos": 4, "speed_rounds": 5}
MIN_SPEED_TOLERANCE = 0.10

Key = tuple[str, str, str, tuple[Any, ...]]  # (task, kind, label, protocol setting)


@dataclass(frozen=True)
class Check:
    """One comparison against the baseline."""

    name: str
    baseline: float
    measured: float
    allowed: str
    status: str  # "ok", "FAIL" or "warn"


def _index(records: list[dict[str, Any]]) -> dict[Key, dict[str, Any]]:
    """The newest record per (task, kind, label, protocol setting); failures left out."""
    out = {}
    for r in sorted(records, key=lambda r: r.get("created", 0)):
        if "error" in r or "protocol" not in r:
            continue
        task = task_of_protocol(r["protocol"])
        out[(task.name, _kind(r), r["label"], task.protocol.setting_of(r))] = r
    return out


def _kind(record: dict[str, Any]) -> str:
    """``accuracy``, ``speed`` (the stream scenario) or ``speed/offline``."""
    scenario = record.get("scenario", "stream")
    return record["kind"] if scenario == "stream" else f"{record['kind']}/{scenario}"


def _speedups(records: dict[Key, dict[str, Any]]) -> dict[Key, tuple[float, float]]:
    """Key -> (fps / the task's speed-baseline fps, combined round noise) in the same run."""
    bases = {
        (task, kind, r["run_id"]): r["speed"]
        for (task, kind, label, _), r in records.items()
        if kind.startswith("speed") and label.split(":")[0] == get_task(task).speed_baseline
    }
    out = {}
    for key, r in records.items():
        base = bases.get((key[0], key[1], r.get("run_id")))
        if key[1].startswith("speed") and base is not None:
            noise = max(r["speed"]["fps_iqr_over_median"], base["fps_iqr_over_median"])
            out[key] = (r["speed"]["fps"] / base["fps"], noise)
    return out


def _tag(key: Key) -> str:
    task, kind, label, setting = key
    protocol = get_task(task).protocol
    scenario = kind.partition("/")[2]
    return " ".join(
        [label, *(f"{p}={v}" for p, v in zip(protocol.params, setting)), *filter(None, [scenario])]
    )


def compare_to_baseline(
    baseline: list[dict[str, Any]], measured: list[dict[str, Any]]
) -> list[Check]:
    """All checks of ``measured`` records against ``baseline`` records (pure function)."""
    base, new = _index(baseline), _index(measured)
    checks: list[Check] = []
    missing = sorted(set(base) - set(new))
    for key in missing:
        checks.append(Check(f"{key[1]} {_tag(key)} present", 1, 0, "present", "FAIL"))
    same_machine = all(
        r.get("provenance", {}).get("machine") == machine()
        for r in baseline
        if r["kind"] == "speed"
    )
    for key in sorted(set(base) & set(new), key=str):
        task: Task = get_task(key[0])
        b, m = base[key], new[key]
        tag = _tag(key)
        if key[1] == "accuracy":
            for headline in task.headline:
                x, y = b["metrics"][headline.metric], m["metrics"][headline.metric]
                ok = abs(x - y) <= headline.tolerance or (math.isnan(x) and math.isnan(y))
                checks.append(
                    Check(
                        f"{tag} {headline.metric}",
                        x,
                        y,
                        f"±{headline.tolerance}",
                        "ok" if ok else "FAIL",
                    )
                )
        elif key[1] == "speed":
            for metric in (f"gmacs_per_{task.cost_unit}", "params"):
                x, y = b["cost"][metric], m["cost"][metric]
                ok = abs(x - y) <= 1e-9 * max(abs(x), 1)
                checks.append(Check(f"{tag} cost/{metric}", x, y, "exact", "ok" if ok else "FAIL"))
    base_speed, new_speed = _speedups(base), _speedups(new)
    for key in sorted(set(base_speed) & set(new_speed), key=str):
        (x, noise), (y, _) = base_speed[key], new_speed[key]
        tolerance = max(MIN_SPEED_TOLERANCE, 3 * noise)
        ok = y >= x * (1 - tolerance)
        status = "ok" if ok else ("FAIL" if same_machine else "warn")
        baseline_method = get_task(key[0]).speed_baseline
        checks.append(
            Check(f"{_tag(key)} speedup vs {baseline_method}", x, y, f"-{tolerance:.0%}", status)
        )
    return checks


def format_checks(checks: list[Check]) -> str:
    lines = [f"{'check':<60} {'baseline':>10} {'measured':>10} {'allowed':>8}  status"]
    lines += [
        f"{c.name:<60} {c.baseline:>10.4g} {c.measured:>10.4g} {c.allowed:>8}  {c.status}"
        for c in checks
    ]
    return "\n".join(lines)


def run_ci_configurations(work_dir: Path, tasks: Sequence[str] = ()) -> list[dict[str, Any]]:
    """The CI configuration of ``tasks`` (every registered task when empty), measured afresh
    in this job."""
    store = Store(work_dir / "records.jsonl")
    store.path.unlink(missing_ok=True)  # speed must be measured afresh, in this job
    shutil.rmtree(store.path.with_suffix(".partial"), ignore_errors=True)
    records: list[dict[str, Any]] = []
    for name in tasks or TASKS.names():
        ci = get_task(name).ci
        settings = RunSettings(
            intervals=ci.intervals,
            data_root=work_dir / "data",
            checkpoint_dir=work_dir / "checkpoints",
            **CI_SPEED,
        )
        records += Runner(store, settings).compare(
            list(ci.methods), ci.dataset, dict(ci.dataset_options)
        )
    return records


def _of_tasks(records: list[dict[str, Any]], tasks: Sequence[str]) -> list[dict[str, Any]]:
    """The records whose protocol belongs to one of ``tasks`` (all records when empty)."""
    if not tasks:
        return records
    return [r for r in records if task_of_protocol(r["protocol"]).name in tasks]


def run_regression(
    baseline_path: Path, work_dir: Path, update: bool = False, tasks: Sequence[str] = ()
) -> int:
    """Run the CI configurations of ``tasks`` (all when empty), compare with the baseline; 0
    when nothing failed. ``update`` rewrites those tasks' baseline records, keeping the rest."""
    records = run_ci_configurations(work_dir, tasks)
    if update:
        kept = []
        if tasks and baseline_path.exists():
            kept = [
                r
                for r in read_records(baseline_path)
                if task_of_protocol(r["protocol"]).name not in tasks
            ]
        baseline_path.parent.mkdir(parents=True, exist_ok=True)
        with baseline_path.open("w") as handle:
            for record in [*kept, *records]:
                # the gate reads metrics: evaluator state (MBs for detection) stays in the runs
                slim = {k: v for k, v in record.items() if k != "state"}
                handle.write(json.dumps(slim, sort_keys=True) + "\n")
        print(f"wrote baseline {baseline_path} ({len(kept)} kept, {len(records)} new records)")
        return 0
    if not baseline_path.exists():
        raise FileNotFoundError(
            f"No baseline at {baseline_path}: create it with `bench regress --update`."
        )
    checks = compare_to_baseline(_of_tasks(read_records(baseline_path), tasks), records)
    print(format_checks(checks))
    failed = [c for c in checks if c.status == "FAIL"]
    warned = [c for c in checks if c.status == "warn"]
    print(
        f"regression: {len(checks) - len(failed) - len(warned)} ok, {len(failed)} failed, "
        f"{len(warned)} warned (speed is only warned on a machine unlike the baseline's)"
    )
    shutil.rmtree(work_dir / "records.partial", ignore_errors=True)
    return 1 if failed else 0
