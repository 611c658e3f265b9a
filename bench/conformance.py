"""The adapter contract as checks a method can be put through, built-in or plug-in: the test
suite runs them for every registered method, and ``bench check METHOD`` for one.

Each check builds nothing itself: it takes a built method and a dataset of its task (the tiny
synthetic worlds of ``tiny_dataset``) and raises ``AssertionError`` with a sentence naming
what broke. The checks: the method declares a registered task and its components; it returns
one prediction of its task's type per fed frame with the shapes the task requires (and the key
flag its schedule gave); ``start`` resets all state (replaying a video after another gives the
same outputs); the meter sees only the components it declares, and at least one whose FLOPs
must count; its batched ``offline`` path predicts what its stream predicts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from vidbench.api import Method
from vidbench.building import build_dataset
from vidbench.meter import TimingMeter
from vidbench.passes import feed, run_episode, stream
from vidbench.registry import METHODS, TASKS, parse_config, split_spec
from vidbench.tasks import get_task
from vidbench.workspace import HarnessWorkspace

# tiny synthetic worlds per task: (registered dataset, options), rendered in seconds
TINY_WORLDS = {
    "segmentation": (
        "synthcity",
        {
            "train_videos": "2",
            "val_videos": "3",
            "height": "64",
            "width": "128",
            "frames": "12",
            "labelled_index": "7",
            "seed": "3",
        },
    ),
    "detection": (
        "synthdet",
        {
            "train_videos": "3",
            "val_videos": "2",
            "height": "64",
            "width": "128",
            "frames": "12",
            "objects": "3",
        },
    ),
    "recognition": (
        "synthaction",
        {
            "train_videos": "6",
            "val_videos": "4",
            "frames": "8",
            "height": "64",
            "width": "64",
            "seed": "2",
        },
    ),
}


def tiny_dataset(task: str, data_root: Path) -> Any:
    """The tiny synthetic world of ``task``, rendered under ``data_root`` if need be."""
    name, options = TINY_WORLDS[task]
    dataset = build_dataset(name, options, data_root)
    dataset.prepare()
    return dataset


def build_smoke(spec: str, dataset: Any, checkpoints: Path) -> Method:
    """Method ``spec`` built from its ``smoke`` options (a tiny training budget), with the
    options ``spec`` gives on top."""
    name, options = split_spec(spec)
    cls = METHODS.get(name)
    config = parse_config(cls.Config, {**cls.smoke, **options}, f"method '{name}'")
    return cls(config, HarnessWorkspace(dataset, checkpoints, seed=0))


def schedule(method: Method, interval: int) -> dict[str, Any]:
    """The task protocol's default setting at ``interval`` (also for methods without keys)."""
    protocol = get_task(method.task).protocol
    return {**protocol.settings([interval], type(method))[0], "interval": interval}


def identical(a: object, b: object) -> bool:
    """Two predictions with equal fields (tensors compared exactly)."""
    fields = [f.name for f in dataclasses.fields(a)]
    return type(a) is type(b) and all(
        torch.equal(x, y) if isinstance(x, torch.Tensor) else x == y
        for x, y in ((getattr(a, n), getattr(b, n)) for n in fields)
    )


def declares_task_and_components(method: Method, dataset: Any) -> None:
    assert method.task in TASKS.names(), f"task '{method.task}' is not registered"
    assert method.task in dataset.tasks, f"dataset {dataset.name} has no {method.task} labels"
    assert method.name in METHODS.names(), f"name '{method.name}' is not registered"
    assert method.components and all(isinstance(c, str) for c in method.components), (
        "components must be a non-empty tuple of names"
    )
    assert method.modules(), "modules() must return the networks to count and move"


def one_typed_prediction_per_fed_frame(method: Method, dataset: Any, interval: int = 3) -> None:
    task = get_task(method.task)
    video = dataset.split("val")[0]
    setting = schedule(method, interval)
    frames, keys = task.protocol.stream(video.info.num_frames, setting)
    with torch.inference_mode():
        predictions = run_episode(method, video, frames, keys, task.protocol.key_of(setting, keys))
    assert sorted(i for i in predictions if i is not None) == list(frames), (
        "one prediction per fed frame"
    )
    for index, prediction in predictions.items():
        assert prediction.index == index, f"prediction for {prediction.index} filed as {index}"
        task.check_prediction(prediction, video.info, dataset.num_classes)
        if method.uses_keyframes and index is not None:
            assert prediction.meta["key"] == (index in keys), (
                f"frame {index}: meta['key'] must say whether the schedule made it a key"
            )


def start_resets_all_state(method: Method, dataset: Any) -> None:
    a, b = dataset.split("val")[:2]
    protocol = get_task(method.task).protocol
    setting = schedule(method, 4)
    frames, keys = protocol.stream(a.info.num_frames, setting)
    key_of = protocol.key_of(setting, keys)
    with torch.inference_mode():
        first = run_episode(method, a, frames, keys, key_of)
        # leave b short of its end (all but its last frame): state to clear
        run_episode(method, b, range(b.info.num_frames - 1), frozenset({2}))
        again = run_episode(method, a, frames, keys, key_of)
    for index in first:
        assert identical(first[index], again[index]), (
            f"frame {index} differs when its video is replayed: start() must reset all state"
        )


def meter_sees_only_declared_components(method: Method, dataset: Any) -> None:
    video = dataset.split("val")[1]
    with torch.inference_mode():
        result = stream(method, video, schedule(method, 4), TimingMeter())
    seen = {name for step in result["components_s"] for name in step}
    assert seen <= set(method.components), f"metered {sorted(seen)}, declared {method.components}"
    must = get_task(method.task).must_count
    assert seen & set(must), f"none of {must} was metered: wrap the work in self.meter(...)"


def offline_predicts_what_the_stream_predicts(method: Method, dataset: Any) -> None:
    task = get_task(method.task)
    setting = schedule(method, 3)
    clips, streamed = [], []
    with torch.inference_mode():
        for video in dataset.split("val")[:2]:
            frames, keys = task.protocol.stream(video.info.num_frames, setting)
            key_of = task.protocol.key_of(setting, keys)
            streamed.append(run_episode(method, video, frames, keys, key_of))
            clips.append((video.info, [feed(video, i, keys, key_of, method) for i in frames]))
        batched = method.offline(clips)
    for predictions, expected in zip(batched, streamed):
        by_index = {p.index: p for p in predictions}
        assert set(by_index) == set(expected), "offline() must predict the frames the stream does"
        assert all(task.agreement(by_index[i], expected[i]) == 1.0 for i in expected), (
            "offline() must predict what the stream predicts"
        )


CHECKS: dict[str, Callable[[Method, Any], None]] = {
    "declares a registered task and components": declares_task_and_components,
    "one typed prediction per fed frame": one_typed_prediction_per_fed_frame,
    "start() resets all state": start_resets_all_state,
    "the meter sees only declared components": meter_sees_only_declared_components,
    "offline() predicts what the stream predicts": offline_predicts_what_the_stream_predicts,
}


def check_method(spec: str, work: Path) -> dict[str, str | None]:
    """Every check on method ``spec`` built from its smoke options on its task's tiny world
    under ``work``: check name -> None when it passed, else the failure."""
    cls = METHODS.get(split_spec(spec)[0])
    dataset = tiny_dataset(cls.task, work / "data")
    method = build_smoke(spec, dataset, work / "checkpoints")
    results: dict[str, str | None] = {}
    for name, check in CHECKS.items():
        try:
            check(method, dataset)
            results[name] = None
        except AssertionError as error:
            results[name] = str(error) or "assertion failed"
    return results
