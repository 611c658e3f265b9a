"""Shared fixtures: a tiny synthcity (rendered and H.264-encoded by the test session), and
helpers that count encodes and damage files for the dataset tests."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest
import torch
from vidbench.datasets.segmentation.synthcity.dataset import SynthCity, SynthCityConfig
from vidbench.workspace import HarnessWorkspace

from tests.boxes_fixture import tiny_video

TINY = SynthCityConfig(
    train_videos=2, val_videos=4, height=64, width=128, frames=12, labelled_index=7, seed=3
)


@pytest.fixture(scope="session", autouse=True)
def _threads() -> None:
    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> SynthCity:
    dataset = SynthCity(TINY, tmp_path_factory.mktemp("data"))
    dataset.prepare()
    return dataset


@pytest.fixture(scope="session")
def tiny_workspace(
    tiny_dataset: SynthCity, tmp_path_factory: pytest.TempPathFactory
) -> HarnessWorkspace:
    return HarnessWorkspace(tiny_dataset, tmp_path_factory.mktemp("checkpoints"), seed=0)


@pytest.fixture()
def data_root(tiny_dataset: SynthCity) -> Path:
    return tiny_dataset.root.parent.parent


@pytest.fixture(scope="session")
def tiny_segmentation_dataset(tiny_dataset: SynthCity) -> SynthCity:
    """The tiny dataset the conformance test builds segmentation methods on."""
    return tiny_dataset


class TinyBoxes:
    """A tiny box-annotated dataset made by the tests (tests/boxes_fixture.py)."""

    name = "tiny-boxes"
    tasks = ("detection",)
    num_classes = 3

    def __init__(self, root: Path) -> None:
        self.root = root
        self.videos = {
            "train": [tiny_video(root, f"train{i}", i, objects=3) for i in range(3)],
            "val": [tiny_video(root, f"val{i}", 100 + i) for i in range(2)],
        }

    def fingerprint(self) -> str:
        return "tiny-boxes"

    def describe(self) -> dict:
        return {"name": self.name, "fingerprint": self.fingerprint()}

    def prepare(self) -> Path:
        return self.root

    def split(self, name: str) -> list:
        return self.videos[name]


@pytest.fixture(scope="session")
def tiny_detection_dataset(tmp_path_factory: pytest.TempPathFactory) -> TinyBoxes:
    return TinyBoxes(tmp_path_factory.mktemp("boxes"))


@pytest.fixture(scope="session")
def tiny_recognition_dataset(tmp_path_factory: pytest.TempPathFactory):
    """A tiny synthaction (6 train / 4 val videos of 8 frames at 64x64) for recognition."""
    from vidbench.datasets.recognition.synthaction.dataset import SynthAction, SynthActionConfig

    config = SynthActionConfig(train_videos=6, val_videos=4, frames=8, height=64, width=64, seed=2)
    dataset = SynthAction(config, tmp_path_factory.mktemp("recognition"))
    dataset.prepare()
    return dataset


def count_encodes(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every path the real-data loaders (Cityscapes, CamVid) encode to, while still encoding."""
    from vidbench.datasets.segmentation import cityscapes

    calls: list[Path] = []
    real = cityscapes.encode_h264

    def counted(frames, path, **kwargs):
        calls.append(Path(path))
        return real(frames, path, **kwargs)

    monkeypatch.setattr(cityscapes, "encode_h264", counted)
    return calls


def refused_before_writing(
    dataset, message: str, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``dataset.prepare()`` raises DataError matching ``message`` within seconds, encodes
    nothing and leaves ``data_dir`` unwritten (truncated PNGs must not load silently)."""
    import time

    from PIL import ImageFile
    from vidbench.api import DataError

    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    calls = count_encodes(monkeypatch)
    started = time.monotonic()
    with pytest.raises(DataError, match=message):
        dataset.prepare()
    assert time.monotonic() - started < 5
    assert calls == [] and not data_dir.exists()


def corrupt_png_data(path: Path) -> None:
    """Zero 30 bytes inside the image data: the header and the IEND chunk stay whole."""
    data = bytearray(path.read_bytes())
    data[60:90] = bytes(30)
    path.write_bytes(bytes(data))


def cut_png_data(path: Path) -> None:
    """Rewrite the PNG with its zlib stream cut in half, in a well-formed IDAT chunk (right
    length and CRC) followed by IEND: only decoding the data shows it."""
    data = path.read_bytes()
    header, stream, at = data[8:33], b"", 33
    while at < len(data):
        length, kind = struct.unpack(">I4s", data[at : at + 8])
        if kind == b"IDAT":
            stream += data[at + 8 : at + 8 + length]
        at += 12 + length

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body).to_bytes(4, "big")
        return len(body).to_bytes(4, "big") + kind + body + crc

    cut = stream[: len(stream) // 2]
    path.write_bytes(data[:8] + header + chunk(b"IDAT", cut) + chunk(b"IEND", b""))
