"""Who holds the outputs' lease, and giving back the lease of a run that died.

    python -m mailforce.tools.lease show                     [--url URL [--engine osmem]] [--conn-id ID]
    python -m mailforce.tools.lease release --run-id RUN_ID  [--dag-id DAG_ID] ...

A run whose worker was killed keeps the lease until Airflow marks it failed (`mailforce.es.lease`).
Marking that run failed in the UI is the usual remedy; `release` is the other: it deletes the lease
only when the named run holds it, so a mistyped id never frees another run's lease. If the released
run was in fact still working, its next task finds the lease gone or taken and stops before writing.

Exit codes: 0 done (or nobody holds the lease); 1 the lease is held by another run than the one
named; 2 bad argument or cluster unreachable.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from mailforce.es.lease import current_lease, release_lease
from mailforce.settings import load_settings
from mailforce.tools.console import CommandParser, add_connection_arguments, configure_console_logging, connect, run_command

EXIT_DONE, EXIT_NOT_THAT_RUN, EXIT_ERROR = 0, 1, 2
PROG = "lease"


def argument_parser() -> argparse.ArgumentParser:
    parser = CommandParser(prog="python -m mailforce.tools.lease",
                           description="Show the outputs' lease, or give back a dead run's lease.")
    parser.add_argument("action", choices=("show", "release"))
    parser.add_argument("--run-id", help="release: the run holding the lease (as `show` or the waiting message says)")
    parser.add_argument("--dag-id", help="release: its DAG, when two DAGs have runs of that id")
    add_connection_arguments(parser)
    return parser


def run(es, settings, arguments: argparse.Namespace) -> int:
    lease = current_lease(es, settings)
    if lease is None:
        print("Nobody holds the outputs' lease.")
        return EXIT_DONE
    if arguments.action == "show":
        print(f"{lease.describe()}.")
        return EXIT_DONE
    if lease.holder.run_id != arguments.run_id or arguments.dag_id not in (None, lease.holder.dag_id):
        print(f"lease: not released: {lease.describe()}, not {arguments.dag_id or 'a'} run {arguments.run_id}.",
              file=sys.stderr)
        return EXIT_NOT_THAT_RUN
    if not release_lease(es, settings, lease.holder):
        print("lease: not released: it changed hands meanwhile; run `show` again.", file=sys.stderr)
        return EXIT_NOT_THAT_RUN
    print(f"Gave back the outputs' lease of {lease.holder} (held since {lease.acquired_at}); a waiting run takes it "
          "at its next look.")
    return EXIT_DONE


def main(argv: Sequence[str] | None = None, es=None) -> int:
    parser = argument_parser()
    arguments = parser.parse_args(argv)
    if arguments.action == "release" and not arguments.run_id:
        parser.error("release needs --run-id RUN_ID (the run that holds the lease: see `show`)")
    configure_console_logging()
    return run_command(PROG, lambda: _lease_command(arguments, es), debug=arguments.debug)


def _lease_command(arguments: argparse.Namespace, es=None) -> int:
    """Connect (unless given a client), then show or release."""
    settings = load_settings()
    owned = es is None
    try:
        if owned:
            es = connect(arguments.url, arguments.engine, arguments.conn_id or settings.conn_id)
        return run(es, settings, arguments)
    finally:
        if owned and es is not None:
            es.close()


if __name__ == "__main__":
    sys.exit(main())
