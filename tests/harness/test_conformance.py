"""The adapter contract, checked for every registered method of every task (new methods get it
for free): each method declares a tiny ``smoke`` configuration, its task gives the shapes."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from vidbench.api import Method
from vidbench.meter import TimingMeter
from vidbench.passes import feed, run_episode, stream
from vidbench.registry import METHODS, TASKS, parse_config
from vidbench.tasks import get_task
from vidbench.workspace import HarnessWorkspace

VARIANTS = [(name, {}) for name in METHODS.names()] + [
    ("interp-mv", {"fusion": "avg"}),
    ("interp-mv", {"fusion": "max"}),
    ("prop", {"motion": "dis"}),
    ("prop", {"motion": "raft", "reference": "key"}),
]


@pytest.fixture(scope="module", params=VARIANTS, ids=lambda v: ":".join([v[0], *v[1].values()]))
def built(request, tmp_path_factory) -> tuple[Method, object]:
    """(method, its task's tiny dataset), the method built from its smoke options."""
    name, options = request.param
    cls = METHODS.get(name)
    dataset = request.getfixturevalue(f"tiny_{cls.task}_dataset")
    config = parse_config(cls.Config, {**cls.smoke, **options}, name)
    workspace = HarnessWorkspace(dataset, tmp_path_factory.mktemp("checkpoints"), seed=0)
    return cls(config, workspace), dataset


def test_declares_a_registered_task_and_components(built) -> None:
    method, dataset = built
    assert method.task in TASKS.names() and method.task in dataset.tasks
    assert method.name in METHODS.names()
    assert method.components and all(isinstance(c, str) for c in method.components)
    assert method.modules()


@pytest.mark.parametrize("interval", [1, 3, 5])
def test_one_typed_prediction_per_fed_frame(built, interval: int) -> None:
    method, dataset = built
    task = get_task(method.task)
    video = dataset.split("val")[0]
    setting = schedule(method, interval)
    frames, keys = task.protocol.stream(video.info.num_frames, setting)
    with torch.inference_mode():
        predictions = run_episode(method, video, frames, keys, task.protocol.key_of(setting, keys))
    assert sorted(i for i in predictions if i is not None) == list(frames)
    for index, prediction in predictions.items():
        assert prediction.index == index
        task.check_prediction(prediction, video.info, dataset.num_classes)
        if method.uses_keyframes and index is not None:
            assert prediction.meta["key"] == (index in keys)


def test_start_resets_all_state(built) -> None:
    method, dataset = built
    a, b = dataset.split("val")[:2]
    protocol = get_task(method.task).protocol
    setting = schedule(method, 4)
    frames, keys = protocol.stream(a.info.num_frames, setting)
    key_of = protocol.key_of(setting, keys)
    with torch.inference_mode():
        first = run_episode(method, a, frames, keys, key_of)
        run_episode(method, b, range(5), frozenset({2}))  # leave b half-way: state to clear
        again = run_episode(method, a, frames, keys, key_of)
    for index in first:
        assert identical(first[index], again[index])


def schedule(method: Method, interval: int) -> dict:
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


def test_meter_sees_only_declared_components(built) -> None:
    method, dataset = built
    video = dataset.split("val")[1]
    with torch.inference_mode():
        result = stream(method, video, schedule(method, 4), TimingMeter())
    seen = {name for step in result["components_s"] for name in step}
    assert seen <= set(method.components)
    assert seen & set(get_task(method.task).must_count)


def test_offline_batch_predicts_what_the_stream_predicts(built) -> None:
    method, dataset = built
    task = get_task(method.task)
    videos = dataset.split("val")[:2]
    setting = schedule(method, 3)
    clips, streamed = [], []
    with torch.inference_mode():
        for video in videos:
            frames, keys = task.protocol.stream(video.info.num_frames, setting)
            key_of = task.protocol.key_of(setting, keys)
            streamed.append(run_episode(method, video, frames, keys, key_of))
            clips.append((video.info, [feed(video, i, keys, key_of, method) for i in frames]))
        batched = method.offline(clips)
    for predictions, expected in zip(batched, streamed):
        by_index = {p.index: p for p in predictions}
        assert set(by_index) == set(expected)
        assert all(task.agreement(by_index[i], expected[i]) == 1.0 for i in expected)
