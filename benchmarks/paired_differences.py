"""How far apart are two methods on the same val videos? For pairs of labels in one store, the
difference of a metric with its 95% paired-bootstrap interval (vidbench.bootstrap): the same
redrawn videos for both sides, so the val set's noise is shared, not added. Reads stored
records and their per-video states only; nothing is run.

    .venv/bin/python benchmarks/paired_differences.py results/runs/synthdet.jsonl \
        --metric det/map --setting interval=10 psla,dff psla:setting=a,psla:attention=nonlocal:setting=S
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from vidbench.bootstrap import paired_difference
from vidbench.building import build_dataset
from vidbench.store import Store
from vidbench.tasks import task_of_protocol


def _accuracy(store: Store, label: str, setting: dict[str, str]) -> dict[str, Any]:
    """The newest accuracy record of ``label`` at ``setting`` (every given key must match)."""
    chosen = [
        r
        for r in store.records()
        if r["kind"] == "accuracy" and r["label"] == label and "error" not in r
        and all(str(r.get(k)) == v for k, v in setting.items())
    ]
    if not chosen:
        raise SystemExit(f"{store.path}: no accuracy record of {label} at {setting}")
    return max(chosen, key=lambda r: r.get("created", 0))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, help="a records file")
    parser.add_argument("pairs", nargs="+", help="LABEL_A,LABEL_B (A minus B)")
    parser.add_argument("--metric", required=True, help="e.g. seg/miou_avg, det/map, rec/top1")
    parser.add_argument("--setting", default="", help="protocol setting, e.g. interval=10")
    parser.add_argument("--data-root", type=Path, default=Path("data"))
    args = parser.parse_args()
    store = Store(args.results)
    setting = dict(part.split("=", 1) for part in filter(None, args.setting.split(":")))
    for pair in args.pairs:
        first_label, second_label = pair.split(",")
        first, second = (_accuracy(store, label, setting) for label in (first_label, second_label))
        source = first["dataset"]
        dataset = build_dataset(source["name"], {k: str(v) for k, v in source["config"].items()},
                                args.data_root)
        evaluator = task_of_protocol(first["protocol"]).evaluator(dataset)
        states = [
            {name: evaluator.from_json(s) for name, s in store.state(r, "state_per_video").items()}
            for r in (first, second)
        ]
        out = paired_difference(evaluator, *states, args.metric)
        low, high = out["interval"]
        verdict = "apart" if low is not None and (low > 0 or high < 0) else "not told apart"
        print(f"{first_label} - {second_label}: {args.metric} {out['difference']:+.1f} "
              f"[{low:+.1f}, {high:+.1f}] over {out['videos']} videos ({verdict})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
