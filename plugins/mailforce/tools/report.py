"""The analyst's report on the command line: the HTML file of `mailforce.report`, written to disk.

    python -m mailforce.tools.report [--output PATH] [--top N] [--url URL [--engine osmem]] [--conn-id ID]

The file: ``--output``, else ``mailforce-report.html`` in the current directory, except inside this
repository's work tree, where it goes to the git-ignored ``reports/`` folder at its root.

Connection: ``--url`` (plain ``http(s)://host:port``, no credentials; ``--engine osmem`` for the
embedded engine of the demo and tests), otherwise the Airflow Connection of the DAG
(``settings.conn_id``, default ``elasticsearch_default``: the ``AIRFLOW_CONN_ELASTICSEARCH_DEFAULT``
environment variable, or the Airflow metadata database / secrets backend), exactly as the DAG's tasks
build their client. docs/REPORT.md says what each chart answers.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from mailforce.report import DEFAULT_OUTPUT, DEFAULT_TOP, MAX_TOP, build_report, write_report
from mailforce.settings import load_settings
from mailforce.tools.console import CommandParser, add_connection_arguments, configure_console_logging, connect, run_command

# Inside this repository's work tree the default file goes to its git-ignored reports/ folder, never
# untracked into the tree; anywhere else, into the current directory.
REPO_ROOT = Path(__file__).resolve().parents[3]
REPORTS_FOLDER = "reports"
PROG = "report"


# --------------------------------------------------------------------------------------------
# Command line


client_for = connect  # the name the tests replace with their own client


def _top(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--top must be a whole number, got {value!r}") from None
    if not 1 <= number <= MAX_TOP:
        raise argparse.ArgumentTypeError(f"--top must be between 1 and {MAX_TOP}")
    return number


def default_output(cwd: Path | None = None) -> Path:
    """``reports/mailforce-report.html`` of this repository (git-ignored) when ``cwd`` is inside its
    work tree; ``mailforce-report.html`` in ``cwd`` elsewhere (a deployment, a user's folder)."""
    cwd = (cwd or Path.cwd()).resolve()
    in_repository = (REPO_ROOT / ".git").exists() and (cwd == REPO_ROOT or REPO_ROOT in cwd.parents)
    return REPO_ROOT / REPORTS_FOLDER / DEFAULT_OUTPUT if in_repository else cwd / DEFAULT_OUTPUT


def argument_parser() -> argparse.ArgumentParser:
    parser = CommandParser(prog="python -m mailforce.tools.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", "-o", type=Path, default=None,
                        help=f"HTML file to write (default: {DEFAULT_OUTPUT} in the current directory; inside this "
                        f"repository, its git-ignored {REPORTS_FOLDER}/ folder)")
    parser.add_argument("--top", type=_top, default=DEFAULT_TOP, help=f"domains and contacts to show (default {DEFAULT_TOP})")
    add_connection_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = argument_parser().parse_args(argv)
    configure_console_logging(fmt="%(levelname)s %(message)s")
    return run_command(PROG, lambda: _report_command(arguments), debug=arguments.debug)


def _report_command(arguments: argparse.Namespace) -> int:
    """Read the outputs, write the HTML file, print its path."""
    settings = load_settings()
    es = client_for(arguments.url, arguments.engine, arguments.conn_id or settings.conn_id)
    try:
        document = build_report(es, settings, top=arguments.top)
    finally:
        es.close()
    print(write_report(arguments.output or default_output(), document))
    return 0


if __name__ == "__main__":
    sys.exit(main())
