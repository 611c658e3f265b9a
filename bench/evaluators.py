"""The evaluator contract every task's metric state follows (docs/measurement.md §13)."""

from __future__ import annotations

import abc
from typing import Any, ClassVar, Generic, TypeVar

S = TypeVar("S")
Stratum = int | str


class Evaluator(abc.ABC, Generic[S]):
    """Streaming metric state of one task: sufficient statistics with an associative ``merge``,
    so that resuming, multi-process reduction and re-rendering from records are one operation.

    ``update`` adds one scored frame (or video) tagged with its protocol stratum (keyframe
    offset, motion-speed bin, online step); ``compute`` is pure and names its metrics
    ``prefix/metric``; ``to_json``/``from_json`` round-trip the state through a record.
    """

    prefix: ClassVar[str]

    @abc.abstractmethod
    def empty(self) -> S: ...

    @abc.abstractmethod
    def update(self, state: S, prediction: Any, target: Any, stratum: Stratum) -> S: ...

    @abc.abstractmethod
    def merge(self, a: S, b: S) -> S: ...

    @abc.abstractmethod
    def compute(self, state: S) -> dict[str, Any]: ...

    @abc.abstractmethod
    def to_json(self, state: S) -> Any: ...

    @abc.abstractmethod
    def from_json(self, data: Any) -> S: ...
