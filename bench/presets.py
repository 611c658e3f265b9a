"""Presets: training budgets and dataset sizes for every method at once (``--preset``).

A preset fills in options a method or dataset has and the user did not give: ``smoke`` is each
method's own smoke budget on the task's tiny world (seconds: does it run?), ``small`` the CI
gate's budgets on small worlds (minutes on a CPU: does it learn, and how fast is it?),
``paper`` the papers' networks and recipes on the default worlds (hours on a CPU; a GPU). An
option given on the command line always wins.
"""

from __future__ import annotations

from typing import Any

from vidbench.registry import DATASETS, METHODS, split_spec

SMALL_METHODS = {
    "train_steps": "200",
    "fusion_steps": "60",
    "flownet_pretrain_steps": "150",
    "flownet_finetune_steps": "60",
    "psla_steps": "80",
    "epochs": "1",
}
PAPER_NETWORKS = {
    "segmentation": {
        "layers": "3-4-23-3",
        "width": "64",
        "expansion": "4",
        "deformable": "true",
        "recipe": "paper",
        "flownet": "flownets",
    },
    "detection": {
        "layers": "3-4-23-3",
        "width": "64",
        "expansion": "4",
        "feature_channels": "1024",
        "recipe": "paper",
        "flownet": "flownets",
        "embed_channels": "256",
    },
    "recognition": {"scale": "paper"},
}
SMALL_WORLDS = {
    "synthcity": {"train_videos": "12", "val_videos": "12", "height": "96", "width": "192"},
    "synthdet": {"train_videos": "8", "val_videos": "6", "frames": "32"},
    # recognition: sized so that the CPU demo's networks learn (README, "Recognition (seed
    # 002)"): many short videos (each has its own background, so few videos are memorised),
    # 12 frames so adafocus-tsm's f_L sees 12 distinct frames, a larger object, random flips
    "synthaction": {
        "train_videos": "1500",
        "val_videos": "200",
        "frames": "12",
        "height": "64",
        "width": "64",
        "min_area": "0.1",
        "max_area": "0.16",
        "train_flip": "true",
    },
}
# recognition methods at the small preset: the CPU demo's networks and their own epochs
SMALL_TASK_METHODS = {"recognition": {"scale": "mini", "epochs": "0"}}
PRESETS = ("smoke", "small", "paper")


def method_options(name: str, preset: str) -> dict[str, str]:
    """The options ``preset`` gives method ``name`` (only those its config has)."""
    cls = METHODS.get(name)
    fields = cls.Config.__dataclass_fields__
    if preset == "smoke":
        chosen = dict(cls.smoke)
    elif preset == "small":
        chosen = {**SMALL_METHODS, **SMALL_TASK_METHODS.get(cls.task, {})}
    elif preset == "paper":
        chosen = dict(PAPER_NETWORKS.get(cls.task, {}))
    else:
        raise ValueError(f"Unknown preset '{preset}'; allowed: {', '.join(PRESETS)}.")
    return {k: v for k, v in chosen.items() if k in fields}


def dataset_options(name: str, task: str, preset: str) -> dict[str, str]:
    """The options ``preset`` gives dataset ``name`` (the synthetic worlds' sizes)."""
    if preset == "smoke":
        from vidbench.conformance import TINY_WORLDS

        world, options = TINY_WORLDS[task]
        return dict(options) if world == name else {}
    if preset == "small":
        return dict(SMALL_WORLDS.get(name, {}))
    return {}


def apply(spec: str, registry_kind: str, preset: str | None, task: str = "") -> str:
    """``spec`` with the preset's options added where ``spec`` does not set them."""
    if not preset:
        return spec
    name, given = split_spec(spec)
    if registry_kind == "method":
        extra = method_options(name, preset)
    else:
        DATASETS.get(name)
        extra = dataset_options(name, task, preset)
    options: dict[str, Any] = {**extra, **given}
    return ":".join([name, *(f"{k}={v}" for k, v in options.items())])
