"""The harness's meters: the only code that reads clocks or the FLOP counter.

Methods mark component boundaries with ``with meter("warp"):``; the runner brackets each
``step`` call. Components must not nest.
"""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from collections.abc import Iterator

import torch
from vidbench.flops import flop_counter


class TimingMeter:
    """Wall-clock time per component within the current step, and the step clock.

    On a CUDA device (docs/measurement.md §5) the meter synchronises before reading the clock at
    every boundary, and brackets each step with CUDA events so that device time is kept beside
    wall time. On the CPU no synchronisation is needed and device time is None.
    """

    def __init__(self, device: str = "cpu") -> None:
        self.current: dict[str, float] = defaultdict(float)
        self.cuda = device.startswith("cuda")
        self._events: tuple[torch.cuda.Event, torch.cuda.Event] | None = None

    def now(self) -> float:
        if self.cuda:
            torch.cuda.synchronize()
        return time.perf_counter()

    @contextlib.contextmanager
    def __call__(self, component: str) -> Iterator[None]:
        start = self.now()
        try:
            yield
        finally:
            self.current[component] += self.now() - start

    def start_step(self) -> float:
        """Wall time at the start of a step (after the device is idle)."""
        start = self.now()
        if self.cuda:
            self._events = (
                torch.cuda.Event(enable_timing=True),
                torch.cuda.Event(enable_timing=True),
            )
            self._events[0].record()
        return start

    def stop_step(self) -> tuple[float, float | None]:
        """Wall time at the end of the step and the step's device seconds (None on the CPU)."""
        if self.cuda and self._events is not None:
            self._events[1].record()
            stop = self.now()
            return stop, self._events[0].elapsed_time(self._events[1]) / 1e3
        return self.now(), None

    def take(self) -> dict[str, float]:
        """Component seconds accumulated since the last take."""
        taken, self.current = dict(self.current), defaultdict(float)
        return taken


class FlopMeter:
    """FLOPs per component, read from one ``FlopCounterMode`` active over the whole pass."""

    def __init__(self) -> None:
        self.counter = flop_counter()
        self.flops: dict[str, int] = defaultdict(int)
        self.calls: dict[str, int] = defaultdict(int)

    def __enter__(self) -> FlopMeter:
        self.counter.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.counter.__exit__(*exc)

    @contextlib.contextmanager
    def __call__(self, component: str) -> Iterator[None]:
        before = self.counter.get_total_flops()
        try:
            yield
        finally:
            self.flops[component] += self.counter.get_total_flops() - before
            self.calls[component] += 1
