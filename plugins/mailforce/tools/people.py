"""The alias list from the command line: suggestions, changes (with their audit record), a person.

    python -m mailforce.tools.people suggestions                      [--url URL [--engine osmem]] [--json]
    python -m mailforce.tools.people change --add jim@gmail.com=jim.smith@acme.com --accept 3f2a9c41d0e7 \\
        --remove old@acme.com --reason "ticket 42" --requested-by ann      (each option repeatable)
    python -m mailforce.tools.people show jim@gmail.com               (the person of an address)

`change` runs what the DAG `mailforce_people` runs (`mailforce.stages.change_aliases`), holding the
lease that keeps Mailforce runs apart (it waits while a run holds it). Exit codes: 0 done; 1 unknown
address (show); 2 bad argument or cluster unreachable.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Sequence

from mailforce.core.addresses import normalise_address
from mailforce.core.people import AliasChangeError
from mailforce.es.lease import Holder, acquire_lease, release_lease
from mailforce.es.people import read_people
from mailforce.es.reads import fetch_documents
from mailforce.settings import load_settings
from mailforce.stages.change_aliases import apply_alias_change, list_suggestions, validate_change
from mailforce.tools.console import CliError, CommandParser, add_connection_arguments, configure_console_logging, connect, run_command

EXIT_DONE, EXIT_UNKNOWN = 0, 1
PROG = "people"
CLI_DAG_ID = "mailforce_people_cli"  # the lease holder's name for a change made from the command line


def argument_parser() -> argparse.ArgumentParser:
    parser = CommandParser(prog="python -m mailforce.tools.people", description="The alias list: suggestions, changes, people.")
    commands = parser.add_subparsers(dest="command", required=True)
    suggestions = commands.add_parser("suggestions", help="likely aliases, for an operator to accept")
    change = commands.add_parser("change", help="add, remove or accept alias entries (audited)")
    change.add_argument("--add", action="append", default=[], metavar="ADDRESS=ADDRESS",
                        help="the first address is the same person as the second")
    change.add_argument("--remove", action="append", default=[], metavar="ADDRESS", help="remove this address's entry")
    change.add_argument("--accept", action="append", default=[], metavar="SUGGESTION_ID",
                        help="accept a suggestion (its id from 'suggestions')")
    change.add_argument("--reason", default="", help="why (kept in the audit record)")
    change.add_argument("--requested-by", default="", help="who asks (kept in the audit record)")
    show = commands.add_parser("show", help="the person of an address")
    show.add_argument("address")
    for command in (suggestions, change, show):
        add_connection_arguments(command)
        command.add_argument("--json", action="store_true", help="print the answer as JSON (logs go to stderr)")
    return parser


def main(argv: Sequence[str] | None = None, es=None) -> int:
    arguments = argument_parser().parse_args(argv)
    configure_console_logging()
    return run_command(PROG, lambda: _command(arguments, es), debug=getattr(arguments, "debug", False))


def _command(arguments: argparse.Namespace, es=None) -> int:
    settings = load_settings()
    owned = es is None
    try:
        if owned:
            es = connect(arguments.url, arguments.engine, arguments.conn_id or settings.conn_id)
        result = _run(es, settings, arguments)
    finally:
        if owned and es is not None:
            es.close()
    if result is None:
        return EXIT_UNKNOWN
    print(json.dumps(result, indent=2) if arguments.json else _render(arguments.command, result))
    return EXIT_DONE


def _run(es, settings, arguments: argparse.Namespace) -> Any:
    if arguments.command == "suggestions":
        return [suggestion.to_dict() for suggestion in list_suggestions(es, settings)]
    if arguments.command == "show":
        address = normalise_address(arguments.address)
        if address is None:
            raise CliError(f"{arguments.address!r} is not an e-mail address")
        person_id = read_people(es, settings).person_of(address)
        person = fetch_documents(es, settings.people_index, [person_id]).get(person_id)
        if person is None:
            print(f"{PROG}: {address}: no person document (no counted mail names it, or it was erased)", file=sys.stderr)
        return person
    try:
        change = validate_change({"add": arguments.add, "remove": arguments.remove,
                                  "accept_suggestions": arguments.accept, "reason": arguments.reason,
                                  "requested_by": arguments.requested_by})
    except AliasChangeError as error:
        raise CliError(str(error)) from error
    holder = Holder(dag_id=CLI_DAG_ID, run_id=change.change_id)
    acquire_lease(es, settings, holder)
    try:
        return apply_alias_change(es, settings, change)
    except AliasChangeError as error:
        raise CliError(str(error)) from error
    finally:
        release_lease(es, settings, holder)


def _render(command: str, result: Any) -> str:
    if command == "suggestions":
        if not result:
            return "no suggestion"
        return "\n".join(f"{entry['suggestion_id']}  {' + '.join(entry['addresses'])}  ({entry['evidence']})"
                         for entry in result)
    if command == "show":
        return (f"{result['canonical_address']} ({result['addresses_count']} addresses: {', '.join(result['addresses'])}): "
                f"{result['total_count']} messages, {result['accounts_count']} accounts; best connected: "
                + (", ".join(f"{entry['account']} ({entry['strength']})" for entry in result["best_connected_accounts"])
                   or "none"))
    return (f"change {result['change_id']}: {len(result['added'])} added, {len(result['removed'])} removed; "
            f"{result['addresses_relabelled']} addresses relabelled; {result['people_written']} person documents "
            f"written, {result['people_deleted']} deleted")


if __name__ == "__main__":
    sys.exit(main())
