"""Tasks: what a kind of prediction is scored by, how it is timed, reported and gated.

A task is registered by name like a method (``vidbench.registry.TASKS``). It owns its typed
predictions, its evaluator, its accuracy protocol and speed scenario, its headline metrics with
their regression tolerances, its cost unit, its speed baseline and its report. The runner, the
store, the reports and the regression gate are written once against this interface.
"""

from __future__ import annotations

import abc
import importlib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, ClassVar, Literal

from vidbench.api import VideoInfo
from vidbench.evaluators import Evaluator
from vidbench.protocols import Protocol
from vidbench.registry import TASKS


@dataclass(frozen=True)
class Headline:
    """A metric the task's tables lead with; the CI gate allows ``tolerance`` (its units)."""

    metric: str
    title: str
    tolerance: float


@dataclass(frozen=True)
class CiRun:
    """The small configuration the regression gate runs for a task."""

    dataset: str
    methods: tuple[str, ...]
    intervals: tuple[int, ...]
    dataset_options: dict[str, str] = field(default_factory=dict)
    speed_videos: int = 4  # enough frames for a VALID timing (64 samples, 1 s over the rounds)


class Task(abc.ABC):
    """The task interface (module docstring); subclasses are stateless."""

    name: ClassVar[str]
    prediction_type: ClassVar[type]
    cost_unit: ClassVar[Literal["frame", "video"]]
    video_level: ClassVar[bool] = False  # one extra prediction with index None per video
    protocol: ClassVar[Protocol]
    headline: ClassVar[tuple[Headline, ...]]
    per_stratum_metric: ClassVar[str]
    worst_metric: ClassVar[str]
    default_dataset: ClassVar[str]  # the embedded world `bench compare` uses by default
    speed_baseline: ClassVar[str]  # the method whose fps the speed-ups divide by
    # the options the speed baseline takes from the method it is timed beside (where both
    # have them): the network and its training, so the speed-up divides by the very per-frame
    # model the method builds on
    baseline_shares: ClassVar[tuple[str, ...]]
    scenarios: ClassVar[tuple[str, ...]] = ("stream",)  # speed scenarios: stream, offline
    must_count: ClassVar[tuple[str, ...]]  # components whose FLOPs may not read zero
    report: ClassVar[str]  # "module:function" rendering this task's records into a folder
    ci: ClassVar[CiRun]

    @abc.abstractmethod
    def evaluator(self, dataset: Any) -> Evaluator:
        """A fresh evaluator for ``dataset``'s classes."""

    @abc.abstractmethod
    def check_prediction(self, prediction: Any, video: VideoInfo, num_classes: int) -> None:
        """Raise ValueError unless ``prediction`` has the task's type, shapes and ranges."""

    @abc.abstractmethod
    def agreement(self, a: Any, b: Any) -> float:
        """How far two predictions of one frame agree, 1.0 when identical (spot checks)."""

    def render(self, records: list[dict[str, Any]], out_dir: Path) -> dict[str, Path]:
        """This task's tables and figures from ``records`` (a pure function of them)."""
        module, function = self.report.split(":")
        return getattr(importlib.import_module(module), function)(records, out_dir)


@cache
def get_task(name: str) -> Task:
    """The registered task ``name``."""
    return TASKS.get(name)()


def task_of_protocol(protocol: str) -> Task:
    """The task that owns an accuracy protocol or a speed scenario's protocol name."""
    for name in TASKS.names():
        task = get_task(name)
        if protocol in (task.protocol.name, task.protocol.stream_name):
            return task
    raise ValueError(f"No registered task owns protocol '{protocol}'.")
