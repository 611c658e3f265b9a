"""Does the meter agree with itself? At keyframe interval 1 every segmentation method does the
per-frame baseline's work (every frame a key: feature + task network), so their fps must
agree. Times frame, prop-flow, prop-mv and interp-mv at n = 1 in one run (the demo's speed
settings by default) and prints each one's fps beside frame's, with the spread.

    .venv/bin/python benchmarks/identical_work.py [--videos 2] [--rounds 3] [--work DIR]

Run it on a quiet machine: it times, so nothing else may run beside it.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from vidbench.runner import Runner, RunSettings
from vidbench.store import Store

METHODS = [
    "frame:train_steps=50",
    "prop-flow:train_steps=50:flownet_pretrain_steps=20:flownet_finetune_steps=10",
    "prop-mv:train_steps=50",
    "interp-mv:train_steps=50:fusion_steps=10",
]
DATASET = {"train_videos": "6", "val_videos": "8"}
TARGET = 0.05


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=2, help="speed videos (make demo: 2)")
    parser.add_argument("--rounds", type=int, default=3, help="timing rounds (make demo: 3)")
    parser.add_argument("--work", default="results/runs/identical-work")
    parser.add_argument(
        "--methods", help="other methods (comma-separated; the first is the reference)"
    )
    args = parser.parse_args()
    work = Path(args.work)
    store = Store(work / "records.jsonl")
    store.path.unlink(missing_ok=True)
    settings = RunSettings(
        intervals=(1,),
        speed_videos=args.videos,
        speed_rounds=args.rounds,
        data_root=Path("data"),
        checkpoint_dir=work / "checkpoints",
    )
    methods = args.methods.split(",") if args.methods else METHODS
    records = Runner(store, settings).compare(methods, "synthcity", DATASET)
    speed = {r["label"]: r["speed"] for r in records if r["kind"] == "speed"}
    frame = speed[methods[0]]["fps"]
    print(f"\n{'method':<80} {'fps':>7} {'vs frame':>8} {'rounds':>22}  validity")
    for label, s in speed.items():
        rounds = " ".join(f"{x:.1f}" for x in s["fps_rounds"])
        print(
            f"{label:<80} {s['fps']:>7.1f} {s['fps'] / frame - 1:>+8.1%} {rounds:>22}  {s['validity']}"
        )
    fps = [s["fps"] for s in speed.values()]
    spread = (max(fps) - min(fps)) / statistics.median(fps)
    print(f"\nspread of identical work: {spread:.1%} (target <= {TARGET:.0%})")
    return 0 if spread <= TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
