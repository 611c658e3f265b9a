"""The one record type: what produced a measurement (its identity) and what it measured.

Every record the runner stores is built here, so that accuracy, speed and failure records
share one shape: ``record_id`` (a hash of the identity, code included), ``measured_id`` (the
same without the code fingerprint), the identity's fields, the label,
the run context (run id, provenance), the result fields and the creation time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from vidbench.store import record_id


def jsonable(value: Any) -> Any:
    """``value`` with every mapping's keys as strings (JSON's own rule, applied up front so a
    record reads the same before and after a round trip through the store)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


@dataclass(frozen=True)
class Record:
    """One stored measurement (or failure, with ``result = {"error": ...}``)."""

    identity: dict[str, Any]
    label: str
    context: dict[str, Any]
    result: dict[str, Any]
    created: float = field(default_factory=time.time)

    @property
    def record_id(self) -> str:
        return record_id(self.identity)

    @property
    def measured_id(self) -> str:
        """The identity without the code fingerprint: what was measured (method, options,
        dataset, checkpoints, setting), stable across commits, for the gate and goldens."""
        return record_id({k: v for k, v in self.identity.items() if k != "code"})

    def to_json(self) -> dict[str, Any]:
        return jsonable(
            {
                "record_id": self.record_id,
                "measured_id": self.measured_id,
                **self.identity,
                "label": self.label,
                **self.context,
                **self.result,
                "created": self.created,
            }
        )
