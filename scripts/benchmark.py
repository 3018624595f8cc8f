#!/usr/bin/env python
"""Benchmark of the mailforce_engagements DAG on the embedded engine (osmem-server). Not a test.

For each scenario (a corpus size and a heavy-domain share) it:

1. starts osmem-server, streams a synthetic corpus (``mailforce.tools.synthetic.iter_corpus``) into the
   source index, holding back the newest ``--incremental-fraction`` of the messages (by date);
   the load is timed on its own, never as pipeline time;
2. runs the DAG with ``airflow dags test`` (a subprocess, on a copy-on-write clone of the loaded
   engine) up to the cut-off date (``to_date``): wall time, time per stage from the Airflow metadata
   DB, peak RSS of that process (and the RSS while each stage ran), engine and client CPU seconds,
   documents per output index;
3. measures the I/O floor on the same engine: scrolling the window's messages reading only the
   fields the pipeline needs, plus bulk-indexing as many output documents as the run wrote (copies
   of them, into scratch indices with the same mappings) with plain ``elasticsearch.helpers.bulk``;
4. for each ``--partitions`` K: plans the partitions from the run's work per domain (largest
   partition's share of the work) and runs the compile stage with K worker processes at once, as a
   LocalExecutor/Celery deployment with K slots would (``airflow dags test`` runs mapped tasks one
   after another); with ``--dag-sweep`` also the whole DAG per K on a fresh clone;
5. loads the held-back messages and runs the DAG again (the incremental run), then its own floor:
   scanning its window and indexing again, in place, the documents it wrote;
6. optionally (``--profile``) runs ``run_once`` of ``tests/driver.py`` in this process under cProfile on a fresh
   clone and prints where the time goes.

Run it with ``scripts/benchmark.sh --messages 10000`` (see docs/BENCHMARK.md).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import itertools
import json
import os
import pstats
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

HERE = Path(__file__).resolve().parents[1]


def _repository_from_argv(argv: list[str]) -> Path:
    """--repo must be known before `mailforce` is imported (it decides which plugins/ is measured)."""
    for position, argument in enumerate(argv):
        if argument == "--repo" and position + 1 < len(argv):
            return Path(argv[position + 1]).resolve()
        if argument.startswith("--repo="):
            return Path(argument.split("=", 1)[1]).resolve()
    return HERE


ROOT = _repository_from_argv(sys.argv[1:])
sys.path.insert(0, str(ROOT / "plugins"))

from elasticsearch import helpers  # noqa: E402

from mailforce.es.client import ClientOptions, build_client  # noqa: E402
from mailforce.core.dates import format_utc, parse_source_date  # noqa: E402
from mailforce.tools.loader import ensure_source_index  # noqa: E402
from mailforce.core.roles import SOURCE_FIELDS  # noqa: E402
from mailforce.core.summaries import WRITTEN_KINDS  # noqa: E402
from mailforce.settings import Settings  # noqa: E402
from mailforce.tools.embedded import engine_environment  # noqa: E402
from mailforce.tools.synthetic import CorpusSpec, iter_corpus  # noqa: E402
from mailforce.core.window import Window  # noqa: E402
from mailforce import DAG_ID  # noqa: E402
from mailforce.tools.console import CommandParser, configure_console_logging  # noqa: E402

UTC = timezone.utc
MB = 1024.0  # /proc and ru_maxrss report KiB
COMPILE_TASK = "compile_domain_partition"
FLOOR_PREFIX = "bench-floor-"
CLIENT_CPU_TARGET_US = 100  # issue 25: the product's own client CPU per message over all stages, at 100k


# ------------------------------------------------------------------------------------------------
# Command line


def _int_list(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        values = []
    if not values or any(value < 1 for value in values):
        raise argparse.ArgumentTypeError(f"expected whole numbers >= 1, got {text!r}")
    return values


def _share_list(text: str) -> list[float]:
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        values = []
    if not values or any(not 0.0 <= value < 1.0 for value in values):
        raise argparse.ArgumentTypeError(f"expected shares in [0, 1), got {text!r}")
    return values


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = CommandParser(  # a bad argument: two lines, exit 2
        prog="scripts/benchmark.sh",
        description="Benchmark the mailforce_engagements DAG on osmem-server (see docs/BENCHMARK.md).",
    )
    parser.add_argument("--messages", type=_int_list, default=[10_000],
                        help="original messages of the corpus; a list (10000,100000) runs one scenario each "
                        "(default: 10000)")
    parser.add_argument("--accounts", type=int, default=20, help="mailboxes (default: %(default)s)")
    parser.add_argument("--domains", type=int, default=500, help="outside correspondent domains (default: %(default)s)")
    parser.add_argument("--heavy-domain-share", type=_share_list, default=[0.0],
                        help="share of outside address picks going to one heavy domain (gmail.com); a list "
                        "runs one scenario each (default: 0.0)")
    parser.add_argument("--partitions", type=_int_list, default=[8],
                        help="MAILFORCE_MAX_PARTITIONS values, e.g. 1,2,4,8; the DAG run uses the largest "
                        "(default: 8)")
    parser.add_argument("--seed", type=int, default=1, help="corpus seed (default: %(default)s)")
    parser.add_argument("--incremental-fraction", type=float, default=0.01,
                        help="newest share of the messages held back for the incremental run (default: 0.01)")
    parser.add_argument("--dirt", type=float, default=0.01,
                        help="share of source documents given dirt (default: %(default)s)")
    parser.add_argument("--duplicate-rate", type=float, default=0.02,
                        help="rate of cross-account and of within-account copies (default: %(default)s)")
    parser.add_argument("--dag-sweep", action="store_true",
                        help="also run the whole DAG once per partition count, each on a fresh clone")
    parser.add_argument("--profile", action="store_true",
                        help="also run the driver's run_once in-process under cProfile and print the hot spots")
    parser.add_argument("--in-process", action="store_true",
                        help="also, on two fresh clones in this process: the product's own time without Airflow, "
                             "the old script's shape, an hourly run with and without lateness, a reconciliation "
                             "finding nothing, the rescore of a day change")
    parser.add_argument("--stage-cpu", action="store_true",
                        help="also, on fresh clones in this process: the product's own client CPU per message per "
                             "stage and the engine's CPU apart, and the extraction with 1 then 2 slices in "
                             "parallel processes (the speedup)")
    parser.add_argument("--stage-cpu-only", action="store_true",
                        help="only --stage-cpu's figures (load, then fresh clones in this process; no Airflow run)")
    parser.add_argument("--scale-only", action="store_true",
                        help="only the memory curve: on the loaded engine itself (no clones, no floor), the full "
                             "run and the incremental run through airflow dags test, with the peak RSS of the "
                             "task process and of the engine; for sizes where clones would not fit in memory")
    parser.add_argument("--json", type=Path, help="write every figure to this JSON file")
    parser.add_argument("--repo", type=Path, default=HERE,
                        help="checkout whose dags/ and plugins/ are measured (default: this one), e.g. a "
                        "`git archive` export of a commit to compare versions")
    parser.add_argument("--workdir", type=Path,
                        help="AIRFLOW_HOME and task logs go here (default: a temporary directory, removed)")
    arguments = parser.parse_args(argv)
    if not 0.0 <= arguments.incremental_fraction < 0.5:
        parser.error("--incremental-fraction must be in [0, 0.5)")
    if arguments.accounts < 1 or arguments.domains < 1:
        parser.error("--accounts and --domains must be >= 1")
    return arguments


# ------------------------------------------------------------------------------------------------
# Small helpers


def log(message: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of a live process (its own threads; children excluded)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent busy since boot (all cores), from /proc/stat."""
    values = [int(value) for value in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def descendants(pid: int) -> list[int]:
    """pid and every live descendant (scans /proc once)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        parents.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(parents.get(current, ()))
    return found


class RssSampler(threading.Thread):
    """Samples the RSS of a process tree (sum over its processes) every `interval` seconds."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.samples: list[tuple[float, int]] = []  # (time.time(), KiB)
        self.processes_seen: set[int] = set()
        self._stop_event = threading.Event()

    def run(self) -> None:
        tree = [self.pid]
        rounds = 0
        while not self._stop_event.is_set():
            if rounds % 20 == 0:  # the tree rarely changes: rescan /proc once a second
                tree = descendants(self.pid)
                self.processes_seen.update(tree)
            rounds += 1
            total = sum(process_rss_kib(pid) for pid in tree)
            if total:
                self.samples.append((time.time(), total))
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()

    def peak_between(self, start: float, end: float) -> tuple[int, int]:
        """(RSS when the interval began, peak RSS during it), KiB."""
        inside = [rss for moment, rss in self.samples if start <= moment <= end]
        before = [rss for moment, rss in self.samples if moment <= start]
        first = before[-1] if before else (inside[0] if inside else 0)
        return first, max(inside, default=first)


def sqlite_time(value: str | None) -> float | None:
    """Airflow's sqlite timestamps are naive UTC strings."""
    if not value:
        return None
    text = value.replace("T", " ")
    for pattern in ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S"):
        try:
            return datetime.strptime(text[:26], pattern).replace(tzinfo=UTC).timestamp()
        except ValueError:
            continue
    return None


def fmt_seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s" if value >= 10 else f"{value:.2f} s"


# ------------------------------------------------------------------------------------------------
# Corpus


@dataclass
class CorpusSplit:
    spec: CorpusSpec
    source_documents: int = 0
    dated_documents: int = 0
    cutoff: datetime | None = None  # the full run's to_date (inclusive); held-back docs are after it
    held_back: list[dict] = field(default_factory=list)
    # The incremental runs' to_date: the held-back mail is re-dated into (cutoff, incremental_end], at
    # most an hour after the cut-off and on its calendar day, so the incremental run is an hourly run
    # of the same day (the first run of a new day also rescores every relationship: measured apart).
    incremental_end: datetime | None = None
    latest_date: datetime | None = None
    loaded: int = 0
    load_seconds: float = 0.0


def corpus_spec(arguments: argparse.Namespace, messages: int, heavy_share: float) -> CorpusSpec:
    return CorpusSpec(
        seed=arguments.seed,
        messages=messages,
        accounts=arguments.accounts,
        correspondent_domains=arguments.domains,
        heavy_domain_share=heavy_share,
        dirt=arguments.dirt,
        cross_account_duplicate_rate=arguments.duplicate_rate,
        within_account_duplicate_rate=arguments.duplicate_rate,
    )


def plan_split(spec: CorpusSpec, fraction: float) -> CorpusSplit:
    """First pass over the (deterministic) corpus: the cut-off date of the newest `fraction`."""
    split = CorpusSplit(spec)
    dates = []
    for document in iter_corpus(spec):
        split.source_documents += 1
        moment = parse_source_date(document["_source"].get("date"))
        if moment is not None:
            dates.append(moment)
    split.dated_documents = len(dates)
    hold = int(round(len(dates) * fraction))
    if fraction > 0 and hold == 0 and len(dates) > 1:
        hold = 1
    if hold and len(dates) > hold:
        dates.sort()
        split.cutoff = dates[-hold - 1].replace(microsecond=0)  # to the second, as to_date is written
        end_of_day = split.cutoff.replace(hour=23, minute=59, second=59)
        split.incremental_end = min(split.cutoff + timedelta(hours=1), end_of_day)
        split.latest_date = dates[-1]
    return split


def redated(document: dict, split: CorpusSplit) -> dict:
    """A held-back document with its date mapped linearly from (cutoff, latest] into (cutoff,
    incremental_end] (order kept; copies of one message keep one date)."""
    moment = parse_source_date(document["_source"].get("date"))
    span = (split.latest_date - split.cutoff).total_seconds() or 1.0
    target = (split.incremental_end - split.cutoff).total_seconds()
    offset = max(1.0, (moment - split.cutoff).total_seconds() * target / span)
    new_date = split.cutoff + timedelta(seconds=min(offset, target))
    return {"_id": document["_id"], "_source": dict(document["_source"], date=format_utc(new_date))}


def load_source(es, index: str, split: CorpusSplit) -> None:
    """Second pass: everything up to the cut-off into the source index; the rest is kept aside."""
    ensure_source_index(es, index)

    def actions() -> Iterator[dict]:
        for document in iter_corpus(split.spec):
            moment = parse_source_date(document["_source"].get("date"))
            if split.cutoff is not None and moment is not None and moment > split.cutoff:
                split.held_back.append(redated(document, split))
                continue
            yield {"_op_type": "index", "_index": index, "_id": document["_id"], "_source": document["_source"]}

    started = time.monotonic()
    split.loaded, _ = helpers.bulk(es, actions(), chunk_size=1000, max_retries=3)
    es.indices.refresh(index=index)
    split.load_seconds = time.monotonic() - started


def load_held_back(es, index: str, split: CorpusSplit) -> float:
    started = time.monotonic()
    helpers.bulk(
        es,
        ({"_op_type": "index", "_index": index, "_id": doc["_id"], "_source": doc["_source"]} for doc in split.held_back),
        chunk_size=1000,
    )
    es.indices.refresh(index=index)
    return time.monotonic() - started


# ------------------------------------------------------------------------------------------------
# Airflow


class Airflow:
    """A private AIRFLOW_HOME (sqlite) and `airflow dags test` runs measured from outside."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.home.mkdir(parents=True, exist_ok=True)
        self.logs = home / "benchmark-logs"
        self.logs.mkdir(exist_ok=True)
        self.db = home / "airflow.db"
        self.base_env = {key: value for key, value in os.environ.items() if not key.startswith(("MAILFORCE_", "AIRFLOW"))}
        self.base_env.update(
            AIRFLOW_HOME=str(home),
            AIRFLOW__CORE__DAGS_FOLDER=str(ROOT / "dags"),
            AIRFLOW__CORE__PLUGINS_FOLDER=str(ROOT / "plugins"),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__CORE__UNIT_TEST_MODE="False",
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home}/airflow.db",
            PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT / "plugins"), os.environ.get("PYTHONPATH")])),
        )
        self.airflow = shutil.which("airflow", path=os.environ.get("PATH")) or str(Path(sys.executable).parent / "airflow")

    def migrate(self) -> None:
        started = time.monotonic()
        result = subprocess.run([self.airflow, "db", "migrate"], env=self.base_env, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"airflow db migrate failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        log(f"airflow db migrate in {time.monotonic() - started:.1f} s ({self.home})")

    def dags_test(self, es_url: str, settings_env: dict[str, str], conf: dict[str, Any], label: str,
                  engine_pid: int) -> "DagRun":
        port = int(es_url.rsplit(":", 1)[1].strip("/"))
        env = dict(self.base_env, **settings_env)
        env["AIRFLOW_CONN_ELASTICSEARCH_DEFAULT"] = json.dumps(
            {"conn_type": "elasticsearch", "host": "127.0.0.1", "port": port, "extra": {"engine": "osmem"}}
        )
        log_path = self.logs / f"{label}.log"
        command = [self.airflow, "dags", "test", DAG_ID, "-c", json.dumps(conf)]
        engine_cpu_before, busy_before = process_cpu_seconds(engine_pid), machine_busy_seconds()
        load_before = os.getloadavg()[0]
        started_at, started = time.time(), time.monotonic()
        with open(log_path, "w") as output:
            process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)
            sampler = RssSampler(process.pid)
            sampler.start()
            _, status, usage = os.wait4(process.pid, 0)  # this child's own rusage, peak RSS included
            process.returncode = os.waitstatus_to_exitcode(status)
            sampler.stop()
        wall = time.monotonic() - started
        engine_cpu = process_cpu_seconds(engine_pid) - engine_cpu_before
        busy = machine_busy_seconds() - busy_before
        if process.returncode != 0:
            tail = log_path.read_text(errors="replace")[-4000:]
            raise RuntimeError(f"airflow dags test ({label}) exited {process.returncode}; log {log_path}:\n{tail}")
        run = self.read_run(started_at)
        run.label, run.process_wall, run.log_path = label, wall, str(log_path)
        run.peak_rss_kib = max(usage.ru_maxrss, max((rss for _, rss in sampler.samples), default=0))
        run.client_cpu = usage.ru_utime + usage.ru_stime
        run.engine_cpu = engine_cpu
        # CPU the rest of the machine used meanwhile (other jobs sharing the cores): noise indicator.
        run.other_cpu = max(0.0, busy - run.client_cpu - engine_cpu)
        run.load_before = load_before
        run.processes = len(sampler.processes_seen)
        run.attach_rss(sampler)
        failed = [task for task in run.tasks if task["state"] != "success"]
        if run.state != "success" or failed:
            raise RuntimeError(f"DAG run {run.run_id} ended {run.state}; tasks not successful: {failed}")
        return run

    def read_run(self, not_before: float) -> "DagRun":
        connection = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)
        try:
            connection.row_factory = sqlite3.Row
            row = connection.execute(
                "SELECT run_id, state, start_date, end_date FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1",
                (DAG_ID,),
            ).fetchone()
            if row is None:
                raise RuntimeError("no DAG run in the metadata DB")
            run = DagRun(run_id=row["run_id"], state=row["state"], start=sqlite_time(row["start_date"]),
                         end=sqlite_time(row["end_date"]))
            if run.start is not None and run.start < not_before - 5:
                raise RuntimeError(f"the newest DAG run {run.run_id} started before this test run")
            for ti in connection.execute(
                "SELECT task_id, map_index, start_date, end_date, duration, state, rendered_map_index "
                "FROM task_instance WHERE dag_id = ? AND run_id = ? ORDER BY start_date",
                (DAG_ID, run.run_id),
            ):
                run.tasks.append({
                    "task_id": ti["task_id"], "map_index": ti["map_index"], "state": ti["state"],
                    "start": sqlite_time(ti["start_date"]), "end": sqlite_time(ti["end_date"]),
                    "duration": ti["duration"], "label": ti["rendered_map_index"],
                })
            for xcom in connection.execute(
                "SELECT task_id, map_index, value FROM xcom WHERE dag_id = ? AND run_id = ? AND key = 'return_value'",
                (DAG_ID, run.run_id),
            ):
                value = xcom["value"]  # JSON text, or a bare number (sqlite typing)
                if isinstance(value, (bytes, bytearray)):
                    value = value.decode()
                run.xcom_bytes += len(str(value)) if value is not None else 0
                if isinstance(value, str):
                    value = json.loads(value) if value else None
                run.xcoms[(xcom["task_id"], xcom["map_index"])] = value
            run.xcom_bytes_all = connection.execute(
                "SELECT COALESCE(SUM(LENGTH(CAST(value AS TEXT))), 0) FROM xcom WHERE dag_id = ? AND run_id = ?",
                (DAG_ID, run.run_id),
            ).fetchone()[0]
        finally:
            connection.close()
        return run


@dataclass
class DagRun:
    run_id: str
    state: str
    start: float | None
    end: float | None
    label: str = ""
    log_path: str = ""
    process_wall: float = 0.0
    peak_rss_kib: int = 0
    client_cpu: float = 0.0
    engine_cpu: float = 0.0
    other_cpu: float = 0.0
    load_before: float = 0.0
    processes: int = 1
    tasks: list[dict[str, Any]] = field(default_factory=list)
    xcoms: dict[tuple[str, int], Any] = field(default_factory=dict)
    xcom_bytes: int = 0
    xcom_bytes_all: int = 0
    stage_rss: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def pipeline_wall(self) -> float:
        """First task start to last task end, as the metadata DB recorded them."""
        starts = [task["start"] for task in self.tasks if task["start"]]
        ends = [task["end"] for task in self.tasks if task["end"]]
        return max(ends) - min(starts) if starts and ends else self.process_wall

    def stage_names(self) -> list[str]:
        """Task ids in the order they first started (whatever stages this version of the DAG has)."""
        first: dict[str, float] = {}
        for task in self.tasks:
            if task["start"] is not None:
                first[task["task_id"]] = min(first.get(task["task_id"], task["start"]), task["start"])
        return sorted(first, key=first.__getitem__)

    @property
    def data_wall(self) -> float:
        """From the second stage's start (the first task also carries `dags test`'s one-off start-up of
        its in-process API server, ~3 s) to the last task's end."""
        names = self.stage_names()
        if len(names) < 2:
            return self.pipeline_wall
        starts = [task["start"] for task in self.tasks if task["task_id"] == names[1] and task["start"]]
        ends = [task["end"] for task in self.tasks if task["end"]]
        return max(ends) - min(starts) if starts and ends else self.pipeline_wall

    def stages(self) -> dict[str, dict[str, Any]]:
        result: dict[str, dict[str, Any]] = {}
        for stage in self.stage_names():
            tasks = [task for task in self.tasks if task["task_id"] == stage]
            if not tasks:
                continue
            starts = [task["start"] for task in tasks if task["start"]]
            ends = [task["end"] for task in tasks if task["end"]]
            rss_before, rss_peak = self.stage_rss.get(stage, (0, 0))
            result[stage] = {
                "instances": len(tasks),
                "seconds": sum(task["duration"] or 0.0 for task in tasks),
                "span_seconds": (max(ends) - min(starts)) if starts and ends else None,
                "max_instance_seconds": max((task["duration"] or 0.0 for task in tasks), default=0.0),
                "rss_at_start_mb": round(rss_before / MB, 1),
                "peak_rss_mb": round(rss_peak / MB, 1),
            }
        return result

    def attach_rss(self, sampler: RssSampler) -> None:
        for stage in self.stage_names():
            tasks = [task for task in self.tasks if task["task_id"] == stage and task["start"] and task["end"]]
            if tasks:
                self.stage_rss[stage] = sampler.peak_between(min(t["start"] for t in tasks), max(t["end"] for t in tasks))

    def xcom(self, task_id: str) -> Any:
        return self.xcoms.get((task_id, -1))

    def compiled(self) -> list[dict[str, Any]]:
        return [value for (task_id, _), value in sorted(self.xcoms.items()) if task_id == COMPILE_TASK]

    def summary(self) -> dict[str, Any]:
        stats = self.xcom("publish_stats") or {}
        compiled = self.compiled()
        return {
            "run_id": self.run_id,
            "process_wall_seconds": round(self.process_wall, 3),
            "pipeline_wall_seconds": round(self.pipeline_wall, 3),
            "data_stages_wall_seconds": round(self.data_wall, 3),
            "peak_rss_mb": round(self.peak_rss_kib / MB, 1),
            # Sampled while a task ran; the process peak may also come from Airflow's own work around them.
            "peak_task_rss_mb": max((peak for _, peak in self.stage_rss.values()), default=0) and
            round(max(peak for _, peak in self.stage_rss.values()) / MB, 1),
            "processes": self.processes,
            "client_cpu_seconds": round(self.client_cpu, 2),
            "engine_cpu_seconds": round(self.engine_cpu, 2),
            "other_processes_cpu_seconds": round(self.other_cpu, 2),
            "load_average_before": round(self.load_before, 2),
            "stages": self.stages(),
            "window_start": stats.get("window_start"),
            "window_end": stats.get("window_end"),
            "messages": stats.get("emails_processed"),
            "source_documents": stats.get("source_documents"),
            "domains": stats.get("domains_processed"),
            "partitions": stats.get("partitions"),
            "documents_written": stats.get("documents_written", {}),
            "roles_read_by_compile": sum((item or {}).get("roles_read", 0) for item in compiled),
            "xcom_bytes_return_values": self.xcom_bytes,
            "xcom_bytes_all": self.xcom_bytes_all,
            "log": self.log_path,
        }


# ------------------------------------------------------------------------------------------------
# Engine-side measurements


def client_for(url: str):
    return build_client(ClientOptions(url=url, engine="osmem", request_timeout=600, max_retries=2))


def output_indices(settings: Settings) -> list[str]:
    """Every index the pipeline writes (whatever this version's Settings name), the source excluded."""
    return [getattr(settings, name) for name in Settings.__dataclass_fields__
            if name.endswith("_index") and name != "source_index"]


def count_outputs(es, settings: Settings) -> dict[str, int]:
    names = [name for name in output_indices(settings) if es.indices.exists(index=name)]
    es.indices.refresh(index=",".join(names))
    return {name: es.count(index=name)["count"] for name in names}


def measure_floor(es, settings: Settings, window_query: dict[str, Any]) -> dict[str, Any]:
    """The least any implementation must do on this engine: read the window once, write the outputs once.

    Called right after the full run on a fresh clone, so the output indices hold exactly the
    documents that run wrote; copies of them are bulk-indexed into scratch indices with the same
    mappings (nested fields cost the same), one index after another, so the write time splits by index.
    """
    # Read: the window's messages, only the needed fields, scroll, the pipeline's page size (no sort).
    started = time.monotonic()
    scanned = sum(1 for _ in helpers.scan(
        es, index=settings.source_index, query={"query": window_query, "_source": SOURCE_FIELDS},
        size=settings.scan_page_size, scroll=settings.scroll_keep_alive, clear_scroll=True,
    ))
    scan_seconds = time.monotonic() - started
    # The same scan in the pipeline's order (account, messageId), for comparison.
    started = time.monotonic()
    sort = [{"account": "asc"}, {"messageId": {"order": "asc", "missing": "_last"}}]
    sum(1 for _ in helpers.scan(
        es, index=settings.source_index, query={"query": window_query, "_source": SOURCE_FIELDS, "sort": sort},
        size=settings.scan_page_size, scroll=settings.scroll_keep_alive, clear_scroll=True, preserve_order=True,
    ))
    sorted_scan_seconds = time.monotonic() - started

    by_index: dict[str, dict[str, Any]] = {}
    for name, count in count_outputs(es, settings).items():
        if not count:
            continue
        scratch = FLOOR_PREFIX + name
        if es.indices.exists(index=scratch):
            es.indices.delete(index=scratch)
        mapping = next(iter(es.indices.get_mapping(index=name).body.values()))["mappings"]
        es.indices.create(index=scratch, mappings=mapping,
                          settings={"number_of_shards": settings.index_shards, "number_of_replicas": settings.index_replicas})
        copies = [  # read back untimed
            {"_op_type": "index", "_index": scratch, "_id": hit["_id"], "_source": hit["_source"]}
            for hit in helpers.scan(es, index=name, query={"query": {"match_all": {}}}, size=settings.scan_page_size)
        ]
        size = sum(len(json.dumps(action["_source"], separators=(",", ":"))) for action in copies)
        started = time.monotonic()
        written, _ = helpers.bulk(es, copies, chunk_size=settings.bulk_chunk_size,
                                  max_chunk_bytes=settings.bulk_chunk_bytes)
        es.indices.refresh(index=scratch)
        seconds = time.monotonic() - started
        es.indices.delete(index=scratch)
        nested = sum(
            len(value) for action in copies for value in action["_source"].values()
            if isinstance(value, list) and value and isinstance(value[0], dict)
        )
        by_index[name] = {"documents": written, "mean_bytes": round(size / max(written, 1)),
                          "nested_entries": nested, "seconds": round(seconds, 3),
                          "documents_per_second": round(written / max(seconds, 1e-9))}
        del copies
    write_seconds = sum(figures["seconds"] for figures in by_index.values())
    written = sum(figures["documents"] for figures in by_index.values())
    return {
        "scan_messages": scanned,
        "scan_seconds": round(scan_seconds, 3),
        "sorted_scan_seconds": round(sorted_scan_seconds, 3),
        "write_documents": written,
        "write_by_index": by_index,
        "write_seconds": round(write_seconds, 3),
        "floor_seconds": round(scan_seconds + write_seconds, 3),
    }


def measure_incremental_floor(es, settings: Settings, window_query: dict[str, Any], run_started: float) -> dict[str, Any]:
    """The least the incremental run must do: read its window once, and write again what it wrote.

    The documents the run wrote are those with `updated_at` at or after its start; they are indexed
    again in place (same ids, same content): on this engine an overwrite of a document with nested
    entries costs far more than a first write, and an incremental run overwrites.
    """
    started = time.monotonic()
    scanned = sum(1 for _ in helpers.scan(
        es, index=settings.source_index, query={"query": window_query, "_source": SOURCE_FIELDS},
        size=settings.scan_page_size, scroll=settings.scroll_keep_alive, clear_scroll=True,
    ))
    scan_seconds = time.monotonic() - started
    since = format_utc(datetime.fromtimestamp(int(run_started), UTC))
    by_index: dict[str, dict[str, Any]] = {}
    for name in count_outputs(es, settings):
        actions = [
            {"_op_type": "index", "_index": name, "_id": hit["_id"], "_source": hit["_source"]}
            for hit in helpers.scan(es, index=name, query={"query": {"range": {"updated_at": {"gte": since}}}},
                                    size=settings.scan_page_size)
        ]
        if not actions:
            continue
        started = time.monotonic()
        written, _ = helpers.bulk(es, actions, chunk_size=settings.bulk_chunk_size,
                                  max_chunk_bytes=settings.bulk_chunk_bytes)
        es.indices.refresh(index=name)
        by_index[name] = {"documents": written, "seconds": round(time.monotonic() - started, 3)}
    write_seconds = sum(figures["seconds"] for figures in by_index.values())
    return {
        "scan_messages": scanned,
        "scan_seconds": round(scan_seconds, 3),
        "rewrite_documents": sum(figures["documents"] for figures in by_index.values()),
        "rewrite_by_index": by_index,
        "rewrite_seconds": round(write_seconds, 3),
        "floor_seconds": round(scan_seconds + write_seconds, 3),
    }


# Worker side of the parallel compile (module level: picklable).
_WORKER: dict[str, Any] = {}


def _worker_init(url: str, settings_values: dict[str, Any]) -> None:
    _WORKER["es"] = client_for(url)
    _WORKER["settings"] = Settings(**settings_values)


def _worker_ready(_: int) -> int:
    time.sleep(0.3)  # long enough that every worker process gets one and has started
    return os.getpid()


def _worker_compile(partition: dict[str, Any], run_id: str) -> dict[str, Any]:
    """What one mapped compile task does: the DAG's own stage function on the partition's XCom form."""
    from datetime import date

    from mailforce.core.partitions import Partition
    from mailforce.es.scoring import scoring_for
    from mailforce.stages.compile_domain_partition import compile_domain_partition

    started = time.monotonic()
    scoring = scoring_for(_WORKER["settings"], date.today())
    # The reset emptied the compiled outputs, so every domain is computed from all its roles
    # documents (the full run's compile reads the same documents on its add path).
    compiled = compile_domain_partition(_WORKER["es"], _WORKER["settings"], Partition.from_xcom(partition), run_id,
                                        add_window=False, scoring=scoring)
    result = compiled.to_xcom()
    result["seconds"] = time.monotonic() - started
    return result


def reset_compiled_outputs(es, settings: Settings) -> None:
    """A fresh copy of the state before the compile stage: the roles index, no compiled documents."""
    from mailforce.es.indices import ensure_output_indices

    for name in output_indices(settings):
        if name in (settings.roles_index, settings.runtime_stats_index, settings.account_stats_index,
                    settings.ledger_index):
            continue  # written by other stages than the compile
        if es.indices.exists(index=name):
            es.indices.delete(index=name)
    ensure_output_indices(es, settings)


def plan_partitions(settings: Settings, work_by_domain: dict[str, int], slots: int) -> list[dict[str, Any]]:
    """The compile stage's partitions (XCom form), planned by the DAG's own list_domains stage function
    with K as MAILFORCE_MAX_PARTITIONS."""
    from mailforce.core.summaries import ExtractionSummary
    from mailforce.stages.list_domains import list_domains

    planned = list_domains(ExtractionSummary(work_by_domain=work_by_domain), replace(settings, max_partitions=slots))
    return [partition.to_xcom() for partition in planned]


def parallel_compile(es, url: str, settings: Settings, partitions: list[dict[str, Any]], slots: int) -> dict[str, Any]:
    """The compile stage with these partitions (at most `slots`) run by `slots` worker processes at once."""
    reset_compiled_outputs(es, settings)
    values = {name: getattr(settings, name) for name in Settings.__dataclass_fields__}
    run_id = f"benchmark-parallel-{slots}-{time.time():.0f}"
    with ProcessPoolExecutor(max_workers=slots, initializer=_worker_init, initargs=(url, values)) as pool:
        list(pool.map(_worker_ready, range(slots)))
        started = time.monotonic()
        futures = [pool.submit(_worker_compile, partition, run_id) for partition in partitions]
        results = [future.result() for future in futures]
        compile_wall = time.monotonic() - started
    shares = [partition.get("share", 0.0) for partition in partitions]
    largest = max(range(len(partitions)), key=shares.__getitem__) if partitions else None
    return {
        "partitions": len(partitions),
        "wall_seconds": round(compile_wall, 3),
        "sum_of_partition_seconds": round(sum(result["seconds"] for result in results), 3),
        "slowest_partition_seconds": round(max((result["seconds"] for result in results), default=0.0), 3),
        "largest_partition_share": round(shares[largest], 4) if largest is not None else 0.0,
        "largest_partition_label": partitions[largest].get("label", "-") if largest is not None else "-",
        "ideal_share": round(1 / max(len(partitions), 1), 4),
        "roles_read": sum(result.get("roles_read", 0) for result in results),
        "documents_written": sum(result.get(f"{kind}_written", 0) for result in results
                                 for kind in WRITTEN_KINDS),
    }


def profile_run_once(url: str, settings: Settings, cutoff: datetime | None, engine_pid: int, top: int = 14) -> dict[str, Any]:
    """The tests' driver (tests/driver.py: every stage in the DAG's order) in this process under
    cProfile: client CPU, engine CPU, and the hot functions."""
    sys.path.insert(0, str(ROOT / "tests"))
    from driver import run_once

    from mailforce.core.run_params import RunRequest

    es = client_for(url)
    profiler = cProfile.Profile()
    engine_before, cpu_before = process_cpu_seconds(engine_pid), time.process_time()
    started = time.monotonic()
    profiler.enable()
    run_once(es, settings, RunRequest(to_date=cutoff), datetime.now(UTC), "benchmark-profile")
    profiler.disable()
    wall = time.monotonic() - started
    client_cpu, engine_cpu = time.process_time() - cpu_before, process_cpu_seconds(engine_pid) - engine_before
    es.close()
    stats = pstats.Stats(profiler)
    by_name: dict[str, float] = {}
    rows = []
    for (filename, line, name), (_, calls, tottime, cumtime, _) in stats.stats.items():  # type: ignore[attr-defined]
        short = f"{Path(filename).parent.name}/{Path(filename).name}:{line}({name})" if line else name
        rows.append((tottime, cumtime, calls, short))
        key = "recv_into" if "recv_into" in name else name  # "<method 'recv_into' of '_socket.socket' objects>"
        by_name[key] = max(by_name.get(key, 0.0), cumtime)
    rows.sort(reverse=True)
    interesting = [
        ("extract_message_roles", "stage: extract message roles"),
        ("compile_domains", "stage: compile (all partitions)"),
        ("index_account_statistics", "stage: account statistics"),
        ("bulk_write", "  bulk writes (all stages)"),
        ("scan_sorted", "  sorted scroll reads (all stages)"),
        ("fetch_documents", "  mget lookups of stored documents"),
        ("message_from_hit", "  parse + normalise source copies"),
        ("add_message", "  PartitionCompiler.add_message"),
        ("engagement_documents", "  build engagement documents"),
        ("roles_document", "  build roles documents"),
        ("recv_into", "  waiting on the engine (socket recv)"),
    ]
    return {
        "wall_seconds": round(wall, 3),
        "client_cpu_seconds": round(client_cpu, 2),
        "engine_cpu_seconds": round(engine_cpu, 2),
        "cumulative": {label: round(by_name.get(name, 0.0), 2) for name, label in interesting},
        "top_self_time": [
            {"function": short, "self_seconds": round(tottime, 3), "cumulative_seconds": round(cumtime, 3), "calls": calls}
            for tottime, cumtime, calls, short in rows[:top]
        ],
    }


def merged_extraction_xcoms(run: "DagRun"):
    """The run's extraction summary: its mapped slices' results merged, as the DAG's tasks merge them."""
    from mailforce.core.extraction_slices import merge_extractions
    from mailforce.core.summaries import ExtractionSummary

    return merge_extractions([ExtractionSummary.from_xcom(value) for (task_id, _), value in sorted(run.xcoms.items())
                              if task_id == "extract_message_roles" and value])


# ------------------------------------------------------------------------------------------------
# Client CPU per message per stage, the engine's apart, and extraction slices in parallel (--stage-cpu)


class CpuSampler:
    """Where this process's CPU goes, by sampling: SIGPROF every `interval` seconds of CPU (user and
    system, this process), the Python function running then. Unlike cProfile it does not inflate Python
    code against C code (JSON), and time spent waiting for the engine is never sampled."""

    def __init__(self, interval: float = 0.002) -> None:
        self.interval = interval
        self.own: dict[str, int] = {}
        self.samples = 0

    def _sample(self, signum, frame) -> None:
        if frame is None:
            return
        code = frame.f_code
        name = f"{'/'.join(Path(code.co_filename).parts[-2:])}:{code.co_name}"
        self.own[name] = self.own.get(name, 0) + 1
        self.samples += 1

    def __enter__(self) -> "CpuSampler":
        import signal
        signal.signal(signal.SIGPROF, self._sample)
        signal.setitimer(signal.ITIMER_PROF, self.interval, self.interval)
        return self

    def __exit__(self, *exc) -> None:
        import signal
        signal.setitimer(signal.ITIMER_PROF, 0, 0)
        signal.signal(signal.SIGPROF, signal.SIG_DFL)

    def top(self, count: int = 12) -> list[dict[str, Any]]:
        ranked = sorted(self.own.items(), key=lambda item: -item[1])[:count]
        return [{"function": name, "share": round(hits / max(self.samples, 1), 3)} for name, hits in ranked]


def cpu_by_stage(url: str, settings: Settings, cutoff: datetime | None, engine_pid: int,
                 run_id: str, slices: int | None = None) -> dict[str, Any]:
    """A full run in this process (`mailforce.sequence`, as the driver runs it): per stage, this
    process's CPU (the product's own client work: no Airflow) and the engine process's CPU, apart."""
    from mailforce.core.run_params import RunRequest
    from mailforce.sequence import count_window_in_process
    from mailforce.stages.fetch_watermark import fetch_watermark

    es = client_for(url)
    figures: dict[str, dict[str, float]] = {}

    def measured(name, call):
        wall, client, engine = time.monotonic(), time.process_time(), process_cpu_seconds(engine_pid)
        value = call()
        entry = figures.setdefault(name, {"wall": 0.0, "client": 0.0, "engine": 0.0})
        entry["wall"] += time.monotonic() - wall
        entry["client"] += time.process_time() - client
        entry["engine"] += process_cpu_seconds(engine_pid) - engine
        return value

    request = RunRequest(to_date=cutoff) if cutoff else RunRequest()
    with CpuSampler() as sampler:
        fetched = measured("fetch_watermark", lambda: fetch_watermark(es, settings, request, datetime.now(UTC)))
        document = count_window_in_process(es, settings, fetched, run_id, step=measured, slices=slices).to_xcom()
    # The ledger is written too (one record per counted message), though the run's record does not list it.
    es.indices.refresh(index=settings.ledger_index)
    by_index = {**(document.get("documents_written") or {}), "ledger": es.count(index=settings.ledger_index)["count"]}
    es.close()
    messages = max(int(document.get("emails_processed") or 0), 1)
    written = sum(by_index.values())
    per_message = lambda seconds: round(seconds * 1e6 / messages, 1)  # noqa: E731
    return {
        "messages": messages,
        "source_documents": document.get("source_documents"),
        "documents_written": written,
        "documents_written_by_index": by_index,
        "documents_per_message": round(written / messages, 3),
        "stages": {name: {"wall_seconds": round(entry["wall"], 3), "client_cpu_seconds": round(entry["client"], 3),
                          "engine_cpu_seconds": round(entry["engine"], 3),
                          "client_us_per_message": per_message(entry["client"]),
                          "engine_us_per_message": per_message(entry["engine"])}
                   for name, entry in figures.items()},
        "wall_seconds": round(sum(entry["wall"] for entry in figures.values()), 3),
        "client_cpu_seconds": round(sum(entry["client"] for entry in figures.values()), 3),
        "engine_cpu_seconds": round(sum(entry["engine"] for entry in figures.values()), 3),
        "client_us_per_message": per_message(sum(entry["client"] for entry in figures.values())),
        "engine_us_per_message": per_message(sum(entry["engine"] for entry in figures.values())),
        "cpu_profile": sampler.top(),
    }


def _worker_extract(window: dict[str, Any], extraction_slice: dict[str, Any], run_id: str) -> dict[str, Any]:
    """What one mapped extraction task does: the DAG's own stage function on the slice's XCom form."""
    from mailforce.core.extraction_slices import ExtractionSlice
    from mailforce.core.summaries import FetchedWindow
    from mailforce.stages.extract_message_roles import extract_message_roles

    started, cpu = time.monotonic(), time.process_time()
    summary = extract_message_roles(_WORKER["es"], _WORKER["settings"], FetchedWindow.from_xcom(window).window, run_id,
                                    extraction_slice=ExtractionSlice.from_xcom(extraction_slice))
    return {"seconds": time.monotonic() - started, "client_cpu_seconds": time.process_time() - cpu,
            "messages": summary.messages}


def parallel_extraction(server, settings: Settings, cutoff: datetime | None, slices: int) -> dict[str, Any]:
    """The extraction stage of a full run, its slices run by `slices` worker processes at once (as
    mapped tasks on as many workers), on a fresh clone of the loaded engine: wall time, CPU."""
    from mailforce.core.run_params import RunRequest
    from mailforce.stages.fetch_watermark import fetch_watermark
    from mailforce.stages.plan_extraction_slices import plan_extraction_slices

    clone = server.clone()
    es = client_for(clone.url)
    try:
        request = RunRequest(to_date=cutoff) if cutoff else RunRequest()
        fetched = fetch_watermark(es, settings, request, datetime.now(UTC))
        planned = [item.to_xcom() for item in plan_extraction_slices(es, settings, fetched.window, slices=slices)]
        values = {name: getattr(settings, name) for name in Settings.__dataclass_fields__}
        run_id = f"benchmark-slices-{slices}-{time.time():.0f}"
        engine_before = process_cpu_seconds(server.pid)  # clones are served by the base's process
        with ProcessPoolExecutor(max_workers=len(planned), initializer=_worker_init,
                                 initargs=(clone.url, values)) as pool:
            list(pool.map(_worker_ready, range(len(planned))))
            started = time.monotonic()
            futures = [pool.submit(_worker_extract, fetched.to_xcom(), item, run_id) for item in planned]
            results = [future.result() for future in futures]
            wall = time.monotonic() - started
        engine_cpu = process_cpu_seconds(server.pid) - engine_before
    finally:
        es.close()
        clone.close()
    return {"slices": len(planned), "wall_seconds": round(wall, 3),
            "slowest_slice_seconds": round(max(result["seconds"] for result in results), 3),
            "client_cpu_seconds": round(sum(result["client_cpu_seconds"] for result in results), 3),
            "engine_cpu_seconds": round(engine_cpu, 3),
            "messages": sum(result["messages"] for result in results)}


def stage_cpu(server, settings: Settings, split: "CorpusSplit") -> dict[str, Any]:
    """On fresh clones: the client/engine CPU per stage of a full run (one slice, the default
    settings otherwise), and the extraction with 1 then 2 slices in parallel processes."""
    clone = server.clone()
    load_before = os.getloadavg()[0]
    try:
        log("stage CPU: a full run in this process, CPU per stage")
        result = {"load_average_before": round(load_before, 2), "full": cpu_by_stage(clone.url, settings, split.cutoff, server.pid, "bench-cpu", slices=1)}
    finally:
        clone.close()
    sweep = []
    for slices in (1, 2):
        log(f"stage CPU: the extraction with {slices} slice(s) in parallel processes")
        sweep.append(parallel_extraction(server, settings, split.cutoff, slices))
    result["extraction_slices"] = sweep
    result["load_average_after"] = round(os.getloadavg()[0], 2)
    result["extraction_speedup_1_to_2"] = round(sweep[0]["wall_seconds"] / max(sweep[1]["wall_seconds"], 1e-9), 2)
    return result


def stage_cpu_scenario(arguments: argparse.Namespace, messages: int, heavy_share: float) -> dict[str, Any]:
    """`--stage-cpu-only`: load the corpus, then `stage_cpu` (no Airflow run)."""
    from osmem_server import OsmemServer

    spec = corpus_spec(arguments, messages, heavy_share)
    settings = Settings(internal_domains=(spec.company_domain,), max_partitions=max(arguments.partitions), schedule=None)
    split = plan_split(spec, arguments.incremental_fraction)
    server = OsmemServer.start(japanese=False)
    try:
        base = client_for(server.url)
        load_source(base, settings.source_index, split)
        base.close()
        log(f"stage CPU: loaded {split.loaded} source documents in {split.load_seconds:.1f} s")
        return {"scenario": f"{messages}msg-heavy{heavy_share:g}", "code": code_version(),
                "source_documents": split.loaded, "stage_cpu": stage_cpu(server, settings, split)}
    finally:
        server.close()


def stage_cpu_report(result: dict[str, Any]) -> str:
    full = result["full"]
    rows = [[name, f"{entry['wall_seconds']:.2f} s", f"{entry['client_us_per_message']:.1f}",
             f"{entry['engine_us_per_message']:.1f}"] for name, entry in full["stages"].items()]
    rows.append(["all stages", f"{full['wall_seconds']:.2f} s", f"{full['client_us_per_message']:.1f}",
                 f"{full['engine_us_per_message']:.1f}"])
    sweep = result["extraction_slices"]
    lines = [f"CPU per message per stage, in process, {full['messages']} messages, "
             f"{full['documents_per_message']:.2f} documents written per message:",
             table(rows, ["stage", "wall", "client CPU µs/msg", "engine CPU µs/msg"]),
             "Extraction with slices in parallel processes: " + ", ".join(
                 f"{entry['slices']} slice(s) {entry['wall_seconds']:.2f} s" for entry in sweep)
             + f"; speedup 1 -> 2 slices {result['extraction_speedup_1_to_2']:.2f}x",
             f"Client CPU over all stages: {full['client_us_per_message']:.1f} µs per message (issue 25's target: "
             f"at most {CLIENT_CPU_TARGET_US} at 100k messages)",
             "Where the client CPU goes (sampled, own time of the function running): " + ", ".join(
                 f"{entry['function']} {entry['share'] * 100:.1f} %" for entry in full.get("cpu_profile", [])),
             f"Load average (1 min) before / after: {result.get('load_average_before', '-')} / "
             f"{result.get('load_average_after', '-')} on {os.cpu_count()} CPUs (wall figures need a quiet machine)"]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------
# In-process measurements (--in-process): the product's own time without Airflow, the old script's
# shape, late-mail costs (issue 9), the rescore on a day change (issue 11)


def timed_stages(es, settings: Settings, fetched, run_id: str) -> dict[str, Any]:
    """The DAGs' counting sequence in this process (`mailforce.sequence`, as `tests/driver.py` runs
    it), each stage timed; compile partitions run one after another, as `airflow dags test`."""
    from mailforce.sequence import count_window_in_process

    seconds: dict[str, float] = {}

    def timed(name, call):
        started = time.monotonic()
        value = call()
        seconds[name] = seconds.get(name, 0.0) + time.monotonic() - started
        return value

    document = count_window_in_process(es, settings, fetched, run_id, step=timed).to_xcom()
    return {"stages": {name: round(value, 3) for name, value in seconds.items()},
            "seconds": round(sum(seconds.values()), 3), "messages": document.get("emails_processed"),
            "unchanged_messages": document.get("unchanged_messages"), "late_messages": document.get("late_messages"),
            "documents_written": document.get("documents_written", {}),
            "relationships_rescored": document.get("relationships_rescored")}


def timed_run(es, settings: Settings, request, run_end: datetime, run_id: str, kind=None) -> dict[str, Any]:
    """One whole run in this process: fetch_watermark timed, then `timed_stages`."""
    from mailforce.core.run_params import RunKind
    from mailforce.stages.fetch_watermark import fetch_watermark

    started = time.monotonic()
    fetched = fetch_watermark(es, settings, request, run_end, kind=kind or RunKind())
    fetch_seconds = time.monotonic() - started
    result = timed_stages(es, settings, fetched, run_id)
    result["stages"] = {"fetch_watermark": round(fetch_seconds, 3), **result["stages"]}
    result["seconds"] = round(result["seconds"] + fetch_seconds, 3)
    result["read_from"] = format_utc(fetched.window.read_from) if fetched.window.read_from else None
    return result


def old_script_shape(es, settings: Settings, window_query: dict[str, Any]) -> dict[str, Any]:
    """What the old script did, on the same engine and window: one scan of the needed fields, every
    figure aggregated in memory (engagements per (account, domain) with their address lists, domain
    totals), one bulk of the results. No incremental state, no cross-mailbox rule, no new indices:
    the shape of the cost, not a correct implementation."""
    from mailforce.core.addresses import domain_of, normalise_address
    from mailforce.core.kinds import DOMAINS_PROPERTIES, ENGAGEMENTS_PROPERTIES

    started = time.monotonic()
    engagements: dict[tuple[str, str], dict[str, dict[str, int]]] = {}
    domains: dict[str, dict[str, Any]] = {}
    for hit in helpers.scan(es, index=settings.source_index, query={"query": window_query, "_source": SOURCE_FIELDS},
                            size=settings.scan_page_size, scroll=settings.scroll_keep_alive, clear_scroll=True):
        source = hit["_source"]
        account = source.get("account")
        for role in ("from", "to", "cc"):
            values = (source.get(role) or {}).get("address")
            for raw in values if isinstance(values, list) else [values]:
                address = normalise_address(raw)
                if not address:
                    continue
                domain = domain_of(address)
                lists = engagements.setdefault((account, domain), {"from": {}, "to": {}, "cc": {}})
                lists[role][address] = lists[role].get(address, 0) + 1
                totals = domains.setdefault(domain, {"domain": domain, "total_from": 0, "total_to": 0, "total_cc": 0,
                                                     "accounts": set()})
                totals[f"total_{role}"] += 1
                totals["accounts"].add(account)
    aggregated = time.monotonic()

    def actions():
        for (account, domain), lists in engagements.items():
            yield {"_index": FLOOR_PREFIX + "old-engagements", "_id": f"{account}|{domain}", "_source": {
                "account": account, "domain": domain,
                **{f"emails_{role}": [{"email_address": a, "count": c} for a, c in lists[role].items()]
                   for role in ("from", "to", "cc")},
                **{f"emails_{role}_count": len(lists[role]) for role in ("from", "to", "cc")}}}
        for domain, totals in domains.items():
            yield {"_index": FLOOR_PREFIX + "old-domains", "_id": domain, "_source": dict(
                totals, accounts=sorted(totals["accounts"]), accounts_count=len(totals["accounts"]),
                total_emails=totals["total_from"] + totals["total_to"] + totals["total_cc"])}

    for name, properties in ((FLOOR_PREFIX + "old-engagements", ENGAGEMENTS_PROPERTIES),
                             (FLOOR_PREFIX + "old-domains", DOMAINS_PROPERTIES)):
        if es.indices.exists(index=name):
            es.indices.delete(index=name)
        es.indices.create(index=name, mappings={"properties": properties},
                          settings={"number_of_shards": settings.index_shards, "number_of_replicas": 0})
    bulk_started = time.monotonic()
    written, _ = helpers.bulk(es, actions(), chunk_size=settings.bulk_chunk_size,
                                 max_chunk_bytes=settings.bulk_chunk_bytes)
    es.indices.refresh(index=FLOOR_PREFIX + "old-*")
    ended = time.monotonic()
    es.indices.delete(index=FLOOR_PREFIX + "old-engagements")
    es.indices.delete(index=FLOOR_PREFIX + "old-domains")
    return {"seconds": round(ended - started, 3), "scan_and_aggregate_seconds": round(aggregated - started, 3),
            "bulk_seconds": round(ended - bulk_started, 3), "documents": written}


def in_process(server, settings: Settings, split: CorpusSplit, window_query: dict[str, Any]) -> dict[str, Any]:
    """Two fresh clones of the loaded engine, A (default lateness) and B (lateness 0); on each: a full
    run in this process, the old script's shape, the held-back 1 % loaded and an hourly run, a
    reconciliation that finds nothing, and the rescore of a day change. Every figure twice (A and B)
    except the lateness pair (one each: the point is their difference)."""
    from mailforce.core.run_params import RunRequest
    from mailforce.stages.reconcile import reconcile_window
    from mailforce.stages.rescore_relationships import rescore_relationships

    results: dict[str, Any] = {"full": [], "old_script": [], "hourly": {}, "reconcile": [], "rescore": []}
    cutoff_request = RunRequest(to_date=split.cutoff) if split.cutoff else RunRequest()
    for label, lateness in (("A", settings.allowed_lateness), ("B", "0s")):
        clone = server.clone()
        es = client_for(clone.url)
        try:
            run_settings = replace(settings, allowed_lateness=lateness)
            log(f"in-process {label}: full run")
            now = datetime.now(UTC).replace(microsecond=0)
            results["full"].append(timed_run(es, run_settings, cutoff_request, now, f"bench-full-{label}"))
            log(f"in-process {label}: the old script's shape")
            results["old_script"].append(old_script_shape(es, run_settings, window_query))
            load_held_back(es, settings.source_index, split)
            log(f"in-process {label}: hourly run with lateness {lateness}")
            hourly_request = RunRequest(to_date=split.incremental_end) if split.incremental_end else RunRequest()
            hourly = timed_run(es, run_settings, hourly_request, now, f"bench-hourly-{label}")
            hourly["allowed_lateness"] = lateness
            hourly["new_source_documents"] = len(split.held_back)
            results["hourly"][lateness] = hourly
            log(f"in-process {label}: reconciliation (finds nothing)")
            started = time.monotonic()
            fetched = reconcile_window(es, run_settings)
            window_seconds = time.monotonic() - started
            reconciled = timed_stages(es, run_settings, fetched, f"bench-reconcile-{label}")
            reconciled["stages"] = {"reconcile_window": round(window_seconds, 3), **reconciled["stages"]}
            reconciled["seconds"] = round(reconciled["seconds"] + window_seconds, 3)
            reconciled["slices"] = len(fetched.window.slices)
            results["reconcile"].append(reconciled)
            log(f"in-process {label}: rescore on a day change")
            es.indices.refresh(index=settings.relationships_index)
            relationships = es.count(index=settings.relationships_index)["count"]
            started = time.monotonic()
            rescored = rescore_relationships(es, run_settings, (split.incremental_end or now) + timedelta(days=1))
            results["rescore"].append({"seconds": round(time.monotonic() - started, 3),
                                       "relationships": relationships, **rescored.to_xcom()})
        finally:
            es.close()
            clone.close()
    best = lambda runs: min(runs, key=lambda run: run["seconds"])  # noqa: E731
    full, old = best(results["full"]), best(results["old_script"])
    with_lateness, without = results["hourly"][settings.allowed_lateness], results["hourly"]["0s"]
    results["summary"] = {
        "full_seconds": full["seconds"],
        "full_stages": full["stages"],
        "old_script_seconds": old["seconds"],
        "full_over_old_script": round(full["seconds"] / max(old["seconds"], 1e-9), 2),
        "hourly_lateness_seconds": with_lateness["seconds"],
        "hourly_no_lateness_seconds": without["seconds"],
        "lateness_over_none": round(with_lateness["seconds"] / max(without["seconds"], 1e-9), 3),
        "hourly_fraction_of_full": round(with_lateness["seconds"] / max(full["seconds"], 1e-9), 3),
        "reconcile_seconds": best(results["reconcile"])["seconds"],
        "reconcile_fraction_of_full": round(best(results["reconcile"])["seconds"] / max(full["seconds"], 1e-9), 3),
        "rescore_seconds": best(results["rescore"])["seconds"],
        "rescore_relationships_read": best(results["rescore"])["relationships_read"],
        "rescore_relationships_written": best(results["rescore"])["relationships_written"],
        "rescore_fraction_of_full": round(best(results["rescore"])["seconds"] / max(full["seconds"], 1e-9), 3),
    }
    return results


# ------------------------------------------------------------------------------------------------
# One scenario


def code_version() -> str:
    """Which pipeline code ran: the repository, its commit, and whether plugins/ or dags/ differ from it."""
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "plugins", "dags"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return f"{ROOT} @ {commit}" + (" + uncommitted changes in plugins/ or dags/" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return f"{ROOT} (not a git checkout)"


def scale_scenario(arguments: argparse.Namespace, airflow: Airflow, messages: int, heavy_share: float) -> dict[str, Any]:
    """`--scale-only`: load, the full run and the incremental run on one engine, memory sampled."""
    from osmem_server import OsmemServer

    name = f"{messages}msg-heavy{heavy_share:g}-scale"
    spec = corpus_spec(arguments, messages, heavy_share)
    slots = max(arguments.partitions)
    settings_env = {"MAILFORCE_INTERNAL_DOMAINS": spec.company_domain, "MAILFORCE_MAX_PARTITIONS": str(slots)}
    settings = Settings(internal_domains=(spec.company_domain,), max_partitions=slots, schedule=None)
    result: dict[str, Any] = {"scenario": name, "code": code_version(), "main_partitions": slots,
                              "corpus": {"messages": messages, "accounts": spec.accounts,
                                         "domains": spec.correspondent_domains, "heavy_domain_share": heavy_share,
                                         "seed": spec.seed}}
    log(f"{name}: planning the incremental split")
    split = plan_split(spec, arguments.incremental_fraction)
    server = OsmemServer.start(japanese=False)
    try:
        es = client_for(server.url)
        load_source(es, settings.source_index, split)
        result["load"] = {"loaded": split.loaded, "held_back": len(split.held_back), "seconds": round(split.load_seconds, 2),
                          "engine_rss_mb": round(process_rss_kib(server.pid) / MB, 1)}
        log(f"{name}: loaded {split.loaded} source documents in {split.load_seconds:.1f} s; engine "
            f"{result['load']['engine_rss_mb']:.0f} MB")
        full = airflow.dags_test(server.url, settings_env, {"to_date": format_utc(split.cutoff)} if split.cutoff else {},
                                 f"{name}-full", server.pid)
        result["full"] = full.summary()
        result["full"]["engine_rss_mb"] = round(process_rss_kib(server.pid) / MB, 1)
        log(f"{name}: full run {full.pipeline_wall:.1f} s, peak RSS {full.peak_rss_kib / MB:.0f} MB, engine "
            f"{result['full']['engine_rss_mb']:.0f} MB")
        load_held_back(es, settings.source_index, split)
        incremental = airflow.dags_test(server.url, settings_env,
                                        {"to_date": format_utc(split.incremental_end)} if split.incremental_end else {},
                                        f"{name}-incremental", server.pid)
        result["incremental"] = incremental.summary()
        result["incremental"]["fraction_of_full"] = round(incremental.pipeline_wall / max(full.pipeline_wall, 1e-9), 3)
        result["full"]["documents_by_index"] = count_outputs(es, settings)
        result["engine_rss_mb_at_end"] = round(process_rss_kib(server.pid) / MB, 1)
        es.close()
    finally:
        server.close()
    return result


def scale_report(result: dict[str, Any]) -> str:
    full, incremental = result["full"], result["incremental"]
    messages = full["messages"] or 0
    rows = [
        ["source documents loaded", f"{result['load']['loaded']} ({result['load']['seconds']:.1f} s)"],
        ["full run: pipeline wall", f"{fmt_seconds(full['pipeline_wall_seconds'])} "
                                    f"({messages / max(full['pipeline_wall_seconds'], 1e-9):.0f} msg/s, "
                                    f"{full['partitions']} partitions)"],
        ["full run: peak RSS of the dags test process", f"{full['peak_rss_mb']:.0f} MB (in a task {full['peak_task_rss_mb']} MB)"],
        ["incremental run: pipeline wall / full", f"{fmt_seconds(incremental['pipeline_wall_seconds'])} "
                                                  f"({incremental['fraction_of_full']:.1%})"],
        ["incremental run: peak RSS", f"{incremental['peak_rss_mb']:.0f} MB"],
        ["engine RSS: loaded / after the full run / at the end",
         f"{result['load']['engine_rss_mb']:.0f} / {full['engine_rss_mb']:.0f} / {result['engine_rss_mb_at_end']:.0f} MB"],
        ["documents by index", ", ".join(f"{name} {count}" for name, count in full["documents_by_index"].items())],
    ]
    corpus = result["corpus"]
    return (f"=== Scale {result['scenario']}: {corpus['messages']} messages, heavy-domain share "
            f"{corpus['heavy_domain_share']} ===\nCode measured: {result['code']}\n"
            + table(rows, ["figure", "value"]) + "\n")


def run_scenario(arguments: argparse.Namespace, airflow: Airflow, messages: int, heavy_share: float) -> dict[str, Any]:
    from osmem_server import OsmemServer

    name = f"{messages}msg-heavy{heavy_share:g}"
    spec = corpus_spec(arguments, messages, heavy_share)
    main_slots = max(arguments.partitions)
    settings = Settings(internal_domains=(spec.company_domain,), max_partitions=main_slots, schedule=None)
    settings_env = {"MAILFORCE_INTERNAL_DOMAINS": spec.company_domain}
    result: dict[str, Any] = {
        "scenario": name,
        "corpus": {"messages": messages, "accounts": spec.accounts, "domains": spec.correspondent_domains,
                   "heavy_domain_share": heavy_share, "seed": spec.seed, "dirt": spec.dirt,
                   "duplicate_rate": arguments.duplicate_rate},
        "main_partitions": main_slots,
        "code": code_version(),
    }
    log(f"{name}: planning the incremental split")
    split = plan_split(spec, arguments.incremental_fraction)
    server = OsmemServer.start(japanese=False)
    clones = []
    try:
        base = client_for(server.url)
        load_source(base, settings.source_index, split)
        base.close()
        result["load"] = {
            "source_documents": split.source_documents, "loaded": split.loaded, "held_back": len(split.held_back),
            "cutoff": format_utc(split.cutoff) if split.cutoff else None,
            "incremental_end": format_utc(split.incremental_end) if split.incremental_end else None, "seconds": round(split.load_seconds, 2),
            "documents_per_second": round(split.loaded / max(split.load_seconds, 1e-9)),
        }
        log(f"{name}: loaded {split.loaded} source documents in {split.load_seconds:.1f} s "
            f"({len(split.held_back)} held back, cut-off {result['load']['cutoff']})")
        full_conf = {"to_date": format_utc(split.cutoff)} if split.cutoff else {}

        # The full run, on a clone (the base stays as loaded, for the sweep and the profile).
        clone = server.clone()
        clones.append(clone)
        es = client_for(clone.url)
        log(f"{name}: full run (MAILFORCE_MAX_PARTITIONS={main_slots})")
        full = airflow.dags_test(clone.url, dict(settings_env, MAILFORCE_MAX_PARTITIONS=str(main_slots)),
                                 full_conf, f"{name}-full-k{main_slots}", server.pid)
        result["full"] = full.summary()
        result["full"]["documents_by_index"] = count_outputs(es, settings)
        log(f"{name}: full run {full.pipeline_wall:.1f} s (process {full.process_wall:.1f} s), "
            f"peak RSS {full.peak_rss_kib / MB:.0f} MB")
        work_by_domain = merged_extraction_xcoms(full).work_by_domain
        partitions = full.xcom("list_domains") or []
        result["full"]["partition_plan"] = [
            {"label": partition.get("label"), "domains": len(partition.get("domains", [])),
             "shards": len(partition.get("shards", [])), "work": partition.get("work"), "share": partition.get("share")}
            for partition in partitions
        ]
        largest = max(result["full"]["partition_plan"], key=lambda partition: partition["share"] or 0, default=None)
        result["full"]["largest_partition_share"] = (largest or {}).get("share") or 0.0
        result["full"]["largest_partition_label"] = (largest or {}).get("label") or "-"

        # I/O floor on the same engine and data.
        log(f"{name}: I/O floor")
        window = Window.from_xcom(full.xcom("fetch_watermark"))
        floor = measure_floor(es, settings, window.source_query())
        floor["pipeline_over_floor"] = round(full.pipeline_wall / max(floor["floor_seconds"], 1e-9), 2)
        floor["data_stages_over_floor"] = round(full.data_wall / max(floor["floor_seconds"], 1e-9), 2)
        floor["process_over_floor"] = round(full.process_wall / max(floor["floor_seconds"], 1e-9), 2)
        result["floor"] = floor

        # The incremental run: the held-back newest messages arrive.
        log(f"{name}: incremental run ({len(split.held_back)} new source documents)")
        result["incremental_load_seconds"] = round(load_held_back(es, settings.source_index, split), 2)
        incremental_conf = {"to_date": format_utc(split.incremental_end)} if split.incremental_end else {}
        incremental = airflow.dags_test(clone.url, dict(settings_env, MAILFORCE_MAX_PARTITIONS=str(main_slots)),
                                        incremental_conf, f"{name}-incremental-k{main_slots}", server.pid)
        result["incremental"] = incremental.summary()
        result["incremental"]["documents_by_index"] = count_outputs(es, settings)
        result["incremental"]["fraction_of_full"] = round(incremental.pipeline_wall / max(full.pipeline_wall, 1e-9), 3)
        result["incremental"]["data_fraction_of_full"] = round(incremental.data_wall / max(full.data_wall, 1e-9), 3)
        result["incremental"]["process_fraction_of_full"] = round(
            incremental.process_wall / max(full.process_wall, 1e-9), 3)
        result["incremental"]["new_source_documents"] = len(split.held_back)
        log(f"{name}: I/O floor of the incremental run")
        result["incremental_floor"] = measure_incremental_floor(
            es, settings, Window.from_xcom(incremental.xcom("fetch_watermark")).source_query(),
            min(task["start"] for task in incremental.tasks if task["start"]),
        )
        result["incremental_floor"]["pipeline_over_floor"] = round(
            incremental.pipeline_wall / max(result["incremental_floor"]["floor_seconds"], 1e-9), 2)
        result["incremental_floor"]["data_stages_over_floor"] = round(
            incremental.data_wall / max(result["incremental_floor"]["floor_seconds"], 1e-9), 2)
        # Partition count: parallel compile with K slots on a fresh copy of the compiled state. After the
        # incremental run, which must find the full run's state as it left it.
        # A K whose plan equals a smaller K's (a small window has fewer partitions than slots) is not
        # run again: the same partitions, each on its own worker, is the same work and the same wall.
        sweep = []
        measured: dict[str, dict[str, Any]] = {}
        for slots in arguments.partitions:
            partitions = plan_partitions(settings, work_by_domain, slots)
            plan = json.dumps(partitions, sort_keys=True)
            if plan in measured:
                entry = dict(measured[plan], slots=slots, same_plan_as=measured[plan]["slots"])
                log(f"{name}: compile stage with {slots} parallel slot(s): the plan of K={entry['same_plan_as']} "
                    f"({entry['partitions']} partition(s)), measured once")
            else:
                log(f"{name}: compile stage with {slots} parallel slot(s)")
                entry = parallel_compile(es, clone.url, settings, partitions, slots)
                entry["slots"] = slots
                measured[plan] = entry
            sweep.append(entry)
        result["partition_sweep"] = sweep
        if arguments.dag_sweep:
            for entry in sweep:
                slots = entry["slots"]
                if slots == main_slots:
                    entry["dag_pipeline_wall_seconds"] = round(full.pipeline_wall, 3)
                    entry["dag_compile_span_seconds"] = (result["full"]["stages"].get(COMPILE_TASK) or {}).get("span_seconds")
                    continue
                log(f"{name}: whole DAG with MAILFORCE_MAX_PARTITIONS={slots} on a fresh clone")
                sweep_clone = server.clone()
                try:
                    run = airflow.dags_test(sweep_clone.url, dict(settings_env, MAILFORCE_MAX_PARTITIONS=str(slots)),
                                            full_conf, f"{name}-full-k{slots}", server.pid)
                finally:
                    sweep_clone.close()
                stages = run.stages()
                entry["dag_pipeline_wall_seconds"] = round(run.pipeline_wall, 3)
                entry["dag_compile_span_seconds"] = (stages.get(COMPILE_TASK) or {}).get("span_seconds")

        es.close()
        clone.close()
        clones.remove(clone)

        if arguments.in_process:
            result["in_process"] = in_process(server, settings, split, window.source_query())
            summary = result["in_process"]["summary"]
            summary["airflow_fixed_seconds"] = round(full.pipeline_wall - summary["full_seconds"], 3)
            summary["pipeline_over_old_script"] = round(full.pipeline_wall / max(summary["old_script_seconds"], 1e-9), 2)
            summary["product_over_floor"] = round(summary["full_seconds"] / max(floor["floor_seconds"], 1e-9), 2)
        if arguments.stage_cpu:
            result["stage_cpu"] = stage_cpu(server, settings, split)
        if arguments.profile:
            log(f"{name}: profiling the driver's run_once in-process on a fresh clone")
            profile_clone = server.clone()
            clones.append(profile_clone)
            result["profile"] = profile_run_once(profile_clone.url, settings, split.cutoff, server.pid)
        result["engine_rss_mb_at_end"] = round(process_rss_kib(server.pid) / MB, 1)
    finally:
        for clone in clones:
            clone.close()
        server.close()
    return result


# ------------------------------------------------------------------------------------------------
# Report


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    line = lambda cells: "  ".join(str(cell).ljust(width) for cell, width in zip(cells, widths))  # noqa: E731
    return "\n".join([line(header), line(["-" * width for width in widths])] + [line(row) for row in rows])


def report(result: dict[str, Any]) -> str:
    full, incremental, floor = result["full"], result["incremental"], result["floor"]
    messages = full["messages"] or 0
    out = io.StringIO()
    write = lambda text="": print(text, file=out)  # noqa: E731
    corpus = result["corpus"]
    write(f"=== Scenario {result['scenario']}: {corpus['messages']} messages, {corpus['accounts']} accounts, "
          f"{corpus['domains']} domains, heavy-domain share {corpus['heavy_domain_share']}, seed {corpus['seed']} ===")
    write(f"Code measured: {result['code']}")
    load = result["load"]
    write(f"Source load (not pipeline time): {load['loaded']} documents in {load['seconds']:.1f} s "
          f"({load['documents_per_second']}/s); held back {load['held_back']} newer than {load['cutoff']}, "
          f"re-dated into the hour up to {load.get('incremental_end')}")
    write()
    write(f"Full run (airflow dags test, MAILFORCE_MAX_PARTITIONS={result['main_partitions']}):")
    rows = [
        ["messages (account, messageId)", f"{messages}"],
        ["source documents read", f"{full['source_documents']}"],
        ["domains", f"{full['domains']}"],
        ["pipeline wall (first task start -> last task end)", fmt_seconds(full["pipeline_wall_seconds"])],
        ["data stages wall (without the first task's Airflow start-up)", fmt_seconds(full["data_stages_wall_seconds"])],
        ["process wall (airflow dags test, incl. start-up)", fmt_seconds(full["process_wall_seconds"])],
        ["messages/s end to end (pipeline wall)", f"{messages / max(full['pipeline_wall_seconds'], 1e-9):.0f}"],
        ["messages/s end to end (process wall)", f"{messages / max(full['process_wall_seconds'], 1e-9):.0f}"],
        ["peak RSS (airflow dags test process)", f"{full['peak_rss_mb']:.0f} MB"],
        ["peak RSS while a task ran (sampled every 50 ms)", f"{full['peak_task_rss_mb']:.0f} MB"],
        ["CPU: airflow process / engine / rest of the machine",
         f"{full['client_cpu_seconds']:.1f} s / {full['engine_cpu_seconds']:.1f} s / "
         f"{full['other_processes_cpu_seconds']:.1f} s (load avg before {full['load_average_before']:.1f})"],
        ["roles documents read by compile (read amplification)",
         f"{full['roles_read_by_compile']} ({full['roles_read_by_compile'] / max(messages, 1):.2f}x)"],
        ["XCom stored (return values / all keys)", f"{full['xcom_bytes_return_values']} / {full['xcom_bytes_all']} bytes"],
    ]
    write(table(rows, ["figure", "value"]))
    write()
    write("Time per stage (task instances from the metadata DB; mapped: summed; RSS of the dags test process):")
    rows = []
    for stage, figures in full["stages"].items():
        share = figures["seconds"] / max(full["pipeline_wall_seconds"], 1e-9)
        rows.append([stage, str(figures["instances"]), fmt_seconds(figures["seconds"]), f"{share:.0%}",
                     fmt_seconds(figures["max_instance_seconds"]), f"{figures['rss_at_start_mb']:.0f} MB",
                     f"{figures['peak_rss_mb']:.0f} MB"])
    write(table(rows, ["stage", "tasks", "time", "of wall", "slowest task", "RSS at start", "peak RSS"]))
    write()
    write("Documents per output index (after the full run) and as the run reported them:")
    rows = [[index, str(count)] for index, count in full["documents_by_index"].items()]
    write(table(rows, ["index", "docs"]))
    write(f"documents_written: {json.dumps(full['documents_written'])}")
    write()
    write("I/O floor (same engine, same data, right after the full run):")
    rows = [
        ["scan window, needed fields only (scroll, unsorted)", f"{floor['scan_messages']} msgs", fmt_seconds(floor["scan_seconds"])],
        ["  same scan sorted like the pipeline (account, messageId)", "", fmt_seconds(floor["sorted_scan_seconds"])],
    ]
    for index, figures in floor["write_by_index"].items():
        rows.append([f"bulk-index copies of {index}",
                     f"{figures['documents']} docs, ~{figures['mean_bytes']} B, {figures['nested_entries']} nested",
                     f"{fmt_seconds(figures['seconds'])} ({figures['documents_per_second']}/s)"])
    rows += [
        ["bulk-index all outputs (helpers.bulk)", f"{floor['write_documents']} docs", fmt_seconds(floor["write_seconds"])],
        ["I/O floor (scan + bulk)", "", fmt_seconds(floor["floor_seconds"])],
        ["ratio pipeline / floor (pipeline wall)", "", f"{floor['pipeline_over_floor']:.2f}x (target <= 1.5x)"],
        ["ratio pipeline / floor (data stages wall)", "", f"{floor['data_stages_over_floor']:.2f}x"],
        ["ratio pipeline / floor (process wall)", "", f"{floor['process_over_floor']:.2f}x"],
    ]
    write(table(rows, ["figure", "size", "time"]))
    write()
    write("Incremental run (held-back newest messages, re-dated into the hour after the cut-off, loaded; window = (watermark, cut-off + 1 h]):")
    rows = [
        ["new source documents", str(incremental["new_source_documents"])],
        ["messages processed", str(incremental["messages"])],
        ["domains touched", str(incremental["domains"])],
        ["pipeline wall", fmt_seconds(incremental["pipeline_wall_seconds"])],
        ["data stages wall", fmt_seconds(incremental["data_stages_wall_seconds"])],
        ["process wall", fmt_seconds(incremental["process_wall_seconds"])],
        ["incremental fraction of the full run (pipeline wall)", f"{incremental['fraction_of_full']:.1%}"],
        ["incremental fraction of the full run (data stages wall)", f"{incremental['data_fraction_of_full']:.1%}"],
        ["incremental fraction of the full run (process wall)", f"{incremental['process_fraction_of_full']:.1%}"],
        ["roles documents read by compile", str(incremental["roles_read_by_compile"])],
        ["documents written", json.dumps(incremental["documents_written"])],
        ["peak RSS (process / while a task ran)", f"{incremental['peak_rss_mb']:.0f} MB / {incremental['peak_task_rss_mb']:.0f} MB"],
        ["CPU: airflow process / engine / rest of the machine",
         f"{incremental['client_cpu_seconds']:.1f} s / {incremental['engine_cpu_seconds']:.1f} s / "
         f"{incremental['other_processes_cpu_seconds']:.1f} s"],
    ]
    write(table(rows, ["figure", "value"]))
    incremental_floor = result["incremental_floor"]
    rows = [
        ["incremental I/O floor: scan its window", f"{incremental_floor['scan_messages']} msgs",
         fmt_seconds(incremental_floor["scan_seconds"])],
        ["incremental I/O floor: index again in place what it wrote",
         f"{incremental_floor['rewrite_documents']} docs ("
         + ", ".join(f"{index.removeprefix('search-')} {figures['documents']}"
                     for index, figures in incremental_floor["rewrite_by_index"].items()) + ")",
         fmt_seconds(incremental_floor["rewrite_seconds"])],
        ["incremental I/O floor", "", fmt_seconds(incremental_floor["floor_seconds"])],
        ["ratio incremental / its floor (pipeline wall, data stages wall)", "",
         f"{incremental_floor['pipeline_over_floor']:.2f}x, {incremental_floor['data_stages_over_floor']:.2f}x"],
    ]
    write(table(rows, ["figure", "size", "time"]))
    stage_rows = [[stage, str(figures["instances"]), fmt_seconds(figures["seconds"])]
                  for stage, figures in incremental["stages"].items()]
    write(table(stage_rows, ["incremental stage", "tasks", "time"]))
    write()
    write("Partitions vs wall time (compile stage; parallel = K worker processes at once on a fresh copy of the state):")
    rows = []
    for entry in result["partition_sweep"]:
        rows.append([
            str(entry["slots"]), str(entry["partitions"]), f"{entry['largest_partition_share']:.1%}",
            f"{entry['ideal_share']:.1%}", fmt_seconds(entry["wall_seconds"]), fmt_seconds(entry["slowest_partition_seconds"]),
            fmt_seconds(entry["sum_of_partition_seconds"]), f"{entry['roles_read'] / max(messages, 1):.2f}x",
            fmt_seconds(entry.get("dag_compile_span_seconds")), fmt_seconds(entry.get("dag_pipeline_wall_seconds")),
            f"the plan of K={entry['same_plan_as']}: not run again" if "same_plan_as" in entry else "",
        ])
    write(table(rows, ["K", "partitions", "largest partition share", "ideal", "parallel compile wall", "slowest",
                       "sum of partitions", "roles read", "DAG compile (sequential)", "DAG wall", "note"]))
    write(f"(DAG columns: whole DAG per K with --dag-sweep, else only K={result['main_partitions']}; "
          f"heaviest partition of the full run: {full['largest_partition_label']} "
          f"= {full['largest_partition_share']:.1%} of the work)")
    if "in_process" in result:
        summary = result["in_process"]["summary"]
        runs = result["in_process"]
        write()
        write("In process (no Airflow; two fresh clones A and B, best of the two where both measure it):")
        rows = [
            ["product's own time, full run (in process)", fmt_seconds(summary["full_seconds"]),
             " / ".join(fmt_seconds(run["seconds"]) for run in runs["full"])],
            ["  per stage", ", ".join(f"{stage} {seconds:.1f}" for stage, seconds in summary["full_stages"].items()), ""],
            ["Airflow's fixed cost (pipeline wall - own time)", fmt_seconds(summary["airflow_fixed_seconds"]), ""],
            ["ratio own time / I/O floor", f"{summary['product_over_floor']:.2f}x", ""],
            ["old script's shape (scan + in-memory aggregation + bulk)", fmt_seconds(summary["old_script_seconds"]),
             " / ".join(fmt_seconds(run["seconds"]) for run in runs["old_script"])],
            ["ratio full run / old script's shape (own time, pipeline wall)",
             f"{summary['full_over_old_script']:.2f}x, {summary['pipeline_over_old_script']:.2f}x", ""],
            ["hourly run, 1 % new, default lateness / lateness 0",
             f"{fmt_seconds(summary['hourly_lateness_seconds'])} / {fmt_seconds(summary['hourly_no_lateness_seconds'])}",
             f"{summary['lateness_over_none']:.1%} (target <= 110 %)"],
            ["hourly run with lateness, fraction of the full run", f"{summary['hourly_fraction_of_full']:.1%}", ""],
            ["reconciliation that finds nothing", fmt_seconds(summary["reconcile_seconds"]),
             f"{summary['reconcile_fraction_of_full']:.1%} of the full run (target < 20 %)"],
            ["rescore on a day change: relationships read / rewritten",
             f"{summary['rescore_relationships_read']} / {summary['rescore_relationships_written']}",
             f"{fmt_seconds(summary['rescore_seconds'])} ({summary['rescore_fraction_of_full']:.1%} of the full run)"],
        ]
        write(table(rows, ["figure", "value", "detail"]))
    if "profile" in result:
        profile = result["profile"]
        write()
        write(f"Profile of the driver's run_once in-process (cProfile; wall {profile['wall_seconds']:.1f} s, "
              f"client CPU {profile['client_cpu_seconds']:.1f} s, engine CPU {profile['engine_cpu_seconds']:.1f} s):")
        write(table([[label, fmt_seconds(seconds)] for label, seconds in profile["cumulative"].items()],
                    ["where (cumulative)", "time"]))
        write(table([[row["function"], fmt_seconds(row["self_seconds"]), fmt_seconds(row["cumulative_seconds"]),
                      str(row["calls"])] for row in profile["top_self_time"]],
                    ["top self time", "self", "cumulative", "calls"]))
    if "stage_cpu" in result:
        write()
        write(stage_cpu_report(result["stage_cpu"]))
    write()
    write(f"Engine RSS at the end of the scenario: {result['engine_rss_mb_at_end']:.0f} MB")
    return out.getvalue()


def comparison(results: list[dict[str, Any]]) -> str:
    rows = []
    for result in results:
        full = result["full"]
        # The first stage also holds dags test's start-up of Airflow's in-process API server: left out.
        growth = {stage: figures["peak_rss_mb"] - figures["rss_at_start_mb"]
                  for stage, figures in list(full["stages"].items())[1:]}
        stage = max(growth, key=growth.__getitem__) if growth else "-"
        rows.append([
            result["scenario"], str(full["messages"]), fmt_seconds(full["pipeline_wall_seconds"]),
            f"{full['messages'] / max(full['pipeline_wall_seconds'], 1e-9):.0f}",
            f"{full['peak_rss_mb']:.0f} MB / {full['peak_task_rss_mb']:.0f} MB", f"{growth.get(stage, 0):.0f} MB ({stage})",
            f"{result['floor']['pipeline_over_floor']:.2f}x", f"{result['incremental']['fraction_of_full']:.1%}",
            f"{full['largest_partition_share']:.1%} (K={result['main_partitions']})",
        ])
    return table(rows, ["scenario", "messages", "full run", "msgs/s", "peak RSS process / in a task",
                        "largest RSS growth in a data stage",
                        "pipeline/floor", "incremental", "largest partition share"])


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    configure_console_logging()
    # The engines it starts (and their clones) collect garbage as the product's embedded engine does.
    os.environ["GOGC"] = engine_environment(os.environ)["GOGC"]
    print(f"Engine GOGC={os.environ['GOGC']} (the embedded engine's default unless GOGC is set)", file=sys.stderr)
    workdir = arguments.workdir or Path(tempfile.mkdtemp(prefix="mailforce-benchmark-"))
    airflow = Airflow(workdir / "airflow")
    results = []
    try:
        airflow.migrate()
        for messages, heavy_share in itertools.product(arguments.messages, arguments.heavy_domain_share):
            if arguments.stage_cpu_only:
                result = stage_cpu_scenario(arguments, messages, heavy_share)
                results.append(result)
                print(f"=== Stage CPU {result['scenario']} ===\nCode measured: {result['code']}\n"
                      + stage_cpu_report(result["stage_cpu"]), flush=True)
                continue
            if arguments.scale_only:
                result = scale_scenario(arguments, airflow, messages, heavy_share)
                results.append(result)
                print(scale_report(result), flush=True)
                continue
            result = run_scenario(arguments, airflow, messages, heavy_share)
            results.append(result)
            print(report(result), flush=True)
        if len(results) > 1 and not (arguments.scale_only or arguments.stage_cpu_only):
            print("=== Comparison (peak RSS: the airflow dags test process; growth: within one stage) ===")
            print(comparison(results), flush=True)
        if arguments.json:
            arguments.json.write_text(json.dumps({
                "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
                "arguments": {key: (str(value) if isinstance(value, Path) else value)
                              for key, value in vars(arguments).items()},
                "scenarios": results,
            }, indent=2, default=str))
            log(f"figures written to {arguments.json}")
    finally:
        if arguments.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
