"""Two torchrun ranks on the tiny synthcity give exactly the accuracy of one process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from vidbench.store import Store

from tests.conftest import TINY

OPTIONS = ",".join(f"{k}={v}" for k, v in vars(TINY).items())
METHODS = "frame:train_steps=20,interp-mv:train_steps=20:fusion=avg"


def _compare(tmp: Path, data_root: Path, name: str, ranks: int) -> dict[str, dict]:
    """Accuracy records of one `bench compare` run, launched with ``ranks`` processes."""
    results = tmp / f"{name}.jsonl"
    args = [
        "compare",
        "--methods",
        METHODS,
        "--dataset",
        "synthcity:" + OPTIONS.replace(",", ":"),
        "--intervals",
        "1,3",
        "--speed-videos",
        "1",
        "--speed-rounds",
        "1",
        "--data-root",
        str(data_root),
        "--checkpoints",
        str(tmp / "ckpt"),  # one training, shared: only the evaluation is sharded
        "--results",
        str(results),
        "--reports",
        str(tmp / f"reports-{name}"),
    ]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    launcher += [f"--nproc_per_node={ranks}"]
    command = (launcher if ranks > 1 else [sys.executable]) + ["-m", "vidbench.cli", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    store = Store(results)
    accuracy = [r for r in store.records() if r["kind"] == "accuracy"]
    return {r["record_id"]: {**r, "state": store.state(r)} for r in accuracy}


@pytest.mark.slow
def test_two_ranks_reduce_to_the_metrics_of_one_process(data_root: Path, tmp_path: Path) -> None:
    one = _compare(tmp_path, data_root, "one", 1)
    two = _compare(tmp_path, data_root, "two", 2)
    assert set(one) == set(two) and len(one) == 3
    for rid, record in one.items():
        assert two[rid]["metrics"] == record["metrics"]
        assert two[rid]["state"] == record["state"]
        assert two[rid]["key_frames"] == record["key_frames"]
