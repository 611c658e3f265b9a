"""Records tied to the code that made them, forced re-runs, speed-ups that survive across runs,
and one writer per store: end to end on the tiny synthcity."""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from vidbench.registry import METHODS
from vidbench.report import render
from vidbench.runner import Runner, RunSettings
from vidbench.store import Store

from tests.conftest import TINY

OPTIONS = {k: str(v) for k, v in vars(TINY).items()}
FRAME = "frame:train_steps=3"


def settings(root: Path, checkpoints: Path, **extra) -> RunSettings:
    chosen = {"intervals": (1, 2), "speed_videos": 1, "speed_rounds": 2, **extra}
    return RunSettings(data_root=root, checkpoint_dir=checkpoints, **chosen)


@pytest.fixture()
def plugin(tmp_path: Path, monkeypatch) -> Path:
    """A method in a module of its own outside vidbench (a copy of ``frame`` under another
    name), registered for the test."""
    folder = tmp_path / "plugin"
    folder.mkdir()
    source = folder / "trust_plugin_method.py"
    source.write_text(
        textwrap.dedent('''
        """A test plug-in: the per-frame baseline under another name."""
        from vidbench.methods.segmentation.frame import FrameBaseline


        class Renamed(FrameBaseline):
            """frame, registered as renamed-frame."""

            name = "renamed-frame"
    ''')
    )
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setitem(METHODS._entries, "renamed-frame", "trust_plugin_method:Renamed")
    return source


def _by_label(store: Store, kind: str) -> dict[str, list[dict]]:
    out = collections.defaultdict(list)
    for line in store.path.read_text().splitlines():
        record = json.loads(line)
        if record["kind"] == kind:
            out[record["label"]].append(record)
    return out


def test_a_code_edit_reruns_what_it_affects_and_nothing_else(
    data_root: Path, tmp_path: Path, plugin: Path
) -> None:
    store = Store(tmp_path / "records.jsonl")
    methods = [FRAME, "renamed-frame:train_steps=3"]
    run = settings(data_root, tmp_path / "ckpt")
    Runner(store, run).compare(methods, "synthcity", OPTIONS)
    before = _by_label(store, "accuracy")
    Runner(store, run).compare(methods, "synthcity", OPTIONS)
    assert _by_label(store, "accuracy") == before  # nothing changed: nothing re-run

    plugin.write_text(plugin.read_text() + "\n# an edit\n")
    Runner(store, run).compare(methods, "synthcity", OPTIONS)
    after = _by_label(store, "accuracy")
    assert after[FRAME] == before[FRAME]
    edited = after["renamed-frame:train_steps=3"]
    assert len(edited) == 2 and edited[0]["code"] != edited[1]["code"]
    assert edited[0]["measured_id"] == edited[1]["measured_id"]  # the same measurement, new code
    assert edited[0]["record_id"] != edited[1]["record_id"]


def test_rerun_forces_a_method_again(data_root: Path, tmp_path: Path) -> None:
    store = Store(tmp_path / "records.jsonl")
    run = settings(data_root, tmp_path / "ckpt", intervals=(1,))
    first = Runner(store, run).compare([FRAME], "synthcity", OPTIONS)
    assert {r["kind"] for r in first} == {"accuracy", "speed"}
    assert Runner(store, run).compare([FRAME], "synthcity", OPTIONS) == []
    again = Runner(store, settings(data_root, tmp_path / "ckpt", intervals=(1,), rerun=("frame",)))
    redone = again.compare([FRAME], "synthcity", OPTIONS)
    assert {r["record_id"] for r in redone} == {r["record_id"] for r in first}
    assert len(store.path.read_text().splitlines()) == 4


def test_a_method_added_later_gets_its_speed_up_against_its_own_runs_baseline(
    data_root: Path, tmp_path: Path
) -> None:
    store = Store(tmp_path / "records.jsonl")
    Runner(store, settings(data_root, tmp_path / "ckpt")).compare(
        [FRAME, "prop-mv:train_steps=3"], "synthcity", OPTIONS
    )
    later = Runner(store, settings(data_root, tmp_path / "ckpt")).compare(
        ["interp-mv:train_steps=3:fusion=avg"], "synthcity", OPTIONS
    )
    speed = [r for r in later if r["kind"] == "speed"]
    interp = [r for r in speed if r["label"].startswith("interp")]
    assert {r["speed"]["baseline"]["label"] for r in interp} == {FRAME}
    frame_now = next(r for r in speed if r["label"] == FRAME)  # timed beside it, stored too
    assert all(r["speed"]["baseline"]["record_id"] == frame_now["record_id"] for r in interp)
    written = render(store.records(), tmp_path / "reports")
    table = written["table_md"].read_text()
    section = table.split("## Speed-up over the per-frame baseline (steady state, same run)")[
        1
    ].split("##")[0]
    for scheme in ("prop-mv:train_steps=3", "interp-mv:train_steps=3:fusion=avg"):
        row = next(line for line in section.splitlines() if line.startswith(f"| {scheme} |"))
        assert all(cell.strip() for cell in row.split("|")[2:-1]), row  # every interval has one
    assert "## Where each row comes from" in table
    assert len({r["run_id"] for r in store.records() if r["kind"] == "speed"}) == 2


@pytest.mark.slow
def test_two_compares_on_one_store_write_each_record_once(data_root: Path, tmp_path: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "vidbench.cli",
        "compare",
        "--methods",
        f"{FRAME},prop-mv:train_steps=3",
        "--dataset",
        "synthcity:" + ":".join(f"{k}={v}" for k, v in OPTIONS.items()),
        "--intervals",
        "1,2",
        "--speed-videos",
        "1",
        "--speed-rounds",
        "2",
        "--data-root",
        str(data_root),
        "--checkpoints",
        str(tmp_path / "ckpt"),
        "--results",
        str(tmp_path / "records.jsonl"),
        "--reports",
        str(tmp_path / "reports"),
    ]
    # training is counted by its progress bar, so bars stay on whatever the caller's TQDM_* say
    env = {k: v for k, v in os.environ.items() if not k.startswith("TQDM_")}
    runs = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=600) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    ids = [
        json.loads(line)["record_id"]
        for line in (tmp_path / "records.jsonl").read_text().splitlines()
    ]
    assert len(ids) == len(set(ids)) == 6  # 3 accuracy (frame 1, prop-mv 1 and 2) + 3 speed
    trained = sum(err.count("train frame model:   0%") for _, err in outputs)
    assert trained == 1
    assert any("held by another process" in err for _, err in outputs)
