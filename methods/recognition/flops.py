"""GMACs per video of AdaFocus, AdaFocus+ and the Table 3 models, counted by PyTorch's
FlopCounterMode (vidbench.flops) on the actual forward pass of one video (batch 1), reported
as multiply-adds (FLOPs / 2), the paper's convention (footnote 1).

What the count includes (and why it matches Tables 1-3): every convolution and linear layer
that the forward runs: f_G (MobileNetV2 features at 224, 0.30 GMACs/frame; no ImageNet head),
pi (and pi' for AdaFocus+), f_L on the patch (or full frame), f_C (GRU + linear). Batch norm,
ReLU, pooling, softmax, the temporal shift and the crop count zero, as the paper's thop-style
counting. GRU cells on CPU decompose into aten.mm/addmm, which the counter sees.
"""

from __future__ import annotations

import torch
from torch import nn
from vidbench.flops import flop_counter
from vidbench.methods.recognition.adafocus import AdaFocus

CHANNELS = 3


def count_gmacs(module: nn.Module, *inputs: torch.Tensor, **kwargs: object) -> float:
    """GMACs of one no-grad forward of ``module`` on ``inputs`` (FLOPs / 2 / 1e9)."""
    with torch.no_grad(), flop_counter() as counter:
        module(*inputs, **kwargs)
    return counter.get_total_flops() / 2e9


def video_gmacs(
    model: nn.Module, frames: int, frame_size: tuple[int, int] = (224, 224), **kwargs: object
) -> float:
    """GMACs of ``model`` on one video of ``frames`` frames (zeros: the cost of a
    non-skipping model does not depend on pixel values)."""
    video = torch.zeros(1, frames, CHANNELS, *frame_size)
    was_training = model.training
    model.eval()
    try:
        return count_gmacs(model, video, **kwargs)
    finally:
        model.train(was_training)


def adafocus_plus_gmacs(model: AdaFocus, keep: torch.Tensor) -> float:
    """GMACs of AdaFocus+ on one video whose frames f_L processes only where ``keep`` (T,) is
    True (sec. 3.3): f_G, pi and pi' on every frame, f_L on the kept ones."""
    if model.keep_policy is None:
        raise ValueError("adafocus_plus_gmacs: the model has no keep policy (skip_policy=False)")
    keep = keep.bool().reshape(1, -1)
    return video_gmacs(model, keep.shape[1], model.config.frame_size, keep=keep)


def tsm_video_gmacs(
    model: nn.Module,
    glance_frames: int,
    focus_frames: int | None = None,
    frame_size: tuple[int, int] = (224, 224),
) -> float:
    """GMACs of a Table 3 model on one video: ``tsm`` / ``tsm+`` take one clip of
    ``glance_frames``; ``adafocus-tsm`` also a clip of ``focus_frames``."""
    glance = torch.zeros(1, glance_frames, CHANNELS, *frame_size)
    inputs = [glance]
    if focus_frames is not None:
        inputs.append(torch.zeros(1, focus_frames, CHANNELS, *frame_size))
    was_training = model.training
    model.eval()
    try:
        return count_gmacs(model, *inputs)
    finally:
        model.train(was_training)
