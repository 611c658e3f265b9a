"""Cityscapes: the labelId -> trainId table, gtFine name parsing (docs/datasets.md §1.2, §1.4,
§1.6) and the loader on tiny fixture trees in the official layout."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from vidbench.api import DataError
from vidbench.building import build_dataset
from vidbench.datasets.segmentation.cityscapes import (
    Cityscapes,
    CityscapesConfig,
    label_table,
    parse_gt_name,
    to_train_ids,
)
from vidbench.methods.motion.flownet import FlowNetSimple, FlowTrainConfig
from vidbench.registry import DATASETS, METHODS
from vidbench.report import render
from vidbench.runner import Runner, RunSettings
from vidbench.store import Store

from tests.conftest import corrupt_png_data, count_encodes, cut_png_data, refused_before_writing


def test_table_maps_the_19_classes_and_voids_to_255() -> None:
    table = label_table()
    assert [int(table[i]) for i in (7, 8, 11, 26, 33)] == [0, 1, 2, 13, 18]
    assert all(table[i] == 255 for i in (0, 1, 2, 3, 4, 5, 6, 9, 10, 14, 15, 16, 18, 29, 30))
    assert sorted(set(table[:34].tolist()) - {255}) == list(range(19))


def test_unknown_label_id_names_the_file() -> None:
    ids = np.array([[7, 0], [26, 40]], dtype=np.uint8)
    with pytest.raises(DataError, match="a/b.png.*label id 40"):
        to_train_ids(ids, "a/b.png")
    assert to_train_ids(ids[:1], "x").tolist() == [[0, 255]]


def test_scored_index_from_the_name() -> None:
    usual = parse_gt_name("aachen_000000_000019_gtFine_labelIds.png")
    assert (usual.city, usual.sequence, usual.frame, usual.scored_index) == ("aachen", 0, 19, 19)
    long_sequence = parse_gt_name("frankfurt_000001_054640_gtFine_labelIds.png")
    assert long_sequence.first_frame == 54621 and long_sequence.scored_index == 19
    early = parse_gt_name("bonn_000002_000004_gtFine_labelIds.png")
    assert early.scored_index == 4
    assert early.sequence_name(0) == "bonn_000002_000000_leftImg8bit.png"
    with pytest.raises(DataError, match="not a gtFine"):
        parse_gt_name("aachen_19_gtFine_labelIds.png")


# ---- the loader, on tiny trees in the official layout

HEIGHT, WIDTH = 64, 128
# split -> (city, seq, labelled frame F); F=25 puts the label at 000025, F=4 has 4 past frames.
SNIPPETS = {
    "train": [("aachen", 0, 19), ("aachen", 1, 25)],
    "val": [("frankfurt", 0, 19), ("lindau", 2, 4)],
}


def _texture(seed: int) -> np.ndarray:
    """A smooth random texture, wide enough to pan across for 40 frames."""
    coarse = (np.random.default_rng(seed).random((8, 40, 3)) * 200 + 30).astype(np.uint8)
    return np.asarray(Image.fromarray(coarse).resize((WIDTH + 160, HEIGHT), Image.BILINEAR))


def _frame(texture: np.ndarray, number: int) -> np.ndarray:
    """Frame ``number`` of a sequence: the texture panned 3 px per frame."""
    return np.ascontiguousarray(texture[:, 3 * number : 3 * number + WIDTH])


def _label_ids() -> np.ndarray:
    ids = np.full((HEIGHT, WIDTH), 7, np.uint8)  # road
    ids[:, WIDTH // 2 :] = 26  # car
    ids[:8] = 0  # unlabeled (void)
    ids[-8:] = 9  # parking: a labelId without a train id
    return ids


def make_tree(base: Path) -> Path:
    root = base / "cityscapes"
    for split, snippets in SNIPPETS.items():
        for city, seq, frame in snippets:
            gt = root / "gtFine" / split / city
            gt.mkdir(parents=True, exist_ok=True)
            Image.fromarray(_label_ids()).save(gt / f"{city}_{seq:06d}_{frame:06d}{GT}")
            sequence = root / "leftImg8bit_sequence" / split / city
            sequence.mkdir(parents=True, exist_ok=True)
            texture = _texture(seq * 100 + frame)
            for number in range(max(0, frame - 19), frame + 11):
                image = Image.fromarray(_frame(texture, number))
                image.save(sequence / f"{city}_{seq:06d}_{number:06d}_leftImg8bit.png")
    return root


GT = "_gtFine_labelIds.png"


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "src")


def _dataset(root: Path, tmp_path: Path, **options: object) -> Cityscapes:
    return Cityscapes(CityscapesConfig(root=str(root), **options), tmp_path / "data")




def test_snippets_decode_with_labels_at_the_named_frame(tree: Path, tmp_path: Path) -> None:
    dataset = _dataset(tree, tmp_path)
    videos = dataset.split("val")
    assert [v.name for v in videos] == ["frankfurt_000000_000019", "lindau_000002_000004"]
    assert [v.scored_index for v in videos] == [19, 4]
    assert [v.label_indices for v in videos] == [(19,), (4,)]
    assert [v.info.num_frames for v in videos] == [30, 15]
    assert (videos[0].info.height, videos[0].info.width, videos[0].info.fps) == (64, 128, 17.0)
    assert videos[0].frame(0).motion is None and videos[0].frame(5).motion is not None
    expected = label_table()[_label_ids()]
    np.testing.assert_array_equal(videos[1].label(4), expected)
    assert (videos[1].label(3) == 255).all() and videos[1].label(4)[:8].max() == 255
    assert set(np.unique(expected).tolist()) == {0, 13, 255}


def test_labelled_frame_is_frame_f_of_its_sequence(tree: Path, tmp_path: Path) -> None:
    video = _dataset(tree, tmp_path).split("train")[1]
    assert (video.name, video.scored_index, video.info.num_frames) == (
        "aachen_000001_000025", 19, 30
    )
    texture = _texture(125)
    decoded = video.frame(19).image.permute(1, 2, 0).numpy() * 255

    def error(number: int) -> float:
        return float(np.abs(decoded - _frame(texture, number)).mean())

    assert error(25) < 5 < min(error(24), error(26))


def test_cache_is_reused_and_damaged_entries_rebuilt(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset = _dataset(tree, tmp_path)
    dataset.prepare()
    manifest = json.loads((dataset.cache.folder / "manifest.json").read_text())
    assert len(manifest["entries"]) == 4 and manifest["encode_ms_per_frame"] > 0
    assert manifest["encoder"]["x264-params"].startswith("bframes=0:ref=1")
    calls = count_encodes(monkeypatch)
    _dataset(tree, tmp_path).prepare()
    assert calls == []
    damaged = dataset.cache.folder / manifest["entries"]["val/lindau/lindau_000002_000004"]["video"]
    damaged.write_bytes(damaged.read_bytes()[:100])
    videos = _dataset(tree, tmp_path).split("val")
    assert [p.name.split("-")[0] for p in calls] == [".lindau_000002_000004"]
    assert videos[1].info.num_frames == 15
    assert not list(dataset.cache.folder.rglob("*.partial*"))


def _frame_path(root: Path, split: str, city: str, seq: int, number: int) -> Path:
    name = f"{city}_{seq:06d}_{number:06d}_leftImg8bit.png"
    return root / "leftImg8bit_sequence" / split / city / name


def _decoded(video, index: int) -> np.ndarray:
    return video.frame(index).image.permute(1, 2, 0).numpy() * 255


def test_encodes_are_keyed_by_content_not_by_names(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A copy of the tree (same content) reuses the encodes; another root whose files differ
    under the same names, or a label changed in place (same size and mtime: only its sha256
    differs), is encoded again, decodes to its own content and has another fingerprint."""
    clean = _dataset(tree, tmp_path)
    clean.prepare()
    calls = count_encodes(monkeypatch)
    copy = _dataset(shutil.copytree(tree, tmp_path / "copy"), tmp_path)
    copy.prepare()
    assert calls == [] and copy.fingerprint() == clean.fingerprint()

    other_root = shutil.copytree(tree, tmp_path / "other")
    frame = _frame_path(other_root, "val", "frankfurt", 0, 19)
    flipped = np.asarray(Image.open(frame))[:, ::-1]
    Image.fromarray(flipped).save(frame)
    other = _dataset(other_root, tmp_path)
    videos = other.split("val")
    assert [p.name.split("-")[0] for p in calls] == [".frankfurt_000000_000019"]
    assert np.abs(_decoded(videos[0], 19) - flipped).mean() < 5
    assert other.fingerprint() != clean.fingerprint()
    original = np.asarray(Image.open(_frame_path(tree, "val", "frankfurt", 0, 19)))
    assert np.abs(_decoded(_dataset(tree, tmp_path).split("val")[0], 19) - original).mean() < 5

    calls.clear()
    label = tree / "gtFine/val/lindau" / f"lindau_000002_000004{GT}"
    before = label.stat()
    person = _label_ids()
    person[8:-8, WIDTH // 2 :] = 24  # car -> person, a PNG of the same size
    Image.fromarray(person).save(label)
    os.utime(label, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert label.stat().st_size == before.st_size
    changed = _dataset(tree, tmp_path)
    video = changed.split("val")[1]
    assert [p.name.split("-")[0] for p in calls] == [".lindau_000002_000004"]
    np.testing.assert_array_equal(video.label(4), label_table()[person])
    assert changed.fingerprint() not in (clean.fingerprint(), other.fingerprint())


def test_fingerprint_ignores_root_and_describe_reports_encoding(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = shutil.copytree(tree, tmp_path / "elsewhere")
    monkeypatch.setenv("CITYSCAPES_ROOT", str(copy))
    from_env = Cityscapes(CityscapesConfig(), tmp_path / "data")
    assert from_env.source == copy
    assert from_env.fingerprint() == _dataset(tree, tmp_path).fingerprint()
    assert _dataset(tree, tmp_path, crf=30).fingerprint() != from_env.fingerprint()
    assert _dataset(tree, tmp_path, max_val_videos=1).fingerprint() != from_env.fingerprint()
    before = from_env.describe()
    _dataset(tree, tmp_path, max_train_videos=1, max_val_videos=1).prepare()
    described = from_env.describe()
    assert described == before  # identity: the encode cost, which varies, is not part of it
    assert described["encoder"]["codec"] == "libx264"
    assert from_env.preparation()["encode_ms_per_frame"] > 0
    assert described["snippet"] == {"frames_before": 19, "frames_after": 10}


def test_max_videos_scale_and_registry(tree: Path, tmp_path: Path) -> None:
    dataset = build_dataset(
        "cityscapes", {"root": str(tree), "max_val_videos": "1", "scale": "0.5"}, tmp_path
    )
    assert isinstance(dataset, Cityscapes) and DATASETS.get("cityscapes") is Cityscapes
    (video,) = dataset.split("val")
    assert (video.info.height, video.info.width) == (32, 64)
    np.testing.assert_array_equal(video.label(19), label_table()[_label_ids()][::2, ::2])
    with pytest.raises(ValueError, match="Unknown split 'test'"):
        dataset.split("test")


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


DAMAGE = {
    "corrupt image data": (
        lambda root: corrupt_png_data(_frame_path(root, "val", "lindau", 2, 3)),
        r"lindau_000002_000003_leftImg8bit.png: corrupt PNG \(CRC mismatch in the IDAT chunk",
    ),
    "image data cut short": (
        lambda root: cut_png_data(root / "gtFine/val/lindau" / f"lindau_000002_000004{GT}"),
        r"lindau_000002_000004_gtFine_labelIds.png: truncated PNG image data",
    ),
    "frame data cut short": (
        lambda root: cut_png_data(_frame_path(root, "val", "lindau", 2, 12)),
        r"lindau_000002_000012_leftImg8bit.png: truncated PNG image data",
    ),
    "missing root": (lambda root: shutil.rmtree(root), r"cityscapes: Cityscapes root not found"),
    "label id": (
        lambda root: Image.fromarray(np.full((HEIGHT, WIDTH), 40, np.uint8)).save(
            root / "gtFine/val/lindau" / f"lindau_000002_000004{GT}"
        ),
        r"lindau_000002_000004_gtFine_labelIds.png: label id 40",
    ),
    "truncated frame": (
        lambda root: _truncate(
            root / "leftImg8bit_sequence/val/lindau/lindau_000002_000007_leftImg8bit.png"
        ),
        r"lindau_000002_000007_leftImg8bit.png: truncated PNG",
    ),
    "missing frame": (
        lambda root: (
            root / "leftImg8bit_sequence/train/aachen/aachen_000001_000006_leftImg8bit.png"
        ).unlink(),
        r"aachen_000001_000006_leftImg8bit.png: missing; expected the official Cityscapes",
    ),
    "size mismatch": (
        lambda root: Image.fromarray(np.zeros((HEIGHT, WIDTH + 2, 3), np.uint8)).save(
            root / "leftImg8bit_sequence/val/frankfurt/frankfurt_000000_000029_leftImg8bit.png"
        ),
        r"frankfurt_000000_000029_leftImg8bit.png: \(130, 64\) but its label",
    ),
    "bad name": (
        lambda root: (root / "gtFine/val/lindau" / f"lindau_2_4{GT}").write_bytes(b""),
        r"gtFine/val/lindau/lindau_2_4_gtFine_labelIds.png: not a gtFine",
    ),
    "jpeg frame": (
        lambda root: Image.fromarray(np.zeros((HEIGHT, WIDTH, 3), np.uint8)).save(
            root / "leftImg8bit_sequence/val/lindau/lindau_000002_000000_leftImg8bit.png", "JPEG"
        ),
        r"lindau_000002_000000_leftImg8bit.png: a JPEG file, not a PNG",
    ),
}


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_bad_data_fails_before_anything_is_written(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    damage, message = DAMAGE[case]
    damage(tree)
    refused_before_writing(_dataset(tree, tmp_path), message, tmp_path / "data", monkeypatch)


def test_compare_and_report_on_the_fixture(tree: Path, tmp_path: Path) -> None:
    """The harness end to end on the fixture; prop-flow starts from given FlowNet weights, as
    it must on real data (no ground-truth flow to pre-train on)."""
    weights = tmp_path / "flownet.pt"
    width = FlowTrainConfig.width
    torch.save({"state_dict": FlowNetSimple(512, width).state_dict(), "config": {"width": width}},
               weights)  # fmt: skip
    specs = [
        ":".join([name, *(f"{k}={v}" for k, v in METHODS.get(name).smoke.items())])
        for name in ("frame", "prop-mv", "interp-mv")
    ] + [f"prop-flow:train_steps=3:flownet_finetune_steps=2:flownet_weights={weights}"]
    settings = RunSettings(
        intervals=(1, 3), speed_videos=1, speed_rounds=1, data_root=tmp_path / "data",
        checkpoint_dir=tmp_path / "ckpt",
    )  # fmt: skip
    store = Store(tmp_path / "records.jsonl")
    records = Runner(store, settings, log=lambda _: None).compare(
        specs, "cityscapes", {"root": str(tree)}
    )
    accuracy = [r for r in records if r["kind"] == "accuracy"]
    assert len(accuracy) == 7 and not [r for r in records if "error" in r]
    assert all(r["preparation"]["encode_ms_per_frame"] > 0 for r in records)
    table = render(store.records(), tmp_path / "reports")["table_md"].read_text()
    assert "Measured beside the paper (seed 000 Table 1, cityscapes" in table
    assert "prop-flow" in table and "H.264 encode cost:" in table
