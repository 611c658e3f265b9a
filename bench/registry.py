"""Name -> implementation registries with lazy import and a helpful miss.

Entries are ``"module:attribute"`` strings so that listing names imports nothing. Names are
kebab-case. Options are given as ``name:key=value:key=value`` and parsed into the
implementation's frozen ``Config`` dataclass; an unknown key is an error listing the fields.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import inspect
import math
import pkgutil
import re
import typing
from importlib import metadata
from typing import Any


class RegistryError(ValueError):
    """An unknown name or a bad option; the message lists what is available."""


class Registry:
    """A kebab-case name -> lazily imported class mapping. Built-in entries come with the
    harness; plug-ins join through the Python entry-point ``group`` (``vidbench.methods``,
    ``vidbench.datasets``: a package declares ``name = "module:Class"``) or ``register``
    (``bench --plugin MODULE``). Each entry remembers where it came from."""

    def __init__(self, kind: str, entries: dict[str, str], group: str | None = None) -> None:
        self.kind = kind
        self._entries = dict(entries)
        self._sources = {name: "built-in" for name in entries}
        self._group = group
        self._discovered = group is None

    def _discover(self) -> None:
        """Register the installed packages' entry points of this registry's group, once."""
        if self._discovered:
            return
        self._discovered = True
        for point in metadata.entry_points(group=self._group):
            package = point.dist.name if point.dist else "an installed package"
            self.register(point.name, point.value, f"entry point of {package}")

    def names(self) -> list[str]:
        self._discover()
        return sorted(self._entries)

    def source(self, name: str) -> str:
        """Where ``name`` came from: built-in, an entry point's package, or a --plugin module."""
        self._discover()
        return self._sources[name]

    def register(self, name: str, target: str, source: str = "registered at run time") -> None:
        self._discover()
        if name in self._entries:
            raise RegistryError(
                f"{self.kind} '{name}' is already registered ({self._entries[name]}, "
                f"{self._sources[name]}); {source} cannot take the name."
            )
        self._entries[name] = target
        self._sources[name] = source

    def get(self, name: str) -> Any:
        self._discover()
        if name not in self._entries:
            close = difflib.get_close_matches(name, self._entries, n=3, cutoff=0.5)
            hint = f" Did you mean: {', '.join(close)}?" if close else ""
            raise RegistryError(
                f"Unknown {self.kind} '{name}'.{hint} Available: {', '.join(self.names())}."
            )
        module_name, attribute = self._entries[name].split(":")
        try:
            return getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError) as error:
            raise RegistryError(
                f"{self.kind} '{name}' ({self._sources[name]}) points to "
                f"{self._entries[name]}, which cannot be imported: {error}"
            ) from error


def load_plugin(module_name: str) -> list[str]:
    """Import ``module_name`` (a module, or a package and all its modules) and register every
    method (a ``vidbench.api.Method`` subclass) and dataset (a class with ``Config``, ``tasks``
    and ``split``) defined there, under its ``name``; returns the names. For one-off use:
    packages declare entry points instead."""
    from vidbench.api import Method

    try:
        module = importlib.import_module(module_name)
        modules = [module] + [
            importlib.import_module(info.name)
            for info in pkgutil.walk_packages(getattr(module, "__path__", []), f"{module_name}.")
        ]
    except ImportError as error:
        raise RegistryError(f"--plugin {module_name}: cannot import it ({error}).") from error
    added = []
    for module, value in ((m, v) for m in modules for v in vars(m).values()):
        if not isinstance(value, type) or value.__module__ != module.__name__:
            continue
        if issubclass(value, Method) and getattr(value, "name", ""):
            registry = METHODS
        elif all(hasattr(value, a) for a in ("Config", "tasks", "split", "name")):
            registry = DATASETS
        else:
            continue
        target = f"{module.__name__}:{value.__name__}"
        registry.register(value.name, target, f"--plugin {module_name}")
        added.append(value.name)
    if not added:
        raise RegistryError(f"--plugin {module_name}: it defines no method or dataset to register.")
    return added


METHODS = Registry(
    "method",
    {
        "frame": "vidbench.methods.segmentation.frame:FrameBaseline",
        "prop": "vidbench.methods.segmentation.propagation:Propagation",
        "prop-mv": "vidbench.methods.segmentation.propagation:PropMV",
        "prop-flow": "vidbench.methods.segmentation.propagation:PropFlow",
        "interp-mv": "vidbench.methods.segmentation.interpolation:InterpMV",
        "rfcn": "vidbench.methods.detection.video_detection:RFCN",
        "dff": "vidbench.methods.detection.video_detection:DFF",
        "psla": "vidbench.methods.detection.video_detection:PSLA",
        "psla-seg": "vidbench.methods.segmentation.psla_segmentation:PSLASegmentation",
        "adafocus": "vidbench.methods.recognition.adafocus_method:AdaFocusMethod",
        "adafocus+": "vidbench.methods.recognition.adafocus_method:AdaFocusPlusMethod",
        "adafocus-tsm": "vidbench.methods.recognition.clip_methods:AdaFocusTSMMethod",
        "tsm": "vidbench.methods.recognition.clip_methods:TSMMethod",
        "tsm+": "vidbench.methods.recognition.clip_methods:TSMPlusMethod",
        "r50-avg": "vidbench.methods.recognition.clip_methods:FrameAverageMethod",
        "r50-gru": "vidbench.methods.recognition.clip_methods:FrameGRUMethod",
    },
    group="vidbench.methods",
)

DATASETS = Registry(
    "dataset",
    {
        "synthcity": "vidbench.datasets.segmentation.synthcity.dataset:SynthCity",
        "synthdet": "vidbench.datasets.detection.synthdet.dataset:SynthDet",
        "synthaction": "vidbench.datasets.recognition.synthaction.dataset:SynthAction",
        "cityscapes": "vidbench.datasets.segmentation.cityscapes:Cityscapes",
        "camvid": "vidbench.datasets.segmentation.camvid:CamVid",
        "imagenet-vid": "vidbench.datasets.detection.imagenet_vid:ImageNetVID",
        "activitynet": "vidbench.datasets.recognition.sets:ActivityNet",
        "fcvid": "vidbench.datasets.recognition.sets:FCVID",
        "mini-kinetics": "vidbench.datasets.recognition.sets:MiniKinetics",
        "sth-sth-v1": "vidbench.datasets.recognition.sets:SomethingV1",
        "sth-sth-v2": "vidbench.datasets.recognition.sets:SomethingV2",
    },
    group="vidbench.datasets",
)

TASKS = Registry(
    "task",
    {
        "segmentation": "vidbench.tasks.segmentation:Segmentation",
        "detection": "vidbench.tasks.detection:Detection",
        "recognition": "vidbench.tasks.recognition:Recognition",
    },
)

MOTION_SOURCES = Registry(
    "motion source",
    {
        "mv": "vidbench.methods.motion.sources:CodecMotion",
        "flownet": "vidbench.methods.motion.flownet:FlowNetMotion",
        "dis": "vidbench.methods.motion.dis:DISMotion",
        "raft": "vidbench.methods.motion.raft:RAFTMotion",
    },
)

STUDIES = Registry(
    "study",
    {
        "motion": "vidbench.studies.motion:run_motion_study",
        "focus": "vidbench.studies.focus:run_focus_study",
        "paper-speed": "vidbench.studies.paper_speed:run_paper_speed",
    },
)


def split_spec(spec: str) -> tuple[str, dict[str, str]]:
    """``"interp-mv:fusion=avg"`` -> ``("interp-mv", {"fusion": "avg"})``."""
    name, *items = spec.strip().split(":")
    options: dict[str, str] = {}
    for item in filter(None, items):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise RegistryError(f"Bad option '{item}' in '{spec}': expected key=value.")
        options[key.strip()] = value.strip()
    return name, options


def parse_config(config_cls: type, options: dict[str, str], owner: str) -> Any:
    """Build the frozen dataclass ``config_cls`` from string options, casting by field type."""
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    hints = typing.get_type_hints(config_cls)
    values: dict[str, Any] = {}
    for key, raw in options.items():
        if key not in fields:
            raise RegistryError(
                f"Unknown option '{key}' for {owner}. Fields: {', '.join(fields) or '(none)'}."
            )
        values[key] = _cast(raw, hints[key], f"{owner} option '{key}'")
        _check_number(values[key], f"{owner} option '{key}'")
    try:
        return config_cls(**values)
    except ValueError as error:
        raise RegistryError(f"Bad options for {owner}: {error}") from error


def _check_number(value: Any, what: str) -> None:
    """Every numeric option is finite and not negative (no option has a meaningful negative
    value; 0 means "default" or "all" where a docstring says so). Each config's own checks
    (``__post_init__``) add the upper bounds."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise RegistryError(f"{what} is {value}; it must be a finite number.")
    if value < 0:
        raise RegistryError(f"{what} is {value}; it must be >= 0.")


def _cast(raw: str, annotation: Any, what: str) -> Any:
    if typing.get_origin(annotation) is typing.Literal:
        allowed = typing.get_args(annotation)
        if raw not in allowed:
            raise RegistryError(f"{what} is '{raw}'; allowed: {', '.join(map(str, allowed))}.")
        return raw
    try:
        if annotation is bool:
            if raw.lower() not in {"true", "false", "1", "0"}:
                raise ValueError(raw)
            return raw.lower() in {"true", "1"}
        return annotation(raw)
    except (TypeError, ValueError) as error:
        raise RegistryError(f"{what} is '{raw}', not a valid {annotation.__name__}.") from error


def describe_options(config_cls: type) -> list[dict[str, Any]]:
    """Each option of a config: name, type, default, allowed values (a ``Literal``'s) and the
    note its source line carries (``epochs: int = 0  # 0 = the preset's``), for ``bench list``
    and the documentation."""
    hints = typing.get_type_hints(config_cls)
    notes = _field_notes(config_cls)
    rows = []
    for f in dataclasses.fields(config_cls):
        hint = hints[f.name]
        literal = typing.get_origin(hint) is typing.Literal
        rows.append({
            "name": f.name,
            "type": "choice" if literal else getattr(hint, "__name__", str(hint)),
            "default": f.default,
            "allowed": list(typing.get_args(hint)) if literal else None,
            "note": notes.get(f.name, ""),
        })
    return rows


def _field_notes(config_cls: type) -> dict[str, str]:
    """Trailing comments of the field lines of ``config_cls`` and its dataclass bases."""
    notes: dict[str, str] = {}
    for cls in reversed(config_cls.__mro__):
        if not dataclasses.is_dataclass(cls):
            continue
        try:
            source = inspect.getsource(cls)
        except (OSError, TypeError):
            continue
        for match in re.finditer(r"^\s+(\w+)\s*:[^=\n]+=[^#\n]*#\s*(.+)$", source, re.MULTILINE):
            notes[match.group(1)] = match.group(2).strip()
    return notes
