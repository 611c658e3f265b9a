"""The regression gate: a small, fast run of each task (or of a user's own run file) against a
committed baseline.

Deterministic tier (fails CI): headline metrics within the task's tolerance of the baseline,
GMACs and parameter counts exact. Trained weights are bit-identical only within one numerics
class (CPU model and torch build), so accuracy is judged against the baseline's records of
this machine's class; where the baseline has none, a deviation beyond the tolerance is
reported as "not judged", never as a failure, since the same code moves that far between
CPUs. Timing tier: every speed record carries its speed-up over the task's baseline measured
in the same interleaved rounds, with the per-round ratios' IQR/median as its noise; a speed-up
fails only when it falls by more than max(20%, 3 x the combined noise of the baseline run and
this run), and only on the baseline's machine (elsewhere it is a warning); a speed-up below
that is timed twice more and judged by the median of its three measurements. An INVALID
timing is measured again (twice at most) and, if still INVALID, reported as "not judged".
The baseline is validated before any work.
"""

from __future__ import annotations

import json
import math
import shutil
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vidbench.provenance import machine, numerics
from vidbench.registry import DATASETS, METHODS, TASKS, parse_config, split_spec
from vidbench.runner import Runner, RunSettings
from vidbench.store import SIDECAR_FIELDS, Store, StoreError, strict_json
from vidbench.tasks import CiRun, Task, get_task, task_of_protocol

CI_SPEED = {"speed_videos": 4, "speed_rounds": 5}
# The gate times on one thread: a ratio of two methods is what it judges, and one thread shares
# a loaded machine far better than two threads waiting on each other at every operator.
GATE_SPEED_THREADS = 1
# A competing load on the other core shifts some ratios by itself: interp-mv n = 6 over frame
# read 16% lower under a one-core numpy load than quiet, every time (benchmarks/gate_under_load.py)
MIN_SPEED_TOLERANCE = 0.20
NOISE_FACTOR = 3.0
REMEASURES = 2

Key = tuple[str, str, str, tuple[Any, ...]]  # (task, kind, label, protocol setting)


class GateError(ValueError):
    """A baseline or run file the gate cannot use; the message names the file."""


@dataclass(frozen=True)
class Check:
    """One comparison against the baseline."""

    name: str
    baseline: float
    measured: float
    allowed: str
    status: str  # "ok", "FAIL", "warn", "not judged", "only in baseline", "only in this run"
    note: str = ""


@dataclass(frozen=True)
class GateRun:
    """One comparison the gate runs: methods on a dataset at some protocol settings."""

    task: str
    ci: CiRun
    speed: dict[str, int] = field(default_factory=lambda: dict(CI_SPEED))


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


def _machine_of(record: dict[str, Any]) -> dict[str, Any] | None:
    return record.get("provenance", {}).get("machine")


def _numerics_of(record: dict[str, Any]) -> dict[str, str]:
    machine_of = record.get("provenance", {}).get("machine", {})
    return {"cpu": machine_of.get("cpu", "?"), "torch": machine_of.get("torch", "?")}


def _speedups(records: dict[Key, dict[str, Any]]) -> dict[Key, tuple[float, float, bool]]:
    """Key -> (speed-up, its noise, valid): from the same-run baseline the record carries,
    or, for records made before speed records carried one, from the task's baseline record of
    the same run (the noise then the larger of the two fps noises)."""
    bases = {
        (task, kind, r["run_id"]): r["speed"]
        for (task, kind, label, _), r in records.items()
        if kind.startswith("speed") and label.split(":")[0] == get_task(task).speed_baseline
    }
    out = {}
    for key, r in records.items():
        if not key[1].startswith("speed"):
            continue
        speed = r["speed"]
        if "speedup" in speed:
            valid = speed["validity"] == "VALID" and speed["baseline"]["validity"] == "VALID"
            out[key] = (speed["speedup"], speed["speedup_iqr_over_median"], valid)
            continue
        base = bases.get((key[0], key[1], r.get("run_id")))
        if base is not None:
            noise = max(speed["fps_iqr_over_median"], base["fps_iqr_over_median"])
            valid = speed["validity"] == "VALID" and base["validity"] == "VALID"
            out[key] = (speed["fps"] / base["fps"], noise, valid)
    return out


def _tag(key: Key) -> str:
    task, kind, label, setting = key
    protocol = get_task(task).protocol
    scenario = kind.partition("/")[2]
    return " ".join(
        [label, *(f"{p}={v}" for p, v in zip(protocol.params, setting)), *filter(None, [scenario])]
    )


def _same(x: Any, y: Any, tolerance: float) -> bool:
    """Within ``tolerance``; a missing value (NaN, stored as null) only matches another."""
    missing = [v is None or (isinstance(v, float) and math.isnan(v)) for v in (x, y)]
    return all(missing) if any(missing) else abs(x - y) <= tolerance


def _accuracy_checks(
    key: Key, baselines: list[dict[str, Any]], measured: dict[str, Any], same_class: bool
) -> list[Check]:
    """Each headline against the baseline record(s) of ``key``: those of this machine's
    numerics class when ``same_class``, else every class's (judged only when within)."""
    task = get_task(key[0])
    checks = []
    for headline in task.headline:
        y = measured["metrics"].get(headline.metric)
        xs = [b["metrics"].get(headline.metric) for b in baselines]
        close = [x for x in xs if _same(x, y, headline.tolerance)]
        x = close[0] if close else xs[0]
        if close:
            status, note = "ok", ""
        elif same_class:
            status, note = "FAIL", ""
        else:
            status = "not judged"
            note = "baseline made on other CPUs/torch builds: trained weights differ there"
        checks.append(
            Check(
                f"{_tag(key)} {headline.metric}",
                _num(x),
                _num(y),
                f"±{headline.tolerance}",
                status,
                note,
            )
        )
    return checks


def _num(value: Any) -> float:
    return float("nan") if value is None else float(value)


def compare_to_baseline(
    baseline: list[dict[str, Any]], measured: list[dict[str, Any]]
) -> list[Check]:
    """All checks of ``measured`` records against ``baseline`` records (pure function)."""
    here = numerics()
    classes: dict[Key, list[dict[str, Any]]] = {}
    for r in baseline:
        if "error" in r or "protocol" not in r:
            continue
        task = task_of_protocol(r["protocol"])
        key = (task.name, _kind(r), r["label"], task.protocol.setting_of(r))
        classes.setdefault(key, []).append(r)
    base, new = _index(baseline), _index(measured)
    checks: list[Check] = []
    for key in sorted(set(base) - set(new), key=str):
        checks.append(
            Check(
                f"{key[1]} {_tag(key)}",
                1,
                0,
                "present",
                "only in baseline",
                "the baseline has it; this run did not measure it",
            )
        )
    for key in sorted(set(new) - set(base), key=str):
        checks.append(
            Check(
                f"{key[1]} {_tag(key)}",
                0,
                1,
                "present",
                "only in this run",
                "not judged: add it to the baseline with `bench regress --update`",
            )
        )
    for key in sorted(set(base) & set(new), key=str):
        task: Task = get_task(key[0])
        m = new[key]
        if key[1] == "accuracy":
            mine = [r for r in classes[key] if _numerics_of(r) == here]
            checks += _accuracy_checks(key, mine or classes[key], m, bool(mine))
        elif key[1] == "speed":
            b = base[key]
            for metric in (f"gmacs_per_{task.cost_unit}", "params"):
                x, y = b["cost"][metric], m["cost"][metric]
                ok = abs(x - y) <= 1e-9 * max(abs(x), 1)
                checks.append(
                    Check(f"{_tag(key)} cost/{metric}", x, y, "exact", "ok" if ok else "FAIL")
                )
    # speed is judged against the baseline's records from this very machine; elsewhere warned
    mine = _speedups(_index([r for r in baseline if _machine_of(r) == machine()]))
    base_speed, new_speed = {**_speedups(base), **mine}, _speedups(new)
    for key in sorted(set(base_speed) & set(new_speed), key=str):
        (x, noise_base, valid_base), (y, noise_new, valid_new) = base_speed[key], new_speed[key]
        tolerance = max(MIN_SPEED_TOLERANCE, NOISE_FACTOR * math.hypot(noise_base, noise_new))
        baseline_method = get_task(key[0]).speed_baseline
        name = f"{_tag(key)} speedup vs {baseline_method}"
        if not (valid_base and valid_new):
            which = "this run" if not valid_new else "the baseline"
            checks.append(
                Check(name, x, y, f"-{tolerance:.0%}", "not judged", f"INVALID timing in {which}")
            )
            continue
        ok = y >= x * (1 - tolerance)
        same_machine = key in mine
        status = "ok" if ok else ("FAIL" if same_machine else "warn")
        note = "" if ok or same_machine else "another machine than the baseline's"
        checks.append(Check(name, x, y, f"-{tolerance:.0%}", status, note))
    return checks


def format_checks(checks: list[Check]) -> str:
    lines = [f"{'check':<60} {'baseline':>10} {'measured':>10} {'allowed':>8}  status"]
    lines += [
        f"{c.name:<60} {c.baseline:>10.4g} {c.measured:>10.4g} {c.allowed:>8}  {c.status}"
        + (f" ({c.note})" if c.note else "")
        for c in checks
    ]
    return "\n".join(lines)


def load_baseline(path: Path, tasks: Sequence[str] = ()) -> list[dict[str, Any]]:
    """The baseline's records, refused before any work when the file is missing, empty,
    truncated, not records, or holds nothing for one of ``tasks``."""
    if not path.exists():
        raise GateError(f"No baseline at {path}: create it with `bench regress --update`.")
    text = path.read_text()
    if not text.strip():
        raise GateError(
            f"{path}: the baseline is empty: recreate it with `bench regress --update`."
        )
    if not text.endswith("\n"):
        raise GateError(f"{path}: the last line is cut off (truncated baseline).")
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        try:
            record = json.loads(line)
            task_of_protocol(record["protocol"])
            required = (
                ("label", "kind", "metrics") if record["kind"] == "accuracy" else ("label", "kind")
            )
            missing = [k for k in required if k not in record]
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            raise GateError(f"{path}:{number}: not a baseline record ({error}).") from error
        if missing:
            raise GateError(f"{path}:{number}: a record without {', '.join(missing)}.")
        records.append(record)
    present = {task_of_protocol(r["protocol"]).name for r in records}
    absent = [t for t in tasks if t not in present]
    if absent:
        raise GateError(f"{path}: no baseline records for task {', '.join(absent)}.")
    return records


def runs_from_file(path: Path) -> list[GateRun]:
    """The gate's runs from a TOML file of ``[[run]]`` tables (keys: ``dataset``, ``methods``,
    ``intervals``, optionally ``dataset_options``, ``speed_videos``, ``speed_rounds``), every
    name and option checked before any work."""
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise GateError(f"{path}: cannot read the gate's run file ({error}).") from error
    runs = []
    for number, run in enumerate(data.get("run", []), start=1):
        where = f"{path} [[run]] #{number}"
        try:
            methods = tuple(run["methods"])
            dataset = str(run["dataset"])
            intervals = tuple(int(i) for i in run.get("intervals", [1]))
        except (KeyError, TypeError, ValueError) as error:
            raise GateError(f"{where}: needs dataset, methods and intervals ({error}).") from error
        options = {str(k): str(v) for k, v in run.get("dataset_options", {}).items()}
        parse_config(DATASETS.get(dataset).Config, options, f"dataset '{dataset}' in {where}")
        tasks = set()
        for spec in methods:
            name, given = split_spec(spec)
            parse_config(METHODS.get(name).Config, given, f"method '{name}' in {where}")
            tasks.add(METHODS.get(name).task)
        if len(tasks) != 1 or min(intervals, default=0) < 1:
            raise GateError(f"{where}: methods of one task and intervals >= 1, please.")
        speed = {k: int(run.get(k, v)) for k, v in CI_SPEED.items()}
        if min(speed.values()) < 1:
            raise GateError(f"{where}: speed_videos and speed_rounds must be >= 1.")
        runs.append(GateRun(tasks.pop(), CiRun(dataset, methods, intervals, options), speed))
    if not runs:
        raise GateError(f"{path}: no [[run]] table.")
    return runs


def default_runs(tasks: Sequence[str] = ()) -> list[GateRun]:
    """Each task's own small configuration (``Task.ci``)."""
    runs = []
    for name in tasks or TASKS.names():
        ci = get_task(name).ci
        runs.append(GateRun(name, ci, {**CI_SPEED, "speed_videos": ci.speed_videos}))
    return runs


def _measure(work_dir: Path, run: GateRun, store: Store, rerun: tuple[str, ...] = ()) -> list:
    """One comparison of ``run`` into ``store``; ``rerun`` labels are timed again."""
    settings = RunSettings(
        intervals=run.ci.intervals,
        data_root=work_dir / "data",
        checkpoint_dir=work_dir / "checkpoints",
        speed_threads=GATE_SPEED_THREADS,
        rerun=rerun,
        rerun_kinds=("speed",),
        **run.speed,
    )
    return Runner(store, settings).compare(
        list(run.ci.methods), run.ci.dataset, dict(run.ci.dataset_options)
    )


def _work_store(work_dir: Path) -> Store:
    return Store(work_dir / "records.jsonl")


def run_configurations(work_dir: Path, runs: Sequence[GateRun]) -> list[dict[str, Any]]:
    """``runs`` measured afresh in this job; INVALID timings measured again, twice at most."""
    store = _work_store(work_dir)
    store.path.unlink(missing_ok=True)  # speed must be measured afresh, in this job
    shutil.rmtree(store.path.with_suffix(".partial"), ignore_errors=True)
    records: list[dict[str, Any]] = []
    for run in runs:
        produced = _measure(work_dir, run, store)
        for _ in range(REMEASURES):
            invalid = tuple(sorted({r["label"] for r in produced if _invalid_speed(r)}))
            if not invalid:
                break
            print(f"re-measuring INVALID timings of {', '.join(invalid)}")
            again = _measure(work_dir, run, store, invalid)
            redone = {r["record_id"] for r in again}
            produced = [r for r in produced if r["record_id"] not in redone] + again
        records += produced
    return records


def confirm_failures(
    work_dir: Path, runs: Sequence[GateRun], baseline: list, records: list
) -> tuple[list[Check], list]:
    """Checks of ``records``; a speed-up that fails is timed twice more (fresh rounds, same
    job) and judged by the median of its three measurements, so one slow stretch of a shared
    machine fails nothing while a real slowdown fails every time."""
    checks = compare_to_baseline(baseline, records)
    failing = {
        c.name.partition(" speedup vs ")[0]
        for c in checks
        if c.status == "FAIL" and " speedup vs " in c.name
    }
    if not failing:
        return checks, records
    attempts: dict[str, list[dict[str, Any]]] = {}
    store = _work_store(work_dir)
    for run in runs:
        labels = tuple(
            sorted(
                {
                    r["label"]
                    for r in records
                    if r.get("kind") == "speed"
                    and task_of_protocol(r["protocol"]).name == run.task
                    and _tag_of(r) in failing
                }
            )
        )
        for _ in range(REMEASURES if labels else 0):
            print(f"speed-up below tolerance: timing {', '.join(labels)} again")
            for r in _measure(work_dir, run, store, labels):
                attempts.setdefault(r["record_id"], []).append(r)
    confirmed = [_median_speedup(r, attempts.get(r["record_id"], [])) for r in records]
    return compare_to_baseline(baseline, confirmed), confirmed


def _tag_of(record: dict[str, Any]) -> str:
    task = task_of_protocol(record["protocol"])
    return _tag((task.name, _kind(record), record["label"], task.protocol.setting_of(record)))


def _median_speedup(record: dict[str, Any], again: list[dict[str, Any]]) -> dict[str, Any]:
    """``record`` with its speed-up the median over it and its re-measurements."""
    if not again or "speed" not in record or "speedup" not in record["speed"]:
        return record
    measured = [record, *again]
    middle = sorted(measured, key=lambda r: r["speed"]["speedup"])[len(measured) // 2]
    speed = {**middle["speed"], "speedup_measurements": [r["speed"]["speedup"] for r in measured]}
    return {**record, "speed": speed}


def _invalid_speed(record: dict[str, Any]) -> bool:
    """An INVALID timing that measuring again may cure: noise (round spread), not too few
    samples or too short a stream, which a repeat would only repeat."""
    speed = record.get("speed")
    if not speed:
        return False
    noise_only = all("IQR" in reason or "range" in reason for reason in speed.get("reasons", []))
    base_valid = speed.get("baseline", {}).get("validity", "VALID") == "VALID"
    return noise_only and (speed["validity"] != "VALID" or not base_valid)


def _of_tasks(records: list[dict[str, Any]], tasks: Sequence[str]) -> list[dict[str, Any]]:
    """The records whose protocol belongs to one of ``tasks`` (all records when empty)."""
    if not tasks:
        return records
    return [r for r in records if task_of_protocol(r["protocol"]).name in tasks]


def write_baseline(path: Path, records: list[dict[str, Any]], tasks: Sequence[str]) -> None:
    """Replace this machine's numerics class's records of ``tasks`` with ``records``, keeping
    other tasks and other classes' records of labels still measured (they judge the same
    code on other CPUs)."""
    here = numerics()
    measured = {(r["label"], r["kind"]) for r in records}
    kept = []
    if path.exists():
        for r in load_baseline(path):
            task = task_of_protocol(r["protocol"]).name
            other_task = tasks and task not in tasks
            other_class = _numerics_of(r) != here and (r["label"], r["kind"]) in measured
            if other_task or other_class:
                kept.append(r)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        for record in [*kept, *records]:
            # the gate reads metrics: evaluator states (MBs for detection) stay in the runs
            slim = {k: v for k, v in record.items() if k not in SIDECAR_FIELDS}
            handle.write(json.dumps(strict_json(slim), sort_keys=True, allow_nan=False) + "\n")
    print(f"wrote baseline {path} ({len(kept)} kept, {len(records)} new records)")


def run_regression(
    baseline_path: Path,
    work_dir: Path,
    update: bool = False,
    tasks: Sequence[str] = (),
    config: Path | None = None,
) -> int:
    """Run the gate's configurations (a run file's, else each of ``tasks``'s), compare with the
    baseline; 0 when nothing failed. ``update`` rewrites this machine's baseline records."""
    runs = runs_from_file(config) if config else default_runs(tasks)
    run_tasks = sorted({run.task for run in runs})
    baseline = [] if update else load_baseline(baseline_path, run_tasks)
    try:
        records = run_configurations(work_dir, runs)
    except StoreError as error:
        raise GateError(str(error)) from error
    if update:
        write_baseline(baseline_path, records, run_tasks)
        return 0
    checks, _ = confirm_failures(work_dir, runs, _of_tasks(baseline, run_tasks), records)
    print(format_checks(checks))
    counts = {
        s: sum(c.status == s for c in checks) for s in dict.fromkeys(c.status for c in checks)
    }
    print("regression: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    shutil.rmtree(work_dir / "records.partial", ignore_errors=True)
    return 1 if counts.get("FAIL") or counts.get("only in baseline") else 0
