"""Does the regression gate cry wolf, and does it catch a real slowdown? Runs `bench regress`
for one task several times, each in a fresh process, with a competing CPU load beside it (a
second process multiplying matrices on one core), first on unchanged code, then with a planted
slowdown of one method (its ``step`` sleeps 30% of its own time). Prints, per run, the exit
status and the checks that failed or were not judged.

    .venv/bin/python benchmarks/gate_under_load.py --runs 3 --task segmentation --plant prop-mv

The gate compares with results/ci/baseline.jsonl, which must have been made on this machine
(`bench regress --update`) for speed checks to be judged at all.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

LOAD = (
    "import numpy as np\n"
    "a = np.random.default_rng(0).random((700, 700))\n"
    "while True:\n"
    "    a = (a @ a) / 700.0\n"
)


def child(task: str, plant: str, factor: float, work: str) -> int:
    """One gate run in this process, with ``plant``'s step slowed by ``factor`` if given."""
    from vidbench.registry import METHODS
    from vidbench.regression import run_regression

    if plant:
        cls = METHODS.get(plant)
        original = cls.step

        def slowed(self, frame):  # type: ignore[no-untyped-def]
            started = time.perf_counter()
            out = original(self, frame)
            time.sleep(factor * (time.perf_counter() - started))
            return out

        cls.step = slowed
    return run_regression(Path("results/ci/baseline.jsonl"), Path(work), tasks=(task,))


def run_once(args: argparse.Namespace, plant: str) -> tuple[int, list[str], float]:
    command = [
        sys.executable,
        __file__,
        "--child",
        "--task",
        args.task,
        "--work",
        args.work,
        "--factor",
        str(args.factor),
    ] + (["--plant", plant] if plant else [])
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True)
    lines = [
        line
        for line in done.stdout.splitlines()
        if "  FAIL" in line or "  not judged" in line or line.startswith("regression:")
    ]
    return done.returncode, lines, time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--task", default="segmentation")
    parser.add_argument("--plant", default="prop-mv", help="the method to slow down")
    parser.add_argument("--factor", type=float, default=0.3, help="the planted slowdown")
    parser.add_argument("--no-load", action="store_true", help="no competing process")
    parser.add_argument("--work", default="results/runs/gate-under-load")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.task, args.plant if "--plant" in sys.argv else "", args.factor, args.work)
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
    }
    load = None if args.no_load else subprocess.Popen([sys.executable, "-c", LOAD], env=env)
    summary = []
    try:
        for plant in ("", args.plant):
            for number in range(1, args.runs + 1):
                code, lines, seconds = run_once(args, plant)
                what = f"planted {args.factor:.0%} slowdown of {plant}" if plant else "unchanged"
                print(
                    f"\n== run {number} ({what}, load {'off' if load is None else 'on'}): "
                    f"exit {code}, {seconds:.0f} s"
                )
                print("\n".join(lines))
                failed = [line for line in lines if "  FAIL" in line]
                planted = [line for line in failed if plant and line.startswith(f"{plant}:")]
                caught = bool(planted) if plant else None
                summary.append((what, code, len(failed) - len(planted), caught))
    finally:
        if load is not None:
            load.kill()
    print("\nsummary")
    for what, code, false, caught in summary:
        verdict = "" if caught is None else (" slowdown caught" if caught else " slowdown MISSED")
        print(f"  {what:<40} exit {code}  failed checks of unchanged methods: {false}{verdict}")
    false_failures = sum(false for _, _, false, _ in summary)
    missed = sum(1 for *_, caught in summary if caught is False)
    print(
        f"false failures (checks of unchanged methods that failed, all {len(summary)} runs): "
        f"{false_failures}; slowdown missed: {missed} of {args.runs}"
    )
    return 1 if false_failures or missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
