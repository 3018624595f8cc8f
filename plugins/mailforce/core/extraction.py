"""The pure steps of extracting message roles: uniting copies, classifying against what is stored.

Reading the source and the stored roles documents, and writing the changed ones, are the I/O
around them (`mailforce.es.reads`, `mailforce.es.writes`; `mailforce.stages.extract_message_roles`
puts the four together).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from mailforce.core.batches import without
from mailforce.core.dates import format_utc, parse_source_date
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

# Set (true) on the roles document of a copy that a run added to the per-account figures only,
# because another mailbox's copy, counted by a successful run, already counted the message in
# every cross-mailbox figure (see `counted_elsewhere`). How a copy was counted, not what it holds.
COUNTED_ELSEWHERE = "counted_elsewhere"
# Fields that say when, by which run and how a document was written, not what it holds.
WRITE_STAMP_FIELDS = ("updated_at", "run_id", COUNTED_ELSEWHERE)


def roles_document_id(message: Message) -> str:
    return document_id(message.account, message.message_id)


def united_messages(
    hits: Iterable[Mapping[str, Any]], domain_in_scope: Callable[[str], bool], counts: ExtractionCounts,
    suppressed: Callable[[str], bool] | None = None,
) -> Iterator[Message]:
    """Source copies sorted by (account, messageId) -> one Message per (account, messageId).

    Copies of one message arrive together (the scan's sort); a copy without a messageId is keyed
    by its own document id and is a message by itself. Skipped copies are counted in `counts`.
    """
    current: Message | None = None
    for hit in hits:
        message = message_from_hit(hit, domain_in_scope, counts, suppressed)
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


def message_groups(messages: Iterable[Message]) -> Iterator[list[Message]]:
    """Consecutive messages of one message id (the copies of one mail in several accounts).

    The scan sorts by messageId then account, so a message id's accounts come together; a message
    keyed by its own document id never shares its key.
    """
    group: list[Message] = []
    for message in messages:
        if group and group[0].message_id != message.message_id:
            yield group
            group = []
        group.append(message)
    if group:
        yield group


def grouped_batches(messages: Iterable[Message], size: int) -> Iterator[list[Message]]:
    """Batches of about `size` messages that never split one message id's group."""
    batch: list[Message] = []
    for group in message_groups(messages):
        batch.extend(group)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def ledger_document_id(message: Message) -> str:
    return document_id(message.account, message.message_id)


def ledger_document(message: Message, run_id: str, updated_at: str) -> dict[str, Any]:
    """The ledger's record that a run counted this (account, message): reconciliation compares it."""
    return {
        "account": message.account,
        "message_id": message.message_id,
        "date": format_utc(message.date),
        "day": format_utc(message.date)[:10],
        "run_id": run_id,
        "updated_at": updated_at,
    }


@dataclass(frozen=True)
class StoredCopies:
    """What the roles index held of a batch of messages before this run wrote them."""

    documents: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # roles document id -> document
    holders: Mapping[str, set[str]] = field(default_factory=dict)  # message id -> accounts holding it
    # message id -> (roles document id, document) of every stored account's copy (for key_date)
    by_message: Mapping[str, Sequence[tuple[str, Mapping[str, Any]]]] = field(default_factory=dict)
    # run ids of the stored documents that have a runtime-stats record (None: not looked up)
    successful_runs: frozenset[str] | None = None
    ledger: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # ledger id -> document

    def written_by_successful_run(self, document: Mapping[str, Any] | None) -> bool:
        return (
            document is not None
            and self.successful_runs is not None
            and bool(document.get("run_id"))
            and document.get("run_id") in self.successful_runs
        )


MAX_REPORTED_LATE_DAYS = 100  # late days listed in the run stats; the count is always complete


@dataclass
class ExtractionTally:
    """What the classification counted over the whole window; becomes the extraction summary."""

    messages: int = 0  # counted by this run: new, changed or late
    accounts: set[str] = field(default_factory=set)  # of the counted messages
    work_by_domain: Counter = field(default_factory=Counter)
    role_entries: Counter = field(default_factory=Counter)
    recompute_domains: set[str] = field(default_factory=set)
    unchanged_messages: int = 0  # counted by an earlier successful run, unchanged: looked up only
    window_unchanged_messages: int = 0  # those of them dated in the window (not re-read for the lateness)
    processed_accounts: set[str] = field(default_factory=set)  # of the counted and the window's unchanged
    late_messages: int = 0  # counted now, dated at or before the window start
    late_accounts: set[str] = field(default_factory=set)
    late_days: set[str] = field(default_factory=set)
    key_dates_rewritten: int = 0  # other accounts' documents whose key_date a new copy lowered
    counted_elsewhere: int = 0  # new copies added to per-account figures only (`counted_elsewhere`)
    ledger_written: int = 0
    # accounts with a stored roles document this run counted again or moved the key date of
    rewritten_accounts: set[str] = field(default_factory=set)

    def count_late(self, message: Message, late_at_or_before: datetime | None) -> None:
        if late_at_or_before is not None and message.date <= late_at_or_before:
            self.late_messages += 1
            self.late_accounts.add(message.account)
            self.late_days.add(format_utc(message.date)[:10])

    def count_unchanged(self, message: Message, lateness_margin_end: datetime | None) -> None:
        """A message an earlier successful run counted, unchanged: part of this run's processed
        messages when dated in its window, a lookup only when re-read for the allowed lateness."""
        self.unchanged_messages += 1
        if lateness_margin_end is None or message.date > lateness_margin_end:
            self.window_unchanged_messages += 1
            self.processed_accounts.add(message.account)

    def summary(self, counts: ExtractionCounts, roles_written: int, undated_source_documents: int,
                *, sliced: bool = False, **extra: Any) -> ExtractionSummary:
        """The summary; a slice's (`sliced`) lists every late day and its unchanged messages' other
        accounts, so that the slices' summaries unite exactly (`mailforce.core.extraction_slices`)."""
        return ExtractionSummary(
            messages=self.messages,
            accounts=tuple(sorted(self.accounts)),
            work_by_domain=dict(self.work_by_domain),
            recompute_domains=tuple(sorted(self.recompute_domains)),
            role_entries=dict(self.role_entries),
            roles_written=roles_written,
            undated_source_documents=undated_source_documents,
            counts=counts,
            unchanged_messages=self.unchanged_messages,
            late_messages=self.late_messages,
            late_accounts=tuple(sorted(self.late_accounts)),
            late_days=tuple(sorted(self.late_days)[:None if sliced else MAX_REPORTED_LATE_DAYS]),
            late_days_count=len(self.late_days),
            processed_messages=self.messages + self.window_unchanged_messages,
            processed_accounts_count=len(self.processed_accounts | self.accounts),
            counted_elsewhere=self.counted_elsewhere,
            unchanged_accounts=tuple(sorted(self.processed_accounts - self.accounts)) if sliced else (),
            rewritten_accounts=tuple(sorted(self.rewritten_accounts)),
            **extra,
        )


def _stored_date(document: Mapping[str, Any]) -> datetime:
    date = parse_source_date(document.get("key_date") or document["date"])
    assert date is not None, "roles documents always carry a date"
    return date


def _stored_roles(document: Mapping[str, Any]) -> set[tuple[str, str]]:
    return {(entry["email_address"], entry["role"]) for entry in document.get("message_roles") or ()}


def counted_elsewhere(
    message: Message, previous: Mapping[str, Any] | None, others: Sequence[Mapping[str, Any]], key_date: datetime,
    stored: StoredCopies,
) -> bool:
    """Whether this copy adds nothing to the cross-mailbox figures of its message.

    True for a new copy (no document of its own yet) of a message that other mailboxes' copies,
    all written by successful runs, already counted with a date no later than this copy's, with
    every (address, role) this copy names, and with an audience no smaller than this copy's. Contacts, domain totals and the domain timeline
    count a message once, on its key_date, with the union of its copies' roles: none of them
    changes, so this copy is added to the per-account figures only (engagements, relationships,
    the account's timeline) and to the accounts that know each address, and its domains need no
    recomputation over all time.
    """
    if previous is not None or not others or not message.roles:
        return False
    if not all(stored.written_by_successful_run(document) for document in others):
        return False
    if min(_stored_date(document) for document in others) != key_date:
        return False
    # a larger audience could make the message a broadcast of its sender (docs/SEMANTICS.md, "Conversations")
    if len(message.recipients) > min(int(document.get("audience") or 0) for document in others):
        return False
    union: set[tuple[str, str]] = set()
    for document in others:
        union |= _stored_roles(document)
    return message.roles <= union


@dataclass(frozen=True)
class ClassifyRun:
    """What every message of one classification shares: the run, what is stored, the tally kept."""

    stored: StoredCopies
    tally: ExtractionTally
    updated_at: str
    run_id: str
    ledger: list[tuple[str, dict[str, Any]]] | None  # the counted messages' ledger records, appended
    late_at_or_before: datetime | None  # a message dated at or before this is late
    lateness_margin_end: datetime | None  # unchanged messages dated at or before this were re-read for the lateness


def classify_messages(
    messages: Sequence[Message],
    stored: StoredCopies,
    tally: ExtractionTally,
    updated_at: str,
    run_id: str,
    *,
    ledger: list[tuple[str, dict[str, Any]]] | None = None,
    late_at_or_before: datetime | None = None,
    lateness_margin_end: datetime | None = None,
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(id, roles document) of each message whose document must be written; tallies every message.

    A message already stored (a copy seen by an earlier run) is united with it, so its roles and
    earliest date cover every run; an unchanged document is not written again. A message that an
    earlier successful run counted, unchanged, costs this lookup and nothing else. Every message id
    gets one key_date (its earliest date among the copies that have a roles document, in any
    account): a copy that lowers it rewrites the other
    accounts' stored documents with it (keeping their run_id) and marks their domains. The ledger
    records of the counted messages are appended to `ledger` when given. An unchanged message dated
    at or before `lateness_margin_end` (the window start of a run reading back by the allowed
    lateness) was re-read for the lateness only: it is not one of the window's processed messages.
    """
    run = ClassifyRun(stored, tally, updated_at, run_id, ledger, late_at_or_before, lateness_margin_end)
    for group in message_groups(messages):
        accounts = {message.account for message in group}
        previous_of: dict[str, Mapping[str, Any] | None] = {}
        for message in group:
            previous = stored.documents.get(roles_document_id(message))
            previous_of[roles_document_id(message)] = previous
            if previous is not None:
                message.merge(message_from_roles_document(previous))
        others = [(identifier, document) for identifier, document in stored.by_message.get(group[0].message_id, ())
                  if document.get("account") not in accounts]
        # Only copies that keep an address (and so a roles document) date the message across
        # mailboxes (docs/SEMANTICS.md); a copy left with none does not.
        dated = [message.date for message in group if message.roles] + [_stored_date(document) for _, document in others]
        key_date = min(dated) if dated else min(message.date for message in group)
        for message in group:
            message.key_date = key_date
        for identifier, document in others:
            if _stored_date(document) > key_date:
                rewritten = {**document, "key_date": format_utc(key_date), "updated_at": updated_at}
                tally.key_dates_rewritten += 1
                tally.recompute_domains.update(document.get("domains") or ())
                tally.rewritten_accounts.add(document.get("account") or "")
                yield identifier, rewritten
        other_documents = [document for _, document in others]
        for message in group:
            previous = previous_of[roles_document_id(message)]
            elsewhere = counted_elsewhere(message, previous, other_documents, key_date, stored)
            yield from _classify_one(message, previous, run, elsewhere=elsewhere)


def _classify_one(
    message: Message, previous: Mapping[str, Any] | None, run: ClassifyRun, *, elsewhere: bool = False
) -> Iterator[tuple[str, dict[str, Any]]]:
    stored, tally, updated_at, run_id = run.stored, run.tally, run.updated_at, run.run_id
    identifier = roles_document_id(message)
    recorded = stored.ledger.get(ledger_document_id(message))
    recorded_same = recorded is not None and recorded.get("date") == format_utc(message.date)
    if not message.roles:
        if recorded_same and stored.written_by_successful_run(recorded):
            tally.count_unchanged(message, run.lateness_margin_end)
            return
        _count(message, run)
        return
    document = roles_document(message, updated_at, run_id)
    if elsewhere:
        document[COUNTED_ELSEWHERE] = True
    unchanged = previous is not None and without(dict(previous), *WRITE_STAMP_FIELDS) == without(
        document, *WRITE_STAMP_FIELDS)
    if unchanged and stored.written_by_successful_run(previous) and (recorded is not None or run.ledger is None):
        tally.count_unchanged(message, run.lateness_margin_end)  # an earlier successful run counted exactly this
        return
    _count(message, run)
    if previous is not None:  # not only added to the account's messages: its owner evidence is counted again
        tally.rewritten_accounts.add(message.account)
    # Every counted message marks its domains, changed or not: a run that died after this stage
    # left them uncompiled, and its re-run must compile them.
    for address, role in message.roles:
        tally.work_by_domain[address.rpartition("@")[2]] += 1
        tally.role_entries[role] += 1
    # A message that some run already counted (this copy or another mailbox's) cannot simply
    # be added to the stored figures: its domains are recomputed over all time, unless the copy
    # adds nothing to the cross-mailbox figures (`counted_elsewhere`).
    if elsewhere:
        tally.counted_elsewhere += 1
    elif previous is not None or stored.holders.get(message.message_id, set()) - {message.account}:
        tally.recompute_domains.update(message.domains)
    if unchanged:
        return
    yield identifier, document


def _count(message: Message, run: ClassifyRun) -> None:
    tally = run.tally
    tally.messages += 1
    tally.accounts.add(message.account)
    tally.count_late(message, run.late_at_or_before)
    if run.ledger is not None:
        run.ledger.append((ledger_document_id(message), ledger_document(message, run.run_id, run.updated_at)))
        tally.ledger_written += 1
