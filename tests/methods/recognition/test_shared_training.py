"""Training that rows share is done once: AdaFocus's stage I across the Table 5 rows that train
it alike, and AdaFocus+'s whole training across its eta sweep; sharing changes no weight."""

from __future__ import annotations

from pathlib import Path

import torch
from vidbench.building import Prepared, RunSettings, prepare_method
from vidbench.methods.recognition.adafocus import solve_rho
from vidbench.methods.recognition.train_clips import train_clips

TINY = "epochs=1:candidates=25"


def _prepare(spec: str, dataset, checkpoints: Path) -> Prepared:
    return prepare_method(spec, dataset, RunSettings(checkpoint_dir=checkpoints))


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    left, right = a.state_dict(), b.state_dict()
    return left.keys() == right.keys() and all(torch.equal(left[k], right[k]) for k in left)


def test_rows_that_train_stage_one_alike_share_it_and_match_training_it_alone(
    tiny_recognition_dataset, tmp_path: Path
) -> None:
    shared = tmp_path / "shared"
    _prepare(f"adafocus:{TINY}", tiny_recognition_dataset, shared)
    loaded = _prepare(f"adafocus:{TINY}:reward=confidence", tiny_recognition_dataset, shared)
    assert len(list(shared.glob("adafocus-stage1-*.pt"))) == 1
    alone = _prepare(f"adafocus:{TINY}:reward=confidence", tiny_recognition_dataset, tmp_path)
    assert _same_weights(loaded.method.model, alone.method.model)
    assert loaded.identity == alone.identity  # records do not depend on what the cache held
    assert set(loaded.identity["checkpoints"]) == {"adafocus"}
    _prepare(f"adafocus:{TINY}:policy=central", tiny_recognition_dataset, shared)
    assert len(list(shared.glob("adafocus-stage1-*.pt"))) == 2  # central patches: its own


def test_adafocus_plus_trains_once_and_solves_rho_per_eta(
    tiny_recognition_dataset, tmp_path: Path
) -> None:
    rows = {
        eta: _prepare(f"adafocus+:{TINY}:eta={eta}", tiny_recognition_dataset, tmp_path).method
        for eta in (0.9, 0.5)
    }
    assert len(list(tmp_path.glob("adafocus+-*.pt"))) == 1
    assert _same_weights(rows[0.9].model, rows[0.5].model)
    (path,) = tmp_path.glob("adafocus+-*.pt")
    probs = torch.load(path, weights_only=True)["keep_probs"]
    clips = train_clips(rows[0.9].workspace.train_videos())
    assert probs.numel() == len(clips) * tiny_recognition_dataset.config.frames
    for eta, method in rows.items():
        assert method.rho == solve_rho(probs, eta)
        assert (probs >= method.rho).float().mean() >= eta
    assert rows[0.9].rho <= rows[0.5].rho


def test_batches_restored_to_a_state_continue_as_the_original(
    tiny_recognition_dataset,
) -> None:
    clips = train_clips(tiny_recognition_dataset.split("train"))
    original, resumed = clips.batches(4, seed=3), clips.batches(4, seed=3)
    list(original())
    resumed.restore(original.state())
    for (a, la), (b, lb) in zip(original(), resumed(), strict=True):
        assert torch.equal(a, b) and torch.equal(la, lb)

