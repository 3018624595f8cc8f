"""Brute-force expected outputs, computed straight from docs/SEMANTICS.md.

This module is the test oracle: it must stay independent of the pipeline, so it imports nothing
from ``mailforce`` and re-implements address normalisation and date parsing on its own. It favours
obviousness over speed: every figure is computed from a plain in-memory model of the covered
messages.

API:
- ``Coverage``: one successful run's window and account filters.
- ``expected_outputs(source_docs, coverages, internal_domains, allowed_domains)``: the documents the
  four output indices must hold, keyed by natural key.
- ``read_outputs(es, index_names)``: the same keyed shape, read back from Elasticsearch.
- ``assert_outputs_equal(actual, expected)`` and ``summarise(expected)``.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

ROLE_FROM, ROLE_TO, ROLE_CC = "From", "To", "CC"
ROLE_FIELDS = (("from", ROLE_FROM), ("to", ROLE_TO), ("cc", ROLE_CC))
INDEX_KINDS = ("roles", "engagements", "account_stats", "domains")

# The fields each output document is compared on (``updated_at`` and any extra field are ignored).
DOCUMENT_FIELDS: dict[str, tuple[str, ...]] = {
    "roles": ("account", "message_id", "date", "domains", "message_roles"),
    "engagements": (
        "account", "domain", "emails_from", "emails_to", "emails_cc", "emails_from_count",
        "emails_to_count", "emails_cc_count", "total_count", "earliest_engagement_date",
        "latest_engagement_date",
    ),
    "account_stats": ("account", "emails_from_count", "emails_to_count", "emails_cc_count", "total_emails_count"),
    "domains": (
        "domain", "first_contact_date", "latest_contact_date", "total_from", "total_to", "total_cc",
        "total_emails", "accounts", "email_engagements",
    ),
}
# The fields of the entries of nested lists, by list field name.
ENTRY_FIELDS: dict[str, tuple[str, ...]] = {
    "message_roles": ("email_address", "domain", "role"),
    "emails_from": ("email_address", "count", "earliest_engagement_date", "latest_engagement_date"),
    "emails_to": ("email_address", "count", "earliest_engagement_date", "latest_engagement_date"),
    "emails_cc": ("email_address", "count", "earliest_engagement_date", "latest_engagement_date"),
    "email_engagements": (
        "email_address", "from_count", "to_count", "cc_count", "total_count", "first_contact_date",
        "latest_contact_date",
    ),
}

UTC = timezone.utc
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# --------------------------------------------------------------------------------------------------
# Coverage
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Coverage:
    """What one successful run covered (keyword arguments only). Naive datetimes are taken as UTC."""

    window_start: datetime | None = None  # exclusive; None = from the very beginning
    from_date: datetime | None = None  # inclusive; when set it replaces window_start
    window_end: datetime  # inclusive
    accounts: frozenset[str] | None = None  # only these accounts (None = all)
    exclude_accounts: frozenset[str] = field(default_factory=frozenset)  # never these

    def covers(self, account: str, date: datetime) -> bool:
        if self.accounts is not None and account not in self.accounts:
            return False
        if account in self.exclude_accounts:
            return False
        if date > as_utc(self.window_end):
            return False
        if self.from_date is not None:
            return date >= as_utc(self.from_date)
        return self.window_start is None or date > as_utc(self.window_start)


def as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


# --------------------------------------------------------------------------------------------------
# Dates and addresses (own implementations, on purpose: see the module docstring)
# --------------------------------------------------------------------------------------------------

_ISO_DATE_TIME = re.compile(
    r"(?P<year>\d{4})-(?P<month>\d{2})-(?P<day>\d{2})"
    r"(?:T(?P<hour>\d{2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?:[.,](?P<fraction>\d+))?)?"
    r"(?P<zone>Z|[+-]\d{2}(?::?\d{2})?)?)?"
)


def parse_date(value: Any) -> datetime | None:
    """An aware UTC datetime, or None when the value is missing or unparseable."""
    if isinstance(value, bool):  # bool is an int subclass, and never a date
        return None
    if isinstance(value, int):
        return EPOCH + timedelta(milliseconds=value)
    if not isinstance(value, str):
        return None
    match = _ISO_DATE_TIME.fullmatch(value.strip())
    if match is None:
        return None
    parts = match.groupdict()
    microsecond = int((parts["fraction"] or "0")[:6].ljust(6, "0"))  # extra digits are truncated
    try:
        moment = datetime(
            int(parts["year"]), int(parts["month"]), int(parts["day"]),
            int(parts["hour"] or 0), int(parts["minute"] or 0), int(parts["second"] or 0),
            microsecond, tzinfo=_parse_zone(parts["zone"]),
        )
    except ValueError:  # e.g. month 13 or hour 25
        return None
    return moment.astimezone(UTC)


def _parse_zone(zone: str | None) -> timezone:
    if zone is None or zone == "Z":
        return UTC  # no zone means UTC
    digits = zone[1:].replace(":", "")
    offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0))
    return timezone(-offset if zone[0] == "-" else offset)


def format_date(moment: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ`` in UTC, fractions truncated (padded by hand: strftime's %Y is not)."""
    moment = moment.astimezone(UTC)
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
        f"T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}Z"
    )


def normalise_address(entry: Any) -> str | None:
    """The normalised address of one ``*.address`` entry, or None when it is invalid."""
    if not isinstance(entry, str):
        return None
    text = entry
    opening = text.rfind("<")
    if opening >= 0:
        closing = text.find(">", opening + 1)
        if closing >= 0:  # keep what is inside the last <...>: drops display names and brackets
            text = text[opening + 1 : closing]
    text = text.strip().lower()
    return text if is_valid_address(text) else None


def is_valid_address(address: str) -> bool:
    if any(character.isspace() for character in address):
        return False
    if address.count("@") != 1:
        return False
    local_part, domain = address.split("@")
    labels = domain.split(".")
    return bool(local_part) and len(labels) >= 2 and all(labels)


def domain_of(address: str) -> str:
    return address.split("@", 1)[1]


# --------------------------------------------------------------------------------------------------
# The message model
# --------------------------------------------------------------------------------------------------


@dataclass
class Message:
    """One message of one account: the union of its copies."""

    account: str
    key: str
    date: datetime
    roles: set[tuple[str, str]] = field(default_factory=set)  # (address, role)


def _address_entries(source: Mapping[str, Any], field_name: str) -> list[Any]:
    """The raw entries of ``<field_name>.address`` (an object field, or a flattened dotted key)."""
    container = source.get(field_name)
    if isinstance(container, Mapping) and "address" in container:
        value = container["address"]
    else:
        value = source.get(f"{field_name}.address")
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _message_key(document: Mapping[str, Any]) -> str:
    message_id = document.get("_source", {}).get("messageId")
    if isinstance(message_id, str) and message_id:
        return message_id
    return str(document["_id"])


def _domain_passes(domain: str, internal: frozenset[str], allowed: frozenset[str]) -> bool:
    if domain in internal:
        return False
    return not allowed or domain in allowed


def build_messages(
    source_docs: Iterable[Mapping[str, Any]],
    coverages: Iterable[Coverage],
    internal_domains: Iterable[str] = (),
    allowed_domains: Iterable[str] = (),
) -> dict[tuple[str, str], Message]:
    """The covered messages keyed by (account, key), copies united, roles filtered by domain."""
    coverages = list(coverages)
    internal = frozenset(internal_domains)
    allowed = frozenset(allowed_domains)
    messages: dict[tuple[str, str], Message] = {}
    for document in source_docs:
        source = document.get("_source") or {}
        account = source.get("account")
        date = parse_date(source.get("date"))
        if not isinstance(account, str) or not account or date is None:
            continue
        if not any(coverage.covers(account, date) for coverage in coverages):
            continue
        key = _message_key(document)
        message = messages.get((account, key))
        if message is None:
            message = messages[(account, key)] = Message(account, key, date)
        message.date = min(message.date, date)  # a copy without valid addresses still sets the date
        for field_name, role in ROLE_FIELDS:
            for entry in _address_entries(source, field_name):
                address = normalise_address(entry)
                if address is not None and _domain_passes(domain_of(address), internal, allowed):
                    message.roles.add((address, role))
    return messages


# --------------------------------------------------------------------------------------------------
# Expected documents
# --------------------------------------------------------------------------------------------------


def expected_outputs(
    source_docs: Iterable[Mapping[str, Any]],
    coverages: Iterable[Coverage],
    internal_domains: Iterable[str] = (),
    allowed_domains: Iterable[str] = (),
) -> dict[str, dict[Any, dict[str, Any]]]:
    """The four output indices' documents (without ``updated_at``), keyed by natural key."""
    messages = list(build_messages(source_docs, coverages, internal_domains, allowed_domains).values())
    return {
        "roles": expected_roles(messages),
        "engagements": expected_engagements(messages),
        "account_stats": expected_account_stats(messages),
        "domains": expected_domains(messages),
    }


def expected_roles(messages: list[Message]) -> dict[tuple[str, str], dict[str, Any]]:
    documents = {}
    for message in messages:
        if not message.roles:
            continue
        documents[(message.account, message.key)] = {
            "account": message.account,
            "message_id": message.key,
            "date": format_date(message.date),
            "domains": sorted({domain_of(address) for address, _ in message.roles}),
            "message_roles": [
                {"email_address": address, "domain": domain_of(address), "role": role}
                for address, role in sorted(message.roles)
            ],
        }
    return documents


def expected_engagements(messages: list[Message]) -> dict[tuple[str, str], dict[str, Any]]:
    # (account, domain) -> role -> address -> dates of the messages where the address holds the role
    role_dates: dict[tuple[str, str], dict[str, dict[str, list[datetime]]]] = defaultdict(
        lambda: {role: defaultdict(list) for _, role in ROLE_FIELDS}
    )
    # (account, domain) -> dates of the account's messages touching the domain (one per message)
    message_dates: dict[tuple[str, str], list[datetime]] = defaultdict(list)
    for message in messages:
        for address, role in message.roles:
            role_dates[(message.account, domain_of(address))][role][address].append(message.date)
        for domain in {domain_of(address) for address, _ in message.roles}:
            message_dates[(message.account, domain)].append(message.date)

    documents = {}
    for (account, domain), by_role in role_dates.items():
        listings = {role: _engagement_listing(by_role[role]) for _, role in ROLE_FIELDS}
        dates = message_dates[(account, domain)]
        documents[(account, domain)] = {
            "account": account,
            "domain": domain,
            "emails_from": listings[ROLE_FROM],
            "emails_to": listings[ROLE_TO],
            "emails_cc": listings[ROLE_CC],
            "emails_from_count": len(listings[ROLE_FROM]),
            "emails_to_count": len(listings[ROLE_TO]),
            "emails_cc_count": len(listings[ROLE_CC]),
            "total_count": len(dates),
            "earliest_engagement_date": format_date(min(dates)),
            "latest_engagement_date": format_date(max(dates)),
        }
    return documents


def _engagement_listing(dates_by_address: Mapping[str, list[datetime]]) -> list[dict[str, Any]]:
    return [
        {
            "email_address": address,
            "count": len(dates),
            "earliest_engagement_date": format_date(min(dates)),
            "latest_engagement_date": format_date(max(dates)),
        }
        for address, dates in sorted(dates_by_address.items())
    ]


def expected_account_stats(messages: list[Message]) -> dict[str, dict[str, Any]]:
    addresses_by_role: dict[str, dict[str, set[str]]] = {}
    for message in messages:  # every account with a dated message gets a document, even all zeros
        per_role = addresses_by_role.setdefault(message.account, {role: set() for _, role in ROLE_FIELDS})
        for address, role in message.roles:
            per_role[role].add(address)
    documents = {}
    for account, per_role in addresses_by_role.items():
        counts = {role: len(addresses) for role, addresses in per_role.items()}
        documents[account] = {
            "account": account,
            "emails_from_count": counts[ROLE_FROM],
            "emails_to_count": counts[ROLE_TO],
            "emails_cc_count": counts[ROLE_CC],
            "total_emails_count": sum(counts.values()),
        }
    return documents


def expected_domains(messages: list[Message]) -> dict[str, dict[str, Any]]:
    # Across accounts a message is its key: roles are united, and an address's date on a key is the
    # earliest date among the accounts' messages of that key that name the address.
    roles_by_key: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    date_by_key: dict[str, dict[str, datetime]] = defaultdict(dict)
    accounts_by_domain: dict[str, set[str]] = defaultdict(set)
    for message in messages:
        for address, role in message.roles:
            roles_by_key[address][message.key].add(role)
            known = date_by_key[address].get(message.key)
            date_by_key[address][message.key] = message.date if known is None else min(known, message.date)
            accounts_by_domain[domain_of(address)].add(message.account)

    entries_by_domain: dict[str, list[dict[str, Any]]] = defaultdict(list)
    keys_by_domain: dict[str, set[str]] = defaultdict(set)
    for address in sorted(roles_by_key):
        roles_on_keys = roles_by_key[address]
        dates = date_by_key[address].values()
        entries_by_domain[domain_of(address)].append({
            "email_address": address,
            "from_count": sum(ROLE_FROM in roles for roles in roles_on_keys.values()),
            "to_count": sum(ROLE_TO in roles for roles in roles_on_keys.values()),
            "cc_count": sum(ROLE_CC in roles for roles in roles_on_keys.values()),
            "total_count": len(roles_on_keys),
            "first_contact_date": format_date(min(dates)),
            "latest_contact_date": format_date(max(dates)),
        })
        keys_by_domain[domain_of(address)].update(roles_on_keys)

    documents = {}
    for domain, entries in entries_by_domain.items():
        documents[domain] = {
            "domain": domain,
            # Formatted dates sort like the instants they stand for, so min/max of strings is safe.
            "first_contact_date": min(entry["first_contact_date"] for entry in entries),
            "latest_contact_date": max(entry["latest_contact_date"] for entry in entries),
            "total_from": sum(entry["from_count"] for entry in entries),
            "total_to": sum(entry["to_count"] for entry in entries),
            "total_cc": sum(entry["cc_count"] for entry in entries),
            "total_emails": len(keys_by_domain[domain]),
            "accounts": sorted(accounts_by_domain[domain]),
            "email_engagements": entries,
        }
    return documents


# --------------------------------------------------------------------------------------------------
# Reading the actual outputs
# --------------------------------------------------------------------------------------------------


def natural_key(kind: str, document: Mapping[str, Any]) -> Any:
    if kind == "roles":
        return (document.get("account"), document.get("message_id"))
    if kind == "engagements":
        return (document.get("account"), document.get("domain"))
    if kind == "account_stats":
        return document.get("account")
    return document.get("domain")


def project_document(kind: str, source: Mapping[str, Any]) -> dict[str, Any]:
    """Keep only the compared fields (and, in nested lists, the compared entry fields)."""
    projected = {}
    for name in DOCUMENT_FIELDS[kind]:
        if name not in source:
            continue
        value = source[name]
        if name in ENTRY_FIELDS and isinstance(value, list):
            value = [
                {key: entry[key] for key in ENTRY_FIELDS[name] if key in entry} if isinstance(entry, Mapping) else entry
                for entry in value
            ]
        projected[name] = value
    return projected


def read_outputs(es: Any, index_names: Mapping[str, str]) -> dict[str, dict[Any, dict[str, Any]]]:
    """Every document of the four output indices, keyed like ``expected_outputs``.

    A missing index reads as empty. Raises AssertionError when a natural key appears twice.
    """
    from elasticsearch.helpers import scan  # imported here so the oracle itself needs no client

    outputs: dict[str, dict[Any, dict[str, Any]]] = {}
    for kind in INDEX_KINDS:
        index = index_names[kind]
        documents: dict[Any, dict[str, Any]] = {}
        duplicates: list[str] = []
        if es.indices.exists(index=index):
            es.indices.refresh(index=index)
            for hit in scan(es, index=index, query={"query": {"match_all": {}}}):
                document = project_document(kind, hit["_source"])
                key = natural_key(kind, document)
                if key in documents:
                    duplicates.append(f"{key!r} (_id {hit['_id']})")
                documents[key] = document
        if duplicates:
            raise AssertionError(
                f"{index}: {len(duplicates)} duplicated natural key(s), e.g. {', '.join(duplicates[:5])}"
            )
        outputs[kind] = documents
    return outputs


# --------------------------------------------------------------------------------------------------
# Comparing
# --------------------------------------------------------------------------------------------------


def summarise(outputs: Mapping[str, Mapping[Any, Any]]) -> dict[str, int]:
    """Document counts per index, for logs."""
    return {kind: len(outputs.get(kind, {})) for kind in INDEX_KINDS}


def assert_outputs_equal(
    actual: Mapping[str, Mapping[Any, Mapping[str, Any]]],
    expected: Mapping[str, Mapping[Any, Mapping[str, Any]]],
    examples: int = 5,
) -> None:
    """Raise AssertionError with per-index counts and a few readable examples of each difference."""
    summary_lines: list[str] = []
    detail_lines: list[str] = []
    for kind in INDEX_KINDS:
        actual_documents = actual.get(kind, {})
        expected_documents = expected.get(kind, {})
        missing = sorted((key for key in expected_documents if key not in actual_documents), key=repr)
        unexpected = sorted((key for key in actual_documents if key not in expected_documents), key=repr)
        differing = sorted(
            (key for key in expected_documents
             if key in actual_documents and dict(actual_documents[key]) != dict(expected_documents[key])),
            key=repr,
        )
        if not (missing or unexpected or differing):
            continue
        summary_lines.append(
            f"{kind}: expected {len(expected_documents)}, actual {len(actual_documents)}; "
            f"missing {len(missing)}, unexpected {len(unexpected)}, differing {len(differing)}"
        )
        detail_lines += [f"  [{kind}] missing {key!r}" for key in missing[:examples]]
        detail_lines += [f"  [{kind}] unexpected {key!r}" for key in unexpected[:examples]]
        for key in differing[:examples]:
            detail_lines.append(f"  [{kind}] differs {key!r}:")
            differences = describe_differences(expected_documents[key], actual_documents[key])
            detail_lines += [f"      {line}" for line in differences[:12]]
    if summary_lines:
        raise AssertionError("outputs differ from the oracle:\n" + "\n".join(summary_lines + detail_lines))


def describe_differences(expected: Any, actual: Any, path: str = "") -> list[str]:
    """Field-level differences, one line each; lists of entries are aligned by their identity."""
    if expected == actual:
        return []
    if isinstance(expected, Mapping) and isinstance(actual, Mapping):
        lines = []
        for name in sorted(set(expected) | set(actual)):
            where = f"{path}.{name}" if path else name
            if name not in actual:
                lines.append(f"{where}: missing (expected {expected[name]!r})")
            elif name not in expected:
                lines.append(f"{where}: unexpected {actual[name]!r}")
            else:
                lines += describe_differences(expected[name], actual[name], where)
        return lines
    if _is_entry_list(expected) and _is_entry_list(actual):
        return _describe_entry_list_differences(expected, actual, path)
    return [f"{path}: expected {expected!r}, got {actual!r}"]


def _is_entry_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(entry, Mapping) for entry in value)


def _entry_identity(entry: Mapping[str, Any]) -> tuple[Any, ...]:
    return (entry.get("email_address"), entry.get("role"))


def _describe_entry_list_differences(expected: list, actual: list, path: str) -> list[str]:
    expected_by_identity = {_entry_identity(entry): entry for entry in expected}
    actual_by_identity = {_entry_identity(entry): entry for entry in actual}
    lines = []
    for identity in sorted(set(expected_by_identity) | set(actual_by_identity), key=repr):
        label = f"{path}[{'/'.join(str(part) for part in identity if part is not None)}]"
        if identity not in actual_by_identity:
            lines.append(f"{label}: missing entry {expected_by_identity[identity]!r}")
        elif identity not in expected_by_identity:
            lines.append(f"{label}: unexpected entry {actual_by_identity[identity]!r}")
        else:
            lines += describe_differences(expected_by_identity[identity], actual_by_identity[identity], label)
    if not lines:  # same entries, so the order (or a duplicated entry) is what differs
        lines.append(f"{path}: same entries in a different order or multiplicity")
    return lines
