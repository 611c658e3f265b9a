"""The harness's meters: the only code that reads clocks or the FLOP counter.

Methods mark component boundaries with ``with meter("warp"):``; the runner brackets each
``step`` call. Components must not nest.
"""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from collections.abc import Iterator

from vidbench.flops import flop_counter


class TimingMeter:
    """Wall-clock time per component within the current step (CPU: no device sync needed)."""

    def __init__(self) -> None:
        self.current: dict[str, float] = defaultdict(float)

    @contextlib.contextmanager
    def __call__(self, component: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.current[component] += time.perf_counter() - start

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


def now() -> float:
    """The clock the runner brackets steps with."""
    return time.perf_counter()
