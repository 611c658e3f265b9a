"""OpenCV's DIS optical flow (Kroeger et al., ECCV 2016) as a motion source: classical, no weights.

Direction. ``DISOpticalFlow.calc(I0, I1)`` returns, at every pixel x of I0, the flow f with
I0(x) ~ I1(x + f). The interface wants, at every pixel of the *current* frame, the offset to
where that content sits in the *reference* frame, so I0 is the current frame and I1 the
reference: ``calc(current, reference)`` is already reference position - current position.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from vidbench.api import Frame
from vidbench.methods.motion.sources import Motion, MotionSource, regrid

PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


def to_gray_uint8(image: torch.Tensor) -> np.ndarray:
    """(3, H, W) float RGB in [0, 1] -> (H, W) uint8 luma, the input DIS works on."""
    # in OpenCV, not torch: elementwise torch ops on a frame wake torch's thread pool, which
    # costs more than the flow itself on a busy CPU
    rgb = np.ascontiguousarray(image.detach().cpu().numpy().transpose(1, 2, 0))
    return cv2.convertScaleAbs(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), alpha=255)


class DISMotion(MotionSource):
    """Dense DIS flow between any two frames at full resolution, averaged onto the stride grid.

    ``threads`` is OpenCV's worker count, set process-wide (``cv2.setNumThreads``) and
    re-asserted before each call if something else changed it. Default 1: a second thread
    made DIS no faster (measured at 128x256 and 1280x720, every preset, OpenCV 5.0 pthreads),
    and a single thread stays within the CPU budget the harness gives torch (2 threads).
    """

    name = "dis"
    pairwise = True

    def __init__(self, preset: str = "fast", threads: int = 1) -> None:
        if preset not in PRESETS:
            raise ValueError(
                f"DISMotion: unknown preset {preset!r}; choose one of {', '.join(PRESETS)}"
            )
        if threads < 1:
            raise ValueError(f"DISMotion: threads must be >= 1, got {threads}")
        self.preset = preset
        self.threads = threads
        cv2.setNumThreads(threads)
        self._dis = cv2.DISOpticalFlow_create(PRESETS[preset])

    def estimate(self, current: Frame, reference: Frame, stride: int) -> Motion:
        if current.image.shape != reference.image.shape:
            raise ValueError(
                f"DISMotion: frames {current.index} and {reference.index} differ in size, "
                f"{tuple(current.image.shape)} vs {tuple(reference.image.shape)}"
            )
        if cv2.getNumThreads() != self.threads:
            cv2.setNumThreads(self.threads)
        flow = self._dis.calc(
            to_gray_uint8(current.image), to_gray_uint8(reference.image), None
        )  # (H, W, 2) float32 (dx, dy)
        field = torch.from_numpy(flow).permute(2, 0, 1).contiguous()
        hw = (field.shape[1], field.shape[2])
        displacement, valid = regrid(field, None, 1, stride, hw)
        return Motion(displacement.to(current.image.device), valid.to(current.image.device))
