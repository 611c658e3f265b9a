"""End to end on the tiny synthcity: records, resume, reports, CLI errors."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from vidbench import passes
from vidbench.cli import main
from vidbench.report import render
from vidbench.runner import Runner, RunSettings
from vidbench.store import Store

from tests.conftest import TINY

METHODS = ["frame:train_steps=3", "prop-mv:train_steps=3", "interp-mv:train_steps=3:fusion=avg"]
OPTIONS = {k: str(v) for k, v in vars(TINY).items()}


def settings(root: Path, tmp: Path) -> RunSettings:
    return RunSettings(
        intervals=(1, 2, 3),
        speed_videos=1,
        speed_rounds=2,
        data_root=root,
        checkpoint_dir=tmp / "ckpt",
    )


def test_compare_writes_records_resumes_and_reports(
    data_root: Path, tmp_path: Path, monkeypatch
) -> None:
    store = Store(tmp_path / "records.jsonl")
    calls, interrupts = [], [3]
    real = passes.accuracy_pass

    def interrupted(prepared, dataset, videos, setting):
        calls.append((prepared.label, setting["interval"]))
        if interrupts and len(calls) == interrupts[0]:
            interrupts.clear()
            raise KeyboardInterrupt
        return real(prepared, dataset, videos, setting)

    monkeypatch.setattr(passes, "accuracy_pass", interrupted)
    with pytest.raises(KeyboardInterrupt):
        Runner(store, settings(data_root, tmp_path)).compare(METHODS, "synthcity", OPTIONS)
    assert len(store.records()) == 2

    calls.clear()
    records = Runner(store, settings(data_root, tmp_path)).compare(METHODS, "synthcity", OPTIONS)
    assert len(calls) == 5  # 1 frame + 3 prop-mv + 3 interp-mv accuracy runs, 2 already stored
    kinds = sorted((r["kind"], r["label"], r["interval"]) for r in store.records())
    assert len(kinds) == 14 and kinds.count(("speed", "frame:train_steps=3", 1)) == 1
    speed = [r for r in records if r["kind"] == "speed"]
    assert all(r["spot_check"]["agreement"] == 1.0 for r in speed)
    assert all(r["cost"]["gmacs_per_frame"] > 0 and r["cost"]["params"] > 0 for r in speed)
    interp = next(r for r in speed if r["label"].startswith("interp") and r["interval"] == 3)
    assert interp["speed"]["delay_frames"]["max"] == 2
    prop = next(r for r in speed if r["label"].startswith("prop") and r["interval"] == 3)
    assert prop["speed"]["delay_frames"]["max"] == 0
    frame = next(r for r in speed if r["label"].startswith("frame"))
    assert prop["cost"]["gmacs_per_frame"] < 0.5 * frame["cost"]["gmacs_per_frame"]

    calls.clear()
    Runner(store, settings(data_root, tmp_path)).compare(METHODS, "synthcity", OPTIONS)
    assert calls == [] and len(store.records()) == 14

    written = render(store.records(), tmp_path / "reports")
    table = written["table_md"].read_text()
    assert "mIoU (avg.) (%)" in table and "interp-mv:train_steps=3:fusion=avg" in table
    for key in ("curve_avg", "curve_min", "per_offset", "breakdown", "curve_avg_vs_paper"):
        assert written[key].stat().st_size > 1000
    assert "Measured beside the paper (seed 000 Table 1, cityscapes" in table
    assert "H.264 encode cost:" in table and "ms per frame over" in table
    assert "## Readings of the paper" in table and "interp-mv `fusion=avg`" in table
    assert "`fusion=max`" not in table  # only the readings of what was measured
    assert all(r["preparation"]["encode_ms_per_frame"] > 0 for r in records)
    beside = pd.read_csv(written["paper_csv"]).set_index(["scheme", "interval"])
    row = beside.loc[("prop-mv:train_steps=3", 3)]
    assert row["mIoU avg paper"] == 71.3  # seed 000 Table 1, prop-mv at interval 3
    assert row["mIoU avg diff"] == pytest.approx(row["mIoU avg measured"] - 71.3)
    assert row["speed-up paper"] == pytest.approx(3.4 / 1.3)


def test_cli_errors_are_one_clear_line(capsys) -> None:
    assert main(["compare", "--methods", "frame,prop_mv"]) == 2
    assert "Unknown method 'prop_mv'. Did you mean: prop-mv" in capsys.readouterr().err
    assert main(["compare", "--methods", "frame", "--dataset", "cityscape"]) == 2
    assert "Unknown dataset 'cityscape'" in capsys.readouterr().err
    assert main(["compare", "--methods", "frame", "--intervals", "0-3"]) == 2
    assert "--intervals" in capsys.readouterr().err
    assert main(["compare", "--methods", "interp-mv:fusion=sum"]) == 2
    assert "allowed: conv, avg, max" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(["compare", "--methods", "frame", "--device", "cuda"]) == 2
        assert "this machine has no CUDA device" in capsys.readouterr().err
    assert main(["compare", "--task", "detection", "--methods", "frame,rfcn"]) == 2
    assert "the methods serve detection, segmentation" in capsys.readouterr().err
    assert main(["compare", "--methods", "frame,rfcn"]) == 2
    assert "name the --dataset" in capsys.readouterr().err
    assert main(["compare", "--methods", "rfcn", "--dataset", "synthcity"]) == 2
    assert "Dataset 'synthcity' has no labels for detection" in capsys.readouterr().err
    assert main(["compare", "--methods", "frame", "--device", "tpu"]) == 2
    assert "Unknown device 'tpu'" in capsys.readouterr().err
    assert main(["report", "--results", "/nonexistent/x.jsonl"]) == 2
    assert "No results at /nonexistent/x.jsonl" in capsys.readouterr().err


def test_list_names_methods_datasets_and_options(capsys) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("frame", "prop-mv", "interp-mv", "synthcity", "fusion=conv"):
        assert name in out


def test_fig2_breakdown_compares_intermediate_frames() -> None:
    import pandas as pd
    from vidbench.report.tables import intermediate_breakdown

    df = pd.DataFrame(
        [
            {
                "scheme": "prop-flow",
                "interval": 5,
                "intermediate_ms_motion": 6.0,
                "intermediate_ms_warp": 1.0,
                "intermediate_ms_task": 3.0,
            },
            {
                "scheme": "prop-mv",
                "interval": 5,
                "intermediate_ms_motion": 0.5,
                "intermediate_ms_warp": 1.0,
                "intermediate_ms_task": 3.0,
            },
            {
                "scheme": "prop-mv",
                "interval": 1,
                "intermediate_ms_motion": 0.0,
                "intermediate_ms_warp": 0.0,
                "intermediate_ms_task": 0.0,
            },
        ]
    )
    table = intermediate_breakdown(df)
    assert list(table.scheme) == ["prop-flow", "prop-mv"]
    assert table.total_ms.tolist() == [10.0, 4.5]
    assert table.vs_prop_flow.tolist() == [1.0, 0.45]


def test_a_corrupt_video_fails_its_records_and_the_run_goes_on(
    data_root: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    from vidbench.datasets.video import encoded as video_module
    from vidbench.datasets.video.codec import VideoError

    real = video_module.decode_with_motion

    def damaged(path, *args, **kwargs):
        if path.name == "val_0002.mp4":
            raise VideoError(f"{path}: truncated stream (decoded 5 of 12 frames)")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(video_module, "decode_with_motion", damaged)
    store = Store(tmp_path / "records.jsonl")
    records = Runner(store, settings(data_root, tmp_path)).compare(
        ["frame:train_steps=3"], "synthcity", OPTIONS
    )
    failed = [r for r in records if "error" in r]
    assert {r["kind"] for r in failed} == {"accuracy"}
    assert "val_0002.mp4: truncated stream" in failed[0]["error"]
    assert [r["kind"] for r in records if "error" not in r] == ["speed"]  # speed uses val_0000 only

    monkeypatch.setattr(video_module, "decode_with_motion", real)
    rerun = Runner(store, settings(data_root, tmp_path)).compare(
        ["frame:train_steps=3"], "synthcity", OPTIONS
    )
    assert [r["kind"] for r in rerun] == ["accuracy"] and "error" not in rerun[0]


def test_resumed_rounds_must_come_from_the_same_code_and_machine(tmp_path: Path) -> None:
    from vidbench.runner import _resumable_rounds, _write_atomic

    path = tmp_path / "r.json"
    origin = {"code": {"commit": "a", "dirty": False}, "machine": {"cpu": "x"}}
    _write_atomic(path, {"provenance": origin, "rounds": [[{"latency_s": [0.1]}]]})
    assert _resumable_rounds(path, origin) == [[{"latency_s": [0.1]}]]
    assert _resumable_rounds(path, {**origin, "code": {"commit": "b", "dirty": False}}) == []
    path.write_text('{"provenance": ')  # torn by an interruption
    assert _resumable_rounds(path, origin) == []


def test_speedup_pairs_any_frame_config_of_the_same_run() -> None:
    import pandas as pd
    from vidbench.report.tables import with_speedup

    df = pd.DataFrame(
        [
            {"scheme": "frame:train_steps=200", "interval": 1, "fps": 100.0, "run_id": "r1"},
            {"scheme": "prop-mv:train_steps=200", "interval": 5, "fps": 250.0, "run_id": "r1"},
            {"scheme": "prop-mv", "interval": 5, "fps": 300.0, "run_id": "r2"},
        ]
    )
    assert with_speedup(df).speedup.tolist()[:2] == [1.0, 2.5]
    assert pd.isna(with_speedup(df).speedup.iloc[2])


def test_steady_state_throughput_weights_key_and_other_latencies_by_one_in_n() -> None:
    from vidbench.speed import steady_fps, summarise_speed

    stream = {"latency_s": [0.012, 0.002, 0.002, 0.012], "kind": ["key", "intermediate",
              "intermediate", "key"], "components_s": [{}] * 4, "delay_frames": [0] * 4,
              "delay_s": [0.0] * 4}
    # a key every 5 frames: (12 + 4 * 2) / 5 = 4 ms a frame; the finite stream measured 7 ms
    assert steady_fps([stream], 1 / 5) == pytest.approx(250.0)
    assert steady_fps([stream], None) == pytest.approx(4 / 0.028)
    summary = summarise_speed([[stream]] * 3, 1 / 5)
    assert summary["steady_fps"] == pytest.approx(250.0) and summary["steady_key_fraction"] == 0.2
    assert summary["fps"] == pytest.approx(4 / 0.028)


def test_steady_state_leaves_out_the_opening_key_that_closes_no_segment() -> None:
    from vidbench.speed import steady_fps

    # a look-ahead method at n = 5: the opening key runs the feature network only (10 ms), the
    # next emits the 4 held frames too (10 + 4 x 3 ms); held steps cost nothing. Endless: every
    # key is the second kind, (22 + 4 x 0) / 5 ms a frame
    held = ["intermediate"] * 4
    stream = {"latency_s": [0.010, 0, 0, 0, 0, 0.022], "kind": ["key", *held, "key"]}
    assert steady_fps([stream], 1 / 5) == pytest.approx(5 / 0.022)
    single = {"latency_s": [0.010, 0.002], "kind": ["key", "intermediate"]}
    assert steady_fps([single], 1 / 2) == pytest.approx(2 / 0.012)  # no later key: every key


def test_impossible_intervals_are_refused_before_training(data_root: Path, tmp_path: Path) -> None:
    import pytest
    from vidbench.protocols import ProtocolError

    runner = Runner(
        Store(tmp_path / "r.jsonl"),
        RunSettings(intervals=(2, 6), data_root=data_root, checkpoint_dir=tmp_path / "never"),
    )
    with pytest.raises(ProtocolError, match="next keyframe past the end"):
        runner.compare(["interp-mv"], "synthcity", OPTIONS)
    assert not (tmp_path / "never").exists()


def test_each_training_seed_has_its_own_records_and_report() -> None:
    from vidbench.cli import _paths, build_parser

    parser = build_parser()
    zero = parser.parse_args(["compare", "--methods", "rfcn"])
    two = parser.parse_args(["compare", "--methods", "rfcn", "--seed", "2"])
    assert _paths(zero, "synthdet") == (Path("results/runs/synthdet.jsonl"), Path("reports/synthdet"))
    assert _paths(two, "synthdet") == (
        Path("results/runs/synthdet-seed2.jsonl"),
        Path("reports/synthdet-seed2"),
    )
    report = parser.parse_args(["report", "--dataset", "synthdet", "--seed", "2"])
    assert _paths(report, "synthdet")[0] == Path("results/runs/synthdet-seed2.jsonl")
    assert main(["report", "--dataset", "no-such-world", "--seeds", "0-1"]) == 2  # no stores
    assert main(["report", "--dataset", "synthdet", "--seeds", "-1"]) == 2


def test_a_seed_report_reads_the_stores_of_the_folder_results_names(tmp_path: Path) -> None:
    """`bench report --seeds 0-2 --results results/synthetic` re-renders the committed seeds."""
    committed = Path(__file__).resolve().parents[2] / "results" / "synthetic"
    args = ["report", "--dataset", "synthdet", "--seeds", "0-2", "--reports", str(tmp_path)]
    assert main([*args, "--results", str(committed)]) == 0
    table = (tmp_path / "seeds.md").read_text()
    assert "| detection | psla:setting=a | interval=10, keys=middle | mAP (%) | 24.0 | 57.0 | 54.1 |" in table


def test_records_keep_the_commit_their_run_started_from(monkeypatch: pytest.MonkeyPatch) -> None:
    from vidbench import provenance as prov

    prov.code_state.cache_clear()
    monkeypatch.setattr(prov, "_git", lambda *args: "" if args[0] == "status" else "aaaa")
    assert prov.provenance()["code"] == {"commit": "aaaa", "dirty": False}
    monkeypatch.setattr(prov, "_git", lambda *args: "dirty" if args[0] == "status" else "bbbb")
    assert prov.provenance()["code"] == {"commit": "aaaa", "dirty": False}  # a commit mid-run
    prov.code_state.cache_clear()
