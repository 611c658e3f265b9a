"""The seed-001 detection adapters: the paper's key sampling, keys assigned by the protocol
(frames before a middle key wait for it), and the shared detector at interval 1."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from vidbench.meter import TimingMeter
from vidbench.methods.detection.video_detection import DFF, PSLA, RFCN
from vidbench.methods.psla.training import psla_keys
from vidbench.passes import run_episode, stream
from vidbench.protocols import FixedKey
from vidbench.registry import parse_config
from vidbench.workspace import HarnessWorkspace


def test_psla_key_sampling_follows_the_paper() -> None:
    rng = np.random.default_rng(0)
    draws = [psla_keys(rng, 50, 10, 100) for _ in range(500)]
    first, second = zip(*draws)
    assert min(first) == 40 and max(first) == 45  # [n - l, n - l/2]
    assert min(second) == 45 and max(second) == 55  # [n - l/2, n + l/2]
    assert psla_keys(rng, 0, 10, 1) == (0, 0)  # a still image: three times the same frame


@pytest.fixture(scope="module")
def built(tiny_detection_dataset, tmp_path_factory) -> dict:
    workspace = HarnessWorkspace(tiny_detection_dataset, tmp_path_factory.mktemp("ck"), seed=0)
    made = {}
    chosen = (
        (RFCN, {}), (DFF, {}), (PSLA, {"setting": "a"}), (PSLA, {}), (PSLA, {"propagate_from": "preceding"})
    )
    for cls, options in chosen:
        config = parse_config(cls.Config, {**cls.smoke, **options}, cls.name)
        made[cls.name + options.get("setting", "") + options.get("propagate_from", "")] = cls(
            config, workspace
        )
    return made


def _detect(method, video, interval: int) -> dict:
    protocol = FixedKey()
    setting = {"interval": interval, "keys": "middle"}
    frames, keys = protocol.stream(video.info.num_frames, setting)
    with torch.inference_mode():
        return run_episode(method, video, frames, keys, protocol.key_of(setting, keys))


def test_at_interval_one_every_method_is_the_shared_detector(built, tiny_detection_dataset):
    video = tiny_detection_dataset.split("val")[0]
    reference = _detect(built["rfcn"], video, 1)
    for name in ("dff", "psla" + "a"):
        for index, prediction in _detect(built[name], video, 1).items():
            assert torch.equal(prediction.boxes, reference[index].boxes), name


def test_frames_before_a_middle_key_wait_for_it(built, tiny_detection_dataset) -> None:
    video = tiny_detection_dataset.split("val")[1]
    setting = {"interval": 4, "keys": "middle"}  # 8 frames: keys 2 and 6
    for name in ("dff", "psla", "pslapreceding"):
        with torch.inference_mode():
            result = stream(built[name], video, setting, TimingMeter())
        assert result["kind"][:4] == ["waiting", "waiting", "key", "intermediate"], name
        if name == "pslapreceding":  # frames 4, 5 use key 2, the one already seen
            assert result["delay_frames"] == [2, 1, 0, 0, 0, 0, 0, 0]
            assert result["kind"][4:6] == ["intermediate", "intermediate"]
        else:  # the segment's key, 6, which comes later
            assert result["delay_frames"] == [2, 1, 0, 0, 2, 1, 0, 0], name
    with torch.inference_mode():
        first = stream(built["psla"], video, {"interval": 4, "keys": "first"}, TimingMeter())
    assert first["delay_frames"] == [0] * 8


def test_non_key_frames_use_the_key_of_their_segment(built, tiny_detection_dataset) -> None:
    video = tiny_detection_dataset.split("val")[0]
    predictions = _detect(built["psla"], video, 4)
    keys = {i for i, p in predictions.items() if p.meta["key"]}
    assert keys == {2, 6}


def test_joint_training_updates_only_the_parts_it_names(tiny_detection_dataset, tmp_path) -> None:
    workspace = HarnessWorkspace(tiny_detection_dataset, tmp_path, seed=0)
    smoke = {**PSLA.smoke, "setting": "a"}
    frozen = PSLA(parse_config(PSLA.Config, smoke, "psla"), workspace)
    task = PSLA(parse_config(PSLA.Config, {**smoke, "joint": "task"}, "psla"), workspace)
    every = PSLA(parse_config(PSLA.Config, {**smoke, "joint": "all"}, "psla"), workspace)
    shared = RFCN(parse_config(RFCN.Config, RFCN.smoke, "rfcn"), workspace).net

    def same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
        return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))

    assert same(frozen.net, shared)  # joint=none: the shared detector, untouched
    assert same(task.net.features, shared.features) and not same(task.net.task, shared.task)
    assert not same(every.net.features, shared.features) and not same(every.net.task, shared.task)
    assert not any(p.requires_grad for p in every.net.parameters())
    assert len({m.config.recipe_key()["joint"] for m in (frozen, task, every)}) == 3
    with pytest.raises(ValueError, match="option 'joint' is 'head'"):
        parse_config(PSLA.Config, {"joint": "head"}, "psla")
