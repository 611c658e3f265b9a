"""Bad arguments are refused before any work: one line naming the option, exit 2, no
traceback, within seconds."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from vidbench.cli import main

CASES = {
    "--speed-videos 0": (["--speed-videos", "0"], "--speed-videos"),
    "--speed-videos -1": (["--speed-videos", "-1"], "--speed-videos"),
    "--speed-rounds 0": (["--speed-rounds", "0"], "--speed-rounds"),
    "--threads 0": (["--threads", "0"], "--threads"),
    "--batch 0": (["--batch", "0"], "--batch"),
    "--seed -1": (["--seed", "-1"], "--seed"),
    "--intervals 0": (["--intervals", "0"], "--intervals"),
    "val_videos=0": (["--dataset", "synthcity:val_videos=0"], "val_videos"),
    "absurd width": (["--dataset", "synthcity:width=100000000"], "4096"),
    "negative steps": (["--methods", "frame:train_steps=-3"], "train_steps"),
    "nan lr": (["--methods", "interp-mv:fusion_lr=nan"], "finite"),
    "unknown option": (["--methods", "frame:no_such=1"], "no_such"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_arguments_are_refused_before_any_work(case: str, tmp_path: Path, capsys) -> None:
    extra, named = CASES[case]
    argv = [
        "compare",
        "--methods",
        "frame",
        "--data-root",
        str(tmp_path / "data"),
        "--checkpoints",
        str(tmp_path / "ckpt"),
        "--results",
        str(tmp_path / "r.jsonl"),
        "--reports",
        str(tmp_path / "reports"),
    ]
    if "--methods" in extra:
        argv[2] = extra[1]
        extra = extra[2:]
    started = time.monotonic()
    try:
        code = main(argv + extra)
    except SystemExit as exit_:  # argparse refuses its own options this way
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2 and named in err and "Traceback" not in err
    assert time.monotonic() - started < 5
    assert not (tmp_path / "data").exists() and not (tmp_path / "ckpt").exists()


def test_an_unwritable_results_folder_is_refused_before_any_work(tmp_path: Path, capsys) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code = main(
        [
            "compare",
            "--methods",
            "frame",
            "--results",
            str(blocker / "r.jsonl"),
            "--data-root",
            str(tmp_path / "data"),
            "--checkpoints",
            str(tmp_path / "ckpt"),
        ]
    )
    assert code == 2 and "results folder" in capsys.readouterr().err
    assert not (tmp_path / "data").exists()


def test_bench_list_prints_whole_descriptions_allowed_values_and_sources(capsys) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "psla [detection] (built-in)" in out
    assert "attention=psla one of psla|dense-psla|matchtrans|nonlocal" in out
    assert "epochs=0" in out and "(0 = the preset's epochs per stage)" in out
    assert "rho keeps the top ``eta`` of the train frames" in " ".join(out.split())  # whole


def test_help_shows_every_default(capsys) -> None:
    import pytest as _pytest

    with _pytest.raises(SystemExit):
        main(["compare", "--help"])
    out = capsys.readouterr().out
    assert "(default: 4)" in out and "(default: 1-10)" in out and "--preset" in out
