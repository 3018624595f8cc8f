"""The first command to run: the whole product on this machine in well under a minute, no Docker.

    bash scripts/demo.sh [--mail PATH]... [--conf JSON] [--home PATH]

1. starts the embedded engine (osmem-server, in memory) on a free port;
2. prepares a throw-away Airflow home (``<repo>/.airflow-demo/``, wiped each time) with
   ``airflow db migrate``, while
3. the mail (the shipped ``sample/mail`` unless ``--mail`` is given) is loaded into the source index;
4. runs one DAG run through Airflow, ``airflow dags test mailforce_engagements``, showing one line per
   task (the full log goes to ``<home>/dags-test.log``);
5. prints what the run wrote, read back from the output indices, and stops the engine.

The run stops at the first failed task instead of sitting through the DAG's retry back-off, and the
command then exits non-zero with the task's error. Airflow settings of the calling shell
(``AIRFLOW_HOME``, ``AIRFLOW__*``, ``AIRFLOW_CONN_*``, ...) are not passed on: the demo must never
touch another Airflow installation's database. ``MAILFORCE_*`` settings are passed on.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from mailforce import DAG_ID
from mailforce.core.wording import run_summary, window_notation
from mailforce.settings import Settings, load_settings
from mailforce.tools.common import REPO_ROOT, SAMPLE_MAIL, DemoError, airflow_command, airflow_environment, engine_client, load_source_mail, prepare_home, sample_settings, tail
from mailforce.tools.embedded import EmbeddedEngine
from mailforce.tools.loader import BulkLoadError
from mailforce.tools.console import configure_console_logging

log = logging.getLogger(__name__)

DEFAULT_HOME = REPO_ROOT / ".airflow-demo"
DAG_TEST_TIMEOUT_SECONDS = 300.0
TOP_DOMAINS = 10


# --------------------------------------------------------------------------------------------
# One DAG run with `airflow dags test`, one line per task


_TASK_START = re.compile(r"\[DAG TEST\] starting task_id=(\S+) map_index=(-?\d+)")
_TASK_END = re.compile(r"\[DAG TEST\] end task task_id=(\S+) map_index=(-?\d+)")
_NEW_STATE = re.compile(r"\bnew_state=(\w+)")
_PARTITION_LABEL = re.compile(r"'label': '([^']*)'")
_TIMESTAMPED = re.compile(r"^\d{4}-\d\d-\d\d[T ]\d\d:\d\d")
_TASK_EXCEPTION = "Task failed with exception"
FAILED_STATES = frozenset({"failed", "up_for_retry", "upstream_failed"})


@dataclass
class TaskOutcome:
    task_id: str
    map_index: int
    state: str = "unknown"
    seconds: float = 0.0
    label: str | None = None
    error: str | None = None

    def describe(self) -> str:
        name = self.task_id if self.map_index < 0 else f"{self.task_id} [{self.label or self.map_index}]"
        return f"  {self.state:<8} {name}  ({self.seconds:.1f} s)"


@dataclass
class DagTestProgress:
    """Reads `airflow dags test` output line by line; prints one line per finished task."""

    output: IO[str] | None = None  # None: sys.stdout at the time of printing
    tasks: list[TaskOutcome] = field(default_factory=list)
    failed: TaskOutcome | None = None
    _current: TaskOutcome | None = None
    _started: float = 0.0
    _exception_lines: list[str] | None = None

    def feed(self, line: str) -> None:
        if self._exception_lines is not None:
            if not _TIMESTAMPED.match(line):
                self._exception_lines.append(line.rstrip())
                return
            self._close_exception()
        if match := _TASK_START.search(line):
            self._current = TaskOutcome(match.group(1), int(match.group(2)))
            self._started = time.monotonic()
        elif self._current is None:
            return
        elif match := _TASK_END.search(line):
            self._finish()
        elif match := _NEW_STATE.search(line):
            self._current.state = match.group(1)
        elif _TASK_EXCEPTION in line:
            self._exception_lines = []
        elif "Returned value was" in line and (match := _PARTITION_LABEL.search(line)) and self._current.map_index >= 0:
            self._current.label = match.group(1)

    def _close_exception(self) -> None:
        lines = [line for line in self._exception_lines or [] if line.strip()]
        if self._current is not None and lines:
            self._current.error = lines[-1].strip()
        self._exception_lines = None

    def _finish(self) -> None:
        task, self._current = self._current, None
        assert task is not None
        task.seconds = time.monotonic() - self._started
        self.tasks.append(task)
        print(task.describe(), file=self.output or sys.stdout, flush=True)
        if task.state in FAILED_STATES and self.failed is None:
            self.failed = task


@dataclass
class DagTestResult:
    returncode: int
    seconds: float
    progress: DagTestProgress
    timed_out: bool = False


def run_dag_test(
    environment: dict[str, str],
    log_path: Path,
    conf: dict[str, Any] | None = None,
    timeout: float = DAG_TEST_TIMEOUT_SECONDS,
    output: IO[str] | None = None,
) -> DagTestResult:
    """Run the DAG once in-process with `airflow dags test`; stop at the first failed task."""
    command = airflow_command("dags", "test", DAG_ID)
    if conf:
        command += ["-c", json.dumps(conf)]
    progress = DagTestProgress(output=output)
    started = time.monotonic()
    timed_out = threading.Event()
    with open(log_path, "w", encoding="utf-8") as log_file:
        process = subprocess.Popen(
            command, env=environment, cwd=environment["AIRFLOW_HOME"], stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
        )

        def on_timeout() -> None:
            timed_out.set()
            process.terminate()

        watchdog = threading.Timer(timeout, on_timeout)
        watchdog.start()
        try:
            assert process.stdout is not None
            for line in process.stdout:
                log_file.write(line)
                progress.feed(line)
                if progress.failed is not None:
                    log_file.flush()
                    process.terminate()  # the DAG would retry with back-off; the demo stops here
                    break
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        finally:
            watchdog.cancel()
            if process.poll() is None:
                process.kill()
                process.wait()
    return DagTestResult(process.returncode, time.monotonic() - started, progress, timed_out.is_set())


# --------------------------------------------------------------------------------------------
# What the run wrote


def _search(es, index: str, sort: list[dict[str, Any]], size: int) -> list[dict[str, Any]]:
    response = es.search(index=index, size=size, sort=sort, query={"match_all": {}})
    return [hit["_source"] for hit in response["hits"]["hits"]]


def _window(stats: dict[str, Any]) -> str:
    return window_notation(stats.get("window_start"), stats.get("window_end"), bool(stats.get("window_start_inclusive")))


def output_report(es, settings: Settings) -> str:
    """The output indices read back: counts, top domains, accounts, the run's stats record."""
    es.indices.refresh(index=",".join(settings.output_indices))
    lines = ["Output indices"]
    for index in settings.output_indices:
        lines.append(f"  {index:<36} {es.count(index=index)['count']:>6} documents")

    domains = _search(es, settings.domains_index, [{"total_emails": "desc"}, {"domain": "asc"}], TOP_DOMAINS)
    lines += ["", f"Top {TOP_DOMAINS} domains by total_emails ({settings.domains_index})",
              f"  {'domain':<26} {'emails':>6} {'from':>5} {'to':>5} {'cc':>5}  {'first contact':<20}  "
              f"{'latest contact':<20}  accounts"]
    for domain in domains:
        lines.append(
            f"  {domain['domain']:<26} {domain.get('total_emails', 0):>6} {domain.get('total_from', 0):>5} "
            f"{domain.get('total_to', 0):>5} {domain.get('total_cc', 0):>5}  {domain.get('first_contact_date', ''):<20}  "
            f"{domain.get('latest_contact_date', ''):<20}  {', '.join(domain.get('accounts', []))}"
        )

    accounts = _search(es, settings.account_stats_index, [{"account": "asc"}], 10_000)
    lines += ["", f"Accounts ({len(accounts)}): distinct addresses per role ({settings.account_stats_index})",
              f"  {'account':<26} {'From':>6} {'To':>6} {'CC':>6} {'total':>6}"]
    for account in accounts:
        lines.append(
            f"  {account['account']:<26} {account.get('emails_from_count', 0):>6} {account.get('emails_to_count', 0):>6} "
            f"{account.get('emails_cc_count', 0):>6} {account.get('total_emails_count', 0):>6}"
        )

    runs = _search(es, settings.runtime_stats_index, [{"run_date": "desc"}], 1)
    lines += ["", f"Runtime stats ({settings.runtime_stats_index}, latest run)"]
    if runs:
        stats = runs[0]
        lines += [
            f"  run_id    {stats.get('run_id')}",
            f"  window    {_window(stats)}{'  (backfill)' if stats.get('backfill') else ''}",
            f"  messages  {stats.get('emails_processed')} of {stats.get('email_accounts_processed')} accounts, "
            f"{stats.get('domains_processed')} domains; roles From {stats.get('from_roles')}, "
            f"To {stats.get('to_roles')}, CC {stats.get('cc_roles')}",
            f"  duration  {stats.get('duration_seconds')} s",
            "",
            f"Run summary (XCom run_summary of publish_stats): {run_summary(stats, stats.get('duration_seconds') or 0)}",
        ]
    else:
        lines.append("  (none: the run published no stats)")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Command line


def _conf(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        conf = json.loads(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"--conf is not valid JSON: {error}") from None
    if not isinstance(conf, dict):
        raise argparse.ArgumentTypeError("--conf must be a JSON object, e.g. '{\"exclude_accounts\": [\"kunai-raj\"]}'")
    return conf


def _argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bash scripts/demo.sh",
        description="Run the mailforce_engagements DAG once through Airflow against the embedded engine "
        "and print what it wrote.",
    )
    parser.add_argument("--mail", action="append", type=Path, metavar="PATH",
                        help="mail to load (maildir, mbox, .eml tree); repeatable (default: sample/mail)")
    parser.add_argument("--conf", type=_conf, metavar="JSON",
                        help="DAG run conf (params), e.g. '{\"exclude_accounts\": [\"kunai-raj\"]}'")
    parser.add_argument("--home", type=Path, default=DEFAULT_HOME,
                        help="Airflow home, wiped and recreated (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=DAG_TEST_TIMEOUT_SECONDS,
                        help="seconds the DAG run may take (default: %(default)s)")
    return parser


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def run_demo(mail: Iterable[Path], conf: dict[str, Any] | None, home: Path, timeout: float) -> None:
    began = time.monotonic()
    defaults = sample_settings()
    settings = load_settings({**os.environ, **defaults}, use_variable=False)
    mail = [Path(path) for path in mail]
    missing = [str(path) for path in mail if not path.exists()]
    if missing:
        raise DemoError(f"mail not found: {', '.join(missing)}")
    home = prepare_home(home)
    with EmbeddedEngine() as engine:
        print(f"Engine    osmem-server {engine.version} at {engine.url} (in memory; stopped at the end)", flush=True)
        environment = airflow_environment(home, engine.url, defaults)
        if defaults:
            print("Settings  " + ", ".join(f"{name}={value}" for name, value in defaults.items())
                  + " (the sample's; set them to override)", flush=True)
        migrate_log = home / "db-migrate.log"
        with open(migrate_log, "w") as migrate_output:  # runs while the mail loads
            migrate = subprocess.Popen(airflow_command("db", "migrate"), env=environment, cwd=home,
                                       stdin=subprocess.DEVNULL, stdout=migrate_output, stderr=subprocess.STDOUT)
        try:
            report = load_source_mail(engine.url, mail, settings)
        except BaseException as error:
            migrate.kill()
            migrate.wait()
            if isinstance(error, BulkLoadError):
                raise DemoError(str(error)) from None
            raise
        print(f"Source    {report.messages_indexed} messages of {len(report.accounts)} accounts from "
              f"{', '.join(_display(path) for path in mail)} into {settings.source_index} "
              f"({report.skipped_no_account + report.skipped_unreadable} skipped)", flush=True)
        if migrate.wait() != 0:
            raise DemoError(f"`airflow db migrate` failed:\n{tail(migrate_log)}")
        print(f"Airflow   home {_display(home)}, metadata database migrated", flush=True)

        dag_log = home / "dags-test.log"
        print(f"\nRunning {DAG_ID} with `airflow dags test`{' -c ' + json.dumps(conf) if conf else ''} "
              f"(full log: {_display(dag_log)})", flush=True)
        result = run_dag_test(environment, dag_log, conf, timeout)
        failed = result.progress.failed
        if failed is not None:
            raise DemoError(f"the DAG run failed: task {failed.task_id} ended {failed.state}: "
                            f"{failed.error or 'see the log'}\nFull log: {dag_log}")
        if result.timed_out:
            raise DemoError(f"the DAG run did not finish within {timeout:.0f} s; full log: {dag_log}")
        if result.returncode != 0:
            raise DemoError(f"`airflow dags test` exited with code {result.returncode}:\n{tail(dag_log)}\n"
                            f"Full log: {dag_log}")
        print(f"DAG run succeeded: {len(result.progress.tasks)} task instances in {result.seconds:.1f} s\n", flush=True)

        es = engine_client(engine.url)
        try:
            print(output_report(es, settings))
        finally:
            es.close()
    print(f"\nDone in {time.monotonic() - began:.1f} s; the engine is stopped, its indices are gone.")


def main(argv: list[str] | None = None) -> int:
    arguments = _argument_parser().parse_args(argv)
    configure_console_logging()
    try:
        run_demo(arguments.mail or [SAMPLE_MAIL], arguments.conf, arguments.home, arguments.timeout)
    except DemoError as error:
        print(f"\ndemo failed: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ndemo interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
