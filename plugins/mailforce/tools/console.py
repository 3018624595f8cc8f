"""The operator tools' command lines (not the DAG: Airflow configures its own logging).

Every tool's ``main`` goes through :func:`run_command`, so a wrong URL, a missing file, a missing
Airflow connection or a bad argument is answered the same way everywhere: one or two lines on
stderr naming the problem and the fix, exit code 2, no traceback (``--debug`` shows it). Logs go to
stderr, so stdout holds only the tool's answer (pure JSON with ``--json``).
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import traceback
from collections.abc import Callable
from typing import Any, NoReturn
from urllib.parse import urlsplit, urlunsplit

WITH_NAMES = "%(levelname)s %(name)s: %(message)s"
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
# A command-line probe of the cluster answers within this, without retries: a wrong URL is said at
# once instead of after the client's back-off (the tools' real requests keep their retries).
PROBE_TIMEOUT_SECONDS = 10.0
TOOL_MAX_RETRIES = 2
TOOL_REQUEST_TIMEOUT_SECONDS = 60.0
_ERRNO_TEXT = re.compile(r"\[Errno -?\d+\] ([^)'\"]+)")


def configure_console_logging(level: int = logging.WARNING, fmt: str = WITH_NAMES) -> None:
    """Root logging to stderr at `level`. Replaces what is there: importing airflow installs an INFO
    handler on the root logger, which would print one line per request to the engine."""
    logging.basicConfig(level=level, format=fmt, force=True, stream=sys.stderr)
    # The transport warns of each failed try ("putting on timeout"); the tools say what failed.
    logging.getLogger("elastic_transport").setLevel(max(level, logging.ERROR))


class CliError(Exception):
    """A problem the user can fix; the message names it and the fix. Exit code 2 unless told."""

    def __init__(self, message: str, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class CommandParser(argparse.ArgumentParser):
    """An argument parser whose errors are two lines (the problem, where the options are), exit 2,
    and which offers ``--debug`` (show the traceback of an error)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.add_argument("--debug", action="store_true", help="on an error, show its traceback too")

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message}\nRun `{self.prog} --help` for the options.\n")


def redact_url(url: str) -> str:
    """The URL without any user:password part (a URL may carry credentials; logs never do)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(an unparseable URL)"
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _transport_cause(error: BaseException) -> str:
    """The OS-level reason of a connection error ("Connection refused"), else the error's text.

    The transport's own message is only "Connection error"; the reason is in its repr or causes."""
    seen: BaseException | None = error
    while seen is not None:
        text = f"{seen!r} {seen}"
        match = _ERRNO_TEXT.search(text)
        if match:
            return match.group(1).strip()
        if "timed out" in text.lower() or "Timeout" in type(seen).__name__:
            return "timed out"
        seen = seen.__cause__ or seen.__context__
    return str(error).split("\n")[0][:200]


def explain(error: BaseException) -> tuple[str, int]:
    """(one or two lines naming the problem and the fix, exit code) for an error a tool met."""
    from elastic_transport import ConnectionError as TransportConnectionError
    from elastic_transport import TlsError
    from elasticsearch import ApiError, AuthenticationException, AuthorizationException

    if isinstance(error, CliError):
        return str(error), error.exit_code
    if isinstance(error, TlsError):
        return (f"TLS to Elasticsearch failed: {_transport_cause(error)}.\n"
                "Check the connection's ca_certs / verify_certs, or the URL's scheme (http or https).", EXIT_USAGE)
    if isinstance(error, TransportConnectionError):
        return (f"cannot reach Elasticsearch: {_transport_cause(error)}.\n"
                "Check the URL (--url http://host:9200) or the Airflow connection, and that the server runs.", EXIT_USAGE)
    if isinstance(error, AuthenticationException):
        return ("Elasticsearch refused the credentials (401).\n"
                "Check the connection's login and password, or its api_key extra.", EXIT_USAGE)
    if isinstance(error, AuthorizationException):
        return (f"Elasticsearch refused the request (403): {error.message}.\n"
                "Grant the role listed in docs/CONFIGURATION.md.", EXIT_USAGE)
    if isinstance(error, ApiError):
        return f"Elasticsearch answered {error.status_code}: {error.message}.", EXIT_FAILED
    if type(error).__name__ == "AirflowNotFoundException":
        return (f"{error}.\nPass --url http://host:9200, or define the connection "
                "(export AIRFLOW_CONN_ELASTICSEARCH_DEFAULT='{\"conn_type\": \"elasticsearch\", \"host\": ...}').",
                EXIT_USAGE)
    if isinstance(error, FileNotFoundError):
        name = error.filename or str(error)
        return f"not found: {name}. Check the path.", EXIT_USAGE
    if isinstance(error, (PermissionError, IsADirectoryError, NotADirectoryError)):
        return f"cannot use {error.filename}: {error.strerror}.", EXIT_USAGE
    return (f"unexpected error: {type(error).__name__}: {error}\n"
            "Run again with --debug for the traceback.", EXIT_FAILED)


def run_command(prog: str, body: Callable[[], int], *, debug: bool = False) -> int:
    """Run a tool's work; an error becomes its explanation on stderr and an exit code."""
    try:
        return body()
    except KeyboardInterrupt:
        print(f"\n{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as error:  # every error is answered in words; --debug adds the traceback
        if debug:
            traceback.print_exc()
        message, code = explain(error)
        print(f"{prog}: {message}", file=sys.stderr)
        return code


def probe(options) -> None:
    """Ask the cluster once (``GET /``, no retries, short timeout), with the connection's own
    credentials and TLS settings: a wrong URL fails here at once, not after the client's back-off."""
    from dataclasses import replace

    from mailforce.es.client import probe_engine

    try:
        probe_engine(replace(options, max_retries=0, request_timeout=min(options.request_timeout, PROBE_TIMEOUT_SECONDS)))
    except ValueError as error:  # a server this product does not support
        raise CliError(f"{redact_url(options.url)}: {error}") from error
    except Exception as error:
        message, code = explain(error)
        raise CliError(message.replace("Elasticsearch", f"Elasticsearch at {redact_url(options.url)}", 1), code) from error


def connect(url: str | None, engine: str, conn_id: str):
    """A client from ``url`` if given, else from the Airflow Connection ``conn_id``; probed first, so
    an unreachable cluster is an error at once, not after the client's retries."""
    from mailforce.es.client import ClientOptions, build_client

    if url:
        if not url.startswith(("http://", "https://")):
            raise CliError(f"--url {redact_url(url)!r} is not an http(s) URL; e.g. --url http://localhost:9200")
        options = ClientOptions(url=url.rstrip("/"), engine=engine, max_retries=TOOL_MAX_RETRIES,
                                request_timeout=TOOL_REQUEST_TIMEOUT_SECONDS)
        probe(options)
        return build_client(options)
    from mailforce.es.hook import MailforceElasticsearchHook  # imports Airflow: only for a Connection

    hook = MailforceElasticsearchHook(conn_id)
    probe(hook.get_options())
    logging.getLogger("elastic_transport.transport").setLevel(logging.WARNING)
    return hook.get_conn()


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    """--url, --engine, --conn-id: where the tools find the cluster."""
    from mailforce.es.client import ENGINES

    parser.add_argument("--url", help="Elasticsearch URL (http(s)://host:port); default: the Airflow connection")
    parser.add_argument("--engine", choices=ENGINES, default="auto",
                        help="with --url: the server kind (osmem: the embedded engine of the demo)")
    parser.add_argument("--conn-id", help="Airflow connection id (default: the conn_id setting, elasticsearch_default)")
