"""Plug-ins, on the example package (examples/vidbench-example-plugin): its method is found
through the entry point its pyproject.toml declares, loads with ``--plugin``, is listed with
its source, and passes the adapter contract. Nothing is installed: an installed distribution
is faked with a ``.dist-info`` folder, and the registries are restored after each test."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import torch
from vidbench import conformance
from vidbench.api import Method
from vidbench.cli import main
from vidbench.passes import run_episode
from vidbench.registry import METHODS, Registry, load_plugin

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "vidbench-example-plugin"
SOURCE = EXAMPLE / "src"
MODULE = "vidbench_example.hold_key"
GROUP = "vidbench.methods"


def _project() -> dict:
    return tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]


@pytest.fixture()
def methods(monkeypatch: pytest.MonkeyPatch) -> Registry:
    """The global method registry, put back as it was after the test; the example's source
    folder on the import path."""
    METHODS.names()  # discover installed entry points first, so that the copies hold them
    monkeypatch.setattr(METHODS, "_entries", dict(METHODS._entries))
    monkeypatch.setattr(METHODS, "_sources", dict(METHODS._sources))
    monkeypatch.syspath_prepend(str(SOURCE))
    return METHODS


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One checkpoint cache for the module: the smoke network is trained once."""
    return tmp_path_factory.mktemp("plugin-checkpoints")


@pytest.fixture()
def hold_key(methods: Registry, tiny_segmentation_dataset, checkpoints: Path) -> Method:
    """``hold-key`` registered with ``--plugin`` and built from its smoke options."""
    load_plugin(MODULE)
    return conformance.build_smoke("hold-key", tiny_segmentation_dataset, checkpoints)


def test_the_entry_point_is_discovered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An installed distribution declaring the example's entry point (faked in ``tmp_path``
    from its pyproject.toml) puts the method in a registry that has not discovered yet."""
    project = _project()
    declared = project["entry-points"][GROUP]
    info = tmp_path / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n"
    )
    (info / "entry_points.txt").write_text(
        f"[{GROUP}]\n" + "".join(f"{name} = {target}\n" for name, target in declared.items())
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(SOURCE))
    built_in = {n: t for n, t in METHODS._entries.items() if METHODS._sources[n] == "built-in"}
    registry = Registry("method", built_in, group=GROUP)

    assert declared == {"hold-key": f"{MODULE}:HoldKey"}
    assert "hold-key" in registry.names() and "frame" in registry.names()
    assert registry.source("hold-key") == f"entry point of {project['name']}"
    assert registry.source("frame") == "built-in"
    cls = registry.get("hold-key")
    assert cls.__module__ == MODULE and cls.name == "hold-key" and cls.task == "segmentation"


def test_plugin_module_registers_the_method(methods: Registry) -> None:
    assert load_plugin(MODULE) == ["hold-key"]
    assert methods.source("hold-key") == f"--plugin {MODULE}"
    assert methods.get("hold-key").__module__ == MODULE


def test_list_with_plugin_prints_the_method_and_its_source(
    methods: Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["list", "--plugin", MODULE]) == 0
    out = capsys.readouterr().out
    assert f"hold-key [segmentation] (--plugin {MODULE})" in out
    assert "Feature and task network on key frames only" in out  # its docstring's summary
    assert "frame [segmentation] (built-in)" in out


def test_hold_key_passes_the_adapter_contract(hold_key: Method, tiny_segmentation_dataset) -> None:
    for check in conformance.CHECKS.values():
        check(hold_key, tiny_segmentation_dataset)
    for interval in (1, 5):
        conformance.one_typed_prediction_per_fed_frame(
            hold_key, tiny_segmentation_dataset, interval
        )


def test_hold_key_repeats_each_key_and_is_frame_at_interval_1(
    hold_key: Method, tiny_segmentation_dataset, checkpoints: Path
) -> None:
    """Between keys the key's scores are repeated as they are; with every frame a key it is
    the per-frame baseline, whose trained network it shares (one checkpoint)."""
    video = tiny_segmentation_dataset.split("val")[0]
    frames = range(video.info.num_frames)
    with torch.inference_mode():
        held = run_episode(hold_key, video, frames, frozenset(range(0, len(frames), 4)))
        every = run_episode(hold_key, video, frames, frozenset(frames))
        frame = conformance.build_smoke("frame", tiny_segmentation_dataset, checkpoints)
        per_frame = run_episode(frame, video, frames, frozenset(frames))
    for index in frames:
        key = index - index % 4
        assert held[index].meta == {"key": index == key}
        assert torch.equal(held[index].scores, held[key].scores)
        assert torch.equal(every[index].scores, per_frame[index].scores)
    assert not torch.equal(held[1].scores, every[1].scores)  # a held frame is not recomputed
