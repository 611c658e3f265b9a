"""Building what a comparison runs: the dataset, the methods (trained or loaded) and the
identity every record of a method shares; protocol settings are checked before any training."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from vidbench.api import DataError, Method, VideoSource
from vidbench.protocols import Setting
from vidbench.registry import DATASETS, METHODS, RegistryError, parse_config, split_spec
from vidbench.source_fingerprint import code_fingerprint
from vidbench.tasks import get_task
from vidbench.workspace import HarnessWorkspace


@dataclass(frozen=True)
class RunSettings:
    """Everything about a comparison that is not the method list."""

    intervals: tuple[int, ...] = tuple(range(1, 11))
    speed_videos: int = 4
    speed_rounds: int = 5
    threads: int = 2
    speed_threads: int | None = None  # threads while timing (None: ``threads``); the gate: 1
    seed: int = 0
    protocol_options: tuple[tuple[str, str], ...] = ()  # e.g. (("keys", "first"),)
    device: str = "cpu"  # "cuda" or "cuda:N": the harness moves modules and frames there
    batch: int = 8  # videos per call in the ``offline`` scenario (tasks that have it)
    data_root: Path = Path("data")
    checkpoint_dir: Path = Path("checkpoints")
    rerun: tuple[str, ...] = ()  # method names or labels whose stored records are re-made
    rerun_kinds: tuple[str, ...] = ("accuracy", "speed")  # which of their records
    accuracy: bool = True  # False: speed only (a speed study on untrained-size weights)


@dataclass
class Prepared:
    """A built method with the identity shared by all its records and the protocol settings
    it runs at."""

    label: str
    method: Method
    identity: dict[str, Any]
    settings: list[Setting]
    config: Any = None


def build_dataset(name: str, options: dict[str, str], data_root: Path) -> Any:
    cls = DATASETS.get(name)
    return cls(parse_config(cls.Config, options, f"dataset '{name}'"), data_root)


def canonical_label(name: str, config: Any, defaults: Any) -> str:
    """``interp-mv:fusion=avg`` with only the options that differ from the defaults."""
    changed = [
        f"{f.name}={getattr(config, f.name)}"
        for f in dataclasses.fields(config)
        if getattr(config, f.name) != getattr(defaults, f.name)
    ]
    return ":".join([name, *changed])


def setting_text(setting: Setting) -> str:
    """``interval=3`` for logs and progress bars."""
    return " ".join(f"{k}={v}" for k, v in setting.items())


def eval_split(dataset: Any) -> str:
    """The split a dataset is scored on: ``val`` unless it names another (CamVid: ``test``)."""
    return getattr(dataset, "eval_split", "val")


def check_device(device: str) -> None:
    """Refuse a device this machine does not have, before any training."""
    if device == "cpu":
        return
    if not device.startswith("cuda"):
        raise RegistryError(f"Unknown device '{device}': use cpu, cuda or cuda:N.")
    if not torch.cuda.is_available():
        raise RegistryError(f"--device {device}: this machine has no CUDA device.")


def prepare_method(spec: str, dataset: Any, settings: RunSettings) -> Prepared:
    """Parse ``name:key=value``, build (train or load) the method, and fix its identity."""
    name, options = split_spec(spec)
    cls = METHODS.get(name)
    config = parse_config(cls.Config, options, f"method '{name}'")
    return prepare_config(name, config, dataset, settings)


def prepare_config(name: str, config: Any, dataset: Any, settings: RunSettings) -> Prepared:
    """Build (train or load) method ``name`` with ``config`` and fix its identity."""
    cls = METHODS.get(name)
    check_device(settings.device)
    workspace = HarnessWorkspace(dataset, settings.checkpoint_dir, settings.seed)
    torch.manual_seed(settings.seed)
    method = cls(config, workspace)
    if settings.device != "cpu":
        method.to(settings.device)
    task = get_task(cls.task)
    identity = {
        "method": name,
        "config": dataclasses.asdict(config),
        "dataset": dataset.describe(),
        "split": eval_split(dataset),
        "checkpoints": workspace.used,
        "seed": settings.seed,
        "code": code_fingerprint(cls.__module__, type(task).__module__, type(dataset).__module__),
    }
    return Prepared(
        canonical_label(name, config, cls.Config()),
        method,
        identity,
        task.protocol.settings(settings.intervals, cls, dict(settings.protocol_options)),
        config,
    )


def speed_baseline_config(item: Prepared) -> tuple[str, Any]:
    """The task's speed baseline for ``item``, built like it: the options of the task's
    ``baseline_shares`` (network size, training budget, scale) are taken from ``item``, so that
    the speed-up divides by the per-frame model the method itself builds on."""
    task = get_task(type(item.method).task)
    base = METHODS.get(task.speed_baseline).Config
    own = {f.name for f in dataclasses.fields(item.config)}
    shared = [k for k in task.baseline_shares if k in own and k in base.__dataclass_fields__]
    return task.speed_baseline, base(**{k: getattr(item.config, k) for k in shared})


def check_protocol(
    method_specs: Sequence[str], dataset: Any, videos: Sequence[VideoSource], settings: RunSettings
) -> None:
    """Refuse, before any training, a method whose task the dataset has no labels for, or
    protocol settings the videos cannot support."""
    for spec in method_specs:
        name = split_spec(spec)[0]
        cls = METHODS.get(name)
        if cls.task not in dataset.tasks:
            raise RegistryError(
                f"Method '{name}' is a {cls.task} method; dataset '{dataset.name}' has labels "
                f"for {', '.join(dataset.tasks)} only."
            )
        protocol = get_task(cls.task).protocol
        options = dict(settings.protocol_options)
        for setting in protocol.settings(settings.intervals, cls, options):
            try:
                protocol.episodes(videos, setting, cls)
            except DataError:
                pass  # an unreadable video fails only the records it spoils, in the passes
