"""Start and stop the embedded search engine: osmem-server, in memory, OpenSearch-compatible.

It is what the demo, the local Airflow UI and the tests run against when no Elasticsearch is at
hand. Nothing is written to disk: stopping the engine forgets every index.

Two ways to run it:

- :class:`EmbeddedEngine` as a child of the current process (a context manager): it exits when its
  parent does, even when the parent is killed, so a crashed script leaves no engine behind;
- as a daemon that outlives the command starting it, tracked by a pid file::

      python -m mailforce.tools.embedded start --port 9200 [--next-free] --pidfile PATH
      python -m mailforce.tools.embedded status --pidfile PATH
      python -m mailforce.tools.embedded stop --pidfile PATH

  The engine's output goes to a log next to the pid file (``engine.pid`` -> ``engine.log``); its
  first line holds the URL, which is how ``status`` finds it again.

The engine runs with ``GOGC=400`` unless the environment sets GOGC: about a fifth less CPU for
about twice the memory (:data:`ENGINE_GOGC`).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping

from mailforce.tools.console import configure_console_logging

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
STARTUP_TIMEOUT_SECONDS = 30.0
STOP_GRACE_SECONDS = 10.0
PORT_SEARCH_SPAN = 100


class EngineError(RuntimeError):
    """The engine could not be started or stopped; the message says why."""


def port_is_free(port: int, host: str = DEFAULT_HOST) -> bool:
    """Nobody listens on it (connections of a stopped server lingering in TIME_WAIT do not count,
    as servers bind with SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def find_free_port(preferred: int = 0, host: str = DEFAULT_HOST) -> int:
    """``preferred`` when free, else the next free port above it; any free port when it is 0."""
    if preferred == 0:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind((host, 0))
            return probe.getsockname()[1]
    for port in range(preferred, min(preferred + PORT_SEARCH_SPAN, 65536)):
        if port_is_free(port, host):
            return port
    raise EngineError(f"no free port in {preferred}..{preferred + PORT_SEARCH_SPAN - 1} on {host}")


def log_path_for(pidfile: Path) -> Path:
    """Where a daemon's output goes: next to its pid file."""
    return pidfile.with_suffix(".log")


def airflow_connection_json(url: str) -> str:
    """The Airflow connection (``AIRFLOW_CONN_<ID>`` JSON form) for an engine at ``url``."""
    scheme, _, address = url.partition("://")
    host, _, port = address.rstrip("/").rpartition(":")
    return json.dumps(
        {"conn_type": "elasticsearch", "host": host, "port": int(port), "schema": scheme, "extra": {"engine": "osmem"}}
    )


def _ready_message(log_file: Path) -> dict[str, Any] | None:
    """The JSON line the engine prints once it listens (it carries "url"), if written yet."""
    try:
        lines = log_file.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return None
    for line in lines:
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if isinstance(message, dict) and "url" in message:
            return message
    return None


# Go's garbage collector runs when the heap has grown by GOGC percent since the last collection. At
# Go's default (100) a full Enron run cost the engine about 22 % more CPU than at 400 (paired runs,
# 8.7 against 6.8 s and 11.7 against 9.0 s), for about twice the memory (350 against 700-900 MB).
ENGINE_GOGC = "400"


def engine_environment(environment: Mapping[str, str]) -> dict[str, str]:
    """The engine's environment: the caller's, with GOGC at ENGINE_GOGC unless the caller set it."""
    return {**environment, "GOGC": environment.get("GOGC") or ENGINE_GOGC}


class EmbeddedEngine:
    """One osmem-server process: ``start()`` waits until it answers; ``url``; ``stop()``.

    ``port=0`` lets the engine pick a free port. A ``daemon`` engine runs in its own session and
    keeps running after this process exits (stop it with :func:`stop_daemon`); otherwise it is
    tied to this process through its stdin and ``--parent-pid``.
    """

    def __init__(
        self,
        port: int = 0,
        host: str = DEFAULT_HOST,
        *,
        daemon: bool = False,
        log_path: str | os.PathLike[str] | None = None,
        startup_timeout: float = STARTUP_TIMEOUT_SECONDS,
        binary: str | None = None,
    ) -> None:
        self.port = port
        self.host = host
        self.daemon = daemon
        self.startup_timeout = startup_timeout
        self.binary = binary
        self.log_path = Path(log_path) if log_path else None
        self._owns_log = log_path is None
        self.process: subprocess.Popen[bytes] | None = None
        self.url: str | None = None
        self.version: str = ""

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def command(self) -> list[str]:
        from osmem_server import resolve_binary

        command = [resolve_binary(self.binary), "--addr", f"{self.host}:{self.port}", "--no-ja"]
        if self.daemon:
            command.append("--no-stdin-watch")
        else:
            command += ["--parent-pid", str(os.getpid())]
        return command

    def start(self) -> "EmbeddedEngine":
        if self.process is not None:
            raise EngineError("the engine is already started")
        if self.log_path is None:
            handle, name = tempfile.mkstemp(prefix="osmem-", suffix=".log")
            os.close(handle)
            self.log_path = Path(name)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        command = self.command()
        with open(self.log_path, "wb") as output:
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL if self.daemon else subprocess.PIPE,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=self.daemon,
                env=engine_environment(os.environ),
            )
        try:
            ready = self._wait_until_ready()
        except BaseException:
            self.stop()
            raise
        self.url = ready["url"]
        self.version = str(ready.get("version", ""))
        log.info("embedded engine %s listening at %s (pid %d)", self.version, self.url, self.process.pid)
        return self

    def _wait_until_ready(self) -> dict[str, Any]:
        assert self.process is not None and self.log_path is not None
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            ready = _ready_message(self.log_path)
            if ready:
                return ready
            if self.process.poll() is not None:
                output = self.log_path.read_text(encoding="utf-8", errors="replace").strip()
                raise EngineError(f"osmem-server exited with code {self.process.returncode}: {output or 'no output'}")
            time.sleep(0.05)
        raise EngineError(f"osmem-server did not answer within {self.startup_timeout:.0f} s (log: {self.log_path})")

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """Terminate the process (killed after ``grace`` seconds); a no-op when not running."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            if process.stdin:
                process.stdin.close()
            process.terminate()
            try:
                process.wait(grace)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.info("embedded engine at %s stopped", self.url)
        if self._owns_log and self.log_path is not None:
            self.log_path.unlink(missing_ok=True)

    def __enter__(self) -> "EmbeddedEngine":
        return self.start() if self.process is None else self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()


# --------------------------------------------------------------------------------------------
# The daemon, tracked by a pid file


def _process_state(pid: int) -> str | None:
    """The one-letter state from /proc (``Z`` for a zombie), None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return stat.rpartition(")")[2].split()[0]


def _is_engine(pid: int) -> bool:
    """Alive and osmem-server: a pid file may outlive its process and the pid be reused."""
    if _process_state(pid) in (None, "Z"):
        return False
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
    except OSError:
        return False
    return os.path.basename(command.decode(errors="replace")).startswith("osmem-server")


def daemon_pid(pidfile: str | os.PathLike[str]) -> int | None:
    """The pid of the engine the pid file names, when that engine is running."""
    try:
        pid = int(Path(pidfile).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if _is_engine(pid) else None


def daemon_url(pidfile: str | os.PathLike[str]) -> str | None:
    """The URL of the running engine the pid file names."""
    if daemon_pid(pidfile) is None:
        return None
    ready = _ready_message(log_path_for(Path(pidfile)))
    return ready["url"] if ready else None


def start_daemon(pidfile: str | os.PathLike[str], port: int = 0, *, next_free: bool = False) -> EmbeddedEngine:
    """Start a daemon engine and write its pid file; refuses when that pid file's engine runs."""
    pidfile = Path(pidfile)
    running = daemon_pid(pidfile)
    if running is not None:
        raise EngineError(f"an engine from {pidfile} is already running (pid {running}, {daemon_url(pidfile)})")
    if next_free:
        port = find_free_port(port)
    elif port and not port_is_free(port):
        raise EngineError(f"port {port} is in use (choose another, or pass --next-free)")
    engine = EmbeddedEngine(port, daemon=True, log_path=log_path_for(pidfile)).start()
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    pidfile.write_text(f"{engine.pid}\n")
    return engine


def stop_daemon(pidfile: str | os.PathLike[str], grace: float = STOP_GRACE_SECONDS) -> bool:
    """Stop the engine the pid file names; True when one was running. The pid file is removed."""
    pidfile = Path(pidfile)
    pid = daemon_pid(pidfile)
    pidfile.unlink(missing_ok=True)
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while _is_engine(pid):
        if time.monotonic() > deadline:
            log.warning("engine pid %d ignored SIGTERM for %.0f s: killing it", pid, grace)
            os.kill(pid, signal.SIGKILL)
            deadline = float("inf")
        time.sleep(0.05)
    log.info("engine pid %d stopped", pid)
    return True


# --------------------------------------------------------------------------------------------
# Command line


def _argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mailforce.tools.embedded",
        description="Start, inspect or stop the embedded search engine (osmem-server) as a daemon.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("start", help="start a daemon engine; prints its URL")
    start.add_argument("--port", type=int, default=9200, help="port to listen on; 0: any free port (default: %(default)s)")
    start.add_argument("--next-free", action="store_true", help="take the next free port when --port is in use")
    for command in (start, commands.add_parser("status", help="is it running, and where"),
                    commands.add_parser("stop", help="stop the engine")):
        command.add_argument("--pidfile", required=True, type=Path, help="pid file of the daemon")
    return parser


def main(argv: list[str] | None = None) -> int:
    arguments = _argument_parser().parse_args(argv)
    configure_console_logging()
    try:
        if arguments.command == "start":
            engine = start_daemon(arguments.pidfile, arguments.port, next_free=arguments.next_free)
            print(engine.url)
            return 0
        if arguments.command == "status":
            pid = daemon_pid(arguments.pidfile)
            if pid is None:
                print(f"not running ({arguments.pidfile})")
                return 3
            print(f"running: pid {pid}, {daemon_url(arguments.pidfile)}")
            return 0
        stopped = stop_daemon(arguments.pidfile)
        print("stopped" if stopped else f"not running ({arguments.pidfile})")
        return 0
    except EngineError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
