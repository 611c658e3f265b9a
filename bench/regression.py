"""CI regression gate (measurement.md rule 11) on a small, fast synthcity configuration.

Deterministic tier (fails CI): mIoU within a fixed margin of the committed baseline, GMACs per
frame and parameter counts exact. Timing tier: each scheme's speed-up over the frame baseline
measured in the same run, against the baseline's speed-up; it fails only when the drop exceeds
max(10%, 3x the baseline's own round-to-round noise), and only warns on a machine whose
fingerprint differs from the baseline's.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vidbench.provenance import machine
from vidbench.runner import Runner, RunSettings
from vidbench.store import Store, read_records

CI_DATASET = {"train_videos": "12", "val_videos": "12", "height": "96", "width": "192"}
CI_METHODS = [
    "frame:train_steps=200",
    "prop-mv:train_steps=200",
    "interp-mv:train_steps=200:fusion_steps=60",
    "prop-flow:train_steps=200:flownet_pretrain_steps=150:flownet_finetune_steps=60",
]
CI_INTERVALS = (1, 3, 6)
CI_SPEED = {"speed_videos": 4, "speed_rounds": 5}
MIOU_AVG_MARGIN = 2.0
MIOU_MIN_MARGIN = 4.0
MIN_SPEED_TOLERANCE = 0.10


@dataclass(frozen=True)
class Check:
    """One comparison against the baseline."""

    name: str
    baseline: float
    measured: float
    allowed: str
    status: str  # "ok", "FAIL" or "warn"


def _index(records: list[dict[str, Any]]) -> dict[tuple[str, str, int], dict[str, Any]]:
    return {
        (r["kind"], r["label"], r["interval"]): r
        for r in sorted(records, key=lambda r: r.get("created", 0))
    }


def _speedups(
    records: dict[tuple[str, str, int], dict[str, Any]],
) -> dict[tuple[str, int], tuple[float, float]]:
    """(label, interval) -> (fps / frame fps, combined round noise) within the same run."""
    frame = next(
        r
        for (kind, label, _), r in records.items()
        if kind == "speed" and label.startswith("frame")
    )
    base = frame["speed"]
    out = {}
    for (kind, label, interval), r in records.items():
        if kind == "speed":
            noise = max(r["speed"]["fps_iqr_over_median"], base["fps_iqr_over_median"])
            out[(label, interval)] = (r["speed"]["fps"] / base["fps"], noise)
    return out


def compare_to_baseline(
    baseline: list[dict[str, Any]], measured: list[dict[str, Any]]
) -> list[Check]:
    """All checks of ``measured`` records against ``baseline`` records (pure function)."""
    base, new = _index(baseline), _index(measured)
    checks: list[Check] = []
    missing = sorted(set(base) - set(new))
    for key in missing:
        checks.append(Check(f"{key[0]} {key[1]} n={key[2]} present", 1, 0, "present", "FAIL"))
    same_machine = all(
        r.get("provenance", {}).get("machine") == machine()
        for r in baseline
        if r["kind"] == "speed"
    )
    for key in sorted(set(base) & set(new)):
        kind, label, interval = key
        b, m = base[key], new[key]
        tag = f"{label} n={interval}"
        if kind == "accuracy":
            for metric, margin in (
                ("seg/miou_avg", MIOU_AVG_MARGIN),
                ("seg/miou_min", MIOU_MIN_MARGIN),
            ):
                x, y = b["metrics"][metric], m["metrics"][metric]
                ok = abs(x - y) <= margin
                checks.append(Check(f"{tag} {metric}", x, y, f"±{margin}", "ok" if ok else "FAIL"))
        else:
            for metric in ("gmacs_per_frame", "params"):
                x, y = b["cost"][metric], m["cost"][metric]
                ok = abs(x - y) <= 1e-9 * max(abs(x), 1)
                checks.append(Check(f"{tag} cost/{metric}", x, y, "exact", "ok" if ok else "FAIL"))
    base_speed, new_speed = _speedups(base), _speedups(new)
    for key in sorted(set(base_speed) & set(new_speed)):
        (x, noise), (y, _) = base_speed[key], new_speed[key]
        tolerance = max(MIN_SPEED_TOLERANCE, 3 * noise)
        ok = y >= x * (1 - tolerance)
        status = "ok" if ok else ("FAIL" if same_machine else "warn")
        checks.append(
            Check(f"{key[0]} n={key[1]} speedup vs frame", x, y, f"-{tolerance:.0%}", status)
        )
    return checks


def format_checks(checks: list[Check]) -> str:
    lines = [f"{'check':<60} {'baseline':>10} {'measured':>10} {'allowed':>8}  status"]
    lines += [
        f"{c.name:<60} {c.baseline:>10.4g} {c.measured:>10.4g} {c.allowed:>8}  {c.status}"
        for c in checks
    ]
    return "\n".join(lines)


def run_regression(baseline_path: Path, work_dir: Path, update: bool = False) -> int:
    """Run the CI configuration, compare with the baseline; 0 when nothing failed."""
    store = Store(work_dir / "records.jsonl")
    store.path.unlink(missing_ok=True)  # speed must be measured afresh, in this job
    shutil.rmtree(store.path.with_suffix(".partial"), ignore_errors=True)
    settings = RunSettings(
        intervals=CI_INTERVALS,
        data_root=work_dir / "data",
        checkpoint_dir=work_dir / "checkpoints",
        **CI_SPEED,
    )
    records = Runner(store, settings).compare(CI_METHODS, "synthcity", CI_DATASET)
    if update:
        baseline_path.parent.mkdir(parents=True, exist_ok=True)
        with baseline_path.open("w") as handle:
            for record in records:
                handle.write(json.dumps(record, sort_keys=True) + "\n")
        print(f"wrote baseline {baseline_path} ({len(records)} records)")
        return 0
    if not baseline_path.exists():
        raise FileNotFoundError(
            f"No baseline at {baseline_path}: create it with `bench regress --update`."
        )
    checks = compare_to_baseline(read_records(baseline_path), records)
    print(format_checks(checks))
    failed = [c for c in checks if c.status == "FAIL"]
    warned = [c for c in checks if c.status == "warn"]
    print(
        f"regression: {len(checks) - len(failed) - len(warned)} ok, {len(failed)} failed, "
        f"{len(warned)} warned (speed is only warned on a machine unlike the baseline's)"
    )
    shutil.rmtree(store.partial_dir(), ignore_errors=True)
    return 1 if failed else 0
