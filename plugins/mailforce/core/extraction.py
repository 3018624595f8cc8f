"""The pure steps of extracting message roles: uniting copies, classifying against what is stored.

Reading the source and the stored roles documents, and writing the changed ones, are the I/O
around them (`mailforce.es.reads`, `mailforce.es.writes`; `mailforce.stages.extract_message_roles`
puts the four together).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from mailforce.core.batches import without
from mailforce.core.ids import document_id
from mailforce.core.roles import (
    ExtractionCounts,
    Message,
    message_from_hit,
    message_from_roles_document,
    message_key,
    roles_document,
)
from mailforce.core.summaries import ExtractionSummary

# Fields that say when and by which run a document was written, not what it holds.
WRITE_STAMP_FIELDS = ("updated_at", "run_id")


def roles_document_id(message: Message) -> str:
    return document_id(message.account, message.message_id)


def united_messages(
    hits: Iterable[Mapping[str, Any]], domain_in_scope: Callable[[str], bool], counts: ExtractionCounts
) -> Iterator[Message]:
    """Source copies sorted by (account, messageId) -> one Message per (account, messageId).

    Copies of one message arrive together (the scan's sort); a copy without a messageId is keyed
    by its own document id and is a message by itself. Skipped copies are counted in `counts`.
    """
    current: Message | None = None
    for hit in hits:
        message = message_from_hit(hit, domain_in_scope, counts)
        if message is None:
            continue
        _, from_message_id = message_key(hit)
        if not from_message_id:
            yield message
            continue
        if current is not None and (current.account, current.message_id) == (message.account, message.message_id):
            current.merge(message)
            continue
        if current is not None:
            yield current
        current = message
    if current is not None:
        yield current


@dataclass(frozen=True)
class StoredCopies:
    """What the roles index held of a batch of messages before this run wrote them."""

    documents: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # roles document id -> document
    holders: Mapping[str, set[str]] = field(default_factory=dict)  # message id -> accounts holding it


@dataclass
class ExtractionTally:
    """What the classification counted over the whole window; becomes the extraction summary."""

    messages: int = 0
    accounts: set[str] = field(default_factory=set)
    work_by_domain: Counter = field(default_factory=Counter)
    role_entries: Counter = field(default_factory=Counter)
    recompute_domains: set[str] = field(default_factory=set)

    def summary(self, counts: ExtractionCounts, roles_written: int, undated_source_documents: int) -> ExtractionSummary:
        return ExtractionSummary(
            messages=self.messages,
            accounts=tuple(sorted(self.accounts)),
            work_by_domain=dict(self.work_by_domain),
            recompute_domains=tuple(sorted(self.recompute_domains)),
            role_entries=dict(self.role_entries),
            roles_written=roles_written,
            undated_source_documents=undated_source_documents,
            counts=counts,
        )


def classify_messages(
    messages: Sequence[Message], stored: StoredCopies, tally: ExtractionTally, updated_at: str, run_id: str
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(id, roles document) of each message whose document must be written; tallies every message.

    A message already stored (a copy seen by an earlier run) is united with it, so its roles and
    earliest date cover every run; an unchanged document is not written again.
    """
    for message in messages:
        identifier = roles_document_id(message)
        tally.messages += 1
        tally.accounts.add(message.account)
        previous = stored.documents.get(identifier)
        if previous is not None:
            message.merge(message_from_roles_document(previous))
        if not message.roles:
            continue
        # Every message of the window marks its domains, changed or not: a run that died after
        # this stage left them uncompiled, and its re-run must compile them.
        for address, role in message.roles:
            tally.work_by_domain[address.rpartition("@")[2]] += 1
            tally.role_entries[role] += 1
        # A message that some run already counted (this copy or another mailbox's) cannot simply
        # be added to the stored figures: its domains are recomputed over all time.
        if previous is not None or stored.holders.get(message.message_id, set()) - {message.account}:
            tally.recompute_domains.update(message.domains)
        document = roles_document(message, updated_at, run_id)
        if previous is not None and without(previous, *WRITE_STAMP_FIELDS) == without(document, *WRITE_STAMP_FIELDS):
            continue
        yield identifier, document
