from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest
from vidbench.registry import METHODS, Registry, RegistryError, parse_config, split_spec
from vidbench.store import Store, StoreError, record_id


def test_store_appends_and_survives_a_torn_last_line(tmp_path: Path) -> None:
    store = Store(tmp_path / "r.jsonl")
    store.append({"record_id": "a", "x": 1})
    store.append({"record_id": "b", "x": 2})
    with store.path.open("a") as handle:
        handle.write('{"record_id": "c", "x"')  # interrupted mid-write
    assert [r["record_id"] for r in store.records()] == ["a", "b"]
    store.append({"record_id": "a", "x": 3})
    assert {r["record_id"]: r["x"] for r in store.records()} == {"a": 3, "b": 2}


def test_evaluator_state_lives_in_a_checked_sidecar(tmp_path: Path) -> None:
    store = Store(tmp_path / "r.jsonl")
    state = {"boxes": [[1.5, 2.0, 3.0, 4.0]] * 1000, "labels": list(range(1000))}
    store.append({"record_id": "a", "metrics": {"map": 50.0}, "state": state})
    store.append({"record_id": "b", "state": {"inline": True}})
    line = store.path.read_text().splitlines()[0]
    assert len(line) < 300 and '"sidecar"' in line  # the record file keeps a reference only
    records = {r["record_id"]: r for r in store.records()}
    assert store.state(records["a"]) == state and store.state(records["b"]) == {"inline": True}
    assert store.state({"record_id": "old", "state": [1, 2]}) == [1, 2]  # written before sidecars
    sidecar = store.states_dir() / records["a"]["state"]["sidecar"]
    assert not list(store.states_dir().glob("*.tmp"))
    sidecar.write_bytes(gzip.compress(b'{"boxes": []}'))
    with pytest.raises(StoreError, match="does not match the sha256"):
        store.state(records["a"])
    sidecar.unlink()
    with pytest.raises(StoreError, match=sidecar.name):
        store.state(records["a"])


def test_store_names_file_and_line_of_a_corrupt_record(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text('{"record_id": "a"}\nnot json\n{"record_id": "b"}\n')
    with pytest.raises(StoreError, match=r"r\.jsonl:2"):
        Store(path).records()


def test_record_id_is_stable_and_order_free() -> None:
    assert record_id({"a": 1, "b": [1, 2]}) == record_id({"b": [1, 2], "a": 1})
    assert record_id({"a": 1}) != record_id({"a": 2})


def test_unknown_names_get_suggestions() -> None:
    with pytest.raises(RegistryError, match="Did you mean: prop-mv"):
        METHODS.get("prop_mv")
    registry = Registry("thing", {"x": "os:path"})
    with pytest.raises(RegistryError, match="already registered"):
        registry.register("x", "os:sep")


@dataclass(frozen=True)
class Options:
    steps: int = 3
    rate: float = 0.5
    fusion: Literal["avg", "max"] = "avg"
    flag: bool = False


def test_options_are_cast_by_field_type_and_checked() -> None:
    name, options = split_spec("m:steps=7:fusion=max:flag=true:rate=0.25")
    assert name == "m"
    assert parse_config(Options, options, "m") == Options(7, 0.25, "max", True)
    with pytest.raises(RegistryError, match="Fields: steps, rate, fusion, flag"):
        parse_config(Options, {"nope": "1"}, "m")
    with pytest.raises(RegistryError, match="allowed: avg, max"):
        parse_config(Options, {"fusion": "sum"}, "m")
    with pytest.raises(RegistryError, match="not a valid int"):
        parse_config(Options, {"steps": "many"}, "m")
    with pytest.raises(RegistryError, match="key=value"):
        split_spec("m:steps")


def test_a_complete_line_that_is_not_a_record_is_refused_by_file_and_line(tmp_path: Path) -> None:
    """A garbage last line that ends in a newline is no torn write: reading names it and no
    record is ever appended after it (it would become unreadable for good)."""
    store = Store(tmp_path / "r.jsonl")
    store.append({"record_id": "a", "x": 1})
    with store.path.open("a") as handle:
        handle.write("#!garbage that is complete\n")
    with pytest.raises(StoreError, match=r"r\.jsonl:2: not a JSON record"):
        store.records()
    before = store.path.read_text()
    with pytest.raises(StoreError, match=r"r\.jsonl:2"):
        store.append({"record_id": "b", "x": 2})
    assert store.path.read_text() == before
    store.path.write_text('{"record_id": "a"}\n[1, 2]\n')
    with pytest.raises(StoreError, match=r"r\.jsonl:2: a JSON value but not a record"):
        store.records()


def test_records_are_strict_json(tmp_path: Path) -> None:
    import json

    store = Store(tmp_path / "r.jsonl")
    store.append({"record_id": "a", "metrics": {"iou": [float("nan"), 1.0, float("inf")]}})
    line = store.path.read_text().splitlines()[0]
    assert "NaN" not in line and "Infinity" not in line
    strict = json.loads(line, parse_constant=lambda name: pytest.fail(f"non-strict {name}"))
    assert strict["metrics"]["iou"] == [None, 1.0, None]


def test_a_damaged_sidecar_is_reported_and_written_again(tmp_path: Path) -> None:
    store = Store(tmp_path / "r.jsonl")
    state = {"confusion": [[1, 2], [3, 4]]}
    store.append({"record_id": "a", "state": state})
    record = store.records()[0]
    assert store.state_intact(record)
    sidecar = store.states_dir() / record["state"]["sidecar"]
    sidecar.write_bytes(b"not gzip at all")
    assert "cannot read the evaluator state" in store.state_problem(record)
    store.append({"record_id": "a", "state": state})  # re-computed: the same content again
    assert store.state_intact(store.records()[0]) and store.state(store.records()[0]) == state
    sidecar.unlink()
    assert sidecar.name in store.state_problem(store.records()[0])
