"""Recognition dataset loaders on tiny fixture trees in the official / AR-Net layouts.

Frame k (0-based) of every fixture video is a flat grey of level ``_level(k)``, so the grey of a
sampled frame tells which source frame the sampler picked.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image
from vidbench.api import DataError, RecognitionTarget
from vidbench.datasets.recognition.sampled_video import (
    Preprocess,
    RecognitionVideo,
    TrainAugment,
    VideoFile,
    centre_indices,
    resize_crop,
    resized_size,
)
from vidbench.datasets.recognition.sets import (
    FCVID,
    ActivityNet,
    MiniKinetics,
    RecognitionConfig,
    SomethingConfig,
    SomethingV1,
    SomethingV1Config,
    SomethingV2,
)
from vidbench.datasets.video.codec import encode_h264
from vidbench.registry import DATASETS, parse_config

WIDTH, HEIGHT = 40, 30  # landscape, not square
try:
    av.codec.Codec("libvpx-vp9", "w")
    VP9_REASON = ""
except ValueError:  # av UnknownCodecError: no VP9 encoder for the Sth-Sth V2 webm fixtures
    VP9_REASON = "this PyAV build has no libvpx-vp9 encoder to write the webm fixtures"

SMALL = {"frames": 4, "resize": 20, "crop": 16}
ANET_CLASSES = ["Mooping floor", "Playing flauta", "Zumba"]  # verbatim, typos kept


def _level(k: int) -> int:
    return 20 + 20 * k


def _grey(k: int) -> np.ndarray:
    return np.full((HEIGHT, WIDTH, 3), _level(k), np.uint8)


def _frames(folder: Path, count: int, template: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(count):
        Image.fromarray(_grey(k)).save(folder / template.format(k + 1), quality=95)


def _webm(path: Path, count: int) -> None:
    if VP9_REASON:
        pytest.skip(VP9_REASON)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libvpx-vp9", rate=12)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.time_base = Fraction(1, 12)
        for k in range(count):
            frame = av.VideoFrame.from_ndarray(_grey(k), format="rgb24")
            frame.pts = k
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def _levels(video: RecognitionVideo) -> list[float]:
    return [float(video.frame(t).image.mean()) * 255 for t in video.label_indices]


def _assert_sampled(video: RecognitionVideo, indices: tuple[int, ...], tol: float = 2.0) -> None:
    np.testing.assert_allclose(_levels(video), [_level(k) for k in indices], atol=tol)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def make_activitynet(base: Path) -> Path:
    root = base / "activitynet"
    _write(root / "classInd.txt", "".join(f"{c}\n" for c in ANET_CLASSES))
    database = {
        "aaaaaaaaaaa": {"subset": "validation", "annotations": [{"segment": [0, 1], "label": c}
                                                                for c in ANET_CLASSES]},
    }  # fmt: skip
    _write(root / "activity_net.v1-3.min.json", json.dumps({"version": "VERSION 1.3",
                                                             "database": database}))  # fmt: skip
    _write(root / "actnet_val_split.txt", "v_aaaaaaaaaaa,10,2,0\nv_bbbbbbbbbbb,6,1,-1,-1\n")
    _write(root / "actnet_train_split.txt", "v_ccccccccccc,5,0\n")
    for name, count in (("v_aaaaaaaaaaa", 10), ("v_bbbbbbbbbbb", 6), ("v_ccccccccccc", 5)):
        _frames(root / "frames" / name, count, "image_{:05d}.jpg")
    return root


def make_fcvid(base: Path) -> Path:
    root = base / "fcvid"
    _write(root / "classInd.txt", "".join(f"class{k}\n" for k in range(5)))
    _write(root / "fcvid_val_split.txt", "vid0,8,4,1,3\nvid1,8,0\nvid2,8,2\n")
    _write(root / "fcvid_train_split.txt", "vid3,8,1\n")
    for name in ("vid0", "vid1", "vid2", "vid3"):
        _frames(root / "frames" / name, 8, "image_{:05d}.jpg")
    return root


MINIK_CLASSES = ["abseiling", "playing guitar", "riding or walking with horse"]


def make_minik(base: Path) -> Path:
    root = base / "mini-kinetics"
    _write(root / "minik_classInd.txt", "".join(f"{c}\n" for c in MINIK_CLASSES))
    clips = {
        "val": [("playing guitar", "abc_000001_000011", 10, 1),
                ("riding or walking with horse", "xyz_000003_000013", 7, 2)],
        "train": [("abseiling", "def_000000_000010", 5, 0)],
    }  # fmt: skip
    for split, rows in clips.items():
        lines = []
        for cls, clip, count, label in rows:
            path = f"images/{split}/{cls}/{clip}"
            lines.append(f"{path} {count} {label}\n")
            _frames(root / "frames" / path, count, "{:05d}.jpg")
        _write(root / f"mini_{split}_videofolder.txt", "".join(lines))
    return root


V1_TEMPLATES = ["Holding something", "Approaching something with your camera",
                "Pushing something from left to right"]  # fmt: skip  (official CSV order)


def make_sth_v1(base: Path) -> Path:
    root = base / "sth-sth-v1"
    _write(root / "something-something-v1-labels.csv", "".join(f"{t}\n" for t in V1_TEMPLATES))
    _write(root / "something-something-v1-validation.csv",
           "101;Pushing something from left to right\n102;Holding something\n")  # fmt: skip
    train = "103;Approaching something with your camera\n"
    _write(root / "something-something-v1-train.csv", train)
    for name, count in (("101", 7), ("102", 3), ("103", 4)):
        _frames(root / "20bn-something-something-v1" / name, count, "{:05d}.jpg")
    return root


V2_LABELS = {"Holding something": "0", "Moving something up": "1",
             "Putting something on a surface": "2"}  # fmt: skip


def make_sth_v2(base: Path) -> Path:
    root = base / "sth-sth-v2"
    _write(root / "something-something-v2-labels.json", json.dumps(V2_LABELS))
    val = [{"id": "201", "label": "putting a cup on a table", "placeholders": ["a cup", "a table"],
            "template": "Putting [something] on a surface"},
           {"id": "202", "label": "holding pen", "placeholders": ["pen"],
            "template": "Holding [something]"}]  # fmt: skip
    _write(root / "something-something-v2-validation.json", json.dumps(val))
    _write(root / "something-something-v2-train.json",
           json.dumps([{"id": "203", "template": "Moving [something] up"}]))  # fmt: skip
    for name, count in (("201", 9), ("202", 5), ("203", 4)):
        _webm(root / "20bn-something-something-v2" / f"{name}.webm", count)
    return root


def _open(cls: type, root: Path, tmp_path: Path, **options: object):
    return cls(cls.Config(root=str(root), **{**SMALL, **options}), tmp_path / "data")


# ---- sampling and pre-processing


def test_centre_indices_by_hand() -> None:
    # 10 frames, 4 segments of 2.5: centres 1.25, 3.75, 6.25, 8.75 -> floor
    assert centre_indices(10, 4) == (1, 3, 6, 8)
    assert centre_indices(16, 16) == tuple(range(16))
    assert centre_indices(250, 16)[:3] == (7, 23, 39)  # tick 15.625: 7.8, 23.4, 39.06
    assert centre_indices(3, 8) == (0, 0, 0, 1, 1, 2, 2, 2)  # fewer frames than samples: repeat
    with pytest.raises(ValueError):
        centre_indices(0, 4)


def test_resize_shorter_side_then_centre_crop() -> None:
    assert resized_size(320, 240, Preprocess()) == (341, 256)
    assert resized_size(240, 320, Preprocess()) == (256, 341)
    assert resized_size(320, 240, Preprocess(mode="square")) == (256, 256)
    image = np.zeros((240, 320, 3), np.uint8)
    image[:, 160:] = 200  # right half bright: a centre crop of a landscape frame sees both
    out = resize_crop(Image.fromarray(image), Preprocess())
    assert out.shape == (224, 224, 3) and out.dtype == np.uint8
    assert out[:, :100].max() < 10 and out[:, 124:].min() > 190
    with pytest.raises(ValueError):
        Preprocess(resize=200, crop=224)


# ---- datasets


def test_activitynet_multilabel_lists_sampling_and_describe(tmp_path: Path) -> None:
    dataset = _open(ActivityNet, make_activitynet(tmp_path), tmp_path)
    assert dataset.class_names == tuple(ANET_CLASSES) and dataset.num_classes == 3
    videos = dataset.split("val")
    assert [v.name for v in videos] == ["v_aaaaaaaaaaa", "v_bbbbbbbbbbb"]
    first = videos[0]
    assert first.label(None).labels.tolist() == [0, 2]  # "2,0" sorted ascending
    assert first.label(3).labels.dtype == np.int64 and isinstance(first.label(0), RecognitionTarget)
    assert videos[1].label(None).labels.tolist() == [1]  # -1 padding dropped
    assert first.info.num_frames == 4 and (first.info.height, first.info.width) == (16, 16)
    assert first.label_indices == (0, 1, 2, 3)
    frame = first.frame(2, is_key=True)
    assert frame.image.shape == (3, 16, 16) and frame.image.dtype.is_floating_point
    assert frame.motion is None and frame.motion_valid is None and frame.motion_grid == 16
    assert frame.index == 2 and frame.is_key
    _assert_sampled(first, (1, 3, 6, 8))  # 10 frames -> 4 segment centres
    _assert_sampled(videos[1], (0, 2, 3, 5))  # 6 frames: 0.75, 2.25, 3.75, 5.25
    first.release()
    _assert_sampled(first, (1, 3, 6, 8))
    described = dataset.describe()
    assert described["val_videos"] == {"listed": 2, "present": 2, "missing": 0, "evaluated": 2}
    assert described["class_ids"]["Mooping floor"] == 0
    assert [v.name for v in dataset.split("train")] == ["v_ccccccccccc"]


def test_activitynet_class_not_in_annotation_json(tmp_path: Path) -> None:
    root = make_activitynet(tmp_path)
    _write(root / "classInd.txt", "Mopping floor\nPlaying flauta\nZumba\n")  # "fixed" typo
    with pytest.raises(DataError, match=r"classInd\.txt: class 'Mopping floor' is not a label"):
        _ = _open(ActivityNet, root, tmp_path).class_names


def test_fcvid_missing_videos_counted_or_refused(tmp_path: Path) -> None:
    root = make_fcvid(tmp_path)
    strict = _open(FCVID, root, tmp_path)
    assert strict.split("val")[0].label(None).labels.tolist() == [1, 3, 4]  # up to 3 labels
    for path in (root / "frames" / "vid1").iterdir():
        path.unlink()
    (root / "frames" / "vid1").rmdir()
    with pytest.raises(DataError, match=r"frames/vid1: listed in .*fcvid_val_split\.txt but "
                                        r"missing \(1 of 3"):  # fmt: skip
        _open(FCVID, root, tmp_path).prepare()
    lenient = _open(FCVID, root, tmp_path, allow_missing=True, max_val_videos=1)
    assert [v.name for v in lenient.split("val")] == ["vid0"]
    counts = lenient.describe()["val_videos"]
    assert counts == {"listed": 3, "present": 2, "missing": 1, "evaluated": 1}


def test_minik_spaces_in_class_names_and_plain_frame_names(tmp_path: Path) -> None:
    dataset = _open(MiniKinetics, make_minik(tmp_path), tmp_path)
    videos = dataset.split("val")
    assert videos[0].name == "images/val/playing guitar/abc_000001_000011"
    assert [v.label(None).primary for v in videos] == [1, 2]
    _assert_sampled(videos[1], (0, 2, 4, 6))  # 7 frames: 0.875, 2.625, 4.375, 6.125
    assert dataset._template == "{:05d}.jpg"  # detected: AR-Net's Mini-K naming


def test_minik_label_disagrees_with_class_folder(tmp_path: Path) -> None:
    root = make_minik(tmp_path)
    _write(root / "mini_val_videofolder.txt", "images/val/playing guitar/abc_000001_000011 10 0\n")
    with pytest.raises(DataError, match=r"line 1: .*class folder 'playing guitar' but label 0 "
                                        r"is 'abseiling'"):  # fmt: skip
        _open(MiniKinetics, root, tmp_path).prepare()
    _write(root / "mini_val_videofolder.txt", "images/val/playing guitar/abc_000001_000011 10 7\n")
    with pytest.raises(DataError, match="label 7 outside the 3 classes"):
        _open(MiniKinetics, root, tmp_path).prepare()


def test_sth_v1_label_orders_and_folder_frame_counts(tmp_path: Path) -> None:
    root = make_sth_v1(tmp_path)
    ordered = _open(SomethingV1, root, tmp_path)
    assert ordered.config.frames == 4 and SomethingV1Config().frames == 24
    assert ordered.class_names == tuple(sorted(V1_TEMPLATES))
    videos = ordered.split("val")
    # sorted ids: Approaching 0, Holding 1, Pushing 2
    assert [v.label(None).primary for v in videos] == [2, 1]
    as_csv = _open(SomethingV1, root, tmp_path, label_order="csv")
    assert [v.label(None).primary for v in as_csv.split("val")] == [2, 0]
    assert as_csv.fingerprint() != ordered.fingerprint()
    _assert_sampled(videos[0], (0, 2, 4, 6))  # 7 frames counted in the folder
    _assert_sampled(videos[1], (0, 1, 1, 2))  # 3 frames for 4 samples
    _write(root / "something-something-v1-validation.csv", "101;Pushing something\n")
    with pytest.raises(DataError, match="line 1: unknown template 'Pushing something'"):
        _open(SomethingV1, root, tmp_path).prepare()


def test_sth_v1_gap_in_frames_named_when_read(tmp_path: Path) -> None:
    root = make_sth_v1(tmp_path)
    (root / "20bn-something-something-v1" / "101" / "00004.jpg").unlink()
    video = _open(SomethingV1, root, tmp_path).split("val")[0]
    with pytest.raises(DataError, match=r"101/00004\.jpg: frame missing"):
        video.frame(0)


def test_sth_v2_webm_bracketed_templates(tmp_path: Path) -> None:
    dataset = _open(SomethingV2, make_sth_v2(tmp_path), tmp_path)
    assert dataset.class_names == tuple(V2_LABELS)
    videos = dataset.split("val")
    assert [(v.name, v.label(None).primary) for v in videos] == [("201", 2), ("202", 0)]
    assert videos[0].frame(0).image.shape == (3, 16, 16)
    _assert_sampled(videos[0], (1, 3, 5, 7), tol=6)  # 9 decoded frames: 1.125, 3.375, ...
    assert SomethingConfig().frames == 24 and not SomethingConfig().flip


def test_sth_v2_unknown_template_and_bad_labels_json(tmp_path: Path) -> None:
    root = make_sth_v2(tmp_path)
    _write(root / "something-something-v2-validation.json",
           json.dumps([{"id": "201", "template": "Spinning [something]"}]))  # fmt: skip
    with pytest.raises(DataError, match=r"item 0 \(id 201\): unknown template 'Spinning some"):
        _open(SomethingV2, root, tmp_path).prepare()
    _write(root / "something-something-v2-labels.json", json.dumps({"A": "0", "B": "2"}))
    with pytest.raises(DataError, match=r"labels\.json: ids are not 0\.\.1"):
        _ = _open(SomethingV2, root, tmp_path).class_names


def test_mp4_source_decoded_with_pyav(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    encode_h264(np.stack([_grey(k) for k in range(10)]), path, fps=10)
    video = RecognitionVideo("clip", (3,), VideoFile(path), 4, Preprocess(20, 16), "layout")
    _assert_sampled(video, (1, 3, 6, 8), tol=6)


# ---- errors


def test_missing_root_and_missing_list(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nowhere: activitynet root not found .*ACTIVITYNET_ROOT"):
        _open(ActivityNet, tmp_path / "nowhere", tmp_path).prepare()
    root = make_fcvid(tmp_path)
    (root / "fcvid_val_split.txt").unlink()
    with pytest.raises(DataError, match=r"fcvid_val_split\.txt: file missing; expected AR-Net's"):
        _open(FCVID, root, tmp_path).prepare()
    (root / "classInd.txt").unlink()
    with pytest.raises(DataError, match=r"classInd\.txt: file missing"):
        _ = _open(FCVID, root, tmp_path).num_classes


def test_bad_list_lines(tmp_path: Path) -> None:
    root = make_fcvid(tmp_path)
    for text, message in (("vid0,eight,1\n", "line 1: the frame count is 'eight'"),
                          ("vid0,8\n", "line 1 is 'vid0,8', expected"),
                          ("vid0,8,0,1,2,3\n", "4 labels, expected 1..3"),
                          ("vid0,8,-1\n", "0 labels")):  # fmt: skip
        _write(root / "fcvid_val_split.txt", text)
        with pytest.raises(DataError, match=message):
            _open(FCVID, root, tmp_path).prepare()


def test_partial_frame_folder_fails_prepare(tmp_path: Path) -> None:
    root = make_activitynet(tmp_path)
    (root / "frames" / "v_aaaaaaaaaaa" / "image_00010.jpg").unlink()
    with pytest.raises(DataError, match=r"image_00010\.jpg: frame 10 of 10 listed missing"):
        _open(ActivityNet, root, tmp_path, allow_missing=True).prepare()


def test_corrupt_jpeg_and_video_spoil_only_their_record(tmp_path: Path) -> None:
    root = make_activitynet(tmp_path)
    jpeg = root / "frames" / "v_aaaaaaaaaaa" / "image_00004.jpg"  # sampled (index 3)
    jpeg.write_bytes(jpeg.read_bytes()[:200])
    first, second = _open(ActivityNet, root, tmp_path).split("val")
    with pytest.raises(DataError, match=r"image_00004\.jpg: unreadable or truncated image"):
        first.frame(0)
    assert second.frame(0).image.shape == (3, 16, 16)
    v2 = make_sth_v2(tmp_path)
    (v2 / "20bn-something-something-v2" / "201.webm").write_bytes(b"\x1aE\xdf\xa3garbage" * 10)
    bad, good = _open(SomethingV2, v2, tmp_path).split("val")
    with pytest.raises(DataError, match=r"201\.webm: undecodable video"):
        bad.frame(0)
    assert good.frame(3).image.shape == (3, 16, 16)


def test_root_from_environment_and_registry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_fcvid(tmp_path)
    monkeypatch.setenv("FCVID_ROOT", str(root))
    assert FCVID(RecognitionConfig(), tmp_path).source == root
    monkeypatch.delenv("FCVID_ROOT")
    assert FCVID(RecognitionConfig(), tmp_path).source == tmp_path / "fcvid"
    expected = {"activitynet": ActivityNet, "fcvid": FCVID, "mini-kinetics": MiniKinetics,
                "sth-sth-v1": SomethingV1, "sth-sth-v2": SomethingV2}  # fmt: skip
    for name, cls in expected.items():
        assert DATASETS.get(name) is cls and cls.name == name and cls.tasks == ("recognition",)
    config = parse_config(SomethingV1.Config, {"label_order": "csv", "frames": "12"}, "sth-sth-v1")
    assert (config.label_order, config.frames, config.crop) == ("csv", 12, 224)


# ---- training augmentation (AdaFocus sec. 4.1)


def test_train_split_carries_the_papers_augmentation(tmp_path: Path) -> None:
    dataset = _open(ActivityNet, make_activitynet(tmp_path), tmp_path)
    train, val = dataset.split("train"), dataset.split("val")
    assert dataset.config.resize_mode == "square"  # test frames: 256x256, centre 224
    augment = train[0].train_augment
    assert augment == TrainAugment((1.0, 0.875, 0.75, 0.66), 16, True)
    assert all(v.train_augment is None for v in val)
    frames = train[0].augment_frames()
    assert frames.shape == (4, 20, 20, 3) and frames.dtype == np.uint8  # resize x resize
    assert train[0].frame(0).image.shape == (3, 16, 16)  # the test transform is unchanged
    off = _open(ActivityNet, make_activitynet(tmp_path / "b"), tmp_path / "b", train_augment=False)
    assert off.split("train")[0].train_augment is None


def test_sth_sth_trains_without_flips(tmp_path: Path) -> None:
    dataset = _open(SomethingV1, make_sth_v1(tmp_path), tmp_path)
    assert dataset.split("train")[0].train_augment.flip is False
