"""The checkpoint cache: built once under a lock, its SHA-256 kept beside it, and a damaged
file (truncated, bit-flipped) built again instead of used."""

from __future__ import annotations

from pathlib import Path

import torch
from vidbench.workspace import HarnessWorkspace


class Data:
    num_classes = 2

    def fingerprint(self) -> str:
        return "data"


def _workspace(tmp_path: Path) -> tuple[HarnessWorkspace, list[int]]:
    return HarnessWorkspace(Data(), tmp_path / "ckpt", seed=0), []


def _build(builds: list[int]):
    def build(path: Path) -> None:
        builds.append(1)
        torch.save({"w": torch.arange(1000.0)}, path)

    return build


def test_a_checkpoint_is_built_once_and_reused(tmp_path: Path) -> None:
    workspace, builds = _workspace(tmp_path)
    first = workspace.checkpoint("net", {"steps": 3}, _build(builds))
    again = workspace.checkpoint("net", {"steps": 3}, _build(builds))
    assert first == again and builds == [1]
    assert (
        workspace.used["net"]["file"] == first.name and len(workspace.used["net"]["sha256"]) == 16
    )
    assert first.with_name(first.name + ".sha256.json").exists()


def test_a_truncated_or_bit_flipped_checkpoint_is_built_again(tmp_path: Path, capsys) -> None:
    workspace, builds = _workspace(tmp_path)
    path = workspace.checkpoint("net", {"steps": 3}, _build(builds))
    sha = workspace.used["net"]["sha256"]
    path.write_bytes(path.read_bytes()[:100])  # truncated
    workspace.checkpoint("net", {"steps": 3}, _build(builds))
    assert builds == [1, 1] and "is damaged" in capsys.readouterr().err
    data = bytearray(path.read_bytes())
    data[-200] ^= 0x01  # one flipped bit inside the tensor data: torch.load would not notice
    path.write_bytes(bytes(data))
    workspace.checkpoint("net", {"steps": 3}, _build(builds))
    assert builds == [1, 1, 1] and workspace.used["net"]["sha256"] == sha


def test_a_checkpoint_from_before_hashes_is_adopted_when_it_loads(tmp_path: Path) -> None:
    workspace, builds = _workspace(tmp_path)
    path = workspace.checkpoint("net", {"steps": 3}, _build(builds))
    path.with_name(path.name + ".sha256.json").unlink()
    workspace.checkpoint("net", {"steps": 3}, _build(builds))
    assert builds == [1]
    path.with_name(path.name + ".sha256.json").unlink()
    path.write_bytes(b"PK\x03\x04 not a zip")
    workspace.checkpoint("net", {"steps": 3}, _build(builds))
    assert builds == [1, 1]


def test_an_intermediate_checkpoint_is_cached_and_hashed_but_not_named_in_records(
    tmp_path: Path,
) -> None:
    workspace, builds = _workspace(tmp_path)
    path = workspace.checkpoint("stage", {"steps": 3}, _build(builds), intermediate=True)
    again = workspace.checkpoint("stage", {"steps": 3}, _build(builds), intermediate=True)
    assert path == again and builds == [1] and workspace.used == {}
    assert path.with_name(path.name + ".sha256.json").exists()
