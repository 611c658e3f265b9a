"""ImageNet VID loader on tiny fixture trees in the official ILSVRC2015 layout (+ FGFA lists)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from vidbench.api import DataError
from vidbench.boxes import motion_iou
from vidbench.datasets.detection.imagenet_vid import ImageNetVID, ImageNetVIDConfig
from vidbench.datasets.detection.imagenet_vid_layout import CLASS_NAMES, WNID_TO_CLASS, parse_xml

ZEBRA, AIRPLANE, PERSON = "n02391049", "n02691156", "n00007846"  # PERSON: DET-only wnid
WIDTH, HEIGHT = 70, 46  # not multiples of 16
TRAIN = {"train/ILSVRC2015_VID_train_0000/ILSVRC2015_train_00000000": 6,
         "train/ILSVRC2015_VID_train_0000/ILSVRC2015_train_00001000": 4}  # fmt: skip
VAL = {"val/ILSVRC2015_val_00000000": 6, "val/ILSVRC2015_val_00000001": 5}
DET = "train/ILSVRC2013_train/n02391049/n02391049_17"


def _boxes(t: int) -> list[tuple[str, int, list[int], int, int]]:
    """(wnid, trackid, inclusive box, occluded, generated) of frame t; the zebra moves."""
    return [
        (ZEBRA, 3, [5 + 3 * t, 4, 30 + 3 * t, 25], 0, 0),
        (AIRPLANE, 1, [40, 10, WIDTH - 1, HEIGHT - 1], 1, t % 2),
    ]


def _xml(folder: str, name: str, objects: list, width: int = WIDTH, height: int = HEIGHT) -> str:
    parts = [f"<annotation><folder>{folder}</folder><filename>{name}</filename>"
             f"<size><width>{width}</width><height>{height}</height></size>"]  # fmt: skip
    for wnid, track, box, occluded, generated in objects:
        track_tag = "" if track is None else f"<trackid>{track}</trackid>"
        parts.append(
            f"<object>{track_tag}<name>{wnid}</name><bndbox><xmin>{box[0]}</xmin>"
            f"<ymin>{box[1]}</ymin><xmax>{box[2]}</xmax><ymax>{box[3]}</ymax></bndbox>"
            f"<occluded>{occluded}</occluded><generated>{generated}</generated></object>"
        )
    return "".join(parts) + "</annotation>"


def _jpeg(path: Path, t: int) -> None:
    rng = np.random.default_rng(t)
    image = (rng.random((HEIGHT, WIDTH, 3)) * 60 + 40).astype(np.uint8)
    image[4:26, 5 + 3 * t : 31 + 3 * t] = (220, 220, 220)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, quality=95)


def make_tree(base: Path) -> Path:
    root = base / "ILSVRC2015"
    for snippets in (TRAIN, VAL):
        for snippet, count in snippets.items():
            for t in range(count):
                _jpeg(root / "Data" / "VID" / snippet / f"{t:06d}.JPEG", t)
                xml = root / "Annotations" / "VID" / snippet / f"{t:06d}.xml"
                xml.parent.mkdir(parents=True, exist_ok=True)
                xml.write_text(_xml(snippet, f"{t:06d}", _boxes(t)))
    _jpeg(root / "Data" / "DET" / f"{DET}.JPEG", 0)
    det_xml = root / "Annotations" / "DET" / f"{DET}.xml"
    det_xml.parent.mkdir(parents=True, exist_ok=True)
    det_xml.write_text(
        _xml("x", "y", [(PERSON, None, [1, 1, 9, 9], 0, 0), (ZEBRA, None, [2, 3, 20, 30], 0, 0)])
    )
    sets = root / "ImageSets"
    (sets / "VID").mkdir(parents=True)
    for k in range(1, 31):
        names = [s.removeprefix("train/") for s in TRAIN] if k in (7, 30) else []
        (sets / "VID" / f"train_{k}.txt").write_text("".join(f"{n} 1\n" for n in names))
    lines, index = [], 1
    for snippet, count in VAL.items():
        for t in range(count):
            lines.append(f"{snippet.removeprefix('val/')}/{t:06d} {index}\n")
            index += 1
    (sets / "VID" / "val.txt").write_text("".join(lines))
    (sets / "VID_val_videos.txt").write_text(
        f"{list(VAL)[0]} 1 0 6\n{list(VAL)[1]} 7 0 5\n"
    )
    (sets / "VID_train_15frames.txt").write_text(
        "".join(f"{list(TRAIN)[0]} 1 {i} 6\n" for i in (0, 2, 5))
        + "".join(f"{list(TRAIN)[1]} 1 {i} 4\n" for i in range(4))
    )
    (sets / "DET_train_30classes.txt").write_text(f"{DET} 1\n")
    return root


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "src")


def _dataset(root: Path, tmp_path: Path, **options: object) -> ImageNetVID:
    return ImageNetVID(ImageNetVIDConfig(root=str(root), **options), tmp_path / "data")


def test_classes_by_wnid_inclusive_boxes_and_tracks(tree: Path) -> None:
    assert CLASS_NAMES[0] == "airplane" and CLASS_NAMES[29] == "zebra" and len(CLASS_NAMES) == 30
    assert WNID_TO_CLASS["n02084071"] == CLASS_NAMES.index("dog")
    parsed = parse_xml(tree / "Annotations/VID" / list(VAL)[0] / "000001.xml", True, 1)
    assert parsed.labels.tolist() == [29, 0]  # file order kept, classes by wnid
    assert parsed.track_ids.tolist() == [3, 1]
    np.testing.assert_array_equal(parsed.boxes[0], [8, 4, 33, 25])  # inclusive, not shifted
    assert parsed.occluded.tolist() == [0, 1] and parsed.generated.tolist() == [0, 1]
    det = parse_xml(tree / "Annotations/DET" / f"{DET}.xml", False, 1)
    assert det.labels.tolist() == [29]  # the non-VID wnid is skipped
    edge = tree / "edge.xml"
    edge.write_text(_xml("f", "n", [(ZEBRA, 0, [-1, 0, WIDTH, HEIGHT - 1], 0, 0)]))
    clipped = parse_xml(edge, True, 1)
    np.testing.assert_array_equal(clipped.boxes[0], [0, 0, WIDTH - 1, HEIGHT - 1])
    assert clipped.clipped == 1


def test_split_lists_fgfa_and_official(tree: Path, tmp_path: Path) -> None:
    fgfa, official = _dataset(tree, tmp_path), _dataset(tree, tmp_path, lists="official")
    for split in ("train", "val"):
        assert [s.path for s in fgfa._list(split)[1]] == [s.path for s in official._list(split)[1]]
    assert fgfa._list("val")[0].name == "VID_val_videos.txt"
    assert [s.list_position for s in fgfa._list("val")[1]] == [0, 6]
    assert [s.list_position for s in official._list("val")[1]] == [0, 6]
    # FGFA's frame_idx is 0-based: 0 and num_frames - 1 are both valid, kept as they are
    assert [s.label_indices for s in fgfa._list("train")[1]] == [(0, 2, 5), (0, 1, 2, 3)]
    assert all(s.label_indices is None for s in official._list("train")[1])
    assert fgfa.describe()["lists"]["train"] == "ImageSets/VID_train_15frames.txt"
    assert fgfa.fingerprint() != official.fingerprint()


def test_root_from_environment(tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGENET_VID_ROOT", str(tree))
    assert ImageNetVID(ImageNetVIDConfig(), tmp_path).source == tree
    monkeypatch.delenv("IMAGENET_VID_ROOT")
    assert ImageNetVID(ImageNetVIDConfig(), tmp_path).source == tmp_path / "ILSVRC2015"


def test_encode_and_read_back(tree: Path, tmp_path: Path) -> None:
    dataset = _dataset(tree, tmp_path)
    videos = dataset.split("val")
    assert [v.name for v in videos] == ["ILSVRC2015_val_00000000", "ILSVRC2015_val_00000001"]
    first = videos[0]
    assert first.info.num_frames == 6 and (first.info.height, first.info.width) == (HEIGHT, WIDTH)
    assert first.label_indices == tuple(range(6))
    boxes, tracks = [], []
    for t in range(6):
        target = first.label(t)
        expected = _boxes(t)
        np.testing.assert_array_equal(target.boxes, np.array([b[2] for b in expected], np.float32))
        assert target.labels.tolist() == [29, 0] and target.track_ids.tolist() == [3, 1]
        boxes.append(target.boxes)
        tracks.append(target.track_ids)
    speeds = motion_iou(boxes, tracks)
    for t in range(6):
        np.testing.assert_allclose(first.label(t).motion_iou, speeds[t])
    assert first.label(0).motion_iou[1] == pytest.approx(1.0)  # the static airplane
    assert first.label(0).motion_iou[0] < 0.9  # the moving zebra
    jpeg = np.asarray(Image.open(tree / "Data/VID" / list(VAL)[0] / "000003.JPEG"), np.float32)
    decoded = first.frame(3).image.permute(1, 2, 0).numpy() * 255
    assert np.abs(decoded - jpeg).mean() < 8  # frame index = JPEG index
    manifest = json.loads((dataset.cache / "manifest.json").read_text())
    assert manifest["encoder"]["codec"] == "libx264" and manifest["encode_ms_per_frame"] > 0
    entry = manifest["entries"][list(VAL)[0]]
    assert entry["frames"] == 6 and entry["encode_ms_per_frame"] > 0
    assert entry["generated_boxes"] == 3 and entry["motion_iou"] == "computed"
    flags = np.load(dataset.cache / entry["flags"])
    assert flags["generated"].tolist() == [0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1]
    assert not list(dataset.cache.rglob(".*partial*"))
    stamp = (dataset.cache / entry["video"]).stat().st_mtime_ns
    dataset.split("val")
    assert (dataset.cache / entry["video"]).stat().st_mtime_ns == stamp  # reused, not redone
    train = dataset.split("train")
    assert [v.label_indices for v in train] == [(0, 2, 5), (0, 1, 2, 3)]
    assert train[0].info.num_frames == 6
    official = _dataset(tree, tmp_path, lists="official").split("train")  # same encoded files
    assert [v.label_indices for v in official] == [tuple(range(6)), tuple(range(4))]
    assert official[1].video_path == train[1].video_path


def test_another_root_or_a_changed_frame_is_encoded_again(tree: Path, tmp_path: Path) -> None:
    """The cache is keyed by the snippet's files (size and mtime), not by its name: a second
    tree with the same names but other content never reuses the first tree's encodes."""
    name = list(VAL)[0]
    first = _dataset(tree, tmp_path).split("val")[0]
    video = first.video_path
    stamp = video.stat().st_mtime_ns
    other = make_tree(tmp_path / "other")
    frame_path = other / "Data/VID" / name / "000003.JPEG"
    Image.new("RGB", (WIDTH, HEIGHT), (255, 0, 0)).save(frame_path, quality=95)  # changed content
    again = _dataset(other, tmp_path).split("val")[0]
    assert again.video_path == video and video.stat().st_mtime_ns != stamp  # encoded again
    red = again.frame(3).image.mean(dim=(1, 2))
    assert red[0] > 0.8 and red[1] < 0.2  # the other tree's frame, not the first tree's
    stamp = video.stat().st_mtime_ns
    _dataset(other, tmp_path).split("val")
    assert video.stat().st_mtime_ns == stamp  # unchanged source: reused


def test_max_videos_and_det_images(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("vidbench.datasets.detection.imagenet_vid.IN_MEMORY_BYTES", 0)  # disk staging
    dataset = _dataset(tree, tmp_path, max_val_videos=1)
    [video] = dataset.split("val")
    assert video.name == "ILSVRC2015_val_00000000" and video.info.num_frames == 6
    np.testing.assert_array_equal(video.label(5).boxes[0], _boxes(5)[0][2])
    det = dataset.det_train()
    assert len(det) == 1 and det[0].label_indices == (0,)
    target = det[0].label(0)
    assert target.labels.tolist() == [29]
    np.testing.assert_array_equal(target.boxes, [[2, 3, 20, 30]])
    frame = det[0].frame(0)
    assert tuple(frame.image.shape) == (3, HEIGHT, WIDTH) and frame.motion is None
    assert dataset.det_train()[0].label(0).labels.tolist() == [29]  # from the cache
    [det_cache] = (tmp_path / "data" / "imagenet-vid").glob("det-*.json")
    det_cache.write_text(det_cache.read_text()[:10])  # a kill mid-write, before atomic writes
    with pytest.warns(UserWarning, match="damaged imagenet-vid DET cache"):
        assert dataset.det_train()[0].label(0).labels.tolist() == [29]
    assert len(json.loads(det_cache.read_text())) == 1
    video_file = video.video_path.stat().st_mtime_ns
    everything = _dataset(tree, tmp_path)  # another subset shares the encoded snippets
    assert everything.fingerprint() != dataset.fingerprint()
    assert len(everything.split("val")) == 2
    assert video.video_path.stat().st_mtime_ns == video_file


def test_motion_iou_from_fgfa_mat(tree: Path, tmp_path: Path) -> None:
    scipy_io = pytest.importorskip("scipy.io")
    cells = np.empty((11, 1), dtype=object)
    for position in range(11):
        cells[position, 0] = np.array([[0.05 + position / 100], [0.95]])
    mat = tmp_path / "imagenet_vid_groundtruth_motion_iou.mat"
    scipy_io.savemat(str(mat), {"motion_iou": cells})
    dataset = _dataset(tree, tmp_path, motion_iou_mat=str(mat))
    second = dataset.split("val")[1]
    np.testing.assert_allclose(second.label(2).motion_iou, [0.05 + 8 / 100, 0.95], rtol=1e-6)
    assert dataset.describe()["motion_iou"]["val"].startswith("fgfa-mat")


def test_mat_without_scipy_names_option(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "scipy.io", None)
    mat = tmp_path / "imagenet_vid_groundtruth_motion_iou.mat"
    mat.write_bytes(b"MATLAB 5.0 MAT-file")
    dataset = _dataset(tree, tmp_path, motion_iou_mat=str(mat))
    with pytest.raises(DataError, match="motion_iou_mat.*pip install scipy"):
        dataset.prepare(("val",))


def _break(root: Path, case: str) -> Path:
    """Damage the tree as ``case`` says; returns the file the error must name."""
    snippet = list(VAL)[1]
    data, notes = root / "Data/VID" / snippet, root / "Annotations/VID" / snippet
    if case == "no-root":
        return root.parent / "nowhere"
    if case == "no-annotations":
        (root / "Annotations").rename(root / "Annotations-moved")
        return root / "Annotations"
    if case == "no-frames":
        for path in data.iterdir():
            path.unlink()
        return data
    if case == "no-xml":
        (notes / "000003.xml").unlink()
        return notes / "000003.xml"
    if case == "malformed-xml":
        (notes / "000002.xml").write_text("<annotation><size><width>70</width>")
        return notes / "000002.xml"
    if case == "unknown-wnid":
        (notes / "000001.xml").write_text(_xml("f", "n", [(PERSON, 0, [1, 1, 5, 5], 0, 0)]))
        return notes / "000001.xml"
    if case == "box-outside":
        (notes / "000001.xml").write_text(_xml("f", "n", [(ZEBRA, 0, [1, 1, 90, 5], 0, 0)]))
        return notes / "000001.xml"
    if case == "size-mismatch":
        (notes / "000004.xml").write_text(_xml("f", "n", [], width=80))
        return notes / "000004.xml"
    if case == "size-change":
        for t in range(5):
            (notes / f"{t:06d}.xml").write_text(_xml("f", "n", [], height=HEIGHT + 2 * (t > 2)))
        Image.new("RGB", (WIDTH, HEIGHT + 2)).save(data / "000003.JPEG")
        Image.new("RGB", (WIDTH, HEIGHT + 2)).save(data / "000004.JPEG")
        return data / "000003.JPEG"
    if case == "truncated-jpeg":
        path = data / "000002.JPEG"
        path.write_bytes(path.read_bytes()[:300])
        return path
    raise AssertionError(case)


@pytest.mark.parametrize(
    "case",
    ["no-root", "no-annotations", "no-frames", "no-xml", "malformed-xml", "unknown-wnid",
     "box-outside", "size-mismatch", "size-change", "truncated-jpeg"],
)  # fmt: skip
def test_errors_name_the_file(tree: Path, tmp_path: Path, case: str) -> None:
    culprit = _break(tree, case)
    root = culprit if case == "no-root" else tree
    with pytest.raises(DataError) as error:
        _dataset(root, tmp_path).split("val")
    assert str(culprit) in str(error.value)
    assert "expected the official ILSVRC2015 layout" in str(error.value)
    # nothing half-written: no partial files and no entry for the broken snippet
    cache = tmp_path / "data" / "imagenet-vid"
    assert not list(cache.rglob(".*partial*"))
    for manifest in cache.rglob("manifest.json"):
        assert list(VAL)[1] not in json.loads(manifest.read_text())["entries"]
    if case != "truncated-jpeg":  # found before any encoding (pixels are decoded only then)
        assert not list(cache.rglob("*.mp4"))
