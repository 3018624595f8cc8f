"""The DAG in the Airflow UI without Docker: ``airflow standalone`` plus the embedded engine.

    bash scripts/ui.sh start [--mail PATH]... [--account NAME] [--internal-domains LIST]
                             [--sample-dates yesterday|as-written] [--timeout SECONDS] | stop | status

``start`` wipes and recreates the UI home (``<repo>/.airflow-ui/``), starts the embedded engine as a
daemon on port 9200 (or the next free one) and loads the mail into it as the demo does (the sample's
dates moved to end yesterday; your own mail's accounts and internal domains as docs/OWN_MAIL.md says),
then starts
``airflow standalone`` in a session of its own (``setsid``) with ``AIRFLOW__CORE__PARALLELISM=4`` (one task per DAG at a time),
the engine's connection and the DAG unpaused. It returns once the API server answers and the DAG is
registered, printing the URL and the generated admin password.

``stop`` sends SIGINT to ``airflow standalone`` (a plain kill of it would leave the scheduler and
task workers orphaned; on SIGINT it stops each component itself), waits for its whole process
group to exit, escalates to SIGTERM then SIGKILL for whatever is left of the group or still carries
this ``AIRFLOW_HOME``, then stops the engine. ``status`` says what runs.

Why SIGINT to the group leader and not to the whole group (Ctrl-C in a terminal does the latter):
then the scheduler gets SIGINT from the terminal *and* SIGTERM from standalone; the second signal
interrupts its LocalExecutor shutdown half-way and it waits forever for workers that never got
their stop message. Measured on two cores after one DAG run: group SIGINT left 2-7 processes
running after 40 s in 2 of 2 tries; SIGINT to the leader stopped everything in 6 s in 3 of 3.

Environment: ``UI_HOME`` (default ``<repo>/.airflow-ui``), ``UI_PORT`` (default 8080), ``ENGINE_PORT``
(default 9200; the next free port is taken when it is in use). ``MAILFORCE_*`` settings are passed
to Airflow (``MAILFORCE_SCHEDULE=none``: only triggered runs); the calling shell's Airflow settings
are not. The pids, logs and state live in the UI home. Linux only (reads ``/proc``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mailforce import DAG_ID
from mailforce.tools.airflow_stack import (
    ADMIN_USER,
    AirflowApi,
    ApiError,
    StackError,
    StackHome,
    cleaned_up_on_failure,
    group_members,
    health_components,
    print_ready,
    processes_using,
    quiet_or_print,
    running_group,
    stop_process_group,
    stop_result,
    stop_stragglers,
)
from mailforce.tools.common import (
    INTERNAL_DOMAINS_SETTING,
    REPO_ROOT,
    SAMPLE_DATES_CHOICES,
    SAMPLE_MAIL,
    DemoError,
    airflow_command,
    airflow_environment,
    is_sample_mail,
    sample_settings,
    load_run_mail,
    prepare_home,
    tail,
)
from mailforce.tools.embedded import EngineError, daemon_pid, daemon_url, port_is_free, start_daemon, stop_daemon
from mailforce.settings import load_settings
from mailforce.tools.console import configure_console_logging

log = logging.getLogger(__name__)

DEFAULT_HOME = REPO_ROOT / ".airflow-ui"
DEFAULT_UI_PORT = 8080
DEFAULT_ENGINE_PORT = 9200
PARALLELISM = 4  # two cores: more task processes only queue for the CPU
START_TIMEOUT_SECONDS = 300.0
STOP_TIMEOUT_SECONDS = 60.0


class StandaloneError(StackError):
    """The stack cannot be started or stopped; the message says why and where to look."""


@dataclass(frozen=True)
class Layout(StackHome):
    """Where one UI stack keeps its state (``start`` records the URL and ports in ``ui.json``), and the
    ports it asks for."""

    STATE_FILE = "ui.json"
    ui_port: int
    engine_port: int

    @classmethod
    def from_environment(cls) -> "Layout":
        def port(name: str, default: int) -> int:
            value = os.environ.get(name, "").strip()
            if not value:
                return default
            if not value.isdigit() or not 0 < int(value) < 65536:
                raise StandaloneError(f"{name} must be a port number, got {value!r}")
            return int(value)

        home = Path(os.environ.get("UI_HOME") or DEFAULT_HOME).expanduser().resolve()
        return cls(home, port("UI_PORT", DEFAULT_UI_PORT), port("ENGINE_PORT", DEFAULT_ENGINE_PORT))

    @property
    def standalone_pidfile(self) -> Path:
        return self.home / "standalone.pid"

    @property
    def standalone_log(self) -> Path:
        return self.home / "standalone.log"


def running_standalone(layout: Layout) -> int | None:
    """The pid (= process group id) of the running standalone, if any."""
    return running_group(layout.standalone_pidfile)


# --------------------------------------------------------------------------------------------
# start / stop / status


def _standalone_environment(layout: Layout, engine_url: str, mail_settings: dict[str, str]) -> dict[str, str]:
    base_url = f"http://localhost:{layout.ui_port}"
    return airflow_environment(
        layout.home,
        engine_url,
        {
            "AIRFLOW__CORE__PARALLELISM": str(PARALLELISM),
            # One task of a DAG at a time: airflow standalone keeps its metadata in SQLite, which takes
            # one writer at a time; tasks side by side are what scripts/deployed.sh (PostgreSQL) runs.
            "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "1",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__API__PORT": str(layout.ui_port),
            # Task workers reach the execution API through it; it defaults to port 8080.
            "AIRFLOW__API__BASE_URL": base_url,
            **mail_settings,
        },
    )


def _wait_for(what: str, probe, timeout: float, standalone: subprocess.Popen | None, layout: Layout) -> Any:
    """Poll ``probe()`` until it returns something; fail early when the standalone died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = probe()
        if result:
            return result
        if standalone is not None and standalone.poll() is not None:
            raise StandaloneError(f"airflow standalone exited (code {standalone.returncode}) while waiting for "
                                  f"{what}:\n{tail(layout.standalone_log, 30)}")
        time.sleep(1.0)
    raise StandaloneError(f"timed out after {timeout:.0f} s waiting for {what} "
                          f"(log: {layout.standalone_log}):\n{tail(layout.standalone_log, 30)}")


def _import_errors(api: AirflowApi) -> str:
    try:
        errors = api.request("GET", "/api/v2/importErrors").get("import_errors", [])
    except (ApiError, OSError) as error:
        return f"(could not read import errors: {error})"
    return "\n".join(f"{item.get('filename')}:\n{item.get('stack_trace')}" for item in errors) or "(no import errors)"


@dataclass(frozen=True)
class MailOptions:
    """Whose mail the UI runs on, as the demo takes it (docs/OWN_MAIL.md)."""

    account: str | None = None
    internal_domains: str | None = None  # comma-separated; '' for none
    sample_dates: str = "yesterday"


def start(layout: Layout, mail: Sequence[Path], timeout: float = START_TIMEOUT_SECONDS,
          options: MailOptions = MailOptions()) -> int:
    pid = running_standalone(layout)
    if pid is not None:
        print(f"Already running (pid {pid}); `ui.sh stop` first for a fresh stack.\n")
        return status(layout)
    left = processes_using(layout.home)
    if left:
        raise StandaloneError(f"processes still use {layout.home}: {left}; run `ui.sh stop` first")
    if stop_daemon(layout.engine_pidfile):
        print("Stopped the engine an earlier start left running", flush=True)
    if not port_is_free(layout.ui_port, "0.0.0.0"):
        raise StandaloneError(f"port {layout.ui_port} is in use: set UI_PORT to a free port")
    missing = [str(path) for path in mail if not path.exists()]
    if missing:
        raise StandaloneError(f"mail not found: {', '.join(missing)}")
    settings = load_settings(use_variable=False)
    prepare_home(layout.home)
    began = time.monotonic()
    with cleaned_up_on_failure(lambda: stop(layout, quiet=True), StandaloneError, (EngineError, DemoError, ApiError)):
        engine = start_daemon(layout.engine_pidfile, layout.engine_port, next_free=True)
        print(f"Engine    osmem-server at {engine.url} (pid {engine.pid}, in memory)", flush=True)
        loaded = load_run_mail(engine.url, mail, settings, account=options.account,
                               internal_domains=options.internal_domains, sample_dates=options.sample_dates)
        report = loaded.report
        print(f"Source    {report.messages_indexed} messages of {len(report.accounts)} accounts into "
              f"{settings.source_index}", flush=True)
        for entry in report.inputs:
            print(f"            {entry.describe()}", flush=True)
        for line in (loaded.dates_line(), loaded.internal_line()):
            if line:
                print(line, flush=True)
        mail_settings = {**sample_settings(sample=is_sample_mail(mail)),
                         INTERNAL_DOMAINS_SETTING: ",".join(loaded.internal_domains)}
        url = f"http://localhost:{layout.ui_port}"
        layout.state_file.write_text(json.dumps({"url": url, "ui_port": layout.ui_port, "engine_url": engine.url}))
        with open(layout.standalone_log, "wb") as output:
            standalone = subprocess.Popen(
                airflow_command("standalone"),
                env=_standalone_environment(layout, engine.url, mail_settings),
                cwd=layout.home,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # setsid: its own process group, stopped as one
            )
        layout.standalone_pidfile.write_text(f"{standalone.pid}\n")
        print(f"Airflow   standalone starting (pid {standalone.pid}, log {layout.standalone_log}) ...", flush=True)

        api = AirflowApi(url, timeout=10.0)
        _wait_for("the API server to answer", api.health, timeout, standalone, layout)
        api.password = _wait_for("the admin password", layout.admin_password, 60, standalone, layout)
        remaining = max(60.0, timeout - (time.monotonic() - began))
        try:
            dag = _wait_for(f"the DAG {DAG_ID} to be registered", lambda: api.dag(DAG_ID), remaining,
                            standalone, layout)
        except StandaloneError as error:
            raise StandaloneError(f"{error}\nImport errors:\n{_import_errors(api)}") from None
        if dag.get("is_paused"):
            api.unpause(DAG_ID)
    print_ready("Airflow UI", url, began, api.password, layout, [DAG_ID], "unpaused; trigger it with config from the UI",
                engine.url, "scripts/ui.sh")
    return 0


def stop(layout: Layout, quiet: bool = False) -> int:
    say = quiet_or_print(quiet)
    pid = running_standalone(layout)
    if pid is not None:
        say(f"Stopping airflow standalone (pid {pid}) with SIGINT ...")
        # SIGINT to the leader only: see the module docstring
        stop_process_group(pid, signal.SIGINT, STOP_TIMEOUT_SECONDS, say)
    else:
        say("airflow standalone is not running")
    stop_stragglers(layout.home, say)  # e.g. task processes in a group of their own
    say("Engine stopped" if stop_daemon(layout.engine_pidfile) else "Engine was not running")
    layout.standalone_pidfile.unlink(missing_ok=True)
    return stop_result(layout.home, processes_using(layout.home))


def status(layout: Layout) -> int:
    state = layout.state()
    pid = running_standalone(layout)
    url = state.get("url", f"http://localhost:{layout.ui_port}")
    if pid is None:
        print(f"airflow standalone: not running ({layout.home})")
    else:
        health = AirflowApi(url, timeout=5.0).health()
        print(f"airflow standalone: running, pid {pid}, {len(group_members(pid))} processes; "
              f"{url} {'answers: ' + health_components(health) if health else 'does not answer yet'}")
        print(f"  user {ADMIN_USER}, password {layout.admin_password() or '(not generated yet)'}")
    engine_pid = daemon_pid(layout.engine_pidfile)
    print(f"engine: running, pid {engine_pid}, {daemon_url(layout.engine_pidfile)}" if engine_pid
          else "engine: not running")
    others = sorted(set(processes_using(layout.home)) - set(group_members(pid) if pid else []))
    if others:
        print(f"other processes using {layout.home}: {others}")
    return 0 if pid is not None else 3


# --------------------------------------------------------------------------------------------
# Command line


def _argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bash scripts/ui.sh",
        description="airflow standalone with the embedded engine and the sample mail: the DAG in the "
        "Airflow UI, no Docker. Environment: UI_HOME, UI_PORT (8080), ENGINE_PORT (9200).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    start_parser = commands.add_parser("start", help="start the stack; prints URL, user and password")
    start_parser.add_argument("--mail", action="append", type=Path, metavar="PATH",
                              help="mail to load instead of sample/mail; repeatable")
    start_parser.add_argument("--account", help="the account of every message of --mail (as the demo)")
    start_parser.add_argument("--internal-domains", metavar="LIST",
                              help="your company's domains, comma-separated ('' for none); default for your own "
                              "mail: the mailbox owner's domain")
    start_parser.add_argument("--sample-dates", choices=SAMPLE_DATES_CHOICES, default="yesterday",
                              help="the sample only: dates moved to end yesterday (default) or as written")
    start_parser.add_argument("--timeout", type=float, default=START_TIMEOUT_SECONDS,
                              help="seconds to wait for Airflow to come up (default: %(default)s)")
    commands.add_parser("stop", help="stop Airflow (SIGINT to its leader, then waits for its process group) and the engine")
    commands.add_parser("status", help="say what runs")
    return parser


def main(argv: list[str] | None = None) -> int:
    arguments = _argument_parser().parse_args(argv)
    configure_console_logging()
    try:
        layout = Layout.from_environment()
        if arguments.command == "start":
            options = MailOptions(arguments.account, arguments.internal_domains, arguments.sample_dates)
            return start(layout, arguments.mail or [SAMPLE_MAIL], arguments.timeout, options)
        if arguments.command == "stop":
            return stop(layout)
        return status(layout)
    except StackError as error:  # StandaloneError, or the REST API client's
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
