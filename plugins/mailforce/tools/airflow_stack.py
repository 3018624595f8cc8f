"""What the two Airflow stacks share: the standalone UI (standalone.py, scripts/ui.sh) and the deployed
stack (deployed.py, scripts/deployed.sh). Their homes (pid files, the state ``start`` records, the
generated admin password), their processes found in ``/proc`` and stopped by process group, the
Airflow REST API client with its token, and the frame of ``start``: clean up when it fails, print how
to reach the stack when it is ready.

Operator tooling: the DAG never imports this. Linux only (reads ``/proc``).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

ADMIN_USER = "admin"
PASSWORDS_FILE = "simple_auth_manager_passwords.json.generated"


class StackError(RuntimeError):
    """A stack cannot be started, used or stopped; each tool's own error is one."""


# --------------------------------------------------------------------------------------------
# The home


@dataclass(frozen=True)
class StackHome:
    """A stack's home: the engine's pid file, the state ``start`` records and the admin password
    Airflow generates there. Each tool names its state file (``STATE_FILE``)."""

    home: Path
    STATE_FILE: ClassVar[str]

    @property
    def engine_pidfile(self) -> Path:
        return self.home / "engine.pid"

    @property
    def state_file(self) -> Path:
        return self.home / self.STATE_FILE

    @property
    def passwords_file(self) -> Path:
        return self.home / PASSWORDS_FILE

    def state(self) -> dict[str, Any]:
        """What ``start`` recorded; empty when it never got that far."""
        try:
            return json.loads(self.state_file.read_text())
        except (FileNotFoundError, ValueError):
            return {}

    def admin_password(self) -> str | None:
        try:
            return json.loads(self.passwords_file.read_text()).get(ADMIN_USER)
        except (FileNotFoundError, ValueError):
            return None


# --------------------------------------------------------------------------------------------
# Processes, from /proc


def _stat(pid: int) -> tuple[str, int] | None:
    """(state letter, process group) of a process, None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return fields[0], int(fields[2])


def _pids() -> list[int]:
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of a process group."""
    members = []
    for pid in _pids():
        stat = _stat(pid)
        if stat and stat[1] == pgid and stat[0] != "Z":
            members.append(pid)
    return members


def running_group(pidfile: Path) -> int | None:
    """The pid (= process group id) a pid file names, while that process group runs."""
    try:
        pid = int(pidfile.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if group_members(pid) else None


def processes_using(home: Path) -> list[int]:
    """Live processes whose environment has ``AIRFLOW_HOME=<home>``: every Airflow process of the
    stack, whichever process group it ended up in (command lines do not show the home)."""
    needle = f"AIRFLOW_HOME={home}".encode()
    found = []
    for pid in _pids():
        if pid == os.getpid():
            continue
        try:
            environment = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        stat = _stat(pid)
        if needle in environment and stat and stat[0] != "Z":
            found.append(pid)
    return found


def _signal_all(pids: Sequence[int], signum: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass


def _wait_until_gone(find, timeout: float) -> list[int]:
    """Poll ``find()`` until it returns nothing or ``timeout`` passes; returns what is left."""
    deadline = time.monotonic() + timeout
    while (left := find()) and time.monotonic() < deadline:
        time.sleep(0.25)
    return left


def stop_process_group(pid: int, first_signal: int, grace: float, say=lambda text: None) -> list[int]:
    """Stop the process group led by ``pid``: ``first_signal`` to the leader only, up to ``grace``
    seconds for the whole group to exit, then SIGTERM and SIGKILL to the group. Returns what is left."""
    _signal_all([pid], first_signal)
    left = _wait_until_gone(lambda: group_members(pid), grace)
    for signum, wait in ((signal.SIGTERM, 20.0), (signal.SIGKILL, 5.0)):
        if not left:
            break
        say(f"  {len(left)} process(es) of the group still running: {signal.Signals(signum).name} to the group")
        try:
            os.killpg(pid, signum)
        except ProcessLookupError:
            break
        left = _wait_until_gone(lambda: group_members(pid), wait)
    return left


def stop_stragglers(home: Path, say=lambda text: None) -> list[int]:
    """SIGTERM, then SIGKILL, to every process still carrying ``AIRFLOW_HOME=<home>`` (task processes
    may sit in a process group of their own). Returns what survived."""
    stragglers = processes_using(home)
    if stragglers:
        say(f"Stopping {len(stragglers)} leftover Airflow process(es) of {home}: {stragglers}")
        _signal_all(stragglers, signal.SIGTERM)
        left = _wait_until_gone(lambda: processes_using(home), 15.0)
        _signal_all(left, signal.SIGKILL)
        _wait_until_gone(lambda: processes_using(home), 5.0)
    return processes_using(home)


# --------------------------------------------------------------------------------------------
# The REST API


class ApiError(RuntimeError):
    def __init__(self, status: int, method: str, path: str, body: str) -> None:
        super().__init__(f"{method} {path}: HTTP {status}: {body[:500]}")
        self.status = status


class AirflowApi:
    """A minimal Airflow 3 REST API client: a JWT from ``/auth/token``, then ``/api/v2`` calls."""

    def __init__(self, base_url: str, username: str = ADMIN_USER, password: str | None = None,
                 timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.username = username
        self.password = password
        self.timeout = timeout
        self._token: str | None = None

    def _send(self, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if token:
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(self.base_url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                text = response.read().decode()
        except urllib.error.HTTPError as error:
            raise ApiError(error.code, method, path, error.read().decode(errors="replace")) from None
        return json.loads(text) if text else None

    def token(self) -> str:
        if self._token is None:
            if self.password is None:
                raise StackError("no password for the REST API")
            response = self._send("POST", "/auth/token", {"username": self.username, "password": self.password})
            self._token = response["access_token"]
        return self._token

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """An authenticated call; ``path`` starts with ``/api/v2``."""
        return self._send(method, path, body, self.token())

    def health(self) -> dict[str, Any] | None:
        """``/api/v2/monitor/health`` (no login needed), None while the server does not answer."""
        try:
            return self._send("GET", "/api/v2/monitor/health")
        except (OSError, ApiError, ValueError):
            return None

    def dag(self, dag_id: str) -> dict[str, Any] | None:
        """The DAG as the API describes it, None while it is not registered."""
        try:
            return self.request("GET", f"/api/v2/dags/{dag_id}")
        except ApiError as error:
            if error.status == 404:
                return None
            raise

    def unpause(self, dag_id: str) -> None:
        self.request("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})


def health_components(health: dict[str, Any] | None) -> str:
    """'metadatabase healthy, scheduler healthy, ...' of a health answer."""
    return ", ".join(f"{name} {info.get('status')}" for name, info in (health or {}).items() if isinstance(info, dict))


# --------------------------------------------------------------------------------------------
# start / stop


def quiet_or_print(quiet: bool) -> Callable[[str], None]:
    """What ``stop`` says as it goes: printed, or nothing when ``quiet``."""
    def say(text: str) -> None:
        if not quiet:
            print(text, flush=True)

    return say


@contextmanager
def cleaned_up_on_failure(stop: Callable[[], object], error_type: type[Exception],
                          expected: tuple[type[BaseException], ...]) -> Iterator[None]:
    """The body of a ``start``: when anything in it fails (Ctrl-C too), say so on stderr, ``stop()``
    what it started, and raise the ``expected`` failures again as ``error_type`` with their message."""
    try:
        yield
    except BaseException as error:
        print(f"Start failed ({type(error).__name__}): cleaning up", file=sys.stderr, flush=True)
        stop()
        if isinstance(error, expected):
            raise error_type(str(error)) from None
        raise


def print_ready(title: str, url: str, began: float, password: str | None, layout: StackHome,
                dag_ids: Sequence[str], how: str, engine_url: str, script: str) -> None:
    """How to reach a stack that is ready: URL, user, password, DAGs, engine, how to stop it."""
    print(f"\n{title} ready in {time.monotonic() - began:.0f} s: {url}\n"
          f"  user      {ADMIN_USER}\n"
          f"  password  {password}   (from {layout.passwords_file})\n"
          f"  {'DAG' if len(dag_ids) == 1 else 'DAGs':<10}{', '.join(dag_ids)} ({how})\n"
          f"  engine    {engine_url}\n"
          f"Stop it with: bash {script} stop", flush=True)


def stop_result(home: Path, left: Sequence[int]) -> int:
    """The exit code of ``stop``: 1, said on stderr, when processes of ``home`` survived SIGKILL."""
    if left:
        print(f"Processes of {home} survived SIGKILL: {left}", file=sys.stderr)
        return 1
    return 0
