"""Issue 18's readings of seed 002: 12 distinct focus frames, the categorical AdaFocus-TSM
policy, stage III sampling from pi, PPO's K epochs, the warm-up + cosine schedule, the CPU
demo's ``resnet10-mini`` and the training augmentation of the clips."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest
import torch
from vidbench.methods.recognition.adafocus import LOCAL_ARCHS, candidate_grid, local_backbone
from vidbench.methods.recognition.train_clips import augment_clips, crop_sides
from vidbench.methods.recognition.training import (
    PPO_EPOCHS,
    PPOOptions,
    TrainOptions,
    frame_indices,
    lr_factor,
    split_glance_focus,
    train_adafocus_tsm,
)
from vidbench.methods.recognition.tsm import AdaFocusTSM, TSMConfig

CLASSES, SIZE = 3, 48


def test_focus_frames_are_distinct_segment_centres() -> None:
    assert frame_indices(24, 8).tolist() == [1, 4, 7, 10, 13, 16, 19, 22]  # exact centres
    assert frame_indices(24, 12).tolist() == list(range(1, 24, 2))
    assert frame_indices(12, 12).tolist() == list(range(12))
    video = torch.arange(24.0).view(1, 24, 1, 1, 1).expand(2, 24, 3, 4, 4)
    glance, focus = split_glance_focus(video, 8, 12)
    assert glance.shape[1] == 8 and focus[0, :, 0, 0, 0].unique().numel() == 12
    with pytest.raises(ValueError, match="12 distinct frames"):
        split_glance_focus(video[:, :8], 8, 12)  # the old 8-frame clip: 4 repeats


def test_paper_defaults() -> None:
    options = TrainOptions()
    assert options.sample_finetune and options.ppo.epochs == PPO_EPOCHS == 3
    assert TSMConfig().location_policy == "categorical" and TSMConfig().num_candidates == 49
    with pytest.raises(ValueError, match="steps_per_epoch"):
        TrainOptions(lr_schedule="cosine")
    with pytest.raises(ValueError, match="location_policy"):
        TSMConfig(location_policy="uniform")


def test_warmup_cosine_schedule() -> None:
    factors = [lr_factor(step, 100) for step in range(100)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert factors[10] == pytest.approx(1.0) and factors[-1] < 0.001
    assert all(a >= b for a, b in itertools.pairwise(factors[9:]))


def test_mini_local_network() -> None:
    net, channels = local_backbone("resnet10-mini")
    assert channels == 128 and "resnet10-mini" in LOCAL_ARCHS
    assert net(torch.rand(2, 3, 32, 32)).shape == (2, 128)
    assert sum(p.numel() for p in net.parameters()) < 400_000  # ResNet-18: 11 M


def toy_batches(count: int, frames: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(0)
    video = torch.rand(count, frames, 3, SIZE, SIZE, generator=generator)
    labels = torch.randint(CLASSES, (count,), generator=generator)
    return [(video[i : i + 4], labels[i : i + 4]) for i in range(0, count, 4)]


@pytest.mark.parametrize("location", ["categorical", "gaussian"])
def test_adafocus_tsm_policies(location: str) -> None:
    torch.manual_seed(0)
    config = TSMConfig(
        num_classes=CLASSES, glance_frames=4, focus_frames=6, patch=24, frame_size=(SIZE, SIZE),
        global_width=0.5, local_arch="resnet10-mini", hidden=16, dropout=0.0, num_candidates=25,
        location_policy=location,
    )
    options = TrainOptions(progress=False, ppo=PPOOptions(epochs=2), lr_schedule="cosine",
                           steps_per_epoch=2)
    model, logs = train_adafocus_tsm(AdaFocusTSM(config), toy_batches(8, 6), options)
    assert set(logs) == {"warmup", "policy", "finetune"}
    glance, focus = split_glance_focus(toy_batches(4, 6)[0][0], 4, 6)
    with torch.no_grad():
        location_out = model(glance, focus)["location"]
    if location == "categorical":  # a corner of the candidate grid, pi's argmax
        grid = candidate_grid(25).float()
        assert all(any(torch.equal(row, c) for c in grid) for row in location_out)
        assert model.policy.actor.out_features == 25
    else:
        assert model.policy.actor.out_features == 2
    assert 0 <= location_out.min() and location_out.max() <= 1


@dataclass(frozen=True)
class Augment:
    scales: tuple[float, ...] = ()
    crop: int = 0
    flip: bool = False


def test_clip_augmentation() -> None:
    clips = torch.rand(3, 4, 3, 20, 20)
    same = augment_clips(clips, None, torch.Generator().manual_seed(0))
    assert same is clips
    flipped = augment_clips(clips, Augment(flip=True), torch.Generator().manual_seed(0))
    for out, clip in zip(flipped, clips):  # the whole clip is mirrored or none of it
        assert torch.equal(out, clip) or torch.equal(out, clip.flip(-1))
    cropped = augment_clips(clips, Augment((1.0, 0.75, 0.5), 16, True),
                            torch.Generator().manual_seed(1))
    again = augment_clips(clips, Augment((1.0, 0.75, 0.5), 16, True),
                          torch.Generator().manual_seed(1))
    assert cropped.shape == (3, 4, 3, 16, 16) and torch.equal(cropped, again)
    generator = torch.Generator().manual_seed(0)
    sides = {crop_sides(100, (1.0, 0.875, 0.75, 0.66), generator) for _ in range(300)}
    assert (100, 66) not in sides and (100, 87) in sides and (66, 75) in sides
