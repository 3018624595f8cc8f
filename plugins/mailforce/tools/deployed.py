"""The DAGs the way they are deployed, without Docker: PostgreSQL, a scheduler, a dag-processor and an
API server, LocalExecutor with parallel task processes, and the embedded engine with mail in it.

    bash scripts/deployed.sh start [--mail PATH]... [--synthetic MESSAGES] | status | stop
    bash scripts/deployed.sh trigger [--wait] [--conf JSON] [DAG_ID]...
    bash scripts/deployed.sh wait DAG_ID RUN_ID [DAG_ID RUN_ID]...
    bash scripts/deployed.sh repeat --runs 20 [--synthetic MESSAGES]

``start`` wipes and recreates the stack's home (``<repo>/.airflow-deployed/``), then:

1. a PostgreSQL cluster of its own (Debian's ``/usr/lib/postgresql/<version>/bin``: ``initdb`` and
   ``pg_ctl``, run as the ``postgres`` user when this is root) with its data in a new directory under
   the system's temporary directory (the home's ``postgres-dir`` says which), listening on
   127.0.0.1 only (TCP, no Unix socket), trusting local connections (a throwaway test database;
   ``fsync`` off);
2. ``airflow db migrate`` into the database ``airflow_template``, and the metadata database ``airflow``
   created from it (``CREATE DATABASE ... TEMPLATE``: a fresh migrated database in a second);
3. the embedded engine (osmem-server) as a daemon, the mail loaded into its source index;
4. ``airflow api-server``, ``airflow scheduler`` and ``airflow dag-processor``, each a background
   process in a session of its own (``setsid``), with ``AIRFLOW__CORE__EXECUTOR=LocalExecutor``,
   ``AIRFLOW__CORE__PARALLELISM=8``, one JWT secret for all of them, and the execution API URL the
   task processes report to. It returns once the API server answers and the DAGs are registered.

Every port (API server, engine, PostgreSQL) is the preferred one when free, else the next free one.
``stop`` stops each component's process group (SIGTERM to the leader, then to the group, then
SIGKILL), any process still carrying the stack's ``AIRFLOW_HOME``, the engine and PostgreSQL, and
deletes the PostgreSQL data. ``repeat`` starts a stack and, for each run, stops the Airflow
components, recreates the metadata database from the template, empties every output index, starts the
components again, triggers ``mailforce_engagements`` and waits; it reports how many runs failed and,
for each failure, the failed tasks and the API server's error lines.

Environment: ``DEPLOYED_HOME`` (default ``<repo>/.airflow-deployed``), ``DEPLOYED_API_PORT`` (8080),
``DEPLOYED_ENGINE_PORT`` (9200), ``DEPLOYED_PG_PORT`` (5433). ``MAILFORCE_*`` settings are passed to
Airflow (the defaults here: only triggered runs, the sample's internal domain and partition
settings); the calling shell's Airflow settings are not. Linux only (reads ``/proc``).
"""

from __future__ import annotations

import argparse
import glob
import json
import logging
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from mailforce import DAG_ID
from mailforce.settings import Settings, load_settings
from mailforce.tools.airflow_stack import (
    AirflowApi,
    ApiError,
    StackError,
    StackHome,
    cleaned_up_on_failure,
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
    REPO_ROOT,
    SAMPLE_MAIL,
    DemoError,
    airflow_command,
    airflow_environment,
    engine_client,
    load_source_mail,
    prepare_home,
    sample_settings,
    tail,
)
from mailforce.tools.console import configure_console_logging
from mailforce.tools.embedded import EngineError, daemon_pid, find_free_port, start_daemon, stop_daemon

DEFAULT_HOME = REPO_ROOT / ".airflow-deployed"
DEFAULT_PORTS = {"api": 8080, "engine": 9200, "postgres": 5433}
PORT_VARIABLES = {"api": "DEPLOYED_API_PORT", "engine": "DEPLOYED_ENGINE_PORT", "postgres": "DEPLOYED_PG_PORT"}
PARALLELISM = 8
COMPONENTS = ("api-server", "scheduler", "dag-processor")
DAG_IDS = (DAG_ID, "mailforce_reconcile")
DATABASE = "airflow"
TEMPLATE_DATABASE = "airflow_template"
START_TIMEOUT_SECONDS = 300.0
RUN_TIMEOUT_SECONDS = 600.0
COMPONENT_STOP_SECONDS = 30.0
API_TIMEOUT_SECONDS = 60.0  # a busy two-core machine can take seconds to answer
PREFERRED_POSTGRES = "15"
# Only triggered runs unless the caller says otherwise; a synthetic corpus is spread evenly over
# its domains, so its window maps as many compile partitions as allowed.
DEPLOYED_SETTINGS = {"MAILFORCE_SCHEDULE": "none", "MAILFORCE_MAX_PARTITIONS": "8"}
SYNTHETIC_DOMAINS = 40
log = logging.getLogger(__name__)

ERROR_LINE = re.compile(r"error|exception|traceback|violat", re.IGNORECASE)
INFO_LINE = re.compile(r"\[(info|debug|warning) *\]")  # e.g. uvicorn's "[uvicorn.error]" logger at info level


class DeployedError(StackError):
    """The stack cannot be started, used or stopped; the message says why."""


# --------------------------------------------------------------------------------------------
# Where the stack lives


@dataclass(frozen=True)
class Layout(StackHome):
    """The stack's home: pids, logs, state (``start`` records the ports, the engine URL and the JWT
    secret in ``deployed.json``) and the PostgreSQL data."""

    STATE_FILE = "deployed.json"

    @classmethod
    def from_environment(cls) -> "Layout":
        return cls(Path(os.environ.get("DEPLOYED_HOME") or DEFAULT_HOME).expanduser().resolve())

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def postgres_pointer(self) -> Path:
        return self.home / "postgres-dir"

    @property
    def postgres_dir(self) -> Path | None:
        """The cluster's directory (data and log): in the system's temporary directory, which the
        ``postgres`` user can reach whatever the home's permissions (pytest's are 0700)."""
        try:
            return Path(self.postgres_pointer.read_text().strip())
        except FileNotFoundError:
            return None

    @property
    def postgres_data(self) -> Path:
        assert self.postgres_dir is not None, "no PostgreSQL cluster was created for this stack"
        return self.postgres_dir / "data"

    def pidfile(self, component: str) -> Path:
        return self.home / f"{component}.pid"

    def component_log(self, component: str) -> Path:
        return self.logs / f"{component}.log"

    def save_state(self, state: dict[str, Any]) -> None:
        """Written readable by this user only: it holds the stack's JWT secret."""
        self.state_file.touch(mode=0o600, exist_ok=True)
        self.state_file.write_text(json.dumps(state, indent=1))


def choose_ports() -> dict[str, int]:
    """The preferred ports (``DEPLOYED_<NAME>_PORT`` or the defaults), or the next free ones."""
    ports: dict[str, int] = {}
    for name, default in DEFAULT_PORTS.items():
        variable = PORT_VARIABLES[name]
        value = os.environ.get(variable, "").strip() or str(default)
        if not value.isdigit() or not 0 < int(value) < 65536:
            raise DeployedError(f"{variable} must be a port number, got {value!r}")
        port = find_free_port(int(value))
        while port in ports.values():
            port = find_free_port(port + 1)
        ports[name] = port
    return ports


# --------------------------------------------------------------------------------------------
# PostgreSQL: a cluster of the stack's own


def postgres_bin_dir(pattern: str = "/usr/lib/postgresql/*/bin/initdb") -> Path:
    """Debian's PostgreSQL server binaries (version 15 when installed, else the newest)."""
    found = {Path(path).parent.parent.name: Path(path).parent for path in glob.glob(pattern)}
    if not found:
        raise DeployedError("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): "
                            "install it with `apt-get install -y postgresql`")
    if PREFERRED_POSTGRES in found:
        return found[PREFERRED_POSTGRES]
    return found[max(found, key=lambda version: [int(part) for part in re.findall(r"\d+", version)] or [0])]


def as_postgres_user(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run ``command`` as the ``postgres`` user."""
    if os.geteuid() != 0:
        return command
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise DeployedError("running as root needs the `postgres` user (created by `apt-get install postgresql`)") from None
    return ["runuser", "-u", "postgres", "--", *command]


def _run(command: list[str], what: str, timeout: float = 120.0) -> str:
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise DeployedError(f"{what} failed (exit {result.returncode}): {(result.stderr or result.stdout).strip()[-2000:]}")
    return result.stdout


def create_postgres_cluster(layout: Layout, bin_dir: Path, port: int) -> None:
    """``initdb`` a cluster into a new temporary directory, listening on 127.0.0.1:``port`` only; the
    home records where it is."""
    directory = Path(tempfile.mkdtemp(prefix="mailforce-postgres-"))
    layout.postgres_pointer.write_text(f"{directory}\n")
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        os.chown(directory, owner.pw_uid, owner.pw_gid)
    _run(as_postgres_user([str(bin_dir / "initdb"), "-D", str(layout.postgres_data), "-U", "postgres", "-A", "trust",
                           "-E", "UTF8", "--no-sync", "--no-instructions"]), "initdb")
    with open(layout.postgres_data / "postgresql.conf", "a") as conf:
        conf.write(f"\n# mailforce deployed stack\nport = {port}\nlisten_addresses = '127.0.0.1'\n"
                   "unix_socket_directories = ''\nmax_connections = 200\nfsync = off\n")


def pg_ctl(layout: Layout, bin_dir: Path, *arguments: str) -> str:
    return _run(as_postgres_user([str(bin_dir / "pg_ctl"), "-D", str(layout.postgres_data), *arguments]),
                f"pg_ctl {arguments[0]}")


def postgres_running(layout: Layout) -> bool:
    """The cluster's postmaster is alive (its pid is the first line of ``postmaster.pid``)."""
    if layout.postgres_dir is None:
        return False
    try:
        pid = int((layout.postgres_data / "postmaster.pid").read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError, PermissionError):
        return False
    return Path(f"/proc/{pid}").exists()


def start_postgres(layout: Layout, bin_dir: Path) -> None:
    pg_ctl(layout, bin_dir, "start", "-w", "-t", "60", "-l", str(layout.postgres_dir / "postgres.log"))


def stop_postgres(layout: Layout, say=lambda text: None) -> None:
    """Stop the cluster (fast: connections are closed) and delete its data."""
    if postgres_running(layout):
        pg_ctl(layout, postgres_bin_dir(), "stop", "-m", "fast", "-w", "-t", "60")
        say("PostgreSQL stopped")
    if layout.postgres_dir is not None:
        shutil.rmtree(layout.postgres_dir, ignore_errors=True)
        layout.postgres_pointer.unlink()


def admin_sql(port: int, *statements: str, database: str = "postgres", params: Sequence[Any] = ()) -> list[tuple]:
    """Run statements outside a transaction (CREATE/DROP DATABASE need that); the last one's rows
    (``params`` go with the last statement)."""
    import psycopg2

    connection = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname=database, connect_timeout=10)
    try:
        connection.autocommit = True
        rows: list[tuple] = []
        with connection.cursor() as cursor:
            for number, statement in enumerate(statements, 1):
                cursor.execute(statement, tuple(params) if number == len(statements) else None)
                rows = cursor.fetchall() if cursor.description else []
        return rows
    finally:
        connection.close()


def metadata_url(port: int, database: str = DATABASE) -> str:
    return f"postgresql+psycopg2://postgres@127.0.0.1:{port}/{database}"


def recreate_metadata_database(port: int) -> None:
    """A fresh, migrated metadata database: dropped, then copied from the migrated template."""
    admin_sql(port, f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)",
              f"CREATE DATABASE {DATABASE} TEMPLATE {TEMPLATE_DATABASE}")


# --------------------------------------------------------------------------------------------
# Airflow


def component_environment(layout: Layout, state: dict[str, Any], database: str = DATABASE) -> dict[str, str]:
    """What every Airflow process of the stack gets: same home, database, secret and URLs."""
    api_url = f"http://127.0.0.1:{state['ports']['api']}"
    return airflow_environment(
        layout.home,
        state["engine_url"],
        {
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_url(state["ports"]["postgres"], database),
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": str(PARALLELISM),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__API_AUTH__JWT_SECRET": state["jwt_secret"],
            "AIRFLOW__API__SECRET_KEY": state["api_secret"],
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(state["ports"]["api"]),
            "AIRFLOW__API__BASE_URL": api_url,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api_url}/execution/",
            # the sample's (and the synthetic corpus's) company domain is internal; a user's own mail's is not
            **sample_settings(sample=state.get("kunaico_mail", True)),
            **{name: value for name, value in DEPLOYED_SETTINGS.items() if name not in os.environ},
        },
    )


def migrate(layout: Layout, state: dict[str, Any]) -> None:
    """``airflow db migrate`` into the template database."""
    with open(layout.logs / "db-migrate.log", "wb") as output:
        result = subprocess.run(airflow_command("db", "migrate"), env=component_environment(layout, state, TEMPLATE_DATABASE),
                                cwd=layout.home, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                                timeout=600)
    if result.returncode != 0:
        raise DeployedError(f"airflow db migrate failed (exit {result.returncode}):\n{tail(layout.logs / 'db-migrate.log', 30)}")


def running_component(layout: Layout, component: str) -> int | None:
    """The pid (= process group id) of a running component, if any."""
    return running_group(layout.pidfile(component))


def start_components(layout: Layout, state: dict[str, Any], log_dir: Path | None = None) -> None:
    """The API server, scheduler and dag-processor, each in a session of its own."""
    log_dir = log_dir or layout.logs
    log_dir.mkdir(parents=True, exist_ok=True)
    environment = component_environment(layout, state)
    for component in COMPONENTS:
        with open(log_dir / f"{component}.log", "ab") as output:
            process = subprocess.Popen(airflow_command(component), env=environment, cwd=layout.home,
                                       stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        layout.pidfile(component).write_text(f"{process.pid}\n")


def stop_components(layout: Layout, say=lambda text: None) -> list[int]:
    """Stop the three components at once (each its own process group: SIGTERM to the leader, then to
    the group, then SIGKILL), then any task process left. Returns the pids that survived SIGKILL."""
    running = {component: running_component(layout, component) for component in COMPONENTS}
    stopping = []
    for component, pid in running.items():
        if pid is not None:
            say(f"Stopping {component} (pid {pid})")
            stopping.append(threading.Thread(target=stop_process_group,
                                             args=(pid, signal.SIGTERM, COMPONENT_STOP_SECONDS, say)))
    for thread in stopping:
        thread.start()
    for thread in stopping:
        thread.join()
    for component in COMPONENTS:
        layout.pidfile(component).unlink(missing_ok=True)
    return stop_stragglers(layout.home, say)


def _component_died(layout: Layout, log_dir: Path) -> str | None:
    for component in COMPONENTS:
        if running_component(layout, component) is None:
            return f"airflow {component} exited:\n{tail(log_dir / f'{component}.log', 30)}"
    return None


def wait_until_ready(layout: Layout, state: dict[str, Any], timeout: float, log_dir: Path | None = None) -> AirflowApi:
    """Until the API server answers, the admin password exists and every DAG is registered."""
    log_dir = log_dir or layout.logs
    api = AirflowApi(state["url"], timeout=API_TIMEOUT_SECONDS)
    deadline = time.monotonic() + timeout
    waiting_for = "the API server to answer"
    while time.monotonic() < deadline:
        died = _component_died(layout, log_dir)
        if died:
            raise DeployedError(died)
        if api.password is None:
            if api.health() is not None:
                api.password = layout.admin_password()
                waiting_for = "the admin password"
        else:
            try:
                missing = [dag_id for dag_id in DAG_IDS if api.dag(dag_id) is None]
            except OSError:  # a slow answer while the components start: ask again
                missing = list(DAG_IDS)
            if not missing:
                return api
            waiting_for = f"the DAGs {', '.join(missing)} to be registered"
        time.sleep(1.0)
    raise DeployedError(f"timed out after {timeout:.0f} s waiting for {waiting_for} (logs in {log_dir}):\n"
                        f"{tail(log_dir / 'dag-processor.log', 15)}")


def api_for(layout: Layout) -> AirflowApi:
    """A REST client for the running stack; fails with one sentence when it does not run."""
    state = layout.state()
    if not state or running_component(layout, "api-server") is None:
        raise DeployedError(f"the stack in {layout.home} is not running: `bash scripts/deployed.sh start` first")
    return AirflowApi(state["url"], password=layout.admin_password(), timeout=API_TIMEOUT_SECONDS)


# --------------------------------------------------------------------------------------------
# Mail and outputs in the engine


def load_synthetic_mail(engine_url: str, messages: int, settings: Settings, seed: int = 1) -> int:
    """A synthetic corpus spread evenly over its domains (so the planner maps many partitions)."""
    from elasticsearch import helpers

    from mailforce.tools.loader import ensure_source_index
    from mailforce.tools.synthetic import CorpusSpec, iter_corpus

    spec = CorpusSpec(seed=seed, messages=messages, accounts=5, correspondent_domains=SYNTHETIC_DOMAINS,
                      zipf_exponent=0.0, cross_account_duplicate_rate=0.05)
    es = engine_client(engine_url)
    try:
        ensure_source_index(es, settings.source_index)
        ok, _ = helpers.bulk(es, ({"_index": settings.source_index, "_id": doc["_id"], "_source": doc["_source"]}
                                  for doc in iter_corpus(spec)), raise_on_error=True)
        es.indices.refresh(index=settings.source_index)
        return ok
    finally:
        es.close()


def empty_outputs(engine_url: str, settings: Settings) -> list[str]:
    """Delete every index but the source (outputs, ledger, lease): the next run starts from nothing."""
    es = engine_client(engine_url)
    try:
        names = [name for name in es.indices.get(index="*") if name != settings.source_index and not name.startswith(".")]
        for name in names:
            es.indices.delete(index=name)
        return names
    finally:
        es.close()


# --------------------------------------------------------------------------------------------
# start / stop / status


def start(layout: Layout, mail: Sequence[Path], synthetic: int = 0, timeout: float = START_TIMEOUT_SECONDS) -> int:
    if any(running_component(layout, component) for component in COMPONENTS) or postgres_running(layout):
        raise DeployedError(f"a stack is already running in {layout.home}: `bash scripts/deployed.sh stop` first")
    if processes_using(layout.home):
        raise DeployedError(f"processes still use {layout.home}: `bash scripts/deployed.sh stop` first")
    bin_dir = postgres_bin_dir()
    missing = [str(path) for path in mail if not path.exists()]
    if missing:
        raise DeployedError(f"mail not found: {', '.join(missing)}")
    settings = load_settings(use_variable=False)
    stop_daemon(layout.engine_pidfile)
    stop_postgres(layout)  # deletes the data an earlier, crashed start left behind
    prepare_home(layout.home)
    layout.logs.mkdir()
    began = time.monotonic()
    with cleaned_up_on_failure(lambda: stop(layout, quiet=True), DeployedError,
                               (EngineError, DemoError, ApiError, subprocess.TimeoutExpired)):
        ports = choose_ports()
        create_postgres_cluster(layout, bin_dir, ports["postgres"])
        start_postgres(layout, bin_dir)
        admin_sql(ports["postgres"], f"CREATE DATABASE {TEMPLATE_DATABASE}")
        print(f"Postgres  {bin_dir.parent.name} at 127.0.0.1:{ports['postgres']} (data in {layout.postgres_data})", flush=True)
        engine = start_daemon(layout.engine_pidfile, ports["engine"], next_free=True)
        state = {"url": f"http://127.0.0.1:{ports['api']}", "ports": ports, "engine_url": engine.url,
                 "jwt_secret": secrets.token_urlsafe(64), "api_secret": secrets.token_urlsafe(32),
                 "kunaico_mail": not mail}
        layout.save_state(state)
        print(f"Engine    osmem-server at {engine.url} (pid {engine.pid}, in memory)", flush=True)
        if synthetic:
            count = load_synthetic_mail(engine.url, synthetic, settings)
            print(f"Source    {count} synthetic documents ({SYNTHETIC_DOMAINS} evenly used domains) into "
                  f"{settings.source_index}", flush=True)
        if mail or not synthetic:
            report = load_source_mail(engine.url, list(mail) or [SAMPLE_MAIL], settings)
            print(f"Source    {report.messages_indexed} messages of {len(report.accounts)} accounts into "
                  f"{settings.source_index}", flush=True)
        migrate(layout, state)
        recreate_metadata_database(ports["postgres"])
        print(f"Metadata  migrated: {metadata_url(ports['postgres'])}", flush=True)
        start_components(layout, state)
        print(f"Airflow   {', '.join(COMPONENTS)} starting (LocalExecutor, parallelism {PARALLELISM}; "
              f"logs in {layout.logs}) ...", flush=True)
        api = wait_until_ready(layout, state, timeout)
    print_ready("Airflow", state["url"], began, api.password, layout, DAG_IDS,
                "unpaused; `bash scripts/deployed.sh trigger --wait`", state["engine_url"], "scripts/deployed.sh")
    return 0


def stop(layout: Layout, quiet: bool = False) -> int:
    say = quiet_or_print(quiet)
    left = stop_components(layout, say)
    say("Engine stopped" if stop_daemon(layout.engine_pidfile) else "Engine was not running")
    try:
        stop_postgres(layout, say)
    except DeployedError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return stop_result(layout.home, left)


def status(layout: Layout) -> int:
    state = layout.state()
    running = {component: running_component(layout, component) for component in COMPONENTS}
    for component, pid in running.items():
        print(f"{component}: " + (f"running, pid {pid}" if pid else "not running"))
    print("postgres: " + (f"running, 127.0.0.1:{state.get('ports', {}).get('postgres')}" if postgres_running(layout)
                          else "not running"))
    engine = daemon_pid(layout.engine_pidfile)
    print(f"engine: running, pid {engine}, {state.get('engine_url')}" if engine else "engine: not running")
    if running["api-server"]:
        health = AirflowApi(state["url"], timeout=5.0).health()
        print(f"{state['url']} " + (f"answers: {health_components(health)}" if health else "does not answer yet"))
    return 0 if all(running.values()) and postgres_running(layout) and engine else 3


# --------------------------------------------------------------------------------------------
# Runs


def trigger(api: AirflowApi, dag_id: str, conf: dict[str, Any] | None = None) -> str:
    """Unpause the DAG when paused and trigger a run now; its run id."""
    if (api.dag(dag_id) or {}).get("is_paused"):
        api.unpause(dag_id)
    run = api.request("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf or {}})
    return run["dag_run_id"]


def wait_for_runs(api: AirflowApi, runs: Sequence[tuple[str, str]], timeout: float = RUN_TIMEOUT_SECONDS) -> dict[tuple[str, str], str]:
    """Poll until every (dag_id, run_id) ended; their final states ("running" for any still going)."""
    deadline = time.monotonic() + timeout
    states: dict[tuple[str, str], str] = {run: "queued" for run in runs}
    while True:
        for dag_id, run_id in runs:
            if states[(dag_id, run_id)] not in ("success", "failed"):
                try:
                    states[(dag_id, run_id)] = api.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")["state"]
                except OSError as error:  # a slow answer on a busy machine: ask again on the next round
                    log.info("asking for the state of %s %s failed (%s); asking again", dag_id, run_id, error)
        if all(state in ("success", "failed") for state in states.values()) or time.monotonic() > deadline:
            return states
        time.sleep(2.0)


def unsuccessful_tasks(api: AirflowApi, dag_id: str, run_id: str) -> list[str]:
    """'task_id[map_index] state' of every task instance of the run that did not succeed."""
    tasks = api.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=1000")["task_instances"]
    return [f"{task['task_id']}[{task['map_index']}] {task['state']}" for task in tasks if task["state"] != "success"]


def error_lines(log_file: Path, limit: int = 20) -> list[str]:
    """Lines of a component's log that name an error, exception or constraint violation."""
    try:
        lines = log_file.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return []
    return [line[:400] for line in lines if ERROR_LINE.search(line) and not INFO_LINE.search(line)][:limit]


def most_at_once(intervals: Iterable[tuple[datetime, datetime]]) -> int:
    """The largest number of intervals open at one moment (an end before a start at the same moment)."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals],
                    key=lambda event: (event[0], event[1]))
    most = current = 0
    for _, step in events:
        current += step
        most = max(most, current)
    return most


def compile_overlap(port: int, dag_id: str, run_id: str) -> tuple[int, int]:
    """(compile instances, most running at once) of a run, from the metadata database."""
    rows = admin_sql(port, "SELECT start_date, end_date FROM task_instance WHERE dag_id = %s AND run_id = %s "
                     "AND task_id = 'compile_domain_partition' AND start_date IS NOT NULL AND end_date IS NOT NULL",
                     database=DATABASE, params=(dag_id, run_id))
    return len(rows), most_at_once(rows)


def repeat(layout: Layout, runs: int, synthetic: int, timeout: float = START_TIMEOUT_SECONDS) -> int:
    """``runs`` runs of the main DAG, each on a fresh metadata database and empty outputs."""
    start(layout, [], synthetic=synthetic, timeout=timeout)
    state = layout.state()
    settings = load_settings(use_variable=False)
    failures: list[str] = []
    try:
        for number in range(1, runs + 1):
            run_logs = layout.logs if number == 1 else layout.logs / f"run-{number:02d}"
            if number > 1:
                stop_components(layout)
                recreate_metadata_database(state["ports"]["postgres"])
                empty_outputs(state["engine_url"], settings)
                start_components(layout, state, run_logs)
            try:
                api = wait_until_ready(layout, state, timeout, run_logs)
                api.password = layout.admin_password()
                began = time.monotonic()
                run_id = trigger(api, DAG_ID)
                final = wait_for_runs(api, [(DAG_ID, run_id)])[(DAG_ID, run_id)]
                mapped, at_once = compile_overlap(state["ports"]["postgres"], DAG_ID, run_id)
                line = (f"run {number}/{runs}: {final} in {time.monotonic() - began:.0f} s, {mapped} compile "
                        f"partitions, {at_once} at once")
                if final != "success":
                    line += ("\n  tasks not successful: " + "; ".join(unsuccessful_tasks(api, DAG_ID, run_id))
                             + "\n  API server error lines:\n    "
                             + "\n    ".join(error_lines(run_logs / "api-server.log") or ["(none)"]))
                    failures.append(line)
            except (DeployedError, ApiError, OSError) as error:
                line = f"run {number}/{runs}: could not run: {error}"
                failures.append(line)
            print(line, flush=True)
    finally:
        stop(layout, quiet=True)
    print(f"\n{runs} runs, {len(failures)} failed, each on a fresh metadata database "
          f"(PostgreSQL, LocalExecutor, parallelism {PARALLELISM})", flush=True)
    for line in failures:
        print(line, flush=True)
    return 1 if failures else 0


# --------------------------------------------------------------------------------------------
# Command line


def _argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bash scripts/deployed.sh",
        description="The DAGs on PostgreSQL with a scheduler, a dag-processor and an API server (LocalExecutor), "
        "and the embedded engine; no Docker. Environment: DEPLOYED_HOME, DEPLOYED_API_PORT (8080), "
        "DEPLOYED_ENGINE_PORT (9200), DEPLOYED_PG_PORT (5433).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    start_parser = commands.add_parser("start", help="start the stack; prints URL, user and password")
    repeat_parser = commands.add_parser("repeat", help="N runs of mailforce_engagements, each on a fresh metadata database")
    for command in (start_parser, repeat_parser):
        command.add_argument("--synthetic", type=int, default=0, metavar="MESSAGES",
                             help="load a synthetic corpus of this many messages over evenly used domains")
        command.add_argument("--timeout", type=float, default=START_TIMEOUT_SECONDS,
                             help="seconds to wait for Airflow to come up (default: %(default)s)")
    start_parser.add_argument("--mail", action="append", type=Path, default=[], metavar="PATH",
                              help="mail to load (default: sample/mail unless --synthetic); repeatable")
    repeat_parser.add_argument("--runs", type=int, default=20)
    repeat_parser.set_defaults(synthetic=2000)
    trigger_parser = commands.add_parser("trigger", help="trigger runs now (all at once); prints 'DAG_ID RUN_ID' lines")
    trigger_parser.add_argument("dag_ids", nargs="*", default=[DAG_ID], metavar="DAG_ID")
    trigger_parser.add_argument("--conf", type=json.loads, default=None, help="the runs' conf, a JSON object")
    trigger_parser.add_argument("--wait", action="store_true", help="wait for the runs to end")
    wait_parser = commands.add_parser("wait", help="wait for runs to end; exit 1 when one did not succeed")
    wait_parser.add_argument("runs", nargs="+", metavar="DAG_ID RUN_ID")
    wait_parser.add_argument("--timeout", type=float, default=RUN_TIMEOUT_SECONDS)
    commands.add_parser("stop", help="stop everything and delete the PostgreSQL data")
    commands.add_parser("status", help="say what runs")
    return parser


def _report_runs(api: AirflowApi, runs: Sequence[tuple[str, str]], timeout: float) -> int:
    states = wait_for_runs(api, runs, timeout)
    for (dag_id, run_id), state in states.items():
        print(f"{dag_id} {run_id} {state}", flush=True)
        if state != "success":
            for task in unsuccessful_tasks(api, dag_id, run_id):
                print(f"  {task}", flush=True)
    return 0 if all(state == "success" for state in states.values()) else 1


def main(argv: list[str] | None = None) -> int:
    arguments = _argument_parser().parse_args(argv)
    configure_console_logging()
    layout = Layout.from_environment()
    try:
        if arguments.command == "start":
            return start(layout, arguments.mail, arguments.synthetic, arguments.timeout)
        if arguments.command == "stop":
            return stop(layout)
        if arguments.command == "status":
            return status(layout)
        if arguments.command == "repeat":
            return repeat(layout, arguments.runs, arguments.synthetic, arguments.timeout)
        api = api_for(layout)
        if arguments.command == "trigger":
            runs = [(dag_id, trigger(api, dag_id, arguments.conf)) for dag_id in arguments.dag_ids]
            for dag_id, run_id in runs:
                print(f"{dag_id} {run_id}", flush=True)
            return _report_runs(api, runs, RUN_TIMEOUT_SECONDS) if arguments.wait else 0
        if len(arguments.runs) % 2:
            raise DeployedError("wait takes pairs: DAG_ID RUN_ID [DAG_ID RUN_ID]...")
        pairs = list(zip(arguments.runs[::2], arguments.runs[1::2]))
        return _report_runs(api, pairs, arguments.timeout)
    except (DeployedError, ApiError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
