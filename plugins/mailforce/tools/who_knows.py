"""Who on the team knows this domain, organisation or person: the ranked accounts with their figures.

    python -m mailforce.tools.who_knows acme.com          [--url URL [--engine osmem]] [--conn-id ID] [--json]
    python -m mailforce.tools.who_knows enron.com --organization   (every domain of Enron together)
    python -m mailforce.tools.who_knows jane@acme.com
    python -m mailforce.tools.who_knows jane@gmail.com --person   (every address of Jane's together)

A domain: its document's `best_connected_accounts` (up to 5, by strength, then messages), each with
the account's engagement figures (messages, first and latest) and its relationships there (how many
addresses, how many two-way, how many automated). An organisation (`--organization`): the same from
its `search-organizations` document, over all of its domains; a personal mail provider (gmail.com)
ranks no one, by design. An address: its contact document's
`best_connected_accounts`, each with the account's relationship (strength, messages, From/To/CC,
first and latest, two-way, automated). A person (`--person`, given any address of theirs): their
`search-people` document's ranking, each account with its relationships with any of their
addresses. Read-only; any cluster holding the outputs.

Exit codes: 0 found; 1 unknown (or erased) domain or address; 2 bad argument or cluster unreachable.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Sequence

from mailforce.core.addresses import normalise_address
from mailforce.core.ids import document_id
from mailforce.es.people import read_people
from mailforce.es.reads import fetch_documents, scan
from mailforce.es.suppressions import read_suppressions
from mailforce.settings import Settings, load_settings
from mailforce.tools.console import CliError, CommandParser, add_connection_arguments, configure_console_logging, connect, run_command

EXIT_FOUND, EXIT_UNKNOWN, EXIT_ERROR = 0, 1, 2
PROG = "who_knows"


class UnknownSubject(LookupError):
    """Nothing is known about the domain or address; the message says why."""


def _day(value: str | None) -> str:
    return (value or "")[:10] or "-"


def _suppressed(es, settings: Settings, subject: str, is_address: bool) -> bool:
    suppressions = read_suppressions(es, settings)
    return suppressions.suppresses(subject) if is_address else subject in suppressions.domains


def domain_answer(es, settings: Settings, domain: str) -> dict[str, Any]:
    document = fetch_documents(es, settings.domains_index, [document_id(domain)]).get(document_id(domain))
    if document is None:
        erased = _suppressed(es, settings, domain, False)
        raise UnknownSubject(f"{domain}: erased (see the erasure audit index)" if erased else
                             f"{domain}: no domain document: no counted mail names this domain "
                             "(check the spelling, the internal/allowed domain settings, or wait for the next run)")
    ranking = document.get("best_connected_accounts") or []
    accounts = [entry["account"] for entry in ranking]
    engagements = fetch_documents(es, settings.engagements_index, [document_id(a, domain) for a in accounts])
    per_account: dict[str, dict[str, int]] = {a: {"relationships": 0, "two_way": 0, "automated": 0} for a in accounts}
    if accounts:
        query = {"bool": {"filter": [{"term": {"domain": domain}}, {"terms": {"account": accounts}}]}}
        for hit in scan(es, settings.relationships_index,
                        {"query": query, "_source": ["account", "two_way", "automated"]},
                        settings.scan_page_size, settings.scroll_keep_alive, "relationships of the domain"):
            figures = per_account[hit["_source"]["account"]]
            figures["relationships"] += 1
            figures["two_way"] += bool(hit["_source"].get("two_way"))
            figures["automated"] += bool(hit["_source"].get("automated"))
    rows = []
    for rank, entry in enumerate(ranking, 1):
        engagement = engagements.get(document_id(entry["account"], domain)) or {}
        rows.append({
            "rank": rank, "account": entry["account"], "strength": entry.get("strength", 0),
            "messages": entry.get("total_count", engagement.get("total_count", 0)),
            "first": engagement.get("earliest_engagement_date"), "latest": engagement.get("latest_engagement_date"),
            **per_account[entry["account"]],
        })
    return {"kind": "domain", "subject": domain, "messages": document.get("total_emails", 0),
            "addresses": document.get("addresses_count", 0), "accounts": document.get("accounts_count", 0),
            "first": document.get("first_contact_date"), "latest": document.get("latest_contact_date"),
            "ranked": rows}


def organization_answer(es, settings: Settings, organization: str) -> dict[str, Any]:
    """The organisation document's ranking, each account with its figures over every domain of it."""
    document = fetch_documents(es, settings.organizations_index, [document_id(organization)]).get(document_id(organization))
    if document is None:
        erased = organization in read_suppressions(es, settings).organizations
        raise UnknownSubject(f"{organization}: erased (see the erasure audit index)" if erased else
                             f"{organization}: no organisation document: no counted mail names a domain of it "
                             "(give its registrable domain, e.g. enron.com for ect.enron.com)")
    ranking = document.get("best_connected_accounts") or []
    accounts = [entry["account"] for entry in ranking]
    per_account: dict[str, dict[str, Any]] = {a: {"relationships": 0, "two_way": 0, "automated": 0, "first": None,
                                                  "latest": None} for a in accounts}
    if accounts:
        query = {"bool": {"filter": [{"term": {"organization": organization}}, {"terms": {"account": accounts}}]}}
        for hit in scan(es, settings.relationships_index,
                        {"query": query, "_source": ["account", "two_way", "automated", "first_engagement_date",
                                                     "latest_engagement_date"]},
                        settings.scan_page_size, settings.scroll_keep_alive, "relationships of the organisation"):
            source, figures = hit["_source"], per_account[hit["_source"]["account"]]
            figures["relationships"] += 1
            figures["two_way"] += bool(source.get("two_way"))
            figures["automated"] += bool(source.get("automated"))
            figures["first"] = min(filter(None, (figures["first"], source.get("first_engagement_date"))), default=None)
            figures["latest"] = max(filter(None, (figures["latest"], source.get("latest_engagement_date"))), default=None)
    rows = [{"rank": rank, "account": entry["account"], "strength": entry.get("strength", 0),
             "messages": entry.get("total_count", 0), **per_account[entry["account"]]}
            for rank, entry in enumerate(ranking, 1)]
    return {"kind": "organization", "subject": organization, "organization_kind": document.get("kind"),
            "domains": document.get("domains", []), "messages": document.get("total_emails", 0),
            "addresses": document.get("addresses_count", 0), "accounts": document.get("accounts_count", 0),
            "first": document.get("first_contact_date"), "latest": document.get("latest_contact_date"),
            "ranked": rows}


def person_answer(es, settings: Settings, address: str) -> dict[str, Any]:
    """The person of an address: their document's ranking, each account with its relationships with
    any address of theirs."""
    person_id = read_people(es, settings).person_of(address)
    document = fetch_documents(es, settings.people_index, [person_id]).get(person_id)
    if document is None:
        erased = _suppressed(es, settings, address, True)
        raise UnknownSubject(f"{address}: erased (see the erasure audit index)" if erased else
                             f"{address}: no person document: no counted mail names an address of this person")
    ranking = document.get("best_connected_accounts") or []
    accounts = [entry["account"] for entry in ranking]
    per_account: dict[str, dict[str, Any]] = {a: {"relationships": 0, "two_way": 0, "automated": 0, "first": None,
                                                  "latest": None} for a in accounts}
    if accounts:
        query = {"bool": {"filter": [{"term": {"person_id": person_id}}, {"terms": {"account": accounts}}]}}
        for hit in scan(es, settings.relationships_index,
                        {"query": query, "_source": ["account", "two_way", "automated", "first_engagement_date",
                                                     "latest_engagement_date"]},
                        settings.scan_page_size, settings.scroll_keep_alive, "relationships of the person"):
            source, figures = hit["_source"], per_account[hit["_source"]["account"]]
            figures["relationships"] += 1
            figures["two_way"] += bool(source.get("two_way"))
            figures["automated"] += bool(source.get("automated"))
            figures["first"] = min(filter(None, (figures["first"], source.get("first_engagement_date"))), default=None)
            figures["latest"] = max(filter(None, (figures["latest"], source.get("latest_engagement_date"))), default=None)
    rows = [{"rank": rank, "account": entry["account"], "strength": entry.get("strength", 0),
             "messages": entry.get("total_count", 0), **per_account[entry["account"]]}
            for rank, entry in enumerate(ranking, 1)]
    return {"kind": "person", "subject": document["canonical_address"], "person_id": person_id,
            "person_addresses": document.get("addresses", []), "messages": document.get("total_count", 0),
            "addresses": document.get("addresses_count", 0), "accounts": document.get("accounts_count", 0),
            "first": document.get("first_contact_date"), "latest": document.get("latest_contact_date"),
            "ranked": rows}


def address_answer(es, settings: Settings, address: str) -> dict[str, Any]:
    contact = fetch_documents(es, settings.contacts_index, [document_id(address)]).get(document_id(address))
    if contact is None:
        erased = _suppressed(es, settings, address, True)
        raise UnknownSubject(f"{address}: erased (see the erasure audit index)" if erased else
                             f"{address}: no contact document: no counted mail names this address")
    ranking = contact.get("best_connected_accounts") or []
    relationships = fetch_documents(es, settings.relationships_index,
                                    [document_id(entry["account"], address) for entry in ranking])
    rows = []
    for rank, entry in enumerate(ranking, 1):
        relationship = relationships.get(document_id(entry["account"], address)) or {}
        rows.append({
            "rank": rank, "account": entry["account"], "strength": relationship.get("strength", entry.get("strength", 0)),
            "messages": relationship.get("total_count", entry.get("total_count", 0)),
            "from": relationship.get("from_count", 0), "to": relationship.get("to_count", 0),
            "cc": relationship.get("cc_count", 0),
            "first": relationship.get("first_engagement_date"), "latest": relationship.get("latest_engagement_date"),
            "two_way": bool(relationship.get("two_way")), "automated": bool(relationship.get("automated")),
        })
    return {"kind": "address", "subject": address, "messages": contact.get("total_count", 0),
            "accounts": contact.get("accounts_count", 0), "automated": bool(contact.get("automated")),
            "first": contact.get("first_contact_date"), "latest": contact.get("latest_contact_date"),
            "ranked": rows}


def answer(es, settings: Settings, subject: str, organization: bool = False, person: bool = False) -> dict[str, Any]:
    """The ranked accounts for a domain (or the organisation of that name), an address (or the person
    it belongs to); raises UnknownSubject, ValueError (bad subject)."""
    text = subject.strip()
    if "@" in text:
        address = normalise_address(text)
        if address is None:
            raise ValueError(f"{subject!r} is not an e-mail address")
        return person_answer(es, settings, address) if person else address_answer(es, settings, address)
    if person:
        raise ValueError(f"{subject!r}: --person needs an address of the person (jane@acme.com)")
    domain = text.lower()
    if "." not in domain or any(character.isspace() for character in domain) or not all(domain.split(".")):
        raise ValueError(f"{subject!r} is neither a domain (acme.com) nor an address (jane@acme.com)")
    if organization:
        return organization_answer(es, settings, domain)
    return domain_answer(es, settings, domain)


def render(result: dict[str, Any]) -> str:
    lines = []
    if result["kind"] == "organization":
        lines.append(f"{result['subject']} ({result.get('organization_kind')}, {len(result['domains'])} domains: "
                     f"{', '.join(result['domains'][:5])}{' ...' if len(result['domains']) > 5 else ''})")
    if result["kind"] == "person":
        lines.append(f"{result['subject']} (a person, {result['addresses']} addresses: "
                     f"{', '.join(result['person_addresses'][:5])}{' ...' if result['addresses'] > 5 else ''})")
    if result["kind"] in ("domain", "organization", "person"):
        lines.append(f"{result['subject']}: {result['messages']} messages, {result['addresses']} addresses, "
                     f"{result['accounts']} accounts; first {_day(result['first'])}, latest {_day(result['latest'])}")
        header = ("rank", "account", "strength", "messages", "first", "latest", "addresses", "two-way", "automated")
        rows = [(str(r["rank"]), r["account"], str(r["strength"]), str(r["messages"]), _day(r["first"]),
                 _day(r["latest"]), str(r["relationships"]), f"{r['two_way']}/{r['relationships']}",
                 str(r["automated"])) for r in result["ranked"]]
    else:
        flag = " (automated)" if result["automated"] else ""
        lines.append(f"{result['subject']}{flag}: {result['messages']} messages, {result['accounts']} accounts; "
                     f"first {_day(result['first'])}, latest {_day(result['latest'])}")
        header = ("rank", "account", "strength", "messages", "from", "to", "cc", "first", "latest", "two-way",
                  "automated")
        rows = [(str(r["rank"]), r["account"], str(r["strength"]), str(r["messages"]), str(r["from"]), str(r["to"]),
                 str(r["cc"]), _day(r["first"]), _day(r["latest"]), "yes" if r["two_way"] else "no",
                 "yes" if r["automated"] else "no") for r in result["ranked"]]
    if not rows and result.get("organization_kind") == "personal":
        lines.append("a personal mail provider: nobody knows it as a whole; ask about one of its addresses")
        return "\n".join(lines) + "\n"
    if not rows:
        lines.append("no account ranked yet")
        return "\n".join(lines) + "\n"
    widths = [max(len(header[i]), *(len(row[i]) for row in rows)) for i in range(len(header))]
    for row in (header, *rows):
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    return "\n".join(lines) + "\n"


def argument_parser() -> argparse.ArgumentParser:
    parser = CommandParser(prog="python -m mailforce.tools.who_knows", description="Who on the team knows a domain or an address, ranked.")
    parser.add_argument("subject", help="a domain (acme.com) or an address (jane@acme.com)")
    add_connection_arguments(parser)
    parser.add_argument("--organization", action="store_true",
                        help="the subject is an organisation (enron.com: ect.enron.com, mailman.enron.com, ...)")
    parser.add_argument("--person", action="store_true",
                        help="the subject is an address of a person: every address of theirs together")
    parser.add_argument("--json", action="store_true", help="print the answer as JSON (logs go to stderr)")
    return parser


def main(argv: Sequence[str] | None = None, es=None) -> int:
    arguments = argument_parser().parse_args(argv)
    configure_console_logging()
    return run_command(PROG, lambda: _answer_command(arguments, es), debug=arguments.debug)


def _answer_command(arguments: argparse.Namespace, es=None) -> int:
    """Print the answer; UnknownSubject is exit 1, a bad subject exit 2 (through run_command)."""
    settings = load_settings()
    owned = es is None
    try:
        if owned:
            es = connect(arguments.url, arguments.engine, arguments.conn_id or settings.conn_id)
        try:
            result = answer(es, settings, arguments.subject, organization=arguments.organization,
                            person=arguments.person)
        except UnknownSubject as error:
            print(f"{PROG}: {error}", file=sys.stderr)
            return EXIT_UNKNOWN
        except ValueError as error:
            raise CliError(str(error)) from error
    finally:
        if owned and es is not None:
            es.close()
    print(json.dumps(result, indent=2) if arguments.json else render(result), end="" if not arguments.json else "\n")
    return EXIT_FOUND


if __name__ == "__main__":
    sys.exit(main())
