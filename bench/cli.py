"""``bench``: a thin parser over the library (list, compare, report, motion, regress)."""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from pathlib import Path

from vidbench import distributed
from vidbench.library import DEFAULT_REPORTS, DEFAULT_RESULTS, store_name
from vidbench.provenance import code_state
from vidbench.registry import (
    DATASETS,
    METHODS,
    MOTION_SOURCES,
    STUDIES,
    TASKS,
    RegistryError,
    describe_options,
    load_plugin,
    parse_config,
    split_spec,
)


def at_least(least: int):
    """An argparse type: an integer >= ``least`` (argparse names the option on a bad value)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not an integer") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"{value} is below {least}")
        return value

    parse.__name__ = f"integer >= {least}"
    return parse


def writable_folder(folder: Path, what: str) -> Path:
    """``folder``, created if needed, after checking that a file can be written in it, so that
    a run never fails at its end for want of a place to put its results."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-check-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        raise ValueError(f"{what} folder {folder} is not writable ({error.strerror}).") from None
    return folder


def parse_intervals(text: str, option: str = "--intervals", least: int = 1) -> tuple[int, ...]:
    """``"1-10"``, ``"1,2,5"`` or ``"1-3,8"`` -> sorted unique ints >= ``least``."""
    values: set[int] = set()
    try:
        for part in filter(None, text.split(",")):
            low, _, high = part.partition("-")
            values.update(range(int(low), int(high or low) + 1))
    except ValueError:
        raise RegistryError(f"Bad {option} '{text}': use e.g. 1-10 or 1,2,5.") from None
    if not values or min(values) < least:
        raise RegistryError(f"Bad {option} '{text}': values are integers >= {least}.")
    return tuple(sorted(values))


def cmd_list(args: argparse.Namespace) -> int:
    for title, registry in (("methods", METHODS), ("datasets", DATASETS)):
        print(f"{title}:")
        for name in registry.names():
            cls = registry.get(name)
            task = f"[{cls.task}]" if hasattr(cls, "task") else f"[{', '.join(cls.tasks)}]"
            print(f"\n  {name} {task} ({registry.source(name)})")
            print(textwrap.indent(textwrap.fill(_summary(cls), 92), "    "))
            for option in describe_options(cls.Config):
                allowed = f" one of {'|'.join(map(str, option['allowed']))}" if option["allowed"] else ""
                note = f"  ({option['note']})" if option["note"] else ""
                print(f"      {option['name']}={option['default']}{allowed}{note}")
    print(f"\nmotion sources (prop:motion=NAME): {', '.join(MOTION_SOURCES.names())}")
    print("Give options as name:key=value[:key=value], e.g. interp-mv:fusion=avg, prop:motion=dis;"
          " 0 for a count or a rate means the default only where its note says so.")
    return 0


def _summary(cls: type) -> str:
    """The first paragraph of a class's docstring, whole."""
    doc = (cls.__doc__ or "").strip()
    return " ".join(doc.split("\n\n")[0].split())


def cmd_check(args: argparse.Namespace) -> int:
    from vidbench.conformance import check_method

    results = check_method(args.method, Path(args.work))
    for name, failure in results.items():
        print(f"{'ok  ' if failure is None else 'FAIL'} {name}" + (f": {failure}" if failure else ""))
    failed = sum(failure is not None for failure in results.values())
    print(f"{args.method}: {len(results) - failed} of {len(results)} contract checks passed")
    return 1 if failed else 0


def _paths(args: argparse.Namespace, dataset: str) -> tuple[Path, Path]:
    """Records file and report folder; a training seed other than 0 gets its own of each, so
    that runs of several seeds never replace each other in one report."""
    name = store_name(dataset, args.seed)
    results = args.results or DEFAULT_RESULTS / f"{name}.jsonl"
    reports = args.reports or DEFAULT_REPORTS / name
    return Path(results), Path(reports)


def cmd_compare(args: argparse.Namespace) -> int:
    from vidbench.library import plan, run
    from vidbench.runner import RunSettings
    from vidbench.store import Store

    chosen = plan(
        args.methods.split(","), args.dataset, task=args.task, preset=args.preset,
        seed=args.seed, results=args.results, reports=args.reports,
    )
    settings = RunSettings(
        intervals=parse_intervals(args.intervals),
        speed_videos=args.speed_videos,
        speed_rounds=args.speed_rounds,
        threads=args.threads,
        protocol_options=tuple(split_spec(":" + args.protocol)[1].items()),
        device=args.device,
        batch=args.batch,
        data_root=Path(args.data_root),
        checkpoint_dir=Path(args.checkpoints),
        seed=args.seed,
        rerun=tuple(m for m in (args.rerun or "").split(",") if m),
    )
    writable_folder(chosen.results.parent, "results")
    writable_folder(chosen.reports, "reports")
    records = run(chosen, settings)
    if not distributed.is_writer():
        return 0  # under torchrun, rank 0 reports
    failed = [r for r in records if "error" in r]
    status = _report(Store(chosen.results), chosen.reports)
    for record in failed:
        print(f"error: {record['kind']} {record['label']}: {record['error']}", file=sys.stderr)
    return 1 if failed else status


def cmd_report(args: argparse.Namespace) -> int:
    from vidbench.store import Store

    if args.seeds:
        return _report_seeds(args)
    results, reports = _paths(args, args.dataset)
    if not results.exists():
        raise FileNotFoundError(f"No results at {results}: run `bench compare` first.")
    return _report(Store(results), reports, _formats(args.format), _formats(args.figure_format))


def _formats(text: str) -> tuple[str, ...]:
    return tuple(f.strip() for f in text.split(",") if f.strip())


def _report_seeds(args: argparse.Namespace) -> int:
    """One table over the stores of several seeds (``--seeds 0,1,2``), read from the folder
    ``--results`` names (default results/runs), e.g. the committed results/synthetic."""
    from vidbench.report.seeds import render_seeds
    from vidbench.store import Store

    folder = Path(args.results) if args.results else DEFAULT_RESULTS
    records = []
    for seed in parse_intervals(args.seeds, "--seeds", least=0):
        results = folder / f"{store_name(args.dataset, seed)}.jsonl"
        if not results.exists():
            raise FileNotFoundError(f"No results at {results}: run `bench compare --seed {seed}`.")
        records += Store(results).records()
    reports = Path(args.reports or DEFAULT_REPORTS / f"{args.dataset}-seeds")
    written = render_seeds(records, reports)
    print(f"tables:  {written['md']}\nfigures: {written['png']}\nmore:    {written['csv']}")
    return 0


def _report(
    store, reports: Path, tables: tuple[str, ...] = ("md", "csv"), figures: tuple[str, ...] = ("png",)
) -> int:
    from vidbench.report import export_tables, render
    from vidbench.report.plots import figure_formats

    records = store.records()
    damaged = [r for r in records if "state" in r and not store.state_intact(r)]
    for record in damaged:
        print(
            f"warning: {record['label']} ({record['kind']}): {store.state_problem(record)}; "
            "`bench compare` with the same options re-computes it.",
            file=sys.stderr,
        )
    with figure_formats(figures):
        written = render(records, reports)
    written.update(export_tables(written, tables))
    markdown = [p for p in written.values() if p.suffix == ".md"]
    images = [p for p in written.values() if p.suffix == ".png"]
    others = [p for p in written.values() if p not in markdown and p not in images]
    print(f"tables:  {', '.join(map(str, markdown))}")
    print(f"figures: {', '.join(map(str, images))}" + (
        f" (also as {', '.join(f for f in figures if f != 'png')})" if set(figures) - {"png"} else ""))
    print(f"more:    {', '.join(map(str, others))}")
    return 0


def cmd_motion(args: argparse.Namespace) -> int:
    from vidbench.report.motion import render_motion
    from vidbench.store import Store

    study = STUDIES.get("motion")
    name, options = split_spec(args.dataset)
    parse_config(DATASETS.get(name).Config, options, f"dataset '{name}'")
    sources = tuple(s for s in args.sources.split(",") if s)
    if args.raft_weights and "raft" not in sources:
        sources += ("raft",)
    settings = {
        "sources": sources,
        "synth_videos": args.synth_videos,
        "real_frames": args.real_frames,
        "raft_weights": args.raft_weights or "",
    }
    writable_folder(Path(args.results).parent, "results")
    writable_folder(Path(args.reports), "reports")
    store = Store(Path(args.results))
    study(settings, name, options, Path(args.data_root), Path(args.checkpoints), store)
    written = render_motion(store.records(), Path(args.reports))
    print(f"table: {written['md']}\nplot:  {written['png']}")
    return 0


def cmd_focus(args: argparse.Namespace) -> int:
    from vidbench.report.focus import render_focus
    from vidbench.store import Store

    name, options = split_spec(args.dataset)
    parse_config(DATASETS.get(name).Config, options, f"dataset '{name}'")
    methods = tuple(m for m in args.methods.split(",") if m)
    for spec in methods:
        parse_config(METHODS.get(split_spec(spec)[0]).Config, split_spec(spec)[1], spec)
    settings = {"methods": methods, "videos": args.videos, "drawn": args.drawn}
    writable_folder(Path(args.results).parent, "results")
    writable_folder(Path(args.reports), "reports")
    store = Store(Path(args.results))
    study = STUDIES.get("focus")
    reports = Path(args.reports)
    study(settings, name, options, Path(args.data_root), Path(args.checkpoints), store, reports)
    written = render_focus(store.records(), reports)
    print(f"table: {written['focus_md']}")
    return 0


def cmd_speed(args: argparse.Namespace) -> int:
    from vidbench.building import RunSettings, check_device
    from vidbench.report.paper_speed import render_paper_speed
    from vidbench.store import Store

    check_device(args.device)
    writable_folder(Path(args.results).parent, "results")
    writable_folder(Path(args.reports), "reports")
    settings = RunSettings(
        threads=args.threads,
        device=args.device,
        data_root=Path(args.data_root),
        checkpoint_dir=Path(args.checkpoints),
    )
    store = Store(Path(args.results))
    if args.report_only:
        if not store.path.exists():
            raise FileNotFoundError(f"No results at {store.path}: run `bench speed` first.")
    else:
        parts = tuple(p for p in (args.parts or "").split(",") if p)
        STUDIES.get("paper-speed")(args.plan, parts, store, settings)
    written = render_paper_speed(store.records(), Path(args.reports))
    print(f"table: {written['paper_speed_md']}")
    return 0


def cmd_regress(args: argparse.Namespace) -> int:
    from vidbench.regression import run_regression

    tasks = tuple(filter(None, args.task.split(",")))
    for task in tasks:
        TASKS.get(task)
    config = Path(args.config) if args.config else None
    writable_folder(Path(args.work), "work")
    if args.update:
        writable_folder(Path(args.baseline).parent, "baseline")
    return run_regression(
        Path(args.baseline), Path(args.work), update=args.update, tasks=tasks, config=config
    )


def add_study_paths(parser: argparse.ArgumentParser, study: str) -> None:
    """Where a study reads data and checkpoints and writes its records and report."""
    parser.add_argument("--data-root", default="data")
    parser.add_argument("--checkpoints", default="checkpoints")
    parser.add_argument("--results", default=f"results/runs/{study}.jsonl")
    parser.add_argument("--reports", default=f"reports/{study}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--quiet", action="store_true",
        help="no progress bars (they show only on a terminal; the bench command reads it)"
    )
    common.add_argument(
        "--plugin", action="append", default=[], metavar="MODULE",
        help="import MODULE and register the methods and datasets it defines (repeatable)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _parents = [common]
    sub.add_parser(
        "list", help="registered methods and datasets, their options", parents=_parents
    ).set_defaults(func=cmd_list)
    check = sub.add_parser(
        "check", help="put one method through the adapter contract", parents=_parents,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    check.add_argument("method", help="a registered method with options, e.g. my-method:x=1")
    check.add_argument("--work", default="results/runs/check", help="tiny worlds and checkpoints")
    check.set_defaults(func=cmd_check)

    compare = sub.add_parser(
        "compare", parents=_parents, formatter_class=argparse.ArgumentDefaultsHelpFormatter, help="run what is missing, then render the reports")
    compare.add_argument("--methods", required=True, help="e.g. frame,prop-mv,interp-mv:fusion=avg")
    compare.add_argument(
        "--dataset", help="e.g. synthcity:val_videos=20; none given: the task's embedded world"
    )
    compare.add_argument("--task", choices=TASKS.names(), help="check the methods serve it")
    compare.add_argument("--intervals", default="1-10", help="keyframe intervals, e.g. 1-10")
    compare.add_argument(
        "--speed-videos", type=at_least(1), default=4, help="val videos streamed for speed"
    )
    compare.add_argument("--speed-rounds", type=at_least(1), default=5, help="interleaved timing rounds")
    compare.add_argument("--threads", type=at_least(1), default=2, help="torch CPU threads (recorded)")
    compare.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (recorded)")
    compare.add_argument(
        "--batch", type=at_least(1), default=8, help="videos per call in the offline scenario (recognition)"
    )
    compare.add_argument(
        "--protocol", default="", help="protocol options key=value[:key=value], e.g. keys=first"
    )
    compare.add_argument("--data-root", default="data")
    compare.add_argument("--checkpoints", default="checkpoints")
    compare.add_argument(
        "--seed", type=at_least(0), default=0, help="training seed (recorded; N > 0: files <dataset>-seedN)"
    )
    compare.add_argument(
        "--preset", choices=["smoke", "small", "paper"],
        help="training budgets and dataset sizes for every method at once (options given win)",
    )
    compare.add_argument(
        "--rerun", help="methods or labels whose stored records are made again, e.g. prop-mv"
    )
    compare.add_argument("--results", help="records file (default results/runs/<dataset>.jsonl)")
    compare.add_argument("--reports", help="report folder (default reports/<dataset>)")
    compare.set_defaults(func=cmd_compare)

    report = sub.add_parser(
        "report", parents=_parents, formatter_class=argparse.ArgumentDefaultsHelpFormatter, help="re-render tables and figures from records only")
    report.add_argument("--dataset", default="synthcity")
    report.add_argument("--seed", type=at_least(0), default=0, help="the seed whose runs to report")
    report.add_argument("--seeds", help="several seeds side by side, e.g. 0-2 (reports/<dataset>-seeds)")
    report.add_argument(
        "--results", help="records file; with --seeds, the folder of the seeds' stores"
    )
    report.add_argument("--reports")
    report.add_argument(
        "--format", default="md,csv", help="table formats, any of md, csv, tex (LaTeX)"
    )
    report.add_argument(
        "--figure-format", default="png", help="figure formats, any of png, pdf, svg"
    )
    report.set_defaults(func=cmd_report)

    motion = sub.add_parser(
        "motion", parents=_parents, formatter_class=argparse.ArgumentDefaultsHelpFormatter, help="motion sources: EPE, warp PSNR on real footage, cost")
    motion.add_argument(
        "--sources",
        default="mv,flownet,dis",
        help="motion sources to measure (raft is added when --raft-weights is given)",
    )
    motion.add_argument("--dataset", default="synthcity")
    motion.add_argument("--synth-videos", type=at_least(1), default=6, help="val videos for EPE")
    motion.add_argument("--real-frames", type=at_least(2), default=30, help="frames per real clip")
    motion.add_argument("--raft-weights", help="local torchvision RAFT weights (else random init)")
    add_study_paths(motion, "motion")
    motion.set_defaults(func=cmd_motion)

    focus = sub.add_parser(
        "focus", parents=_parents, formatter_class=argparse.ArgumentDefaultsHelpFormatter, help="where AdaFocus looks: patch hit rates, Fig. 7")
    focus.add_argument("--methods", default="adafocus,adafocus:policy=random")
    focus.add_argument("--dataset", default="synthaction")
    focus.add_argument("--videos", type=at_least(0), default=0, help="val videos (0 = all)")
    focus.add_argument("--drawn", type=at_least(0), default=4, help="videos drawn in the figure")
    add_study_paths(focus, "focus")
    focus.set_defaults(func=cmd_focus)

    speed = sub.add_parser(
        "speed", parents=_parents, formatter_class=argparse.ArgumentDefaultsHelpFormatter, help="the papers' speed claims at the papers' network and input sizes"
    )
    speed.add_argument("--scale", choices=["paper"], default="paper")
    speed.add_argument(
        "--plan", choices=["cpu", "full"], default="cpu",
        help="cpu: a subset that fits ~20 min on 2 cores; full: every size and method (a GPU)",
    )
    speed.add_argument("--parts", help="only these seeds or parts, e.g. 000,002")
    speed.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (recorded)")
    speed.add_argument("--threads", type=at_least(1), default=2, help="torch CPU threads")
    speed.add_argument(
        "--report-only", action="store_true",
        help="render the table from the stored records, measuring nothing",
    )
    add_study_paths(speed, "paper-speed")
    speed.set_defaults(func=cmd_speed)

    regress = sub.add_parser(
        "regress", parents=_parents, formatter_class=argparse.ArgumentDefaultsHelpFormatter, help="CI gate: each task's small run vs the committed baseline")
    regress.add_argument("--baseline", default="results/ci/baseline.jsonl")
    regress.add_argument("--work", default="results/runs/ci")
    regress.add_argument("--update", action="store_true", help="write a new baseline instead")
    regress.add_argument("--task", default="", help="only these tasks, e.g. recognition")
    regress.add_argument(
        "--config", help="a TOML file of [[run]] tables to gate instead of the tasks' own runs"
    )
    regress.set_defaults(func=cmd_regress)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code_state()  # the tree this run's code was read from, before any long work
    try:
        for module in args.plugin:
            load_plugin(module)
        return args.func(args)
    except KeyboardInterrupt:
        print(
            "interrupted: finished records are kept; run the same command to resume.",
            file=sys.stderr,
        )
        return 130
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
