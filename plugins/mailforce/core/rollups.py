"""Roles documents -> every per-domain output (pure; docs/SEMANTICS.md).

The caller feeds every roles document that names one of the compiled domains, grouped by
`message_id` (the copies of one mail in several mailboxes arrive together), so that a mail seen by
two mailboxes counts once per domain while memory holds one group plus per-address figures.

Five kinds of document come out, all keyed inside one domain: account engagements (account,
domain), relationships (account, address), contacts (address), timeline months (domain, month) and
(account, domain, month), and the domain itself. Each kind has a merge for figures over disjoint sets
of messages (shards of a heavy domain, or a window's new mail added to what is stored): counts add
up, dates take min/max, sets unite. Rankings (a domain's top addresses, best-connected accounts) are
derived afterwards from merged figures.

Dates are `YYYY-MM-DDTHH:MM:SSZ` strings: in one format and zone they order as text.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Callable, Iterable, Iterator, Mapping

from mailforce.core.conversations import (
    BroadcastRule,
    Conversations,
    automated_reason,
    audience_weight,
    direct_exchange,
)
from mailforce.core.kinds import COMPILED_KIND_NAMES, natural_key
from mailforce.core.strength import best_connected, is_two_way, relationship_strength

ROLE_LIST_FIELDS = {"From": "emails_from", "To": "emails_to", "CC": "emails_cc"}
ROLE_COUNT_FIELDS = {"From": "from_count", "To": "to_count", "CC": "cc_count"}
COUNT_FIELDS = tuple(ROLE_COUNT_FIELDS.values())
NO_EARLIEST = "9999-12-31T23:59:59Z"
NO_LATEST = "0000-01-01T00:00:00Z"
DEFAULT_TOP_ADDRESSES = 100
# What the rollups read of a roles document.
COMPILE_READ_FIELDS = ["account", "message_id", "date", "key_date", "message_roles", "automated_addresses",
                       "counted_elsewhere", "sender_addresses", "recipient_addresses", "audience"]
DIRECT_COUNT_FIELDS = ("direct_from_count", "direct_to_count", "direct_count", "direct_weight")


def month_of(output_date: str) -> str:
    """`2001-05-14T23:39:00Z` -> `2001-05-01T00:00:00Z`."""
    return f"{output_date[:7]}-01T00:00:00Z"


@dataclass
class Span:
    """How many messages, and the earliest and latest of their dates."""

    count: int = 0
    earliest: str = NO_EARLIEST
    latest: str = NO_LATEST

    def add(self, message_date: str) -> None:
        self.count += 1
        if message_date < self.earliest:
            self.earliest = message_date
        if message_date > self.latest:
            self.latest = message_date


@dataclass
class MonthFigures:
    messages: int = 0
    role_counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ROLE_COUNT_FIELDS, 0))


@dataclass
class AddressInAccount:
    """One relationship (account, address): per role, and over its distinct messages."""

    roles: dict[str, Span] = field(default_factory=lambda: {role: Span() for role in ROLE_LIST_FIELDS})
    messages: Span = field(default_factory=Span)
    # direct exchange with the mailbox's owner addresses (core/conversations.py)
    direct: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DIRECT_COUNT_FIELDS, 0))
    latest_direct: str | None = None


@dataclass
class AccountDomain:
    messages: Span = field(default_factory=Span)
    addresses: dict[str, AddressInAccount] = field(default_factory=dict)
    months: dict[str, MonthFigures] = field(default_factory=lambda: defaultdict(MonthFigures))


@dataclass
class Contact:
    """One address across accounts: a mail seen by two mailboxes counts once."""

    role_counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ROLE_COUNT_FIELDS, 0))
    messages: Span = field(default_factory=Span)
    accounts: set[str] = field(default_factory=set)
    flagged_by_headers: bool = False
    broadcast_messages: int = 0  # keys it sent to at least the broadcast audience
    answered_count: int = 0  # (account, message) pairs where the account's owner wrote to it


@dataclass
class DomainFigures:
    messages: int = 0
    accounts: set[str] = field(default_factory=set)
    contacts: dict[str, Contact] = field(default_factory=dict)
    months: dict[str, MonthFigures] = field(default_factory=lambda: defaultdict(MonthFigures))


def _entry(entries: dict[str, Any], key: str, make: Callable[[], Any]) -> Any:
    """`entries[key]`, made and added when absent (`setdefault` would build a new one at every call)."""
    entry = entries.get(key)
    if entry is None:
        entry = entries[key] = make()
    return entry


@dataclass(frozen=True)
class Scoring:
    """What strength and rankings need besides the figures."""

    scoring_date: date
    half_life_days: float
    is_automated_address: Callable[[str], bool]
    top_addresses: int = DEFAULT_TOP_ADDRESSES
    broadcast: BroadcastRule = BroadcastRule()


class DomainRollup:
    """Accumulates the figures of a set of domains from groups of roles documents.

    Over all time (`window_only=False`) every copy counts. Over one run's new mail
    (`window_only=True`, to be added to the stored documents) a copy marked `counted_elsewhere`
    counts in its mailbox's figures and in the accounts that know each address only: the copies
    that counted the message in the cross-mailbox figures are stored already.
    """

    def __init__(self, domains: Iterable[str], *, window_only: bool = False,
                 conversations: Conversations | None = None) -> None:
        self.domains = frozenset(domains)
        self.window_only = window_only
        self.conversations = conversations or Conversations()
        self.account_domains: dict[tuple[str, str], AccountDomain] = defaultdict(AccountDomain)
        self.domain_figures: dict[str, DomainFigures] = defaultdict(DomainFigures)
        self.messages_read = 0

    def add_message(self, copies: list[Mapping[str, Any]]) -> None:
        """All roles documents (one per account) of one message_id that name the domains."""
        if self.window_only and any(copy.get("counted_elsewhere") for copy in copies):
            counted = [copy for copy in copies if copy.get("counted_elsewhere")]
            self._add_counted_elsewhere(counted)
            copies = [copy for copy in copies if not copy.get("counted_elsewhere")]
            if not copies:
                return
        key_date = min(copy.get("key_date") or copy["date"] for copy in copies)
        address_roles: dict[tuple[str, str], set[str]] = defaultdict(set)
        address_accounts: dict[tuple[str, str], set[str]] = defaultdict(set)
        flagged: set[str] = set()
        broadcast: set[tuple[str, str]] = set()
        for copy in copies:
            flagged.update(copy.get("automated_addresses") or ())
            to_many = int(copy.get("audience") or 0) >= self.conversations.broadcast.min_audience
            for (domain, address), roles in self._add_per_account(copy).items():
                address_roles[(domain, address)] |= roles
                address_accounts[(domain, address)].add(copy["account"])
                if to_many and "From" in roles:
                    broadcast.add((domain, address))
        key_month = month_of(key_date)
        touched: dict[str, set[str]] = defaultdict(set)
        for (domain, address), roles in address_roles.items():
            figures = self.domain_figures[domain]
            contact = _entry(figures.contacts, address, Contact)
            contact.messages.add(key_date)
            contact.accounts |= address_accounts[(domain, address)]
            contact.flagged_by_headers |= address in flagged
            contact.broadcast_messages += (domain, address) in broadcast
            for role in roles:
                contact.role_counts[role] += 1
                figures.months[key_month].role_counts[role] += 1
            touched[domain] |= address_accounts[(domain, address)]
        for domain, accounts in touched.items():
            figures = self.domain_figures[domain]
            figures.messages += 1
            figures.months[key_month].messages += 1
            figures.accounts |= accounts

    def _add_per_account(self, copy: Mapping[str, Any]) -> dict[tuple[str, str], set[str]]:
        """One copy into its account's figures; returns its (domain, address) -> roles."""
        self.messages_read += 1
        account, message_date = copy["account"], copy["date"]
        month = month_of(message_date)
        on_message: dict[tuple[str, str], set[str]] = defaultdict(set)
        for entry in copy.get("message_roles", ()):
            if entry["domain"] in self.domains:
                on_message[(entry["domain"], entry["email_address"])].add(entry["role"])
        touched_domains = set()
        owners = self.conversations.owners_of(account) if on_message else frozenset()
        senders, recipients = copy.get("sender_addresses") or (), copy.get("recipient_addresses") or ()
        weight = audience_weight(int(copy.get("audience") or 0))
        for (domain, address), roles in on_message.items():
            touched_domains.add(domain)
            account_domain = self.account_domains[(account, domain)]
            relationship = _entry(account_domain.addresses, address, AddressInAccount)
            relationship.messages.add(message_date)
            exchange = direct_exchange(roles, senders, recipients, owners, address)
            if exchange.direct:
                direct = relationship.direct
                direct["direct_from_count"] += exchange.address_wrote
                direct["direct_to_count"] += exchange.owner_wrote
                direct["direct_count"] += 1
                direct["direct_weight"] += weight
                relationship.latest_direct = max(relationship.latest_direct or message_date, message_date)
            contact = _entry(self.domain_figures[domain].contacts, address, Contact)
            contact.answered_count += exchange.owner_wrote
            month_figures = account_domain.months[month]
            for role in roles:
                relationship.roles[role].add(message_date)
                month_figures.role_counts[role] += 1
        for domain in touched_domains:
            account_domain = self.account_domains[(account, domain)]
            account_domain.messages.add(message_date)
            account_domain.months[month].messages += 1
        return on_message

    def _add_counted_elsewhere(self, copies: list[Mapping[str, Any]]) -> None:
        """Copies whose message the stored cross-mailbox figures already count: their mailboxes'
        figures, plus their accounts (and header flags) on each contact and domain, no counts."""
        for copy in copies:
            flagged = set(copy.get("automated_addresses") or ())
            for domain, address in self._add_per_account(copy):
                figures = self.domain_figures[domain]
                contact = _entry(figures.contacts, address, Contact)
                contact.accounts.add(copy["account"])
                contact.flagged_by_headers |= address in flagged
                figures.accounts.add(copy["account"])

    # --- figures as documents (no rankings yet) ----------------------------------------------

    def engagement_documents(self) -> Iterator[dict[str, Any]]:
        for (account, domain), account_domain in sorted(self.account_domains.items()):
            document: dict[str, Any] = {"account": account, "domain": domain}
            for role, list_field in ROLE_LIST_FIELDS.items():
                document[list_field] = [
                    {
                        "email_address": address,
                        "count": relationship.roles[role].count,
                        "earliest_engagement_date": relationship.roles[role].earliest,
                        "latest_engagement_date": relationship.roles[role].latest,
                    }
                    for address, relationship in sorted(account_domain.addresses.items())
                    if relationship.roles[role].count
                ]
                document[f"{list_field}_count"] = len(document[list_field])
            document["total_count"] = account_domain.messages.count
            document["earliest_engagement_date"] = account_domain.messages.earliest
            document["latest_engagement_date"] = account_domain.messages.latest
            yield document

    def relationship_documents(self) -> Iterator[dict[str, Any]]:
        """Relationship figures; `automated` and `strength` are set by `score_relationship`."""
        for (account, domain), account_domain in sorted(self.account_domains.items()):
            for address, relationship in sorted(account_domain.addresses.items()):
                document = {"account": account, "email_address": address, "domain": domain}
                for role, count_field in ROLE_COUNT_FIELDS.items():
                    document[count_field] = relationship.roles[role].count
                document["total_count"] = relationship.messages.count
                document["first_engagement_date"] = relationship.messages.earliest
                document["latest_engagement_date"] = relationship.messages.latest
                document["owner"] = address in self.conversations.owners_of(account)
                document.update(relationship.direct)
                document["latest_direct_date"] = relationship.latest_direct
                yield document

    def contact_documents(self) -> Iterator[dict[str, Any]]:
        """Contact figures; `automated` is the headers' evidence so far (patterns are added when
        scoring), `best_connected_accounts` is set by `finished_documents` (or the add path)."""
        for domain, figures in sorted(self.domain_figures.items()):
            for address, contact in sorted(figures.contacts.items()):
                yield contact_document(address, domain, contact)

    def timeline_documents(self) -> Iterator[dict[str, Any]]:
        for domain, figures in sorted(self.domain_figures.items()):
            for month, month_figures in sorted(figures.months.items()):
                yield timeline_document(month_figures, domain, month)
        for (account, domain), account_domain in sorted(self.account_domains.items()):
            for month, month_figures in sorted(account_domain.months.items()):
                yield timeline_document(month_figures, domain, month, account)

    def domain_totals(self) -> Iterator[dict[str, Any]]:
        """Each domain's totals without its address rankings (see `finish_domain`)."""
        for domain, figures in sorted(self.domain_figures.items()):
            totals = dict.fromkeys(ROLE_COUNT_FIELDS, 0)
            span = Span()
            for contact in figures.contacts.values():
                if not contact.messages.count:
                    continue  # known to one more account only (`counted_elsewhere`): no dates
                span.add(contact.messages.earliest)
                span.add(contact.messages.latest)
                for role in ROLE_COUNT_FIELDS:
                    totals[role] += contact.role_counts[role]
            yield {
                "domain": domain,
                "first_contact_date": span.earliest,
                "latest_contact_date": span.latest,
                "total_from": totals["From"],
                "total_to": totals["To"],
                "total_cc": totals["CC"],
                "total_emails": figures.messages,
                "accounts": sorted(figures.accounts),
                "accounts_count": len(figures.accounts),
                "addresses_count": len(figures.contacts),
            }


def contact_document(address: str, domain: str, contact: Contact) -> dict[str, Any]:
    document: dict[str, Any] = {"email_address": address, "domain": domain}
    for role, count_field in ROLE_COUNT_FIELDS.items():
        document[count_field] = contact.role_counts[role]
    document["total_count"] = contact.messages.count
    document["first_contact_date"] = contact.messages.earliest
    document["latest_contact_date"] = contact.messages.latest
    document["accounts"] = sorted(contact.accounts)
    document["accounts_count"] = len(contact.accounts)
    document["automated"] = contact.flagged_by_headers
    document["flagged_by_headers"] = contact.flagged_by_headers
    document["broadcast_messages"] = contact.broadcast_messages
    document["answered_count"] = contact.answered_count
    return document


def timeline_document(figures: MonthFigures, domain: str, month: str, account: str | None = None) -> dict[str, Any]:
    document: dict[str, Any] = {"scope": "account" if account else "domain", "domain": domain, "month": month}
    if account:
        document["account"] = account
    document["messages"] = figures.messages
    for role, count_field in ROLE_COUNT_FIELDS.items():
        document[count_field] = figures.role_counts[role]
    return document


# --- merges over disjoint sets of messages ---------------------------------------------------


def _merge_listing(lists: Iterable[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    merged: dict[str, dict[str, Any]] = {}
    for entries in lists:
        for entry in entries:
            current = merged.get(entry["email_address"])
            if current is None:
                merged[entry["email_address"]] = dict(entry)
                continue
            current["count"] += entry["count"]
            current["earliest_engagement_date"] = min(current["earliest_engagement_date"], entry["earliest_engagement_date"])
            current["latest_engagement_date"] = max(current["latest_engagement_date"], entry["latest_engagement_date"])
    return [merged[address] for address in sorted(merged)]


def merge_engagements(parts: list[Mapping[str, Any]]) -> dict[str, Any]:
    """One (account, domain) document from documents over disjoint messages."""
    document: dict[str, Any] = {"account": parts[0]["account"], "domain": parts[0]["domain"]}
    for list_field in ROLE_LIST_FIELDS.values():
        document[list_field] = _merge_listing(part[list_field] for part in parts)
        document[f"{list_field}_count"] = len(document[list_field])
    document["total_count"] = sum(part["total_count"] for part in parts)
    document["earliest_engagement_date"] = min(part["earliest_engagement_date"] for part in parts)
    document["latest_engagement_date"] = max(part["latest_engagement_date"] for part in parts)
    return document


def _merge_counted(parts: list[Mapping[str, Any]], keys: tuple[str, ...], earliest: str, latest: str,
                   counts: tuple[str, ...]) -> dict[str, Any]:
    document: dict[str, Any] = {name: parts[0][name] for name in keys}
    for name in counts:
        document[name] = sum(part[name] for part in parts)
    document[earliest] = min(part[earliest] for part in parts)
    document[latest] = max(part[latest] for part in parts)
    return document


def merge_relationships(parts: list[Mapping[str, Any]]) -> dict[str, Any]:
    document = _merge_counted(parts, ("account", "email_address", "domain"), "first_engagement_date",
                              "latest_engagement_date", COUNT_FIELDS + ("total_count",))
    document["owner"] = bool(parts[-1].get("owner"))  # the owners are those of the newest figures
    for name in DIRECT_COUNT_FIELDS:
        document[name] = sum(int(part.get(name) or 0) for part in parts)
    dates = [part["latest_direct_date"] for part in parts if part.get("latest_direct_date")]
    document["latest_direct_date"] = max(dates) if dates else None
    return document


def merge_contacts(parts: list[Mapping[str, Any]]) -> dict[str, Any]:
    document = _merge_counted(parts, ("email_address", "domain"), "first_contact_date", "latest_contact_date",
                              COUNT_FIELDS + ("total_count",))
    document["accounts"] = sorted({account for part in parts for account in part["accounts"]})
    document["accounts_count"] = len(document["accounts"])
    document["flagged_by_headers"] = any(part.get("flagged_by_headers", False) for part in parts)
    document["automated"] = document["flagged_by_headers"]  # until scored: `contact_automation`
    document["broadcast_messages"] = sum(int(part.get("broadcast_messages") or 0) for part in parts)
    document["answered_count"] = sum(int(part.get("answered_count") or 0) for part in parts)
    return document


def merge_timeline(parts: list[Mapping[str, Any]]) -> dict[str, Any]:
    document = {name: parts[0][name] for name in ("scope", "domain", "month") + (("account",) if "account" in parts[0] else ())}
    for name in ("messages",) + COUNT_FIELDS:
        document[name] = sum(part[name] for part in parts)
    return document


def merge_domain_totals(parts: list[Mapping[str, Any]], addresses_count: int) -> dict[str, Any]:
    """Domain totals over disjoint messages; `addresses_count` comes from the merged contacts
    (an address may appear in several parts)."""
    document = _merge_counted(parts, ("domain",), "first_contact_date", "latest_contact_date",
                              ("total_from", "total_to", "total_cc", "total_emails"))
    document["accounts"] = sorted({account for part in parts for account in part["accounts"]})
    document["accounts_count"] = len(document["accounts"])
    document["addresses_count"] = addresses_count
    return document


# --- scores and rankings --------------------------------------------------------------------


def score_relationship(document: dict[str, Any], reason: str | None, scoring: Scoring) -> dict[str, Any]:
    """`reason`: why the address is flagged automated (None: it is not)."""
    document["automated"] = reason is not None
    document["automated_reason"] = reason
    document["two_way"] = is_two_way(document["from_count"], document["to_count"], document["cc_count"])
    document["strength"] = relationship_strength(document, scoring.scoring_date, scoring.half_life_days)
    return document


def connection_entry(account: str, strength_value: int, total_count: int) -> dict[str, Any]:
    return {"account": account, "strength": strength_value, "total_count": total_count}


def merged_ranking(stored: Iterable[Mapping[str, Any]], updated: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """A stored top list with some accounts' entries replaced by newer ones, re-ranked.

    Exact when only the updated accounts changed and their figures only grew: an account missing
    from the stored list ranked below all of it and still does unless it is among the updated.
    """
    entries = {entry["account"]: dict(entry) for entry in stored}
    for entry in updated:
        entries[entry["account"]] = dict(entry)
    return best_connected(entries.values())


def address_ranking_key(entry: Mapping[str, Any]) -> tuple:
    return (-entry["total_count"], entry["email_address"])


ADDRESS_ENTRY_FIELDS = ("email_address",) + COUNT_FIELDS + ("total_count", "first_contact_date", "latest_contact_date")


def address_entry(contact: Mapping[str, Any]) -> dict[str, Any]:
    return {name: contact[name] for name in ADDRESS_ENTRY_FIELDS}


def top_addresses(entries: Iterable[Mapping[str, Any]], limit: int) -> list[dict[str, Any]]:
    return sorted((address_entry(entry) for entry in entries), key=address_ranking_key)[:limit]


def finish_domain(totals: dict[str, Any], top: list[dict[str, Any]], connections: Iterable[Mapping[str, Any]],
                  scoring: Scoring) -> dict[str, Any]:
    """A domain document: totals, its top addresses and the accounts that know it best."""
    document = dict(totals)
    document["email_engagements"] = top[:scoring.top_addresses]
    document["email_engagements_complete"] = document["addresses_count"] <= scoring.top_addresses
    document["best_connected_accounts"] = best_connected(connections)
    return document


@dataclass
class DomainDocuments:
    """Every output document of some domains, final (scored and ranked), without `updated_at`."""

    engagements: list[dict[str, Any]] = field(default_factory=list)
    relationships: list[dict[str, Any]] = field(default_factory=list)
    contacts: list[dict[str, Any]] = field(default_factory=list)
    timeline: list[dict[str, Any]] = field(default_factory=list)
    domains: list[dict[str, Any]] = field(default_factory=list)
    organizations: list[dict[str, Any]] = field(default_factory=list)  # core/org_rollups.py

    def counts(self) -> dict[str, int]:
        return {name: len(getattr(self, name)) for name in KINDS}


KINDS = COMPILED_KIND_NAMES  # the fields of DomainDocuments, declared in `mailforce.core.kinds`


def contact_automation(contact: Mapping[str, Any], scoring: Scoring) -> str | None:
    """Why a contact's address is automated (`pattern`, `header`, `broadcast`), or None."""
    return automated_reason(
        pattern=scoring.is_automated_address(contact["email_address"]),
        header=bool(contact.get("flagged_by_headers")),
        broadcast=scoring.broadcast.flags(int(contact.get("broadcast_messages") or 0),
                                          int(contact.get("answered_count") or 0)),
    )


def set_automation(contact: dict[str, Any], scoring: Scoring) -> str | None:
    reason = contact["automated_reason"] = contact_automation(contact, scoring)
    contact["automated"] = reason is not None
    return reason


def score_relationships(
    relationships: Iterable[dict[str, Any]], automated: Mapping[str, str | None], scoring: Scoring
) -> tuple[dict[str, list[dict[str, Any]]], dict[tuple[str, str], int]]:
    """Score each relationship in place; returns the connection entries per address and the
    strongest strength per (account, domain), from which the rankings are built."""
    connections: dict[str, list[dict[str, Any]]] = defaultdict(list)
    strongest: dict[tuple[str, str], int] = defaultdict(int)
    for relationship in relationships:
        score_relationship(relationship, automated[relationship["email_address"]], scoring)
        connections[relationship["email_address"]].append(
            connection_entry(relationship["account"], relationship["strength"], relationship["total_count"]))
        key = (relationship["account"], relationship["domain"])
        strongest[key] = max(strongest[key], relationship["strength"])
    return connections, strongest


def finished_documents(rollup: DomainRollup, scoring: Scoring) -> DomainDocuments:
    """The documents of a rollup over all time of its domains: scores and rankings complete."""
    result = DomainDocuments()
    automated: dict[str, str | None] = {}
    for contact in rollup.contact_documents():
        automated[contact["email_address"]] = set_automation(contact, scoring)
        result.contacts.append(contact)
    result.relationships = list(rollup.relationship_documents())
    connections_by_address, strongest = score_relationships(result.relationships, automated, scoring)
    for contact in result.contacts:
        contact["best_connected_accounts"] = best_connected(connections_by_address[contact["email_address"]])
    connections_by_domain: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for engagement in rollup.engagement_documents():
        engagement["strength_max"] = strongest[(engagement["account"], engagement["domain"])]
        result.engagements.append(engagement)
        connections_by_domain[engagement["domain"]].append(
            connection_entry(engagement["account"], engagement["strength_max"], engagement["total_count"]))
    contacts_by_domain: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for contact in result.contacts:
        contacts_by_domain[contact["domain"]].append(contact)
    for totals in rollup.domain_totals():
        domain = totals["domain"]
        top = top_addresses(contacts_by_domain[domain], scoring.top_addresses)
        result.domains.append(finish_domain(totals, top, connections_by_domain[domain], scoring))
    result.timeline = list(rollup.timeline_documents())
    return result


# --- adding a window's new mail to what is stored --------------------------------------------


def window_documents(rollup: DomainRollup) -> dict[str, list[dict[str, Any]]]:
    """The figures of a window's new mail, per kind, before they meet what is stored."""
    return {
        "engagements": list(rollup.engagement_documents()),
        "relationships": list(rollup.relationship_documents()),
        "contacts": list(rollup.contact_documents()),
        "timeline": list(rollup.timeline_documents()),
        "domains": list(rollup.domain_totals()),
    }


Stored = Mapping[str, Mapping[tuple[str, ...], Mapping[str, Any]]]


def flipped_to_automated(new: Mapping[str, list[dict[str, Any]]], stored: Stored, scoring: Scoring) -> set[str]:
    """Domains where new mail changes whether (or why) a known address is automated: new mail
    flags it, or an owner answered a broadcaster, or it became one.

    Every relationship of such an address changes (its strength, its `automated_reason`), most of
    them in documents this window did not touch, so the domain is recomputed over all time instead.
    """
    flipped = set()
    for contact in new["contacts"]:
        previous = stored["contacts"].get(natural_key("contacts", contact))
        if previous is None:
            continue
        reason = contact_automation(merge_contacts([previous, contact]), scoring)
        if reason != previous.get("automated_reason") or (reason is not None) != bool(previous.get("automated")):
            flipped.add(contact["domain"])
    return flipped


def missing_from_stored(new: Mapping[str, list[dict[str, Any]]], stored: Stored) -> set[str]:
    """Domains where a `counted_elsewhere` copy names an address without a stored contact.

    The copy adds no counts on the premise that the stored documents count its message; a
    contact missing from the store (an output index deleted by hand, say) breaks the premise,
    so the domain is recomputed over all time instead.
    """
    return {contact["domain"] for contact in new["contacts"]
            if not contact["total_count"] and natural_key("contacts", contact) not in stored["contacts"]}


def add_to_stored(new: Mapping[str, list[dict[str, Any]]], stored: Stored, scoring: Scoring) -> DomainDocuments:
    """The window's figures added to the stored documents: counts over disjoint messages add up.

    `stored` holds, per kind, the stored documents of the same natural keys (absent when none).
    Rankings are merged from the stored rankings and the updated entries (see `merged_ranking`).
    The caller has excluded the domains of `flipped_to_automated` and `missing_from_stored`.
    """
    result = DomainDocuments()
    automated: dict[str, str | None] = {}
    new_addresses: dict[str, int] = defaultdict(int)
    for contact in new["contacts"]:
        previous = stored["contacts"].get(natural_key("contacts", contact))
        merged = merge_contacts([previous, contact]) if previous is not None else dict(contact)
        automated[contact["email_address"]] = set_automation(merged, scoring)
        merged["best_connected_accounts"] = list(previous.get("best_connected_accounts", ())) if previous else []
        if previous is None:
            new_addresses[contact["domain"]] += 1
        result.contacts.append(merged)

    for relationship in new["relationships"]:
        previous = stored["relationships"].get(natural_key("relationships", relationship))
        result.relationships.append(
            merge_relationships([previous, relationship]) if previous is not None else dict(relationship))
    updated_connections, strongest_updated = score_relationships(result.relationships, automated, scoring)
    for contact in result.contacts:
        contact["best_connected_accounts"] = merged_ranking(
            contact["best_connected_accounts"], updated_connections[contact["email_address"]])

    updated_domain_connections: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for engagement in new["engagements"]:
        previous = stored["engagements"].get(natural_key("engagements", engagement))
        merged = merge_engagements([previous, engagement]) if previous is not None else dict(engagement)
        key = (merged["account"], merged["domain"])
        merged["strength_max"] = max(int(previous.get("strength_max", 0)) if previous else 0, strongest_updated[key])
        result.engagements.append(merged)
        updated_domain_connections[merged["domain"]].append(
            connection_entry(merged["account"], merged["strength_max"], merged["total_count"]))

    for month in new["timeline"]:
        previous = stored["timeline"].get(natural_key("timeline", month))
        result.timeline.append(merge_timeline([previous, month]) if previous is not None else dict(month))

    updated_contacts: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for contact in result.contacts:
        updated_contacts[contact["domain"]].append(contact)
    for totals in new["domains"]:
        domain = totals["domain"]
        previous = stored["domains"].get(natural_key("domains", totals))
        if previous is None:
            merged_totals = dict(totals)
            top_candidates: dict[str, Mapping[str, Any]] = {}
            stored_best: list[Mapping[str, Any]] = []
        else:
            merged_totals = merge_domain_totals(
                [previous, totals], int(previous["addresses_count"]) + new_addresses[domain])
            top_candidates = {entry["email_address"]: entry for entry in previous.get("email_engagements", ())}
            stored_best = previous.get("best_connected_accounts", ())
        for contact in updated_contacts[domain]:
            top_candidates[contact["email_address"]] = contact
        top = top_addresses(top_candidates.values(), scoring.top_addresses)
        best = merged_ranking(stored_best, updated_domain_connections[domain])
        result.domains.append(finish_domain(merged_totals, top, best, scoring))
    return result
