"""The task interface: registered tasks own distinct protocols, the harness imports no concrete
method or dataset, and records are built in one place."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from vidbench.records import Record
from vidbench.registry import METHODS, TASKS
from vidbench.store import record_id
from vidbench.tasks import Task, get_task, task_of_protocol

BENCH = Path(__file__).resolve().parents[1] / "bench"


def test_each_protocol_belongs_to_exactly_one_task() -> None:
    names = []
    for name in TASKS.names():
        task = get_task(name)
        assert isinstance(task, Task) and task.name == name
        names += [task.protocol.name, task.protocol.stream_name]
        assert task_of_protocol(task.protocol.name) is task
        assert task.headline and all(h.tolerance > 0 for h in task.headline)
        assert task.speed_baseline in METHODS.names()
        assert all(METHODS.get(spec.split(":")[0]).task == name for spec in task.ci.methods)
    assert len(names) == len(set(names))
    with pytest.raises(ValueError, match="No registered task owns"):
        task_of_protocol("made-up@v9")


def test_every_method_serves_a_registered_task() -> None:
    for name in METHODS.names():
        assert METHODS.get(name).task in TASKS.names()


def test_the_harness_imports_no_concrete_method_or_dataset() -> None:
    offenders = []
    for path in BENCH.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            modules = (
                [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else []
            )
            offenders += [
                f"{path.name}: {m}"
                for m in modules
                if m.startswith(("vidbench.methods", "vidbench.datasets"))
            ]
    assert offenders == []


def test_a_record_is_its_identity_hash_plus_string_keyed_fields() -> None:
    identity = {"method": "frame", "kind": "accuracy", "interval": 3}
    record = Record(identity, "frame", {"run_id": "r"}, {"metrics": {"x/per": {1: 0.5}}}, 7.0)
    data = record.to_json()
    assert data["record_id"] == record_id(identity) == record.record_id
    assert data["metrics"]["x/per"] == {"1": 0.5}
    assert data["interval"] == 3 and data["label"] == "frame" and data["created"] == 7.0
