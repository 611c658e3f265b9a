"""What produced a record: code version, library versions, machine and settings."""

from __future__ import annotations

import platform
import re
import subprocess
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

REPO_ROOT = Path(__file__).resolve().parent.parent


def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


@cache
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "absent"


@cache
def code_state() -> dict[str, Any]:
    """The commit and dirty flag of the tree as this process first read it: the code it runs
    was imported then, so a commit made while a long run goes on does not relabel its records."""
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {"commit": _git("rev-parse", "HEAD") or "unknown", "dirty": bool(status)}


def provenance(device: str = "cpu") -> dict[str, Any]:
    """Code, libraries, machine and the torch settings that change numbers (docs/measurement.md
    §8: dtype, TF32, cudnn.benchmark are recorded, never silent defaults)."""
    import av

    return {
        "code": dict(code_state()),
        "versions": {
            "python": platform.python_version(),
            **{
                name: _version(name) for name in ("torch", "torchvision", "av", "numpy", "vidbench")
            },
            "libavcodec": ".".join(map(str, av.library_versions.get("libavcodec", ()))),
        },
        "machine": machine(),
        "settings": {
            "dtype": "float32",
            "device": device,
            **(_cuda_settings(device) if device.startswith("cuda") else {}),
            "threads": torch.get_num_threads(),
            "deterministic": torch.are_deterministic_algorithms_enabled(),
            "channels_last": False,
            "compile": False,
        },
    }


def _cuda_settings(device: str) -> dict[str, Any]:
    """The GPU a run used and the CUDA settings that change its numbers."""
    index = torch.device(device).index or 0
    return {
        "gpu_name": torch.cuda.get_device_name(index),
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
        "driver": _nvidia_driver(),
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
        "tf32_cudnn": torch.backends.cudnn.allow_tf32,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
    }


def _nvidia_driver() -> str:
    try:
        return subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def numerics() -> dict[str, str]:
    """What decides the floating-point results of a CPU training run besides the code: the CPU
    (its vendor and model pick MKL's and oneDNN's code paths) and the torch build. The same
    code and seed give bit-identical checkpoints within one such class, not across them."""
    return {"cpu": cpu_model(), "torch": torch.__version__}


def numerics_slug(numerics_class: dict[str, str]) -> str:
    """``intel-r-xeon-r-processor-torch-2.15.0-cu132``: a class as a file-name stem."""
    text = f"{numerics_class['cpu']} torch {numerics_class['torch']}".lower()
    return "-".join(filter(None, re.split(r"[^a-z0-9.]+", text)))


def machine() -> dict[str, Any]:
    """The fingerprint that speed comparisons are valid within."""
    return {
        "cpu": cpu_model(),
        "cores": _cpu_quota(),
        "platform": platform.machine(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "torch": torch.__version__,
    }


def _cpu_quota() -> int:
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1
