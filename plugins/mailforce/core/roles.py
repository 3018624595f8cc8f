"""Source copies -> messages with roles, and their `search-message-roles` documents (pure).

The roles index is the pipeline's fact table: one row per message of an account, carrying every
(address, role) pair after normalisation and the domain filters. Everything else is computed from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Mapping

from mailforce.core.addresses import address_entries, display_name, domain_of, normalise_address
from mailforce.core.automated import HEADER_FIELDS, header_flagged_addresses
from mailforce.core.conversations import participation_fields
from mailforce.core.dates import format_utc, parse_source_date
from mailforce.core.partitions import message_bucket

ROLE_FROM = "From"
ROLE_TO = "To"
ROLE_CC = "CC"
# Source field -> the role its addresses hold.
ROLE_FIELDS = (("from", ROLE_FROM), ("to", ROLE_TO), ("cc", ROLE_CC))
ROLES = tuple(role for _, role in ROLE_FIELDS)
SOURCE_FIELDS = ["account", "messageId", "date", "from.address", "to.address", "cc.address", *HEADER_FIELDS]
# What the compile stage reads of a roles document (see `roles_document`).
# Role -> the roles-document field listing the addresses holding it.
ROLE_ADDRESS_FIELDS = {ROLE_FROM: "from_addresses", ROLE_TO: "to_addresses", ROLE_CC: "cc_addresses"}


@dataclass
class ExtractionCounts:
    """What the extraction saw and skipped; travels in the run summary."""

    source_documents: int = 0
    skipped_no_date: int = 0
    skipped_no_account: int = 0
    invalid_addresses: int = 0
    filtered_addresses: int = 0


@dataclass
class Message:
    """One message of one account: all its copies united."""

    account: str
    message_id: str
    date: datetime
    roles: set[tuple[str, str]] = field(default_factory=set)  # (email_address, role)
    automated: set[str] = field(default_factory=set)  # addresses its copies' headers flag as automated
    key_date: datetime | None = None  # earliest date of the message id across accounts (None: own date)
    # Every valid, unerased address on it whatever the domain filters (internal ones included): who
    # wrote it and who it went to, for the mailbox's own addresses and the audience (core/conversations.py)
    senders: set[str] = field(default_factory=set)
    recipients: set[str] = field(default_factory=set)
    # (email_address, display name) as the copies' header entries wrote them (core/people.py's suggestions)
    names: set[tuple[str, str]] = field(default_factory=set)

    def merge(self, other: "Message") -> None:
        self.roles |= other.roles
        self.names |= other.names
        self.automated |= other.automated
        self.senders |= other.senders
        self.recipients |= other.recipients
        self.date = min(self.date, other.date)

    def addresses_holding(self, role: str) -> list[str]:
        return sorted({address for address, held in self.roles if held == role})

    @property
    def domains(self) -> list[str]:
        return sorted({domain_of(address) for address, _ in self.roles})


def message_key(hit: Mapping[str, Any]) -> tuple[str, bool]:
    """(key, from_message_id): the messageId when there is one, else the source document id."""
    message_id = hit["_source"].get("messageId")
    if isinstance(message_id, str) and message_id.strip():
        return message_id, True
    return hit["_id"], False


def _field_values(source: Mapping[str, Any], name: str) -> Any:
    """`from.address` as stored either nested (`{"from": {"address": ..}}`) or dotted."""
    container = source.get(name)
    if isinstance(container, Mapping):
        return container.get("address")
    if isinstance(container, list):  # `from: [{"address": ..}, ..]`
        values: list[Any] = []
        for item in container:
            if isinstance(item, Mapping):
                values.extend(address_entries(item.get("address")))
            else:
                values.append(item)
        return values
    return source.get(f"{name}.address")


def message_from_hit(
    hit: Mapping[str, Any], domain_in_scope: Callable[[str], bool], counts: ExtractionCounts,
    suppressed: Callable[[str], bool] | None = None,
) -> Message | None:
    """One source copy as a Message, or None (counted) when it has no date or no account.

    `suppressed` (an address -> erased?) drops erased addresses exactly like internal ones."""
    source = hit["_source"]
    counts.source_documents += 1
    account = source.get("account")
    if not isinstance(account, str) or not account.strip():
        counts.skipped_no_account += 1
        return None
    date = parse_source_date(source.get("date"))
    if date is None:
        counts.skipped_no_date += 1
        return None
    roles: set[tuple[str, str]] = set()
    senders: set[str] = set()
    recipients: set[str] = set()
    names: set[tuple[str, str]] = set()
    for field_name, role in ROLE_FIELDS:
        for entry in address_entries(_field_values(source, field_name)):
            address = normalise_address(entry)
            if address is None:
                counts.invalid_addresses += 1
                continue
            name = display_name(entry)
            if name:
                names.add((address, name))
            erased = suppressed is not None and suppressed(address)
            if not erased:
                (senders if role == ROLE_FROM else recipients).add(address)
            if erased or not domain_in_scope(domain_of(address)):
                counts.filtered_addresses += 1
            else:
                roles.add((address, role))
    key, _ = message_key(hit)
    return Message(account=account, message_id=key, date=date, roles=roles,
                   automated=header_flagged_addresses(source, roles), senders=senders, recipients=recipients,
                   names=names)


def roles_document(message: Message, updated_at: str, run_id: str = "") -> dict[str, Any]:
    return {
        "account": message.account,
        "message_id": message.message_id,
        "date": format_utc(message.date),
        "key_date": format_utc(min(message.key_date or message.date, message.date)),
        "domains": message.domains,
        **{name: message.addresses_holding(role) for role, name in ROLE_ADDRESS_FIELDS.items()},
        "automated_addresses": sorted(message.automated & {address for address, _ in message.roles}),
        "message_roles": [
            {"email_address": address, "domain": domain_of(address), "role": role}
            for address, role in sorted(message.roles)
        ],
        "role_count": len(message.roles),
        **participation_fields(message.senders, message.recipients),
        "message_bucket": message_bucket(message.message_id),
        "run_id": run_id,  # the run that last changed it: its compile adds exactly these messages
        "updated_at": updated_at,
        **display_names_field(message),
    }


def display_names_field(message: Message) -> dict[str, Any]:
    """`display_names` of the message's in-scope addresses, when its header entries carried any (the
    field is left out otherwise, so a document without names is what it was before names were kept)."""
    held = {address for address, _ in message.roles}
    names = sorted((address, name) for address, name in message.names if address in held)
    return {"display_names": [{"email_address": address, "name": name} for address, name in names]} if names else {}


def message_from_roles_document(document: Mapping[str, Any]) -> Message:
    """A message as previously written, to unite with copies seen by a later run."""
    date = parse_source_date(document["date"])
    assert date is not None, "roles documents always carry a date"
    return Message(
        account=document["account"],
        message_id=document["message_id"],
        date=date,
        roles={(entry["email_address"], entry["role"]) for entry in document.get("message_roles", [])},
        automated=set(document.get("automated_addresses") or ()),
        key_date=parse_source_date(document.get("key_date")) if document.get("key_date") else None,
        senders=set(document.get("sender_addresses") or ()),
        recipients=set(document.get("recipient_addresses") or ()),
        names={(entry["email_address"], entry["name"]) for entry in document.get("display_names") or ()},
    )
