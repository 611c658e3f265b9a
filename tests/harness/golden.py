"""Segmentation's accuracy records on the tiny synthcity, produced as the runner produces them,
for the golden-record test; ``python -m tests.harness.golden`` writes this machine's file."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import torch
from vidbench.building import RunSettings, prepare_method
from vidbench.passes import accuracy_pass, task_of
from vidbench.provenance import numerics, numerics_slug
from vidbench.records import Record

GOLDEN_DIR = Path(__file__).resolve().parents[1] / "data" / "golden"
SPECS = (
    "frame:train_steps=20",
    "prop-mv:train_steps=20",
    "interp-mv:train_steps=20",
    "interp-mv:train_steps=20:fusion=max",
    # joint=none: the reading the goldens were written with (DFF's end to end is the default)
    "prop-flow:train_steps=20:flownet_pretrain_steps=2:flownet_finetune_steps=2:joint=none",
)


def this_machines_golden() -> Path:
    """The golden file of this machine's numerics class (CPU model and torch build)."""
    return GOLDEN_DIR / f"{numerics_slug(numerics())}.jsonl"


def read_golden(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def produce(dataset: Any, checkpoint_dir: Path) -> list[dict[str, Any]]:
    """Every accuracy record of SPECS at intervals 1-3, as plain JSON values."""
    settings = RunSettings(intervals=(1, 2, 3), checkpoint_dir=checkpoint_dir)
    threads = torch.get_num_threads()
    torch.set_num_threads(settings.threads)  # as the runner does: training numerics follow it
    records = []
    try:
        for spec in SPECS:
            item = prepare_method(spec, dataset, settings)
            protocol = task_of(item.method).protocol
            for setting in item.settings:
                identity = {**item.identity, "kind": "accuracy", "protocol": protocol.name}
                with torch.inference_mode():
                    result = accuracy_pass(item, dataset, dataset.split("val"), setting)
                record = Record({**identity, **setting}, item.label, {}, result).to_json()
                records.append(json.loads(json.dumps(record)))
    finally:
        torch.set_num_threads(threads)
    return records


def main() -> None:
    from vidbench.datasets.segmentation.synthcity.dataset import SynthCity

    from tests.conftest import TINY

    with tempfile.TemporaryDirectory() as tmp:
        dataset = SynthCity(TINY, Path(tmp) / "data")
        dataset.prepare()
        records = produce(dataset, Path(tmp) / "checkpoints")
    path = this_machines_golden()
    path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
    print(f"wrote {path} ({len(records)} records)")


if __name__ == "__main__":
    main()
