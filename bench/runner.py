"""The harness loop: builds methods, runs the accuracy, cost and speed passes, writes records.

Accuracy and speed are separate passes over the same ``step`` code path (measurement.md 1):
accuracy replays ``rotating-offset@v1`` episodes; speed replays continuous streams (scenario
``stream``, batch 1) in rounds that interleave all measured methods (A B C A B C ...), and
checkpoints each finished round so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm
from vidbench.api import DataError, Method, SegmentationPrediction, VideoSource
from vidbench.evaluators import SegmentationEvaluator
from vidbench.flops import count_parameters
from vidbench.meter import FlopMeter, TimingMeter, now
from vidbench.protocols import (
    ROTATING_OFFSET,
    STREAM,
    episode,
    rotating_offset_episodes,
    stream_frames,
    stream_keys,
)
from vidbench.provenance import provenance
from vidbench.registry import DATASETS, METHODS, parse_config, split_spec
from vidbench.speed import summarise_speed
from vidbench.store import Store, record_id
from vidbench.workspace import HarnessWorkspace

TIMED_REGION = (
    "method.step (and finish) per frame; decoding, motion-vector export and rasterisation, "
    "and tensor conversion happen before the clock (a decoder hands vectors out for free; "
    "seed 000 sec. 3.4 excludes H.264 encoding likewise)"
)
MUST_COUNT = ("feature", "warp", "task")


class ContractError(RuntimeError):
    """A method broke the adapter contract (vidbench.api.Method)."""


@dataclass(frozen=True)
class RunSettings:
    """Everything about a comparison that is not the method list."""

    intervals: tuple[int, ...] = tuple(range(1, 11))
    speed_videos: int = 4
    speed_rounds: int = 5
    threads: int = 2
    seed: int = 0
    data_root: Path = Path("data")
    checkpoint_dir: Path = Path("checkpoints")


@dataclass
class Prepared:
    """A built method with the identity shared by all its records."""

    label: str
    method: Method
    identity: dict[str, Any]
    intervals: tuple[int, ...]


def build_dataset(name: str, options: dict[str, str], data_root: Path) -> Any:
    cls = DATASETS.get(name)
    return cls(parse_config(cls.Config, options, f"dataset '{name}'"), data_root)


def canonical_label(name: str, config: Any, defaults: Any) -> str:
    """``interp-mv:fusion=avg`` with only the options that differ from the defaults."""
    changed = [
        f"{f.name}={getattr(config, f.name)}"
        for f in dataclasses.fields(config)
        if getattr(config, f.name) != getattr(defaults, f.name)
    ]
    return ":".join([name, *changed])


def prepare_method(spec: str, dataset: Any, settings: RunSettings) -> Prepared:
    """Parse ``name:key=value``, build (train or load) the method, and fix its identity."""
    name, options = split_spec(spec)
    cls = METHODS.get(name)
    config = parse_config(cls.Config, options, f"method '{name}'")
    workspace = HarnessWorkspace(dataset, settings.checkpoint_dir, settings.seed)
    torch.manual_seed(settings.seed)
    method = cls(config, workspace)
    identity = {
        "method": name,
        "config": dataclasses.asdict(config),
        "dataset": dataset.describe(),
        "split": "val",
        "checkpoints": workspace.used,
        "seed": settings.seed,
    }
    intervals = settings.intervals if cls.uses_keyframes else (1,)
    return Prepared(canonical_label(name, config, cls.Config()), method, identity, intervals)


def check_protocol(
    method_specs: Sequence[str],
    dataset: Any,
    videos: Sequence[VideoSource],
    intervals: Sequence[int],
) -> None:
    """Refuse, before any training, intervals the snippets cannot support for a method."""
    for spec in method_specs:
        cls = METHODS.get(split_spec(spec)[0])
        for interval in intervals if cls.uses_keyframes else (1,):
            rotating_offset_episodes(
                len(videos),
                videos[0].info.num_frames,
                dataset.labelled_index,
                interval,
                cls.needs_next_keyframe,
            )


def run_episode(
    method: Method, video: VideoSource, frames: Sequence[int], keys: frozenset[int]
) -> dict[int, SegmentationPrediction]:
    """Feed ``frames`` in order; check the contract: exactly one prediction per fed frame."""
    method.start(video.info)
    predictions: dict[int, SegmentationPrediction] = {}
    emitted = [p for i in frames for p in method.step(video.frame(i, i in keys))]
    for prediction in [*emitted, *method.finish()]:
        if prediction.index in predictions:
            raise ContractError(f"{method.name} predicted frame {prediction.index} twice.")
        predictions[prediction.index] = prediction
    if set(predictions) != set(frames):
        raise ContractError(
            f"{method.name} predicted frames {sorted(predictions)} for fed frames {list(frames)}."
        )
    return predictions


def accuracy_pass(
    prepared: Prepared, dataset: Any, videos: Sequence[VideoSource], interval: int
) -> dict[str, Any]:
    """``rotating-offset@v1`` over the val split: evaluator state and metrics."""
    method = prepared.method
    episodes = rotating_offset_episodes(
        len(videos),
        videos[0].info.num_frames,
        dataset.labelled_index,
        interval,
        method.needs_next_keyframe,
    )
    evaluator = SegmentationEvaluator(dataset.num_classes, dataset.ignore_index)
    state, keys = evaluator.empty(), 0
    for scored in tqdm(
        episodes, desc=f"accuracy {prepared.label} n={interval}", unit="clip", leave=False
    ):
        video = videos[scored.video]
        predictions = run_episode(method, video, scored.frames, scored.keys)
        keys += sum(bool(p.meta.get("key")) for p in predictions.values())
        state = evaluator.update(
            state, predictions[scored.scored].labels(), video.label(scored.scored), scored.offset
        )
    metrics = evaluator.compute(state)
    return {
        "metrics": {
            **metrics,
            "seg/miou_per_offset": {str(k): v for k, v in metrics["seg/miou_per_offset"].items()},
        },
        "state": {"confusion_per_offset": evaluator.to_json(state)},
        "scored_frames": len(episodes),
        "fed_frames": sum(len(e.frames) for e in episodes),
        "key_frames": keys,
    }


def stream(method: Method, video: VideoSource, interval: int, meter: Any) -> dict[str, list]:
    """One ``stream@v2`` pass over ``video`` (keys at i mod n == 0, ending on the last key),
    timing every step."""
    keys = stream_keys(video.info.num_frames, interval)
    frames = [video.frame(i, i in keys) for i in stream_frames(video.info.num_frames, interval)]
    previous_meter, method.meter = method.meter, meter
    try:
        latency, kinds, components, arrival, emitted = _timed_steps(method, video, frames, meter)
    finally:
        method.meter = previous_meter
    if set(emitted) != set(arrival):
        raise ContractError(f"{method.name} left frames without a prediction in a stream.")
    return {
        "latency_s": latency,
        "kind": kinds,
        "components_s": components,
        "delay_frames": [emitted[i][0] - i for i in sorted(arrival)],
        "delay_s": [emitted[i][1] - arrival[i] for i in sorted(arrival)],
    }


def _timed_steps(method: Method, video: VideoSource, frames: list, meter: Any) -> tuple:
    """Feed ``frames``; per step: latency, frame kind, component times; arrival and emission."""
    method.start(video.info)
    latency, kinds, components, arrival, emitted = [], [], [], {}, {}
    for frame in frames:
        start = now()
        predictions = method.step(frame)
        stop = now()
        arrival[frame.index] = start
        _emit(method, emitted, predictions, frame.index, stop)
        taken = meter.take() if isinstance(meter, TimingMeter) else {}
        latency.append(stop - start)
        kinds.append("key" if taken.get("feature", 0) > 0 else "intermediate")
        components.append(taken)
    start = now()
    tail = method.finish()
    stop = now()
    latency[-1] += stop - start
    if isinstance(meter, TimingMeter):
        for component, seconds in meter.take().items():
            components[-1][component] = components[-1].get(component, 0.0) + seconds
    _emit(method, emitted, tail, frames[-1].index, stop)
    return latency, kinds, components, arrival, emitted


def _emit(method: Method, emitted: dict, predictions: list, step: int, time_s: float) -> None:
    for prediction in predictions:
        if prediction.index in emitted:
            raise ContractError(f"{method.name} predicted frame {prediction.index} twice.")
        emitted[prediction.index] = (step, time_s)


def spot_check(
    prepared: Prepared, dataset: Any, video: VideoSource, interval: int
) -> dict[str, Any]:
    """MLPerf TEST01-style: the stream pass and the accuracy pass agree on the labelled frame
    whose stream offset the accuracy protocol also uses."""
    method = prepared.method
    label = dataset.labelled_index
    count = video.info.num_frames
    if label not in stream_frames(count, interval):
        return {"frame": label, "skipped": f"frame {label} lies past the stream's last key"}
    stream_predictions = run_episode(
        method, video, stream_frames(count, interval), stream_keys(count, interval)
    )
    scored = episode(0, label % interval, interval, label, method.needs_next_keyframe)
    accuracy_predictions = run_episode(method, video, scored.frames, scored.keys)
    same = stream_predictions[label].labels() == accuracy_predictions[label].labels()
    return {"frame": label, "offset": scored.offset, "pixel_agreement": float(same.mean())}


def cost_pass(prepared: Prepared, video: VideoSource, interval: int) -> dict[str, Any]:
    """GMACs per frame over a ``stream@v2`` pass (keys and intermediates as streamed)."""
    with FlopMeter() as meter:
        stream(prepared.method, video, interval, meter)
    frames = len(stream_frames(video.info.num_frames, interval))
    executed = {c for c, n in meter.calls.items() if n}
    missing = [c for c in MUST_COUNT if c in executed and meter.flops[c] == 0]
    if missing:
        raise RuntimeError(
            f"The FLOP counter saw no work in {missing} of {prepared.label}: "
            "register a formula for the operator it uses (vidbench.flops)."
        )
    per_component = {c: meter.flops[c] / 2 / frames / 1e9 for c in sorted(meter.flops)}
    modules = prepared.method.modules()
    return {
        "gmacs_per_frame": sum(per_component.values()),
        "gmacs_per_component": per_component,
        "params": count_parameters(modules),
        "params_per_module": {k: count_parameters({k: m}) for k, m in modules.items()},
        "convention": "multiply-adds (FLOPs/2) from torch.utils.flop_counter; bilinear sampling "
        "and upsampling counted as 4 MACs per output element; element-wise ops not counted",
    }


def _resumable_rounds(path: Path, origin: dict[str, Any]) -> list:
    """Finished speed rounds of an interrupted run, kept only when they were measured by the
    same code, libraries, machine and settings; an unreadable file counts as none."""
    try:
        saved = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return []
    return saved["rounds"] if saved.get("provenance") == origin else []


def _write_atomic(path: Path, data: dict[str, Any]) -> None:
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps(data))
    partial.replace(path)


class Runner:
    """Runs what the store lacks for a set of methods on one dataset, then leaves records."""

    def __init__(
        self, store: Store, settings: RunSettings, log: Callable[[str], None] = print
    ) -> None:
        self.store = store
        self.settings = settings
        self.log = log
        self.run_id = (
            f"{time.strftime('%Y%m%dT%H%M%S')}-{np.random.default_rng().integers(1 << 30):08x}"
        )

    def compare(
        self,
        method_specs: Sequence[str],
        dataset_name: str,
        dataset_options: dict[str, str] | None = None,
    ) -> list[dict[str, Any]]:
        torch.set_num_threads(self.settings.threads)
        dataset = build_dataset(dataset_name, dataset_options or {}, self.settings.data_root)
        dataset.prepare()
        videos = dataset.split("val")
        check_protocol(method_specs, dataset, videos, self.settings.intervals)
        prepared = [prepare_method(spec, dataset, self.settings) for spec in method_specs]
        context = {"run_id": self.run_id, "provenance": provenance()}
        done = {r["record_id"] for r in self.store.records() if "error" not in r}
        with torch.inference_mode():
            for item in prepared:
                for interval in item.intervals:
                    identity = {
                        **item.identity,
                        "kind": "accuracy",
                        "protocol": ROTATING_OFFSET,
                        "interval": interval,
                    }
                    rid = record_id(identity)
                    if rid in done:
                        continue
                    try:
                        result = accuracy_pass(item, dataset, videos, interval)
                    except DataError as error:
                        self._failed(rid, identity, item.label, context, error)
                        continue
                    self.store.append(
                        {
                            "record_id": rid,
                            **identity,
                            "label": item.label,
                            **context,
                            **result,
                            "created": time.time(),
                        }
                    )
                    self.log(
                        f"accuracy {item.label} n={interval}: "
                        f"avg {result['metrics']['seg/miou_avg']:.1f} "
                        f"min {result['metrics']['seg/miou_min']:.1f} mIoU"
                    )
            self._speed(prepared, dataset, videos[: self.settings.speed_videos], context, done)
        return [r for r in self.store.records() if r.get("run_id") == self.run_id]

    def _failed(
        self,
        rid: str,
        identity: dict[str, Any],
        label: str,
        context: dict[str, Any],
        error: Exception,
    ) -> None:
        """Keep the failure as a record (a later run retries it) and carry on."""
        self.store.append(
            {
                "record_id": rid,
                **identity,
                "label": label,
                **context,
                "error": str(error),
                "created": time.time(),
            }
        )
        self.log(f"FAILED {identity['kind']} {label} n={identity['interval']}: {error}")

    def _speed(
        self,
        prepared: Sequence[Prepared],
        dataset: Any,
        videos: Sequence[VideoSource],
        context: dict[str, Any],
        done: set[str],
    ) -> None:
        todo = []
        for item in prepared:
            for interval in item.intervals:
                identity = {
                    **item.identity,
                    "kind": "speed",
                    "scenario": "stream",
                    "protocol": STREAM,
                    "interval": interval,
                    "speed_videos": [v.info.name for v in videos],
                    "rounds": self.settings.speed_rounds,
                    "threads": self.settings.threads,
                }
                rid = record_id(identity)
                if rid not in done:
                    todo.append((rid, identity, item, interval))
        if not todo:
            return
        try:
            self._measure_speed(todo, dataset, videos, context)
        except DataError as error:
            for rid, identity, item, _ in todo:
                self._failed(rid, identity, item.label, context, error)

    def _measure_speed(
        self, todo: list, dataset: Any, videos: Sequence[VideoSource], context: dict[str, Any]
    ) -> None:
        partial = self.store.partial_dir()
        origin = context["provenance"]
        rounds: dict[str, list] = {}
        for rid, _, item, interval in tqdm(todo, desc="speed: warm-up + cost", unit="run"):
            rounds[rid] = _resumable_rounds(partial / f"{rid}.json", origin)
            stream(item.method, videos[0], interval, TimingMeter())
        extras = {
            rid: {
                "cost": cost_pass(item, videos[0], interval),
                "spot_check": spot_check(item, dataset, videos[0], interval),
            }
            for rid, _, item, interval in todo
        }
        total = self.settings.speed_rounds
        for round_index in tqdm(range(total), desc="speed: interleaved rounds", unit="round"):
            for rid, _, item, interval in todo:
                if len(rounds[rid]) > round_index:
                    continue
                rounds[rid].append(
                    [stream(item.method, v, interval, TimingMeter()) for v in videos]
                )
                _write_atomic(
                    partial / f"{rid}.json", {"provenance": origin, "rounds": rounds[rid]}
                )
        for rid, identity, item, interval in todo:
            speed = summarise_speed(rounds[rid])
            if extras[rid]["spot_check"].get("pixel_agreement", 1.0) < 1.0:
                speed["validity"] = "INVALID"
                speed["reasons"].append("stream output differs from the accuracy pass (spot check)")
            self.store.append(
                {
                    "record_id": rid,
                    **identity,
                    "label": item.label,
                    **context,
                    "speed": speed,
                    **extras[rid],
                    "timed_region": TIMED_REGION,
                    "created": time.time(),
                }
            )
            (partial / f"{rid}.json").unlink(missing_ok=True)
            self.log(
                f"speed {item.label} n={interval}: {speed['fps']:.1f} fps "
                f"({speed['validity']}), {extras[rid]['cost']['gmacs_per_frame']:.3f} GMACs/frame"
            )
