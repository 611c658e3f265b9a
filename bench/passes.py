"""The passes over a built method: accuracy (a protocol's episodes into an evaluator), speed
streams (timed steps), cost (FLOPs over a stream) and the spot check that ties them together.

Accuracy and speed are separate passes over the same ``step`` code path (docs/measurement.md §1).
Nothing here knows a task's name: the task (vidbench.tasks) supplies protocol, evaluator,
prediction type and the components whose FLOPs must be counted.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from tqdm import tqdm
from vidbench import bootstrap, distributed
from vidbench.api import DataError, Frame, Method, VideoSource
from vidbench.building import Prepared, setting_text
from vidbench.flops import count_parameters
from vidbench.meter import FlopMeter, TimingMeter
from vidbench.protocols import Setting
from vidbench.records import jsonable
from vidbench.tasks import Task, get_task

TIMED_REGION = (
    "method.step (and finish) per frame; decoding, motion-vector export and rasterisation, "
    "and tensor conversion happen before the clock (a decoder hands vectors out for free; "
    "seed 000 sec. 3.4 excludes H.264 encoding likewise)"
)
OFFLINE_TIMED_REGION = (
    "method.offline on a batch of videos; decoding and tensor conversion happen before the clock"
)


class ContractError(RuntimeError):
    """A method broke the adapter contract (vidbench.api.Method)."""


def task_of(method: Method) -> Task:
    return get_task(method.task)


def on_device(frame: Frame, method: Method) -> Frame:
    """``frame`` with its tensors on the method's device (the harness moves data, not the
    method; done before the clock starts)."""
    if method.device == "cpu":
        return frame
    move = {
        name: getattr(frame, name).to(method.device)
        for name in ("image", "motion", "motion_valid")
        if getattr(frame, name) is not None
    }
    return dataclasses.replace(frame, **move)


def feed(
    video: VideoSource, index: int, keys: frozenset[int], key_of: Any, method: Method
) -> Frame:
    """Frame ``index`` as the protocol feeds it: key flag, assigned key, on the method's device."""
    frame = video.frame(index, index in keys)
    if key_of is not None:
        frame = dataclasses.replace(frame, key_index=key_of[index])
    return on_device(frame, method)


def run_episode(
    method: Method,
    video: VideoSource,
    frames: Sequence[int],
    keys: frozenset[int],
    key_of: dict[int, int] | None = None,
) -> dict[int | None, Any]:
    """Feed ``frames`` in order and check the contract: one prediction of the task's type per
    fed frame, plus one video-level prediction (index None) for tasks that have them.
    ``key_of`` assigns each frame the key it should use where the protocol says."""
    task = task_of(method)
    method.start(video.info)
    predictions: dict[int | None, Any] = {}
    emitted = [p for i in frames for p in method.step(feed(video, i, keys, key_of, method))]
    for prediction in [*emitted, *method.finish()]:
        if not isinstance(prediction, task.prediction_type):
            raise ContractError(
                f"{method.name} returned a {type(prediction).__name__}; a {task.name} method "
                f"returns {task.prediction_type.__name__}."
            )
        if prediction.index in predictions:
            raise ContractError(f"{method.name} predicted frame {prediction.index} twice.")
        predictions[prediction.index] = prediction
    expected = set(frames) | ({None} if task.video_level else set())
    if set(predictions) != expected:
        raise ContractError(
            f"{method.name} predicted frames {sorted(predictions, key=str)} for fed frames "
            f"{list(frames)}" + (" and the video" if task.video_level else "") + "."
        )
    return predictions


def accuracy_pass(
    prepared: Prepared, dataset: Any, videos: Sequence[VideoSource], setting: Setting
) -> dict[str, Any]:
    """The task's accuracy protocol over the val split: the evaluator state (merged, and one
    per video for the bootstrap), metrics and their intervals over videos. Under torchrun each
    rank scores its shard of the episodes and the states are merged."""
    method = prepared.method
    task = task_of(method)
    episodes = task.protocol.episodes(videos, setting, type(method))
    evaluator = task.evaluator(dataset)
    try:
        desc = f"accuracy {prepared.label} {setting_text(setting)}"
        shard = distributed.shard(episodes)
        per_video, keys = _score(method, evaluator, videos, shard, setting, desc)
        local: tuple[Any, ...] = ("ok", _to_json(evaluator, per_video), keys)
    except Exception as error:  # every rank must reach the gather, or the others hang
        if distributed.world_size() == 1:
            raise
        local = ("error", f"{type(error).__name__}: {error}", isinstance(error, DataError))
    gathered = distributed.gather(local) if distributed.world_size() > 1 else [local]
    failed = [part for part in gathered if part[0] == "error"]
    if failed:
        raise (DataError if failed[0][2] else RuntimeError)(failed[0][1])
    if len(gathered) > 1:
        per_video = {}
        for part in gathered:
            for name, state in part[1].items():
                mine = evaluator.from_json(state)
                per_video[name] = evaluator.merge(per_video[name], mine) if name in per_video else mine
        keys = sum(part[2] for part in gathered)
    state = evaluator.empty()
    for name in sorted(per_video):
        state = evaluator.merge(state, per_video[name])
    units = [per_video[name] for name in sorted(per_video)]
    return {
        "metrics": jsonable(evaluator.compute(state)),
        "intervals": jsonable(bootstrap.intervals(evaluator, units, interval_metrics(task))),
        "state": evaluator.to_json(state),
        "state_per_video": _to_json(evaluator, per_video),
        "scored_frames": sum(len(e.scored) for e in episodes),
        "fed_frames": sum(len(e.frames) for e in episodes),
        "key_frames": keys,
    }


def interval_metrics(task: Task) -> list[str]:
    """The metrics an accuracy record carries intervals for: the headline ones and the
    per-stratum breakdown (keyframe offset, distance from the key, online step)."""
    return [*(h.metric for h in task.headline), task.per_stratum_metric]


def _to_json(evaluator: Any, per_video: dict[str, Any]) -> dict[str, Any]:
    return {name: evaluator.to_json(state) for name, state in sorted(per_video.items())}


def _score(
    method: Method,
    evaluator: Any,
    videos: Sequence[VideoSource],
    episodes: Sequence[Any],
    setting: Setting,
    desc: str,
) -> tuple[dict[str, Any], int]:
    """Evaluator state per video name and the key count over ``episodes`` (a progress bar on
    rank 0, on a terminal)."""
    per_video: dict[str, Any] = {}
    keys = 0
    quiet = not distributed.is_writer()
    for scored in tqdm(episodes, desc=desc, unit="clip", leave=False, disable=quiet or None):
        video = videos[scored.video]
        key_of = task_of(method).protocol.key_of(setting, scored.keys)
        predictions = run_episode(method, video, scored.frames, scored.keys, key_of)
        keys += sum(bool(p.meta.get("key")) for p in predictions.values())
        state = per_video.get(video.info.name, evaluator.empty())
        for index, stratum in zip(scored.scored, scored.strata):
            state = evaluator.update(state, predictions[index], video.label(index), stratum)
        per_video[video.info.name] = state
    return per_video, keys


def stream(method: Method, video: VideoSource, setting: Setting, meter: Any) -> dict[str, list]:
    """One pass over ``video`` with the task's stream schedule, timing every step."""
    protocol = task_of(method).protocol
    frame_indices, keys = protocol.stream(video.info.num_frames, setting)
    key_of = protocol.key_of(setting, keys)
    frames = [feed(video, i, keys, key_of, method) for i in frame_indices]
    previous_meter, method.meter = method.meter, meter
    try:
        timed = _timed_steps(method, video, frames, meter)
    finally:
        method.meter = previous_meter
    latency, kinds, components, arrival, emitted, device, loop_s = timed
    if set(emitted) - {None} != set(arrival):
        raise ContractError(f"{method.name} left frames without a prediction in a stream.")
    return {
        **({"device_latency_s": device} if None not in device else {}),
        "latency_s": latency,
        "loop_s": loop_s,  # the whole step loop: the steps plus the harness's bookkeeping
        "kind": kinds,
        "components_s": components,
        "delay_frames": [emitted[i][0] - i for i in sorted(arrival)],
        "delay_s": [emitted[i][1] - arrival[i] for i in sorted(arrival)],
    }


def _timed_steps(method: Method, video: VideoSource, frames: list, meter: Any) -> tuple:
    """Feed ``frames``; per step: latency, frame kind, component times; arrival and emission."""
    clock = meter if isinstance(meter, TimingMeter) else TimingMeter(method.device)
    method.start(video.info)
    latency, kinds, components, arrival, emitted, device = [], [], [], {}, {}, []
    loop_started = clock.now()
    for frame in frames:
        start = clock.start_step()
        predictions = method.step(frame)
        stop, device_s = clock.stop_step()
        arrival[frame.index] = start
        _emit(method, emitted, predictions, frame.index, stop)
        taken = meter.take() if isinstance(meter, TimingMeter) else {}
        latency.append(stop - start)
        device.append(device_s)
        kinds.append(
            "key"
            if taken.get("feature", 0) > 0
            else "intermediate"
            if predictions
            else "waiting"  # held for a later key: its work is timed where it is emitted
        )
        components.append(taken)
    start = clock.start_step()
    tail = method.finish()
    stop, device_s = clock.stop_step()
    latency[-1] += stop - start
    if device_s is not None:
        device[-1] += device_s
    if isinstance(meter, TimingMeter):
        for component, seconds in meter.take().items():
            components[-1][component] = components[-1].get(component, 0.0) + seconds
    _emit(method, emitted, tail, frames[-1].index, stop)
    return latency, kinds, components, arrival, emitted, device, clock.now() - loop_started


def _emit(method: Method, emitted: dict, predictions: list, step: int, time_s: float) -> None:
    for prediction in predictions:
        if prediction.index in emitted:
            raise ContractError(f"{method.name} predicted frame {prediction.index} twice.")
        emitted[prediction.index] = (step, time_s)


def spot_check(prepared: Prepared, video: VideoSource, setting: Setting) -> dict[str, Any]:
    """MLPerf TEST01-style: the stream pass and the accuracy pass agree on the scored frames of
    an accuracy episode whose key schedule the stream shares."""
    method = prepared.method
    task = task_of(method)
    scored = task.protocol.spot_episode(video, setting, type(method))
    if scored is None:
        return {"skipped": "no scored frame of the protocol lies inside the stream"}
    frame_indices, keys = task.protocol.stream(video.info.num_frames, setting)
    streamed = run_episode(method, video, frame_indices, keys, task.protocol.key_of(setting, keys))
    replayed = run_episode(
        method, video, scored.frames, scored.keys, task.protocol.key_of(setting, scored.keys)
    )
    return {
        "frames": list(scored.scored),
        "strata": list(scored.strata),
        "agreement": min(task.agreement(streamed[i], replayed[i]) for i in scored.scored),
    }


def cost_pass(prepared: Prepared, video: VideoSource, setting: Setting) -> dict[str, Any]:
    """GMACs per frame (or per video) over a stream pass (keys and intermediates as streamed)."""
    task = task_of(prepared.method)
    with FlopMeter() as meter:
        stream(prepared.method, video, setting, meter)
    units = len(task.protocol.stream(video.info.num_frames, setting)[0])
    units = units if task.cost_unit == "frame" else 1
    executed = {c for c, n in meter.calls.items() if n}
    missing = [c for c in task.must_count if c in executed and meter.flops[c] == 0]
    if missing:
        raise RuntimeError(
            f"The FLOP counter saw no work in {missing} of {prepared.label}: "
            "register a formula for the operator it uses (vidbench.flops)."
        )
    per_component = {c: meter.flops[c] / 2 / units / 1e9 for c in sorted(meter.flops)}
    modules = prepared.method.modules()
    return {
        f"gmacs_per_{task.cost_unit}": sum(per_component.values()),
        "gmacs_per_component": per_component,
        "params": count_parameters(modules),
        "params_per_module": {k: count_parameters({k: m}) for k, m in modules.items()},
        "convention": "multiply-adds (FLOPs/2) from torch.utils.flop_counter; bilinear sampling "
        "and upsampling counted as 4 MACs per output element; element-wise ops not counted",
    }


def offline_clips(
    method: Method, videos: Sequence[VideoSource], batch: int, setting: Setting
) -> list[tuple[Any, list[Frame]]]:
    """The ``offline`` scenario's batch: ``batch`` videos (cycling through ``videos``), every
    frame the stream schedule feeds, decoded and on the method's device before the clock."""
    protocol = task_of(method).protocol
    clips = []
    for number in range(batch):
        video = videos[number % len(videos)]
        indices, keys = protocol.stream(video.info.num_frames, setting)
        key_of = protocol.key_of(setting, keys)
        clips.append((video.info, [feed(video, i, keys, key_of, method) for i in indices]))
    return clips


OFFLINE_MIN_ROUND_S = 0.5


def offline(method: Method, clips: list[tuple[Any, list[Frame]]], clock: TimingMeter) -> dict:
    """One round of the offline scenario: timed ``method.offline`` calls on a prepared batch,
    repeated until the round lasts ``OFFLINE_MIN_ROUND_S`` (tiny batches time too briefly for a
    clock); seconds per call, videos and frames over the round."""
    latency, device = [], []
    while not latency or sum(latency) < OFFLINE_MIN_ROUND_S:
        start = clock.start_step()
        method.offline(clips)
        stop, device_s = clock.stop_step()
        latency.append(stop - start)
        device.append(device_s)
    calls = len(latency)
    return {
        "latency_s": sum(latency),
        "call_latency_s": latency,
        **({"device_latency_s": sum(device)} if None not in device else {}),
        "videos": len(clips) * calls,
        "frames": sum(len(frames) for _, frames in clips) * calls,
    }


def offline_check(prepared: Prepared, video: VideoSource, setting: Setting, batch: int) -> dict:
    """The batched predictions of the first video in an offline batch agree with its stream
    predictions (batching may not change what a method predicts)."""
    method = prepared.method
    task = task_of(method)
    clips = offline_clips(method, [video], batch, setting)
    batched = {p.index: p for p in method.offline(clips)[0]}
    indices, keys = task.protocol.stream(video.info.num_frames, setting)
    streamed = run_episode(method, video, indices, keys, task.protocol.key_of(setting, keys))
    if set(batched) != set(streamed):
        raise ContractError(
            f"{method.name}.offline predicted {sorted(batched, key=str)}; the stream predicted "
            f"{sorted(streamed, key=str)}."
        )
    return {
        "batch": batch,
        "agreement": min(task.agreement(streamed[i], batched[i]) for i in streamed),
    }
