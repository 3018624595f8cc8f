"""Roles documents -> engagement and domain documents (pure; docs/SEMANTICS.md).

The caller feeds every roles document that names one of the partition's domains, grouped by
`message_id` (the copies of one mail in several mailboxes arrive together), so that a mail seen by
two mailboxes counts once per domain while memory holds one group, not the partition's messages.
Dates are kept as `YYYY-MM-DDTHH:MM:SSZ` strings: in one format and zone they order as text.
"""

from __future__ import annotations

from collections import defaultdict
from itertools import groupby
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping

from mailforce.core.roles import ROLE_CC, ROLE_FROM, ROLE_TO

ROLE_LIST_FIELDS = {ROLE_FROM: "emails_from", ROLE_TO: "emails_to", ROLE_CC: "emails_cc"}
ROLE_COUNT_FIELDS = {ROLE_FROM: "from_count", ROLE_TO: "to_count", ROLE_CC: "cc_count"}


@dataclass
class DateSpan:
    count: int = 0
    earliest: str = "9999-12-31T23:59:59Z"
    latest: str = "0000-01-01T00:00:00Z"

    def add(self, date: str) -> None:
        self.count += 1
        if date < self.earliest:
            self.earliest = date
        if date > self.latest:
            self.latest = date


@dataclass
class AccountDomain:
    """One (account, domain): per address and role, how often and when."""

    messages: DateSpan = field(default_factory=DateSpan)
    roles: dict[str, dict[str, DateSpan]] = field(default_factory=lambda: {role: {} for role in ROLE_LIST_FIELDS})


@dataclass
class AddressContact:
    role_counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ROLE_COUNT_FIELDS, 0))
    messages: DateSpan = field(default_factory=DateSpan)


@dataclass
class DomainContact:
    messages_count: int = 0
    accounts: set[str] = field(default_factory=set)
    addresses: dict[str, AddressContact] = field(default_factory=dict)


class PartitionCompiler:
    """Accumulates the engagement and domain documents of a set of domains."""

    def __init__(self, domains: Iterable[str]) -> None:
        self.domains = frozenset(domains)
        self.account_domains: dict[tuple[str, str], AccountDomain] = defaultdict(AccountDomain)
        self.domain_contacts: dict[str, DomainContact] = defaultdict(DomainContact)
        self.messages_read = 0

    def add_message(self, copies: list[Mapping[str, Any]]) -> None:
        """All roles documents (one per account) of one message_id that name the domains."""
        # Per (domain, address) across the copies: roles united, earliest date of a copy naming it.
        address_roles: dict[tuple[str, str], set[str]] = defaultdict(set)
        address_dates: dict[tuple[str, str], str] = {}
        domain_accounts: dict[str, set[str]] = defaultdict(set)
        for copy in copies:
            self.messages_read += 1
            account, date = copy["account"], copy["date"]
            touched: set[str] = set()
            for entry in copy.get("message_roles", ()):
                domain = entry["domain"]
                if domain not in self.domains:
                    continue
                address, role = entry["email_address"], entry["role"]
                touched.add(domain)
                spans = self.account_domains[(account, domain)].roles[role]
                spans.setdefault(address, DateSpan()).add(date)
                key = (domain, address)
                address_roles[key].add(role)
                if key not in address_dates or date < address_dates[key]:
                    address_dates[key] = date
            for domain in touched:
                self.account_domains[(account, domain)].messages.add(date)
                domain_accounts[domain].add(account)
        for (domain, address), roles in address_roles.items():
            contact = self.domain_contacts[domain].addresses.setdefault(address, AddressContact())
            for role in roles:
                contact.role_counts[role] += 1
            contact.messages.add(address_dates[(domain, address)])
        for domain, accounts in domain_accounts.items():
            domain_contact = self.domain_contacts[domain]
            domain_contact.messages_count += 1
            domain_contact.accounts |= accounts

    def engagement_documents(self, updated_at: str) -> Iterator[dict[str, Any]]:
        for (account, domain), account_domain in sorted(self.account_domains.items()):
            document: dict[str, Any] = {"account": account, "domain": domain}
            for role, list_field in ROLE_LIST_FIELDS.items():
                spans = account_domain.roles[role]
                document[list_field] = [
                    {
                        "email_address": address,
                        "count": span.count,
                        "earliest_engagement_date": span.earliest,
                        "latest_engagement_date": span.latest,
                    }
                    for address, span in sorted(spans.items())
                ]
                document[f"{list_field}_count"] = len(spans)
            document["total_count"] = account_domain.messages.count
            document["earliest_engagement_date"] = account_domain.messages.earliest
            document["latest_engagement_date"] = account_domain.messages.latest
            document["updated_at"] = updated_at
            yield document

    def domain_documents(self, updated_at: str) -> Iterator[dict[str, Any]]:
        for domain, contact in sorted(self.domain_contacts.items()):
            entries = []
            totals = dict.fromkeys(ROLE_COUNT_FIELDS, 0)
            span = DateSpan()  # the domain's first and latest contact: over its addresses'
            for address, address_contact in sorted(contact.addresses.items()):
                span.add(address_contact.messages.earliest)
                span.add(address_contact.messages.latest)
                entry: dict[str, Any] = {"email_address": address}
                for role, count_field in ROLE_COUNT_FIELDS.items():
                    entry[count_field] = address_contact.role_counts[role]
                    totals[role] += address_contact.role_counts[role]
                entry["total_count"] = address_contact.messages.count
                entry["first_contact_date"] = address_contact.messages.earliest
                entry["latest_contact_date"] = address_contact.messages.latest
                entries.append(entry)
            yield {
                "domain": domain,
                "first_contact_date": span.earliest,
                "latest_contact_date": span.latest,
                "total_from": totals[ROLE_FROM],
                "total_to": totals[ROLE_TO],
                "total_cc": totals[ROLE_CC],
                "total_emails": contact.messages_count,
                "accounts": sorted(contact.accounts),
                "accounts_count": len(contact.accounts),
                "addresses_count": len(entries),
                "email_engagements": entries,
                "updated_at": updated_at,
            }


# A heavy domain is compiled in shards, each over a disjoint set of messages (split by a hash of the
# message id, so every copy of a mail lands in one shard). Counts of disjoint message sets add up and
# dates take min/max, so the shards' documents merge into exactly the unsplit ones.


def _merge_entries(
    lists: Iterable[list[dict[str, Any]]], count_fields: tuple[str, ...], earliest_field: str, latest_field: str
) -> list[dict[str, Any]]:
    merged: dict[str, dict[str, Any]] = {}
    for entries in lists:
        for entry in entries:
            current = merged.get(entry["email_address"])
            if current is None:
                merged[entry["email_address"]] = dict(entry)
                continue
            for name in count_fields:
                current[name] += entry[name]
            current[earliest_field] = min(current[earliest_field], entry[earliest_field])
            current[latest_field] = max(current[latest_field], entry[latest_field])
    return [merged[address] for address in sorted(merged)]


def merge_engagement_documents(parts: list[Mapping[str, Any]], updated_at: str) -> dict[str, Any]:
    """One (account, domain) document from the documents of its shards."""
    document: dict[str, Any] = {"account": parts[0]["account"], "domain": parts[0]["domain"]}
    for list_field in ROLE_LIST_FIELDS.values():
        document[list_field] = _merge_entries(
            (part[list_field] for part in parts), ("count",), "earliest_engagement_date", "latest_engagement_date"
        )
        document[f"{list_field}_count"] = len(document[list_field])
    document["total_count"] = sum(part["total_count"] for part in parts)
    document["earliest_engagement_date"] = min(part["earliest_engagement_date"] for part in parts)
    document["latest_engagement_date"] = max(part["latest_engagement_date"] for part in parts)
    document["updated_at"] = updated_at
    return document


def merge_domain_documents(parts: list[Mapping[str, Any]], updated_at: str) -> dict[str, Any]:
    """One domain document from the documents of its shards."""
    entries = _merge_entries(
        (part["email_engagements"] for part in parts),
        ("from_count", "to_count", "cc_count", "total_count"),
        "first_contact_date",
        "latest_contact_date",
    )
    accounts = sorted({account for part in parts for account in part["accounts"]})
    return {
        "domain": parts[0]["domain"],
        "first_contact_date": min(part["first_contact_date"] for part in parts),
        "latest_contact_date": max(part["latest_contact_date"] for part in parts),
        "total_from": sum(part["total_from"] for part in parts),
        "total_to": sum(part["total_to"] for part in parts),
        "total_cc": sum(part["total_cc"] for part in parts),
        "total_emails": sum(part["total_emails"] for part in parts),
        "accounts": accounts,
        "accounts_count": len(accounts),
        "addresses_count": len(entries),
        "email_engagements": entries,
        "updated_at": updated_at,
    }


def compile_roles_documents(domains: Iterable[str], hits: Iterable[Mapping[str, Any]]) -> PartitionCompiler:
    """A compiler fed roles-document hits sorted by message_id, one message's copies at a time."""
    compiler = PartitionCompiler(domains)
    for _, group in groupby(hits, key=lambda hit: hit["_source"]["message_id"]):
        compiler.add_message([hit["_source"] for hit in group])
    return compiler
