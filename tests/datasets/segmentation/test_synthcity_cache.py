"""synthcity's cache refuses damaged or foreign files: labels are checksummed like the videos, a
truncated manifest means render again (not a JSON error), and two processes preparing the same
data render it once."""

from __future__ import annotations

import json
import multiprocessing
import re
import shutil
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from vidbench.datasets.segmentation.synthcity import dataset as synthcity
from vidbench.datasets.segmentation.synthcity.dataset import SynthCity

from tests.conftest import TINY

SMALL = replace(TINY, train_videos=1, val_videos=2)
ONE_EACH = replace(TINY, train_videos=1, val_videos=1, frames=4, labelled_index=2)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> SynthCity:
    data = SynthCity(SMALL, tmp_path_factory.mktemp("synthcity"))
    data.prepare()
    return data


def _labels(path: Path) -> np.ndarray:
    with np.load(path) as arrays:
        return arrays["labels"]


@pytest.mark.parametrize("damage", ["swapped", "garbage"])
def test_swapped_or_garbage_labels_are_rendered_again(dataset: SynthCity, damage: str) -> None:
    path, other = dataset.root / "val_0000_labels.npz", dataset.root / "val_0001_labels.npz"
    original = _labels(path)
    assert not np.array_equal(original, _labels(other))
    if damage == "swapped":
        shutil.copyfile(other, path)
    else:
        path.write_bytes(b"not an npz at all")
    dataset.prepare()
    np.testing.assert_array_equal(_labels(path), original)
    assert dataset.split("val")[0].label(SMALL.labelled_index).shape == (64, 128)


def test_a_truncated_manifest_is_rendered_again_not_a_json_error(dataset: SynthCity) -> None:
    manifest = dataset.root / "manifest.json"
    listed = json.loads(manifest.read_text())
    manifest.write_text(manifest.read_text()[:50])  # what a kill mid-write used to leave
    with pytest.warns(UserWarning, match=re.escape(f"{manifest}: damaged synthcity manifest")):
        dataset.prepare()
    assert json.loads(manifest.read_text()).keys() == listed.keys()
    assert not list(dataset.root.glob(".manifest.json.*"))


def _prepare_counting(data_root: str, log: str, barrier) -> None:
    """Prepare ONE_EACH in this (spawned) process after ``barrier``, logging every render."""
    real = synthcity.render_snippet

    def counted(seed: int, *args: object):
        with open(log, "a") as handle:
            handle.write(f"{seed}\n")
        time.sleep(0.3)  # long enough for the other process to look at the cache meanwhile
        return real(seed, *args)

    synthcity.render_snippet = counted
    barrier.wait(timeout=60)
    SynthCity(ONE_EACH, Path(data_root)).prepare()


def test_two_processes_preparing_at_once_render_each_video_once(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    barrier, log = context.Barrier(2), tmp_path / "renders.log"
    workers = [
        context.Process(target=_prepare_counting, args=(str(tmp_path), str(log), barrier))
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [w.exitcode for w in workers] == [0, 0]
    seeds = log.read_text().split()
    assert len(seeds) == 2 and len(set(seeds)) == 2  # one render per video, in either process
    dataset = SynthCity(ONE_EACH, tmp_path)
    assert sorted(json.loads((dataset.root / "manifest.json").read_text())) == [
        "train_0000", "val_0000"
    ]  # fmt: skip
    assert dataset._todo(dataset._manifest()) == []
