"""The adapter contract, checked for every registered method (new methods get it for free)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from vidbench.api import Method, SegmentationPrediction
from vidbench.meter import TimingMeter
from vidbench.protocols import stream_keys
from vidbench.registry import METHODS
from vidbench.runner import run_episode, stream

FAST = {
    "train_steps": 3,
    "fusion_steps": 2,
    "flownet_pretrain_steps": 2,
    "flownet_finetune_steps": 2,
}
VARIANTS = [(name, {}) for name in METHODS.names()] + [
    ("interp-mv", {"fusion": "avg"}),
    ("interp-mv", {"fusion": "max"}),
    ("prop", {"motion": "dis"}),
    ("prop", {"motion": "raft", "reference": "key"}),
]


def build(name: str, options: dict, workspace) -> Method:
    cls = METHODS.get(name)
    fields = {f.name for f in dataclasses.fields(cls.Config)}
    config = cls.Config(**{k: v for k, v in {**FAST, **options}.items() if k in fields})
    return cls(config, workspace)


@pytest.fixture(scope="module", params=VARIANTS, ids=lambda v: ":".join([v[0], *v[1].values()]))
def method(request, tiny_workspace) -> Method:
    name, options = request.param
    return build(name, options, tiny_workspace)


def test_declares_a_task_and_components(method: Method) -> None:
    assert method.task == "segmentation"
    assert method.name in METHODS.names()
    assert method.components and all(isinstance(c, str) for c in method.components)
    assert method.modules()


@pytest.mark.parametrize("interval", [1, 3, 5])
def test_one_typed_prediction_per_fed_frame(method: Method, tiny_dataset, interval: int) -> None:
    video = tiny_dataset.split("val")[0]
    n = video.info.num_frames
    with torch.inference_mode():
        predictions = run_episode(method, video, range(n), stream_keys(n, interval))
    assert sorted(predictions) == list(range(n))
    for index, prediction in predictions.items():
        assert isinstance(prediction, SegmentationPrediction) and prediction.index == index
        assert prediction.scores.shape == (19, video.info.height, video.info.width)
        assert torch.allclose(prediction.scores.sum(0), torch.ones(()), atol=1e-4)
        if not method.uses_keyframes:
            continue
        assert prediction.meta["key"] == (index in stream_keys(n, interval))


def test_start_resets_all_state(method: Method, tiny_dataset) -> None:
    a, b = tiny_dataset.split("val")[:2]
    keys = stream_keys(a.info.num_frames, 4)
    with torch.inference_mode():
        first = run_episode(method, a, range(a.info.num_frames), keys)
        run_episode(method, b, range(5), frozenset({2}))  # leave b half-way: state to clear
        again = run_episode(method, a, range(a.info.num_frames), keys)
    for index in first:
        assert torch.equal(first[index].scores, again[index].scores)


def test_meter_sees_only_declared_components(method: Method, tiny_dataset) -> None:
    video = tiny_dataset.split("val")[1]
    meter = TimingMeter()
    with torch.inference_mode():
        result = stream(method, video, 4, meter)
    seen = {name for step in result["components_s"] for name in step}
    assert seen <= set(method.components)
    assert "feature" in seen and "task" in seen
