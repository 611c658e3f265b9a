"""Where does AdaFocus look? (seed 002, Fig. 7, and the check behind Table 5's claim.)

For trained ``adafocus`` variants on a dataset that knows where its class-deciding object is
(synthaction's ``object_track``), every val frame's chosen patch is compared with the object:
a hit is a patch that contains the centre of the object's box. Hit rates are split by the
object's visibility (visible / absent / blurred) and set beside the rate a uniformly random
candidate would reach on the same frames (exact: the share of candidates that contain the
centre), so "the learned policy looks at the object" becomes a number. The study also draws
the chosen patches on a few videos (Fig. 7).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from vidbench.api import DataError
from vidbench.methods.recognition.adafocus import patch_corners
from vidbench.passes import run_episode
from vidbench.store import Store, record_id


@dataclass(frozen=True)
class FocusSettings:
    """Which trained methods to inspect, on how many val videos, and how many to draw."""

    methods: tuple[str, ...] = ("adafocus", "adafocus:policy=random")
    videos: int = 0  # 0 = every val video
    drawn: int = 4


def patch_boxes(model: Any, frame_size: tuple[int, int]) -> np.ndarray:
    """Every candidate's patch as inclusive pixel boxes (n, 4) x1, y1, x2, y2."""
    corners = patch_corners(model.candidates, frame_size, model.config.patch).numpy()
    size = model.config.patch - 1
    return np.stack(
        [corners[:, 1], corners[:, 0], corners[:, 1] + size, corners[:, 0] + size], axis=1
    ).astype(np.float64)


def contains(boxes: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(n, 4) boxes x (m, 2) points (x, y) -> (m, n) bool: the point lies inside the box."""
    x, y = points[:, None, 0], points[:, None, 1]
    return (boxes[None, :, 0] <= x) & (x <= boxes[None, :, 2]) & (boxes[None, :, 1] <= y) & (
        y <= boxes[None, :, 3]
    )


def focus_of(method: Any, video: Any) -> dict[str, Any]:
    """One video: chosen candidate per frame, whether it holds the object's centre, and the
    share of candidates that would."""
    frames = range(video.info.num_frames)
    predictions = run_episode(method, video, frames, frozenset())
    chosen = np.array([predictions[t].meta["patch"] for t in frames])
    boxes, visibility = video.object_track()
    centres = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], axis=1)
    inside = contains(patch_boxes(method.model, (video.info.height, video.info.width)), centres)
    return {
        "video": video.info.name,
        "chosen": chosen.tolist(),
        "hit": inside[np.arange(len(chosen)), chosen].tolist(),
        "chance": inside.mean(axis=1).tolist(),
        "visibility": np.asarray(visibility).astype(int).tolist(),
        "object_boxes": boxes.tolist(),
    }


def summarise(per_video: list[dict[str, Any]], names: tuple[str, ...]) -> dict[str, Any]:
    """Hit rate and random-candidate rate overall and per visibility name."""
    hit = np.concatenate([v["hit"] for v in per_video]).astype(float)
    chance = np.concatenate([v["chance"] for v in per_video])
    visibility = np.concatenate([v["visibility"] for v in per_video])
    out = {"all": {"hit_rate": float(hit.mean()), "random_rate": float(chance.mean()),
                   "frames": int(hit.size)}}
    for code, name in enumerate(names):
        rows = visibility == code
        if rows.any():
            out[name] = {
                "hit_rate": float(hit[rows].mean()),
                "random_rate": float(chance[rows].mean()),
                "frames": int(rows.sum()),
            }
    return out


def draw(method: Any, videos: list[Any], per_video: list[dict[str, Any]], path: Path) -> Path:
    """Fig. 7: frames of a few videos with the chosen patch (red) and the object (green)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    boxes = patch_boxes(method.model, (videos[0].info.height, videos[0].info.width))
    steps = videos[0].info.num_frames
    shown = list(range(0, steps, max(1, steps // 8)))[:8]
    fig, axes = plt.subplots(len(videos), len(shown), figsize=(1.6 * len(shown), 1.7 * len(videos)))
    axes = np.atleast_2d(axes)
    for row, (video, result) in enumerate(zip(videos, per_video)):
        for col, t in enumerate(shown):
            ax = axes[row, col]
            ax.imshow(video.frame(t).image.permute(1, 2, 0).numpy())
            for box, colour in ((boxes[result["chosen"][t]], "red"),
                                (np.asarray(result["object_boxes"][t]), "lime")):
                ax.add_patch(Rectangle((box[0], box[1]), box[2] - box[0], box[3] - box[1],
                                       fill=False, edgecolor=colour, linewidth=1.2))
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(f"t={t + 1}", fontsize=8)
    fig.suptitle("chosen patch (red) and the class-deciding object (green)", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def run_focus_study(
    options: dict[str, Any],
    dataset_name: str,
    dataset_options: dict[str, str],
    data_root: Path,
    checkpoint_dir: Path,
    store: Store,
    figures: Path,
) -> list[dict[str, Any]]:
    """Hit rates of each method's chosen patches (records in ``store``) and a Fig. 7 drawing
    per method under ``figures``; methods are trained, or loaded from the checkpoint cache."""
    from vidbench.building import RunSettings, build_dataset, prepare_method

    settings = FocusSettings(**options)
    run = RunSettings(data_root=data_root, checkpoint_dir=checkpoint_dir)
    dataset = build_dataset(dataset_name, dataset_options, run.data_root)
    dataset.prepare()
    videos = dataset.split("val")
    if not hasattr(videos[0], "object_track"):
        raise DataError(f"Dataset '{dataset_name}' does not say where its objects are.")
    videos = videos[: settings.videos or None]
    records = []
    for spec in settings.methods:
        prepared = prepare_method(spec, dataset, run)  # trains outside inference mode
        if not hasattr(getattr(prepared.method, "model", None), "candidates"):
            raise ValueError(f"{spec}: the focus study reads patch candidates (adafocus*).")
        with torch.inference_mode():
            per_video = [focus_of(prepared.method, video) for video in videos]
        identity = {"kind": "focus", **prepared.identity, "videos": len(videos)}
        figure = figures / f"focus_{prepared.label.replace(':', '_')}.png"
        record = {
            "record_id": record_id(identity),
            "label": prepared.label,
            **identity,
            "summary": summarise(per_video, tuple(dataset.visibility_names)),
            "figure": str(draw(prepared.method, videos[: settings.drawn],
                               per_video[: settings.drawn], figure)),
        }
        store.append(record)
        records.append(record)
    return records
