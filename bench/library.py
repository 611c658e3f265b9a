"""The Python face of ``bench compare`` and of the stores, for notebooks and scripts:
``vidbench.compare(...)`` runs what is missing and returns the headline table,
``vidbench.records(...)`` reads a store into a pandas DataFrame (one row per record).

    import vidbench
    table = vidbench.compare(["frame", "prop-mv"], "synthcity", preset="small", intervals="1,5")
    table[["label", "interval", "seg/miou_avg", "steady_fps", "speedup"]]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from vidbench import presets
from vidbench.building import RunSettings
from vidbench.registry import DATASETS, METHODS, RegistryError, parse_config, split_spec
from vidbench.store import Store
from vidbench.tasks import get_task, task_of_protocol

DEFAULT_RESULTS = Path("results/runs")
DEFAULT_REPORTS = Path("reports")


@dataclass(frozen=True)
class Plan:
    """A validated comparison: method and dataset specs (preset applied), its task, where
    its records and reports go."""

    methods: tuple[str, ...]
    dataset: str
    task: str
    results: Path
    reports: Path


def store_name(dataset: str, seed: int) -> str:
    """``synthcity`` or, for another training seed, ``synthcity-seed1``."""
    return dataset if seed == 0 else f"{dataset}-seed{seed}"


def plan(
    methods: Sequence[str],
    dataset: str | None = None,
    *,
    task: str | None = None,
    preset: str | None = None,
    seed: int = 0,
    results: Path | None = None,
    reports: Path | None = None,
) -> Plan:
    """Check names, options and tasks before any work, and apply ``preset``."""
    methods = [m.strip() for m in methods if m.strip()]
    if not methods:
        raise RegistryError("No methods given.")
    tasks = {METHODS.get(split_spec(m)[0]).task for m in methods}
    if task and tasks != {task}:
        raise RegistryError(
            f"--task {task}: the methods serve {', '.join(sorted(tasks))}; "
            f"`bench list` shows each method's task."
        )
    if dataset is None and len(tasks) != 1:
        raise RegistryError("Methods of several tasks: name the --dataset that has all of them.")
    only = next(iter(tasks))
    dataset = presets.apply(dataset or get_task(only).default_dataset, "dataset", preset, only)
    methods = [presets.apply(m, "method", preset) for m in methods]
    for registry, spec in [(METHODS, m) for m in methods] + [(DATASETS, dataset)]:
        name, given = split_spec(spec)
        parse_config(registry.get(name).Config, given, f"{registry.kind} '{name}'")
    name = split_spec(dataset)[0]
    missing = sorted(tasks - set(DATASETS.get(name).tasks))
    if missing:
        raise RegistryError(
            f"Dataset '{name}' has no labels for {', '.join(missing)}; it serves "
            f"{', '.join(DATASETS.get(name).tasks)}."
        )
    stem = store_name(name, seed)
    return Plan(
        tuple(methods),
        dataset,
        only,
        Path(results or DEFAULT_RESULTS / f"{stem}.jsonl"),
        Path(reports or DEFAULT_REPORTS / stem),
    )


def run(chosen: Plan, settings: RunSettings) -> list[dict[str, Any]]:
    """Run what the store lacks for ``chosen``; the records of this run."""
    from vidbench.runner import Runner

    name, options = split_spec(chosen.dataset)
    return Runner(Store(chosen.results), settings).compare(list(chosen.methods), name, options)


def compare(
    methods: Sequence[str],
    dataset: str | None = None,
    *,
    preset: str | None = None,
    intervals: str | Sequence[int] = "1-10",
    results: Path | None = None,
    report: bool = True,
    **settings: Any,
) -> pd.DataFrame:
    """``bench compare`` from Python: run what is missing, render the report (unless
    ``report=False``) and return the store's headline table (``records``). ``settings`` are
    RunSettings fields (speed_videos, speed_rounds, threads, device, seed, ...)."""
    from vidbench.cli import parse_intervals
    from vidbench.report import render

    if isinstance(intervals, str):
        intervals = parse_intervals(intervals)
    chosen = plan(methods, dataset, preset=preset, seed=settings.get("seed", 0), results=results)
    run(chosen, RunSettings(intervals=tuple(intervals), **settings))
    if report:
        render(Store(chosen.results).records(), chosen.reports)
    return records(chosen.results)


def records(source: str | Path = "synthcity", seed: int = 0) -> pd.DataFrame:
    """Every record of a store (a dataset's default store by name, or a path), one row each:
    identity, the task's headline metrics, steady-state and stream fps, same-run speed-up,
    GMACs, parameters, validity and provenance."""
    path = (
        Path(source)
        if str(source).endswith(".jsonl")
        else (DEFAULT_RESULTS / f"{store_name(str(source), seed)}.jsonl")
    )
    if not path.exists():
        raise FileNotFoundError(f"No records at {path}: run a comparison first.")
    rows = []
    for r in Store(path).records():
        task = task_of_protocol(r["protocol"]) if "protocol" in r else None
        speed, cost = r.get("speed", {}), r.get("cost", {})
        code = r.get("provenance", {}).get("code", {})
        rows.append(
            {
                "label": r.get("label"),
                "method": r.get("method"),
                "task": task.name if task else None,
                "kind": r.get("kind"),
                "scenario": r.get("scenario"),
                **{p: r.get(p) for p in (task.protocol.params if task else ())},
                **(
                    {h.metric: r.get("metrics", {}).get(h.metric) for h in task.headline}
                    if task
                    else {}
                ),
                "steady_fps": speed.get("steady_fps"),
                "fps": speed.get("fps"),
                "speedup": speed.get("speedup"),
                "gmacs": cost.get("gmacs_per_frame", cost.get("gmacs_per_video")),
                "params": cost.get("params"),
                "validity": speed.get("validity"),
                "error": r.get("error"),
                "dataset": r.get("dataset", {}).get("fingerprint"),
                "run_id": r.get("run_id"),
                "commit": code.get("commit"),
                "dirty": code.get("dirty"),
                "code": r.get("code"),
                "created": r.get("created"),
            }
        )
    return pd.DataFrame(rows)
