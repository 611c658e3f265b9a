"""The harness loop: runs what the store lacks for a set of methods on one dataset.

Accuracy replays each method's task protocol; speed replays continuous streams (scenario
``stream``, batch 1) in rounds that interleave all measured methods (A B C A B C ...), and
checkpoints each finished round so an interrupted run resumes where it stopped. Building lives
in vidbench.building, the passes in vidbench.passes, the record type in vidbench.records.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm
from vidbench import distributed, passes
from vidbench.api import DataError, VideoSource
from vidbench.building import (
    Prepared,
    RunSettings,
    build_dataset,
    canonical_label,
    check_device,
    check_protocol,
    eval_split,
    prepare_config,
    prepare_method,
    setting_text,
    speed_baseline_config,
)
from vidbench.meter import TimingMeter
from vidbench.protocols import Setting
from vidbench.provenance import provenance
from vidbench.records import Record
from vidbench.speed import same_run_speedup, summarise_offline, summarise_speed
from vidbench.store import Store

__all__ = ["RunSettings", "Runner"]

WARM_UP_AGREEMENT = 0.05
WARM_UP_MAX = 6
WARM_UP_MAX_S = 30.0  # a long stream (a paper-size network) settles in two passes; stop there


def _resumable_rounds(path: Path, origin: dict[str, Any]) -> list:
    """Finished speed rounds of an interrupted run, kept only when they were measured by the
    same code, libraries, machine and settings; an unreadable file counts as none."""
    try:
        saved = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return []
    return saved["rounds"] if saved.get("provenance") == origin else []


def _rotated(entries: list, shift: int) -> list:
    """``entries`` rotated left by ``shift``."""
    if not entries:
        return entries
    shift %= len(entries)
    return entries[shift:] + entries[:shift]


def _write_atomic(path: Path, data: dict[str, Any]) -> None:
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps(data))
    partial.replace(path)


class Runner:
    """Runs what the store lacks for a set of methods on one dataset, then leaves records."""

    def __init__(
        self, store: Store, settings: RunSettings, log: Callable[[str], None] = print
    ) -> None:
        self.store = store
        self.settings = settings
        self._log = log
        self.run_id = (
            f"{time.strftime('%Y%m%dT%H%M%S')}-{np.random.default_rng().integers(1 << 30):08x}"
        )

    def compare(
        self,
        method_specs: Sequence[str],
        dataset_name: str,
        dataset_options: dict[str, str] | None = None,
    ) -> list[dict[str, Any]]:
        """Run what the store lacks for ``method_specs`` on the registered dataset."""
        check_device(self.settings.device)
        dataset = build_dataset(dataset_name, dataset_options or {}, self.settings.data_root)
        return self.compare_on(method_specs, dataset)

    def compare_on(self, method_specs: Sequence[str], dataset: Any) -> list[dict[str, Any]]:
        """``compare`` on a dataset object (a study may compose one: trained on one set,
        timed on another)."""
        check_device(self.settings.device)
        device = distributed.init_from_env(self.settings.device)
        if device != self.settings.device:
            self.settings = dataclasses.replace(self.settings, device=device)
        torch.set_num_threads(distributed.threads_per_rank(self.settings.threads))
        # one writer per store: a second compare on it waits here (under torchrun, rank 0 writes)
        with self.store.lock() if distributed.is_writer() else contextlib.nullcontext():
            return self._compare(method_specs, dataset)

    def _compare(self, method_specs: Sequence[str], dataset: Any) -> list[dict[str, Any]]:
        self._dataset = dataset
        if distributed.is_writer():  # under torchrun rank 0 renders or encodes what is missing
            dataset.prepare()
        distributed.barrier()
        videos = dataset.split(eval_split(dataset))
        if self.settings.accuracy:
            check_protocol(method_specs, dataset, videos, self.settings)
        prepared = [prepare_method(spec, dataset, self.settings) for spec in method_specs]
        self.context = {
            "run_id": self.run_id,
            "provenance": provenance(self.settings.device),
            "preparation": dataset.preparation() if hasattr(dataset, "preparation") else {},
        }
        done = self._done(prepared)
        speed_videos = videos[: self.settings.speed_videos]
        plan = self._speed_plan(prepared, speed_videos, done)  # may build baselines: not in
        with torch.inference_mode():  # inference mode, which training cannot run under
            for item in prepared if self.settings.accuracy else ():
                protocol = passes.task_of(item.method).protocol
                for setting in item.settings:
                    identity = {
                        **item.identity,
                        "kind": "accuracy",
                        "protocol": protocol.name,
                        **setting,
                    }
                    self._accuracy(item, identity, setting, dataset, videos, done)
            if distributed.is_writer():  # throughput is measured on one device, by rank 0
                torch.set_num_threads(self.settings.speed_threads or self.settings.threads)
                self._speed(plan, speed_videos)
        distributed.barrier()
        return [r for r in self.store.records() if r.get("run_id") == self.run_id]

    def _done(self, prepared: Sequence[Prepared]) -> set[str]:
        """Ids of the stored records that need no re-run: not failures, evaluator state intact
        (a missing or damaged sidecar is re-computed), and not of a method in ``rerun``."""
        rerun = set(self.settings.rerun)
        forced = {p.label for p in prepared if p.label in rerun or p.identity["method"] in rerun}
        done = set()
        for record in self.store.records():
            rerun_it = record.get("label") in forced and record["kind"] in self.settings.rerun_kinds
            if "error" in record or rerun_it:
                continue
            if "state" in record and not self.store.state_intact(record):
                self.log(f"re-computing {record['label']}: {self.store.state_problem(record)}")
                continue
            done.add(record["record_id"])
        return done

    def _accuracy(
        self,
        item: Prepared,
        identity: dict[str, Any],
        setting: Setting,
        dataset: Any,
        videos: Sequence[VideoSource],
        done: set[str],
    ) -> None:
        record = Record(identity, item.label, self.context, {})
        if record.record_id in done:
            return
        try:
            result = passes.accuracy_pass(item, dataset, videos, setting)
        except DataError as error:
            self._failed(record, error)
            return
        self._append(Record(identity, item.label, self.context, result))
        headline = passes.task_of(item.method).headline
        self.log(
            f"accuracy {item.label} {setting_text(setting)}: "
            + ", ".join(f"{h.metric} {result['metrics'][h.metric]:.1f}" for h in headline)
        )

    def log(self, message: str) -> None:
        """Print progress on rank 0 only."""
        if distributed.is_writer():
            self._log(message)

    def _append(self, record: Record) -> None:
        """Store ``record``; under torchrun only rank 0 writes."""
        if distributed.is_writer():
            self.store.append(record.to_json())

    def _failed(self, record: Record, error: Exception) -> None:
        """Keep the failure as a record (a later run retries it) and carry on."""
        self._append(Record(record.identity, record.label, self.context, {"error": str(error)}))
        self.log(f"FAILED {record.identity['kind']} {record.label}: {error}")

    def _speed_plan(
        self, prepared: Sequence[Prepared], videos: Sequence[VideoSource], done: set[str]
    ) -> tuple[list, dict]:
        """What to time: the speed records the store lacks, and for each the entry of its task's
        speed baseline (built like it), which joins the same interleaved rounds so that every
        speed record carries a same-run speed-up. Run on every rank: building a baseline may
        train it, and checkpoints are built in step across ranks."""
        todo = [
            entry
            for item in prepared
            for entry in self._speed_entries(item, videos)
            if entry[0].record_id not in done
        ]
        timed, base_of = list(todo), {}
        labels = {item.label: item for item in prepared}
        for record, item, setting in todo:
            base = self._baseline(item, labels)
            # the baseline at the method's setting where it has it, else at its own (``frame``
            # has every frame a key and so one setting, interval 1)
            scenario = record.identity["scenario"]
            candidates = [
                e
                for e in self._speed_entries(base, videos)
                if e[0].identity["scenario"] == scenario
            ]
            entry = next((e for e in candidates if e[2] == setting), candidates[0])
            if all(entry[0].record_id != r.record_id for r, _, _ in timed):
                timed.append(entry)
            base_of[record.record_id] = entry[0]
        return timed, base_of

    def _speed(self, plan: tuple[list, dict], videos: Sequence[VideoSource]) -> None:
        timed, base_of = plan
        if not timed:
            return
        try:
            self._measure_speed(timed, videos, base_of)
        except DataError as error:
            for record, _, _ in timed:
                self._failed(record, error)

    def _speed_entries(self, item: Prepared, videos: Sequence[VideoSource]) -> list[tuple]:
        """(record, item, setting) for every speed record ``item`` has: one per protocol
        setting and speed scenario."""
        task = passes.task_of(item.method)
        entries = []
        for setting in item.settings:
            for scenario in task.scenarios:
                identity = {
                    **item.identity,
                    "kind": "speed",
                    "scenario": scenario,
                    "protocol": task.protocol.stream_name,
                    **setting,
                    **({"batch": self.settings.batch} if scenario == "offline" else {}),
                    "speed_videos": [v.info.name for v in videos],
                    "rounds": self.settings.speed_rounds,
                    "threads": self.settings.speed_threads or self.settings.threads,
                    # the device joins the identity off the CPU (CPU records keep their ids)
                    **({} if self.settings.device == "cpu" else {"device": self.settings.device}),
                }
                entries.append((Record(identity, item.label, self.context, {}), item, setting))
        return entries

    def _baseline(self, item: Prepared, built: dict[str, Prepared]) -> Prepared:
        """The speed baseline of ``item``: one of this run's methods when it was asked for,
        else built here (its checkpoints come from the cache when another run trained them)."""
        name, config = speed_baseline_config(item)
        label = canonical_label(name, config, type(config)())
        if label not in built:
            self.log(f"speed baseline {label} joins the timing rounds of {item.label}")
            built[label] = prepare_config(name, config, self._dataset, self.settings)
        return built[label]

    def _measure_speed(self, todo: list, videos: Sequence[VideoSource], base_of: dict) -> None:
        partial = self.store.partial_dir()
        origin = self.context["provenance"]
        rounds: dict[str, list] = {}
        batches = {}
        for record, item, setting in todo:
            rid = record.record_id
            rounds[rid] = _resumable_rounds(partial / f"{rid}.json", origin)
            if record.identity["scenario"] == "offline":
                batches[rid] = passes.offline_clips(
                    item.method, videos, self.settings.batch, setting
                )
        extras = {
            record.record_id: self._checks(record, item, setting, videos[0])
            for record, item, setting in tqdm(todo, desc="speed: checks + cost", unit="run")
        }
        warm_up = {
            record.record_id: self._warm_up(record, item, setting, videos[0], batches)
            for record, item, setting in tqdm(todo, desc="speed: warm-up", unit="run")
        }
        total = self.settings.speed_rounds
        for round_index in tqdm(range(total), desc="speed: interleaved rounds", unit="round"):
            todo_now = [e for e in todo if len(rounds[e[0].record_id]) <= round_index]
            streamed = [e for e in todo_now if e[0].record_id not in batches]
            batched = [e for e in todo_now if e[0].record_id in batches]
            timed: dict[str, Any] = {e[0].record_id: [] for e in streamed}
            # streams interleave video by video (A B C on one video, then on the next), the
            # order rotating at every slot, so methods share the machine's slow and fast
            # moments and none always runs first or last; offline batches rotate per round
            for slot, video in enumerate(videos):
                for record, item, setting in _rotated(streamed, round_index * len(videos) + slot):
                    meter = TimingMeter(self.settings.device)
                    streamed_once = passes.stream(item.method, video, setting, meter)
                    timed[record.record_id].append(streamed_once)
            for record, item, _ in _rotated(batched, round_index):
                meter = TimingMeter(self.settings.device)
                timed[record.record_id] = passes.offline(item.method, batches[record.record_id], meter)
            for record, _, _ in todo_now:
                done = rounds[record.record_id]
                done.append(timed[record.record_id])
                _write_atomic(
                    partial / f"{record.record_id}.json", {"provenance": origin, "rounds": done}
                )
        summaries = {
            record.record_id: {
                **self._summary(record, item, setting, rounds[record.record_id], extras),
                "warm_up_s": warm_up[record.record_id],
            }
            for record, item, setting in todo
        }
        for record, item, setting in todo:
            base = base_of.get(record.record_id, record)
            speed = {
                **summaries[record.record_id],
                **same_run_speedup(summaries[record.record_id], summaries[base.record_id], base),
            }
            self._store_speed(record, item, setting, speed, extras)

    def _checks(self, record: Record, item: Prepared, setting: Setting, video: VideoSource) -> dict:
        """The cost pass and the spot check of a stream record; the batching check of an
        offline one."""
        if record.identity["scenario"] == "offline":
            return {"spot_check": passes.offline_check(item, video, setting, self.settings.batch)}
        return {
            "cost": passes.cost_pass(item, video, setting),
            "spot_check": passes.spot_check(item, video, setting),
        }

    def _warm_up(
        self, record: Record, item: Prepared, setting: Setting, video: VideoSource, batches: dict
    ) -> list[float]:
        """Untimed passes until two in a row take the same time within WARM_UP_AGREEMENT
        (caches, allocator and thread pool settled): WARM_UP_MAX at most, and no more than two
        once they have lasted WARM_UP_MAX_S; their seconds."""
        seconds: list[float] = []
        while len(seconds) < WARM_UP_MAX:
            meter = TimingMeter(self.settings.device)
            if record.record_id in batches:
                timed = passes.offline(item.method, batches[record.record_id], meter)["latency_s"]
            else:
                timed = sum(passes.stream(item.method, video, setting, meter)["latency_s"])
            seconds.append(timed)
            settled = abs(timed - seconds[-2]) <= WARM_UP_AGREEMENT * timed if seconds[1:] else False
            if settled or (len(seconds) >= 2 and sum(seconds) > WARM_UP_MAX_S):
                break
        return seconds

    def _summary(
        self, record: Record, item: Prepared, setting: Setting, rounds: list, extras: dict
    ) -> dict[str, Any]:
        """The speed summary of ``record``'s rounds, INVALID where its check failed."""
        offline = record.identity["scenario"] == "offline"
        fraction = passes.task_of(item.method).protocol.steady_key_fraction(setting)
        speed = summarise_offline(rounds) if offline else summarise_speed(rounds, fraction)
        if extras[record.record_id]["spot_check"].get("agreement", 1.0) < 1.0:
            speed["validity"] = "INVALID"
            speed["reasons"].append(
                "batched output differs from the stream (batching check)"
                if offline
                else "stream output differs from the accuracy pass (spot check)"
            )
        return speed

    def _store_speed(
        self, record: Record, item: Prepared, setting: Setting, speed: dict, extras: dict
    ) -> None:
        rid = record.record_id
        offline = record.identity["scenario"] == "offline"
        region = passes.OFFLINE_TIMED_REGION if offline else passes.TIMED_REGION
        result = {**extras[rid], "speed": speed, "timed_region": region}
        self._append(Record(record.identity, item.label, self.context, result))
        (self.store.partial_dir() / f"{rid}.json").unlink(missing_ok=True)
        unit = passes.task_of(item.method).cost_unit
        scenario = record.identity["scenario"]
        ratio = f", {speed['speedup']:.2f}x {speed['baseline']['label']}"
        if offline:
            self.log(
                f"speed {item.label} {scenario} batch {speed['batch']}: "
                f"{speed['videos_per_s']:.2f} videos/s, {speed['fps']:.1f} fps{ratio} "
                f"({speed['validity']})"
            )
            return
        self.log(
            f"speed {item.label} {setting_text(setting)}: {speed['fps']:.1f} fps{ratio} "
            f"({speed['validity']}), {extras[rid]['cost'][f'gmacs_per_{unit}']:.3f} "
            f"GMACs/{unit}"
        )
