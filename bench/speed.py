"""Speed statistics from raw stream samples (docs/measurement.md §2, §4 and §6).

fps per round = frames / summed step latency; the record's ``fps`` is the median over rounds
(the stream as measured), with the IQR over rounds as its noise. ``steady_fps`` is the
throughput of an endless stream at the schedule's key fraction f (1/n for a key every n
frames): per round, 1 / (f * T_key + (1 - f) * T_other), T_key the mean latency of key steps
and T_other that of the others (intermediate frames, and frames a look-ahead method holds,
whose work is timed at the key that emits them); T_key leaves out each stream's opening key,
which closes no segment (an endless stream has none; a look-ahead method emits nothing there),
unless a stream has no other. A finite stream that ends on a key holds more keys than 1/n,
which the stream fps pays for. Latency percentiles come from the raw per-frame
samples, overall and per frame type (key: the feature network ran; intermediate: it did not).
"""

from __future__ import annotations

from typing import Any

import numpy as np

MIN_SAMPLES = 64
MIN_ROUNDS = 3
MIN_DURATION_S = 1.0
WARN_IQR = 0.10
INVALID_IQR = 0.25
INVALID_SPREAD = 0.25  # (slowest - fastest round) / median: one slow round is not hidden


def _percentiles(values_ms: list[float]) -> dict[str, float]:
    if not values_ms:
        return {}
    p50, p90, p99 = np.percentile(values_ms, [50, 90, 99])
    return {"p50": float(p50), "p90": float(p90), "p99": float(p99), "count": len(values_ms)}


def steady_fps(streams: list[dict[str, list]], key_fraction: float | None) -> float:
    """Throughput of an endless stream at ``key_fraction`` from ``streams``' per-kind mean
    latencies (module docstring); the measured fps when there is no key fraction."""
    latency = [x for s in streams for x in s["latency_s"]]
    if key_fraction is None:
        return len(latency) / sum(latency)
    kinds = [k for s in streams for k in s["kind"]]
    # a stream's opening key closes no segment (a look-ahead method emits nothing there), which
    # an endless stream never has: T_key is the later keys (every key when no stream has two)
    keys = [
        x for s in streams for x, k in list(zip(s["latency_s"], s["kind"]))[1:] if k == "key"
    ] or [x for x, k in zip(latency, kinds) if k == "key"]
    others = [x for x, k in zip(latency, kinds) if k != "key"]
    t_key = float(np.mean(keys or latency))
    t_other = float(np.mean(others)) if others else t_key
    return 1 / (key_fraction * t_key + (1 - key_fraction) * t_other)


def summarise_speed(
    rounds: list[list[dict[str, list]]], key_fraction: float | None = None
) -> dict[str, Any]:
    """Summary of ``rounds[r][video]`` stream results, with validity and its reasons;
    ``key_fraction`` is the schedule's steady-state share of keys (None: no keys)."""
    streams = [s for one_round in rounds for s in one_round]
    latency_ms = [x * 1e3 for s in streams for x in s["latency_s"]]
    kinds = [k for s in streams for k in s["kind"]]
    fps_rounds = [
        sum(len(s["latency_s"]) for s in r) / sum(sum(s["latency_s"]) for s in r) for r in rounds
    ]
    steady_rounds = [steady_fps(r, key_fraction) for r in rounds]
    fps = float(np.median(fps_rounds))
    q1, q3 = np.percentile(fps_rounds, [25, 75])
    noise = float((q3 - q1) / fps)
    spread = float((max(fps_rounds) - min(fps_rounds)) / fps)
    frames = len(latency_ms)
    components: dict[str, float] = {}
    by_kind: dict[str, dict[str, float]] = {}
    steps = [step for s in streams for step in s["components_s"]]
    for step, kind in zip(steps, kinds):
        for name, seconds in step.items():
            components[name] = components.get(name, 0.0) + seconds * 1e3
            by_kind.setdefault(kind, {})[name] = (
                by_kind.get(kind, {}).get(name, 0.0) + seconds * 1e3
            )
    reasons, warnings = [], []
    if len(rounds) < MIN_ROUNDS:
        reasons.append(f"{len(rounds)} rounds < {MIN_ROUNDS}: round-to-round noise unknown")
    if frames < MIN_SAMPLES:
        reasons.append(f"{frames} samples < {MIN_SAMPLES}")
    if sum(latency_ms) / 1e3 < MIN_DURATION_S:
        reasons.append(f"timed {sum(latency_ms) / 1e3:.2f} s < {MIN_DURATION_S} s")
    if noise > INVALID_IQR:
        reasons.append(f"fps IQR/median {noise:.0%} > {INVALID_IQR:.0%}")
    elif noise > WARN_IQR:
        warnings.append(f"fps IQR/median {noise:.0%} > {WARN_IQR:.0%}")
    if spread > INVALID_SPREAD:
        reasons.append(f"fps range over rounds {spread:.0%} of the median > {INVALID_SPREAD:.0%}")
    loop_s = sum(s.get("loop_s", 0.0) for s in streams)
    overhead = 1 - sum(latency_ms) / 1e3 / loop_s if loop_s else None
    delay_frames = [d for s in streams for d in s["delay_frames"]]
    delay_ms = [d * 1e3 for s in streams for d in s["delay_s"]]
    return {
        "fps": fps,
        "fps_rounds": fps_rounds,
        "fps_iqr_over_median": noise,
        "fps_spread_over_median": spread,
        "steady_fps": float(np.median(steady_rounds)),
        "steady_fps_rounds": steady_rounds,
        "steady_key_fraction": key_fraction,
        "harness_overhead": overhead,  # share of the step loop's wall time outside method.step
        "frames_timed": frames,
        "latency_ms": _percentiles(latency_ms),
        "latency_ms_by_kind": {
            kind: _percentiles([x for x, k in zip(latency_ms, kinds) if k == kind])
            for kind in sorted(set(kinds))
        },
        "key_fraction": kinds.count("key") / frames,
        "component_ms_per_frame": {k: v / frames for k, v in sorted(components.items())},
        "component_ms_by_kind": {
            kind: {k: v / kinds.count(kind) for k, v in sorted(c.items())}
            for kind, c in sorted(by_kind.items())
        },
        "delay_frames": {"mean": float(np.mean(delay_frames)), "max": int(max(delay_frames))},
        "delay_ms": _percentiles(delay_ms),
        "raw_latency_ms": [round(x, 4) for x in latency_ms],
        **_device_time(streams),
        "validity": "INVALID" if reasons else "VALID",
        "reasons": reasons,
        "warnings": warnings,
    }


def _device_time(streams: list[dict[str, list]]) -> dict[str, Any]:
    """CUDA-event device time per step beside wall time, when the streams ran on a GPU."""
    if not streams or any("device_latency_s" not in s for s in streams):
        return {}
    device_ms = [x * 1e3 for s in streams for x in s["device_latency_s"]]
    return {"device_latency_ms": _percentiles(device_ms)}


def summarise_offline(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Throughput of the ``offline`` scenario from timed batch calls per round: videos/s and
    frames/s as the median over rounds, with the stream's round, duration and noise rules."""
    videos = [r["videos"] / r["latency_s"] for r in rounds]
    frames = [r["frames"] / r["latency_s"] for r in rounds]
    median = float(np.median(videos))
    q1, q3 = np.percentile(videos, [25, 75])
    noise = float((q3 - q1) / median)
    timed = sum(r["latency_s"] for r in rounds)
    reasons, warnings = [], []
    if len(rounds) < MIN_ROUNDS:
        reasons.append(f"{len(rounds)} rounds < {MIN_ROUNDS}: round-to-round noise unknown")
    if timed < MIN_DURATION_S:
        reasons.append(f"timed {timed:.2f} s < {MIN_DURATION_S} s")
    if noise > INVALID_IQR:
        reasons.append(f"throughput IQR/median {noise:.0%} > {INVALID_IQR:.0%}")
    elif noise > WARN_IQR:
        warnings.append(f"throughput IQR/median {noise:.0%} > {WARN_IQR:.0%}")
    return {
        "videos_per_s": median,
        "fps": float(np.median(frames)),
        "fps_rounds": frames,
        "fps_iqr_over_median": noise,
        "batch": rounds[0]["videos"] // len(rounds[0]["call_latency_s"]) if rounds else 0,
        "batch_latency_ms": _percentiles([x * 1e3 for r in rounds for x in r["call_latency_s"]]),
        **(
            {"device_round_ms": _percentiles([r["device_latency_s"] * 1e3 for r in rounds])}
            if rounds and all("device_latency_s" in r for r in rounds)
            else {}
        ),
        "validity": "INVALID" if reasons else "VALID",
        "reasons": reasons,
        "warnings": warnings,
    }


def same_run_speedup(speed: dict[str, Any], base: dict[str, Any], base_record: Any) -> dict:
    """The speed-up over the task's speed baseline timed in the same interleaved rounds: the
    ratio of median steady-state fps (stream fps where there is none: the offline scenario),
    and the per-round ratios (round k of both ran back to back, so load
    that slows both cancels) with their IQR over median as the speed-up's own noise."""
    which = "steady_fps" if "steady_fps" in speed and "steady_fps" in base else "fps"
    pairs = [m / b for m, b in zip(speed[f"{which}_rounds"], base[f"{which}_rounds"])]
    q1, q3 = np.percentile(pairs, [25, 75])
    return {
        "speedup": speed[which] / base[which],
        "speedup_of": which,
        "speedup_rounds": pairs,
        "speedup_iqr_over_median": float((q3 - q1) / np.median(pairs)),
        "baseline": {
            "label": base_record.label,
            "record_id": base_record.record_id,
            "fps": base["fps"],
            "fps_iqr_over_median": base["fps_iqr_over_median"],
            "validity": base["validity"],
            **({"latency_p50_ms": base["latency_ms"]["p50"]} if "latency_ms" in base else {}),
        },
    }
