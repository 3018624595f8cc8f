"""The first command to run: the whole product on this machine in well under a minute, no Docker.

    bash scripts/demo.sh [--mail PATH]... [--account NAME] [--internal-domains LIST] [--keep]
                         [--conf JSON] [--home PATH] [--sample-dates yesterday|as-written]

1. starts the embedded engine (osmem-server, in memory) on a free port;
2. prepares a throw-away Airflow home (``<repo>/.airflow-demo/``, git-ignored, wiped each time) with
   ``airflow db migrate``, while
3. the mail (the shipped ``sample/mail`` unless ``--mail`` is given) is loaded into the source index,
   saying per input where its account came from (docs/OWN_MAIL.md); your own mail's owner domain is
   internal unless told otherwise; the sample's dates are moved by whole days so that its last
   message is dated yesterday (its files end in December 2025; otherwise every strength would have
   decayed to almost 0), never your own mail's;
4. runs one DAG run through Airflow, ``airflow dags test mailforce_engagements``, showing one line per
   task (the full log goes to ``<home>/dags-test.log``);
5. prints what the run wrote, read back from the output indices, and how the loaded messages add up
   to the counted ones; writes the HTML report to ``<home>/mailforce-report.html``;
6. stops the engine, or with ``--keep`` leaves it running and prints how to ask it questions.

The run stops at the first failed task instead of sitting through the DAG's retry back-off, and the
command then exits non-zero with the task's error (exit 2 for input the demo cannot use: no such
path, no mail in it). Airflow settings of the calling shell (``AIRFLOW_HOME``, ``AIRFLOW__*``,
``AIRFLOW_CONN_*``, ...) are not passed on: the demo must never touch another Airflow
installation's database. ``MAILFORCE_*`` settings are passed on.
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
from collections.abc import Sequence
from importlib import metadata
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from mailforce import DAG_ID
from mailforce.core.wording import plural, run_summary, window_notation
from mailforce.settings import Settings, load_settings
from mailforce.tools.common import (
    INTERNAL_DOMAINS_SETTING, REPO_ROOT, SAMPLE_DATES_CHOICES, SAMPLE_MAIL, DemoError, airflow_command,
    airflow_environment, engine_client, is_sample_mail, load_run_mail, prepare_home, sample_settings, tail,
)
from mailforce.tools.console import CliError, CommandParser, configure_console_logging, run_command
from mailforce.tools.embedded import EmbeddedEngine, start_daemon, stop_daemon
from mailforce.tools.loader import BulkLoadError, LoadReport
from mailforce.report import build_report, write_report

log = logging.getLogger(__name__)

DEFAULT_HOME = REPO_ROOT / ".airflow-demo"  # git-ignored (.airflow*/)
REPORT_FILE = "mailforce-report.html"
ENGINE_PIDFILE = "engine.pid"
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
    parser = CommandParser(
        prog="bash scripts/demo.sh",
        description="Run the mailforce_engagements DAG once through Airflow against the embedded engine "
        "and print what it wrote.",
    )
    parser.add_argument("--mail", action="append", type=Path, metavar="PATH",
                        help="mail to load (maildir, mbox, .eml tree); repeatable (default: sample/mail)")
    parser.add_argument("--account", help="the account of every message of --mail (default: the X-Origin header, "
                        "else the mbox/Maildir/folder name, else the mailbox owner's address)")
    parser.add_argument("--internal-domains", metavar="LIST",
                        help="your company's domains, comma-separated ('' for none); default for your own mail: "
                        "the mailbox owner's domain (MAILFORCE_INTERNAL_DOMAINS overrides it too)")
    parser.add_argument("--conf", type=_conf, metavar="JSON",
                        help="DAG run conf (params), e.g. '{\"exclude_accounts\": [\"kunai-raj\"]}'")
    parser.add_argument("--home", type=Path, default=DEFAULT_HOME,
                        help="Airflow home, wiped and recreated; the HTML report is written here (default: %(default)s)")
    parser.add_argument("--sample-dates", choices=SAMPLE_DATES_CHOICES, default="yesterday",
                        help="the sample mail only: move its dates by whole days so its last message is dated "
                        "yesterday (default), or keep them as written (2024-2025); your own mail is never moved")
    parser.add_argument("--keep", action="store_true",
                        help="leave the engine running afterwards, to ask it questions (who_knows, the report)")
    parser.add_argument("--timeout", type=float, default=DAG_TEST_TIMEOUT_SECONDS,
                        help="seconds the DAG run may take (default: %(default)s)")
    return parser


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def osmem_version() -> str:
    """The installed (pinned) osmem-server package version; the engine itself answers with the
    OpenSearch version it imitates."""
    try:
        return metadata.version("osmem-server")
    except metadata.PackageNotFoundError:
        return "(version unknown)"


def reconciliation_lines(loaded: int, stats: dict[str, Any], roles_documents: int, internal: Sequence[str]) -> list[str]:
    """How the loaded messages become the counted messages and the roles documents, each step's
    difference with its reason; a difference no reason explains is shown as such, never hidden."""
    read = int(stats.get("source_documents") or 0)
    undated = int(stats.get("undated_source_documents") or 0)
    future = int(stats.get("future_dated_messages") or 0)
    skipped = int(stats.get("skipped_no_date") or 0) + int(stats.get("skipped_no_account") or 0)
    unchanged = int(stats.get("unchanged_messages") or 0)
    processed = int(stats.get("emails_processed") or 0)
    counted = int(stats.get("counted_messages", processed) or 0)
    reread = unchanged - (processed - counted)  # unchanged, read again only for the allowed lateness
    copies = read - skipped - unchanged - counted
    width = len(str(loaded))
    lines = [f"Counted   {loaded:>{width}} messages loaded into the source index"]

    def step(sign: str, number: int, text: str) -> None:
        if number:
            lines.append(f"          {sign} {number:>{width}} {text}")

    step("-", undated, "without a usable date (no window selects them; see the loader's raw dates)")
    step("-", future, "dated after the run's window end")
    step("-", loaded - read - undated - future, "not selected by the run's window for another reason")
    lines.append(f"          = {read:>{width}} read by the run (runtime stats: source_documents)")
    step("-", skipped, "skipped by the run (no parseable date, or no account)")
    step("-", copies, "further copies of a message already in the same mailbox (united into one)")
    step("-", reread, "dated before the window, re-read for the allowed lateness, counted before and unchanged")
    lines.append(f"          = {processed:>{width}} messages processed (emails_processed)"
                 + (f", {processed - counted} of them counted by an earlier run and unchanged" if processed != counted else ""))
    who = f"only addresses at internal {', '.join(internal)}, or invalid ones" if internal else "only invalid addresses"
    step("-", processed - roles_documents, f"with no outside address left ({who}): no roles document")
    lines.append(f"          = {roles_documents:>{width}} message-roles documents")
    return lines


@dataclass
class DemoOptions:
    """What the command line asks of one demo run."""

    mail: list[Path]
    conf: dict[str, Any] | None = None
    home: Path = DEFAULT_HOME
    timeout: float = DAG_TEST_TIMEOUT_SECONDS
    account: str | None = None
    internal_domains: str | None = None
    keep: bool = False
    sample_dates: str = "yesterday"

    @property
    def is_sample(self) -> bool:
        return is_sample_mail(self.mail)


def start_engine(home: Path, keep: bool) -> EmbeddedEngine:
    """The engine: a child of this process, or with ``keep`` a daemon tracked by ``<home>/engine.pid``."""
    if keep:
        return start_daemon(home / ENGINE_PIDFILE)
    return EmbeddedEngine().start()


def stop_kept_engine(home: Path) -> None:
    """Stop the engine an earlier ``--keep`` left running from this home (before the home is wiped)."""
    pidfile = home.resolve() / ENGINE_PIDFILE
    if pidfile.exists() and stop_daemon(pidfile):
        print(f"Stopped   the engine an earlier --keep left running ({_display(pidfile)})", flush=True)


def run_demo(options: DemoOptions) -> None:
    began = time.monotonic()
    defaults = sample_settings(sample=options.is_sample)
    settings = load_settings({**os.environ, **defaults}, use_variable=False)
    missing = [str(path) for path in options.mail if not path.exists()]
    if missing:
        raise CliError(f"mail not found: {', '.join(missing)}. Check the path given to --mail.")
    stop_kept_engine(options.home)
    home = prepare_home(options.home)
    engine = start_engine(home, options.keep)
    try:
        _demo_on_engine(options, engine, home, defaults, settings)
    except BaseException:
        if options.keep:
            stop_daemon(home / ENGINE_PIDFILE)
        raise
    finally:
        if not options.keep:
            engine.stop()
    if options.keep:
        print(f"\nDone in {time.monotonic() - began:.1f} s; the engine keeps running (see above).")
    else:
        print(f"\nDone in {time.monotonic() - began:.1f} s; the engine is stopped, its indices are gone "
              "(--keep leaves it running).")


def _demo_on_engine(options: DemoOptions, engine: EmbeddedEngine, home: Path, defaults: dict[str, str],
                    settings: Settings) -> None:
    """Load, run the DAG, print what it wrote and how the numbers add up, write the HTML report."""
    print(f"Engine    osmem-server {osmem_version()} (answers as OpenSearch {engine.version}) at {engine.url} "
          "(in memory)", flush=True)
    environment = airflow_environment(home, engine.url, defaults)
    if defaults:
        print("Settings  " + ", ".join(f"{name}={value}" for name, value in defaults.items())
              + " (the demo's; set them to override)", flush=True)
    migrate_log = home / "db-migrate.log"
    with open(migrate_log, "w") as migrate_output:  # runs while the mail loads
        migrate = subprocess.Popen(airflow_command("db", "migrate"), env=environment, cwd=home,
                                   stdin=subprocess.DEVNULL, stdout=migrate_output, stderr=subprocess.STDOUT)
    try:
        loaded = load_run_mail(engine.url, options.mail, settings, account=options.account,
                               internal_domains=options.internal_domains, sample_dates=options.sample_dates)
    except BaseException as error:
        migrate.kill()
        migrate.wait()
        if isinstance(error, BulkLoadError):
            raise DemoError(str(error)) from None
        raise
    report = loaded.report
    print(_source_line(report, options.mail, settings), flush=True)
    for entry in report.inputs:
        print(f"            {entry.describe(_display(Path(entry.path)))}", flush=True)
    for problem in report.unreadable:
        print(f"            unreadable: {problem.describe()}", flush=True)
    if loaded.dates_line():
        print(loaded.dates_line(), flush=True)
    internal = loaded.internal_domains
    environment[INTERNAL_DOMAINS_SETTING] = ",".join(internal)
    print(loaded.internal_line(), flush=True)
    if migrate.wait() != 0:
        raise DemoError(f"`airflow db migrate` failed:\n{tail(migrate_log)}")
    print(f"Airflow   home {_display(home)}, metadata database migrated", flush=True)

    dag_log = home / "dags-test.log"
    print(f"\nRunning {DAG_ID} with `airflow dags test`{' -c ' + json.dumps(options.conf) if options.conf else ''} "
          f"(full log: {_display(dag_log)})", flush=True)
    result = run_dag_test(environment, dag_log, options.conf, options.timeout)
    failed = result.progress.failed
    if failed is not None:
        raise DemoError(f"the DAG run failed: task {failed.task_id} ended {failed.state}: "
                        f"{failed.error or 'see the log'}\nFull log: {dag_log}")
    if result.timed_out:
        raise DemoError(f"the DAG run did not finish within {options.timeout:.0f} s; full log: {dag_log}")
    if result.returncode != 0:
        raise DemoError(f"`airflow dags test` exited with code {result.returncode}:\n{tail(dag_log)}\n"
                        f"Full log: {dag_log}")
    print(f"DAG run succeeded: {len(result.progress.tasks)} task instances in {result.seconds:.1f} s\n", flush=True)

    es = engine_client(engine.url)
    try:
        print(output_report(es, settings))
        stats = _search(es, settings.runtime_stats_index, [{"run_date": "desc"}], 1)
        roles_documents = es.count(index=settings.roles_index)["count"]
        if stats:
            print("\n" + "\n".join(reconciliation_lines(report.messages_indexed, stats[0], roles_documents, internal)))
        report_path = write_report(home / REPORT_FILE, build_report(es, settings))
        print(f"\nReport    {report_path} (open it in a browser)")
        top = _search(es, settings.domains_index, [{"total_emails": "desc"}, {"domain": "asc"}], 1)
    finally:
        es.close()
    if options.keep:
        print(_keep_hint(engine.url, home, top[0]["domain"] if top else "acme.com"))


def _source_line(report: LoadReport, mail: Sequence[Path], settings: Settings) -> str:
    """What the loader indexed, with what it could not take."""
    left_out = []
    if report.skipped_unreadable:
        left_out.append(f"{report.skipped_unreadable} unreadable")
    if report.skipped_no_account:
        left_out.append(f"{report.skipped_no_account} without an account")
    return (f"Source    {report.messages_indexed} messages of {plural(len(report.accounts), 'account')} from "
            f"{', '.join(_display(path) for path in mail)} into {settings.source_index}"
            + (f" ({', '.join(left_out)})" if left_out else "") + ":")


def _keep_hint(url: str, home: Path, domain: str) -> str:
    """How to ask the kept engine questions, and how to stop it."""
    pidfile = home / ENGINE_PIDFILE
    return "\n".join([
        f"Kept      the engine runs at {url}; in another shell (after `source scripts/bootstrap.sh`):",
        f"            python -m mailforce.tools.who_knows {domain} --url {url} --engine osmem",
        f"            python -m mailforce.tools.report --url {url} --engine osmem -o /tmp/mailforce-report.html",
        f"          stop it: python -m mailforce.tools.embedded stop --pidfile {pidfile}",
    ])


def main(argv: list[str] | None = None) -> int:
    arguments = _argument_parser().parse_args(argv)
    configure_console_logging()
    options = DemoOptions(mail=arguments.mail or [SAMPLE_MAIL], conf=arguments.conf, home=arguments.home,
                          timeout=arguments.timeout, account=arguments.account,
                          internal_domains=arguments.internal_domains, keep=arguments.keep,
                          sample_dates=arguments.sample_dates)
    return run_command("demo failed", lambda: run_demo(options) or 0, debug=arguments.debug)


if __name__ == "__main__":
    sys.exit(main())
