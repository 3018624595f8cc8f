"""Conversations, not co-occurrence: each mailbox's own addresses, direct exchange and its audience,
and robots recognised by behaviour (pure; docs/SEMANTICS.md, "Conversations").

A relationship used to be co-occurrence: an address CC'd on mail a mailbox merely received counted
like one the mailbox wrote to. Knowing the mailbox's own addresses (its *owner* addresses: a setting,
or inferred from its mail) tells a direct exchange apart: the owner wrote to the address, or the
address wrote to the owner. A message weighs by its audience, in integer millionths
(`AUDIENCE_UNIT // audience`), so that adding a window's figures and recomputing over all time agree
to the unit: a mail to fifty people is not fifty relationships.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

AUDIENCE_UNIT = 1_000_000  # a message to one recipient weighs this much in `direct_weight`
OWNER_CANDIDATES = 3  # addresses kept as evidence on the account statistics document
DEFAULT_BROADCAST_MIN_MESSAGES = 20
DEFAULT_BROADCAST_MIN_AUDIENCE = 10

OWNER_FROM_SETTING = "setting"
OWNER_INFERRED = "inferred"
OWNER_UNKNOWN = "none"

REASON_PATTERN = "pattern"
REASON_HEADER = "header"
REASON_BROADCAST = "broadcast"


def participation_fields(senders: Iterable[str], recipients: Iterable[str]) -> dict[str, Any]:
    """A roles document's view of who wrote a message and who it went to, the domain filters aside."""
    sender_list, recipient_list = sorted(set(senders)), sorted(set(recipients))
    return {
        "sender_addresses": sender_list,
        "recipient_addresses": recipient_list,
        "participants": sorted(set(sender_list) | set(recipient_list)),
        "audience": len(recipient_list),
    }


def audience_weight(audience: int) -> int:
    """What one direct message to `audience` recipients weighs, in millionths of a message."""
    return AUDIENCE_UNIT // audience if audience > 0 else 0


@dataclass(frozen=True)
class OwnerEvidence:
    """How many of an account's messages (with a roles document) each address is on: the top ones."""

    messages: int = 0
    candidates: tuple[tuple[str, int], ...] = ()  # (address, messages), most messages first, then address

    def to_document(self) -> dict[str, Any]:
        return {"messages": self.messages,
                "candidates": [{"email_address": address, "messages": count} for address, count in self.candidates]}

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> "OwnerEvidence":
        return cls(messages=int(document.get("messages") or 0),
                   candidates=tuple((entry["email_address"], int(entry["messages"]))
                                    for entry in document.get("candidates") or ()))


def ranked_candidates(counts: Mapping[str, int], limit: int = OWNER_CANDIDATES) -> tuple[tuple[str, int], ...]:
    return tuple(sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:limit])


def _stored_plus_new(stored: OwnerEvidence, new_counts: Mapping[str, int]) -> dict[str, int]:
    return {address: count + new_counts.get(address, 0) for address, count in stored.candidates}


def doubtful_addresses(stored: OwnerEvidence, new_counts: Mapping[str, int]) -> tuple[str, ...]:
    """The addresses on new messages whose totals the stored evidence does not tell well enough to
    know whether they reach the new top three (sorted).

    `stored` must be exact over the account's messages before the new ones; `new_counts` holds every
    address on the new messages (none of them among the stored messages), with its messages. A stored
    candidate's total adds up exactly. When fewer than three are stored, every other address was on
    no stored message: its total is its new count. Otherwise any other address was on no more stored
    messages than the stored third candidate (on as many only when it sorts after it), so its total is
    at most that plus its new messages; it is in doubt when that bound could tie or beat the new third
    place (a tie counts when it sorts before it). An address on no new message never is (its bound is
    the stored third's count, which no candidate's total falls below)."""
    if len(stored.candidates) < OWNER_CANDIDATES:
        return ()
    third_address, third_count = ranked_candidates(_stored_plus_new(stored, new_counts))[-1]
    stored_third = stored.candidates[-1][1]
    candidates = {address for address, _ in stored.candidates}
    return tuple(sorted(
        address for address, count in new_counts.items() if address not in candidates
        and (stored_third + count > third_count or (stored_third + count == third_count and address < third_address))))


def evidence_with_new_mail(stored: OwnerEvidence, new_messages: int, new_counts: Mapping[str, int],
                           counted: Mapping[str, int] | None = None) -> OwnerEvidence:
    """The evidence over the stored messages plus `new_messages` new ones (see `doubtful_addresses`),
    from the stored evidence, the new counts and `counted`: the exact totals over all the account's
    messages of every doubtful address. Every address left out provably ranks below the top three."""
    totals = _stored_plus_new(stored, new_counts)
    if len(stored.candidates) < OWNER_CANDIDATES:  # every other address was on no stored message
        totals = {**new_counts, **totals}
    totals.update(counted or {})
    return OwnerEvidence(stored.messages + new_messages, ranked_candidates(totals))


def inferred_owner(evidence: OwnerEvidence) -> str | None:
    """The address on the most of the account's messages, when it is on at least half of them and
    on more than any other address; None otherwise (no address stands out as the mailbox's own: a
    tie is not broken by guessing, the setting `account_addresses` decides)."""
    if not evidence.candidates:
        return None
    address, count = evidence.candidates[0]
    runner_up = evidence.candidates[1][1] if len(evidence.candidates) > 1 else 0
    return address if 2 * count >= evidence.messages and count > runner_up else None


def owner_fields(configured: Iterable[str], evidence: OwnerEvidence) -> dict[str, Any]:
    """The owner fields of an account statistics document: the setting's addresses when it names
    the account, else the inferred one (if any); the evidence always."""
    configured = sorted(set(configured))
    if configured:
        addresses, source = configured, OWNER_FROM_SETTING
    else:
        owner = inferred_owner(evidence)
        addresses, source = ([owner], OWNER_INFERRED) if owner else ([], OWNER_UNKNOWN)
    return {"owner_addresses": addresses, "owner_source": source, "owner_evidence": evidence.to_document()}


@dataclass(frozen=True)
class DirectExchange:
    """What one message of an account says of one address of it: exchanged directly, which way."""

    address_wrote: bool  # the address is a sender and an owner address a recipient
    owner_wrote: bool  # an owner address is a sender and the address a recipient

    @property
    def direct(self) -> bool:
        return self.address_wrote or self.owner_wrote


NO_EXCHANGE = DirectExchange(False, False)


def direct_exchange(roles: Iterable[str], senders: Iterable[str], recipients: Iterable[str],
                    owners: frozenset[str], address: str) -> DirectExchange:
    """`roles`: the roles `address` holds on the message; an owner address exchanges nothing with itself."""
    if not owners or address in owners:
        return NO_EXCHANGE
    roles = set(roles)
    return DirectExchange(
        address_wrote="From" in roles and not owners.isdisjoint(recipients),
        owner_wrote=bool(roles & {"To", "CC"}) and not owners.isdisjoint(senders),
    )


@dataclass(frozen=True)
class BroadcastRule:
    """An address is a broadcaster when it sent at least `min_messages` messages each to at least
    `min_audience` recipients and no account's owner ever wrote to it."""

    min_messages: int = DEFAULT_BROADCAST_MIN_MESSAGES
    min_audience: int = DEFAULT_BROADCAST_MIN_AUDIENCE

    def flags(self, broadcast_messages: int, answered_count: int) -> bool:
        return broadcast_messages >= self.min_messages and answered_count == 0


def automated_reason(*, pattern: bool, header: bool, broadcast: bool) -> str | None:
    """The first rule that flags an address: its name (`pattern`, `header`), then its behaviour."""
    if pattern:
        return REASON_PATTERN
    if header:
        return REASON_HEADER
    if broadcast:
        return REASON_BROADCAST
    return None


def no_owners(account: str) -> frozenset[str]:
    return frozenset()


@dataclass(frozen=True)
class Conversations:
    """What a rollup needs to tell conversations apart: each account's owner addresses (looked up
    once each), and the broadcast rule's audience."""

    owners_of: Callable[[str], frozenset[str]] = no_owners
    broadcast: BroadcastRule = field(default_factory=BroadcastRule)
