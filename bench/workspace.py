"""The harness's side of ``vidbench.api.Workspace``: training data and a checkpoint cache."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from vidbench import distributed
from vidbench.api import VideoSource
from vidbench.files import file_sha256
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

    def checkpoint(self, name: str, key: dict[str, Any], build: Callable[[Path], None]) -> Path:
        digest = record_id({"dataset": self.dataset.fingerprint(), "name": name, **key})
        path = self.cache_dir / f"{name}-{digest}.pt"
        if not path.exists() and distributed.is_writer():  # under torchrun rank 0 builds it
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(".tmp")
            build(partial)
            partial.replace(path)
        distributed.barrier()
        sha = file_sha256(path)[:16]
        self.used[name] = {"file": path.name, "sha256": sha}
        return path
