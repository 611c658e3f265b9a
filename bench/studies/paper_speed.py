"""``bench speed --scale paper``: the three papers' efficiency claims timed at the papers' network
and input sizes, with the harness's meter, interleaved rounds, validity rules and records.

Speed needs no trained weights: each method is built with the paper's network and its smoke
training budget (one or two steps) on a tiny version of its task's synthetic world, then timed
on frames of that world rendered at the paper's input size and encoded to real H.264, so
prop-mv and interp-mv get real codec vectors and DFF / prop-flow run the published FlowNetS.
No path timed here depends on the weights' values: every key schedule is fixed by the protocol,
the patch sizes of AdaFocus are fixed, and only the location of its patch (not its size or
cost) follows the policy's output. Records go to their own store (``results/runs/
paper-speed.jsonl`` by default), apart from trained-accuracy records, and are speed-only.

Two plans: ``cpu`` (fits about 20 minutes on a 2-core CPU: shorter streams and a subset of
methods and sizes, said in the report) and ``full`` (every method and size of the issue's list;
minutes on a GPU). The harness's own costs are measured alongside: the share of a stream's
wall time spent outside ``method.step`` and the codec's motion-vector decode + rasterise
throughput on one core.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from vidbench.building import RunSettings, build_dataset
from vidbench.datasets.segmentation.synthcity.render import render_snippet
from vidbench.datasets.video.codec import decode_with_motion, encode_h264
from vidbench.datasets.video.encoded import MOTION_GRID
from vidbench.datasets.video.motion import rasterise
from vidbench.methods.motion.flownet import FlowNetS
from vidbench.provenance import provenance
from vidbench.records import Record
from vidbench.runner import Runner
from vidbench.store import Store

SEG_NET = "layers=3-4-23-3:width=64:expansion=4:deformable=true"
DET_NET = "layers=3-4-23-3:width=64:expansion=4:feature_channels=1024"
PSLA = f"psla:{DET_NET}:train_steps=1:psla_steps=1:embed_channels=256"


@dataclass(frozen=True)
class Part:
    """One timed comparison: methods built on a tiny world (``train``), timed on the same
    world rendered at the paper's size (``timed``)."""

    seed: str
    name: str
    dataset: str
    train: dict[str, str]
    timed: dict[str, str]
    methods: tuple[str, ...]
    intervals: tuple[int, ...]
    speed_videos: int = 1
    speed_rounds: int = 3
    batch: int = 2
    note: str = ""


def seed000_part(
    size: str,
    height: int,
    width: int,
    intervals: tuple[int, ...],
    frames: int,
    network: str = SEG_NET,
) -> Part:
    """Seed 000's methods with ``network`` (the paper's R101-DCN by default), trained on a tiny
    synthcity and timed on it rendered at ``height`` x ``width`` in ``frames``-frame streams."""
    common = ":".join(filter(None, (network, "train_steps=1")))
    return Part(
        "000",
        f"segmentation-{size}",
        "synthcity",
        {
            "train_videos": "1",
            "val_videos": "1",
            "height": "64",
            "width": "128",
            "frames": "12",
            "labelled_index": "7",
        },
        {
            "train_videos": "1",
            "val_videos": "1",
            "height": str(height),
            "width": str(width),
            "frames": str(frames),
            "labelled_index": str(frames - 1),
        },
        (
            f"frame:{common}",
            f"prop-mv:{common}",
            f"interp-mv:{common}:fusion_steps=1",
            f"prop-flow:{common}:flownet_weights={{flownets}}:flownet_finetune_steps=1",
        ),
        intervals,
    )


def _seed001(ds: tuple[int, ...], frames: int) -> Part:
    ablations = tuple(
        f"{PSLA}:attention={kind}:setting=S:d={d}"
        for d in ds
        for kind in ("matchtrans", "dense-psla")
    ) + tuple(f"{PSLA}:setting=a:d={d}" for d in ds if d != 4)
    return Part(
        "001",
        "detection-600x1000",
        "synthdet",
        {"train_videos": "2", "val_videos": "1", "height": "64", "width": "128", "frames": "12"},
        {
            "train_videos": "1",
            "val_videos": "1",
            "height": "600",
            "width": "1000",
            "frames": str(frames),
        },
        (
            f"rfcn:{DET_NET}:train_steps=1",
            f"dff:{DET_NET}:train_steps=1:flownet=flownets:flownet_pretrain_steps=1"
            ":flownet_finetune_steps=1",
            PSLA,
            f"{PSLA}:setting=a",
            f"{PSLA}:attention=nonlocal:setting=S",
            *ablations,
        ),
        (10,),
    )


def _seed002(videos: int, batch: int, patches: tuple[int, ...] = (144, 160, 176)) -> Part:
    paper = "scale=paper:epochs=1"
    return Part(
        "002",
        "recognition-224",
        "synthaction",
        {"train_videos": "2", "val_videos": "1", "height": "224", "width": "224", "frames": "16"},
        {
            "train_videos": "1",
            "val_videos": str(videos),
            "height": "224",
            "width": "224",
            "frames": "16",
        },
        (
            f"tsm:{paper}",
            f"tsm+:{paper}",
            *(f"adafocus-tsm:{paper}:patch={patch}" for patch in patches),
            f"adafocus:{paper}:patch=128",
            *((f"adafocus:{paper}:patch=160",) if len(patches) > 1 else ()),
            f"r50-avg:{paper}",
        ),
        (1,),
        speed_videos=videos,
        batch=batch,
    )


PLANS: dict[str, list[Part]] = {
    # about 20 minutes on 2 CPU cores: CamVid's size only, 11-frame streams (two keys at n = 10;
    # frame's every-frame-a-key stream is the n = 1 point); R-FCN, DFF, PSLA (a) and Nonlocal S
    # without the d-ablations; AdaFocus-TSM at patch 144 and AdaFocus at 128 only, offline at
    # batch 2
    "cpu": [
        seed000_part("camvid-960x720", 720, 960, (10,), 11),
        _seed001((), 11),
        _seed002(2, 2, (144,)),
    ],
    # the issue's whole list, for a GPU: both of seed 000's sizes at n = 1, 2, 5, 10 on 21-frame
    # streams, d = 2..5, recognition offline at batch 64
    "full": [
        seed000_part("camvid-960x720", 720, 960, (1, 2, 5, 10), 21),
        seed000_part("cityscapes-2048x1024", 1024, 2048, (1, 2, 5, 10), 21),
        _seed001((2, 3, 4, 5), 21),
        _seed002(4, 64),
    ],
}


@dataclass
class TrainedElsewhere:
    """A dataset trained on one world (``train``) and scored and timed on another
    (``timed``): the paper-size frames, on which no method needs to train."""

    train: Any
    timed: Any
    name: str = field(init=False)

    def __post_init__(self) -> None:
        self.name = self.timed.name
        self.tasks = self.timed.tasks
        self.num_classes = self.timed.num_classes
        for optional in ("ignore_index", "class_names"):
            if hasattr(self.timed, optional):
                setattr(self, optional, getattr(self.timed, optional))

    def fingerprint(self) -> str:
        return f"{self.train.fingerprint()}+{self.timed.fingerprint()}"

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "trained_on": self.train.describe(),
            "timed_on": self.timed.describe(),
            "fingerprint": self.fingerprint(),
        }

    def prepare(self) -> None:
        self.train.prepare()
        self.timed.prepare()

    def preparation(self) -> dict:
        return self.timed.preparation() if hasattr(self.timed, "preparation") else {}

    def split(self, name: str) -> list:
        return self.train.split("train") if name == "train" else self.timed.split(name)


def random_flownets(folder: Path) -> Path:
    """A FlowNetS file in the published layout (no scale field: it starts at 1 when loaded)
    with seeded random weights, for timing only."""
    path = folder / "flownets-random.pth"
    if not path.exists():
        torch.manual_seed(0)
        state = {k: v for k, v in FlowNetS(1).state_dict().items() if not k.startswith("scale.")}
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"state_dict": state, "div_flow": 20.0}, path)
    return path


def run_part(part: Part, store: Store, settings: RunSettings) -> list[dict[str, Any]]:
    """Build ``part``'s methods on its tiny world and time them at the paper's size."""
    train = build_dataset(part.dataset, part.train, settings.data_root)
    timed = build_dataset(part.dataset, part.timed, settings.data_root)
    flownets = random_flownets(settings.checkpoint_dir)
    methods = [m.replace("{flownets}", str(flownets)) for m in part.methods]
    run = RunSettings(
        intervals=part.intervals,
        speed_videos=part.speed_videos,
        speed_rounds=part.speed_rounds,
        threads=settings.threads,
        device=settings.device,
        batch=part.batch,
        data_root=settings.data_root,
        checkpoint_dir=settings.checkpoint_dir,
        accuracy=False,
    )
    return Runner(store, run).compare_on(methods, TrainedElsewhere(train, timed))


def decode_throughput(
    sizes: tuple[tuple[int, int], ...] = ((256, 512), (720, 960)), frames: int = 30
) -> list[dict[str, Any]]:
    """Frames per second of decoding H.264 with exported vectors and rasterising them, on one
    core (torch and the decoder single-threaded), per frame size (height, width)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for height, width in sizes:
                snippet = render_snippet(7, height, width, frames)
                path = Path(tmp) / f"clip-{height}x{width}.mp4"
                encode_h264(snippet.frames, path)
                timings = []
                for _ in range(3):
                    started = time.perf_counter()
                    decoded = decode_with_motion(path)
                    for records in decoded.motion:
                        rasterise(records, height, width, MOTION_GRID)
                    timings.append(time.perf_counter() - started)
                rows.append(
                    {
                        "height": height,
                        "width": width,
                        "frames": frames,
                        "fps": frames / float(np.median(timings)),
                        "fps_rounds": [frames / t for t in timings],
                    }
                )
    finally:
        torch.set_num_threads(threads)
    return rows


def run_paper_speed(
    plan: str, parts: tuple[str, ...], store: Store, settings: RunSettings
) -> list[dict[str, Any]]:
    """Every part of ``plan`` (or those named in ``parts``), then the codec's throughput."""
    records = []
    for part in PLANS[plan]:
        if parts and part.name not in parts and part.seed not in parts:
            continue
        print(f"paper-scale speed: seed {part.seed}, {part.name}")
        records += run_part(part, store, settings)
    context = {
        "run_id": f"decode-{time.strftime('%Y%m%dT%H%M%S')}",
        "provenance": provenance("cpu"),
    }
    for row in decode_throughput():
        identity = {
            "kind": "decode",
            "height": row["height"],
            "width": row["width"],
            "threads": 1,
            "frames": row["frames"],
        }
        label = f"decode+rasterise {row['width']}x{row['height']}"
        record = Record(identity, label, context, {"speed": row})
        store.append(record.to_json())
        records.append(record.to_json())
        print(f"{label}: {row['fps']:.0f} fps on one core")
    return records
