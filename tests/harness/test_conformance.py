"""The adapter contract (vidbench.conformance), checked for every registered method of every
task (new methods get it for free): each method declares a tiny ``smoke`` configuration, its
task gives the shapes. ``bench check METHOD`` runs the same checks on one method."""

from __future__ import annotations

import pytest
from vidbench import conformance
from vidbench.api import Method
from vidbench.registry import METHODS

VARIANTS = [(name, {}) for name in METHODS.names()] + [
    ("interp-mv", {"fusion": "avg"}),
    ("interp-mv", {"fusion": "max"}),
    ("interp-mv", {"fusion": "backward"}),
    ("prop", {"motion": "dis"}),
    ("prop", {"motion": "raft", "reference": "key"}),
]


@pytest.fixture(scope="module", params=VARIANTS, ids=lambda v: ":".join([v[0], *v[1].values()]))
def built(request, tmp_path_factory) -> tuple[Method, object]:
    """(method, its task's tiny dataset), the method built from its smoke options."""
    name, options = request.param
    dataset = request.getfixturevalue(f"tiny_{METHODS.get(name).task}_dataset")
    spec = ":".join([name, *(f"{k}={v}" for k, v in options.items())])
    return conformance.build_smoke(spec, dataset, tmp_path_factory.mktemp("checkpoints")), dataset


def test_declares_a_registered_task_and_components(built) -> None:
    conformance.declares_task_and_components(*built)


@pytest.mark.parametrize("interval", [1, 3, 5])
def test_one_typed_prediction_per_fed_frame(built, interval: int) -> None:
    conformance.one_typed_prediction_per_fed_frame(*built, interval=interval)


def test_start_resets_all_state(built) -> None:
    conformance.start_resets_all_state(*built)


def test_meter_sees_only_declared_components(built) -> None:
    conformance.meter_sees_only_declared_components(*built)


def test_offline_batch_predicts_what_the_stream_predicts(built) -> None:
    conformance.offline_predicts_what_the_stream_predicts(*built)
