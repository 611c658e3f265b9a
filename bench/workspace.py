"""The harness's side of ``vidbench.api.Workspace``: training data and a checkpoint cache."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from vidbench import distributed
from vidbench.api import VideoSource
from vidbench.files import file_lock, file_sha256, read_json, write_json_atomic
from vidbench.store import record_id


class HarnessWorkspace:
    """Checkpoints keyed by (dataset fingerprint, artefact key) under ``cache_dir``."""

    def __init__(self, dataset: Any, cache_dir: Path, seed: int) -> None:
        self.dataset = dataset
        self.cache_dir = Path(cache_dir)
        self.seed = seed
        self.num_classes = dataset.num_classes
        self.used: dict[str, dict[str, str]] = {}
        self._train: Sequence[VideoSource] | None = None

    def train_videos(self) -> Sequence[VideoSource]:
        """The train split, plus the still images a dataset trains with beside its videos
        (ImageNet VID's DET subset, as one-frame sources; seed 001 sec. 4.1)."""
        if self._train is None:
            stills = getattr(self.dataset, "det_train", None)
            self._train = [*self.dataset.split("train"), *(stills() if stills else [])]
        return self._train

    def checkpoint(
        self,
        name: str,
        key: dict[str, Any],
        build: Callable[[Path], None],
        intermediate: bool = False,
    ) -> Path:
        """The checkpoint ``name`` keyed by ``key``: built once (one process at a time, under
        a lock), with its SHA-256 beside it; a file that no longer matches its hash (truncated,
        bit-flipped) is built again, never used. An ``intermediate`` one (a training stage that
        methods share) is left out of ``used``: records name the weights they measure, and
        their identity must not depend on which stages the cache already held."""
        digest = record_id({"dataset": self.dataset.fingerprint(), "name": name, **key})
        path = self.cache_dir / f"{name}-{digest}.pt"
        if distributed.is_writer():  # under torchrun rank 0 builds it
            with file_lock(path.with_suffix(".lock")):
                if not _intact(path):
                    if path.exists():
                        print(f"checkpoint {path} is damaged: building it again", file=sys.stderr)
                    partial = path.with_suffix(".tmp")
                    build(partial)
                    sha = file_sha256(partial)
                    partial.replace(path)
                    write_json_atomic(_hash_file(path), {"sha256": sha})
        distributed.barrier()
        if not _intact(path):
            raise RuntimeError(f"checkpoint {path} does not match its recorded SHA-256.")
        if not intermediate:
            sha = read_json(_hash_file(path), "checkpoint hash")["sha256"][:16]
            self.used[name] = {"file": path.name, "sha256": sha}
        return path


def _hash_file(path: Path) -> Path:
    return path.with_name(path.name + ".sha256.json")


def _intact(path: Path) -> bool:
    """``path`` exists and matches the SHA-256 written beside it when it was built. A file from
    before hashes were kept is adopted once it loads (its hash is written then)."""
    if not path.exists():
        return False
    recorded = read_json(_hash_file(path), "checkpoint hash", default=None)
    actual = file_sha256(path)
    if recorded is None:
        try:
            torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # any unreadable file is rebuilt, whatever the loader raises
            return False
        write_json_atomic(_hash_file(path), {"sha256": actual})
        return True
    return isinstance(recorded, dict) and recorded.get("sha256") == actual
