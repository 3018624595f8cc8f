"""Stage 2: the window's source copies -> one roles document per message (the fact table).

Four steps, each testable alone: read the window (`scan_window_messages`, I/O), unite copies
(`united_messages`, pure), classify against what is stored (`read_stored_copies` then
`classify_messages`, pure), write what changed (`bulk_write`, I/O).
"""

from __future__ import annotations

import logging
import time
from typing import Any, Iterator

from mailforce.core.dates import format_utc, utc_now
from mailforce.core.extraction import (
    ExtractionTally,
    classify_messages,
    grouped_batches,
    united_messages,
)
from mailforce.core.extraction_slices import WHOLE_WINDOW, ExtractionSlice
from mailforce.core.roles import ExtractionCounts
from mailforce.core.summaries import ExtractionSummary
from mailforce.core.window import Window
from mailforce.core.wording import describe_window, plural
from mailforce.es.reads import (
    count_undated,
    future_dated,
    read_stored_copies,
    scan_window_messages,
)
from mailforce.es.suppressions import read_suppressions
from mailforce.es.writes import bulk_write, index_actions, refresh
from mailforce.settings import Settings

log = logging.getLogger(__name__)

MAX_NAMED = 10  # late accounts and days named in the log line; the counts are complete


def extract_message_roles(
    es, settings: Settings, window: Window, run_id: str = "", *, updated_at: str | None = None,
    extraction_slice: ExtractionSlice = WHOLE_WINDOW,
) -> ExtractionSummary:
    """Read the window's source copies once and write one roles document per message.

    With `extraction_slice`, only the messages of that slice of message ids (every copy of each, in
    every mailbox: `mailforce.core.extraction_slices`); the slices' summaries are merged by
    `merge_extractions`, and the window-wide counts (undated, future-dated) are made by slice 1 only.

    Messages already in the roles index (copies seen by an earlier run) are united with the new
    copies, so a message's roles and earliest date cover every run. A message an earlier successful
    run counted, unchanged, costs its lookup only. Every counted message gets a ledger record.
    Returns the accounts seen, the work per domain for partitioning, the domains that must be
    recomputed over all time (those of a message some run already counted), and counts.
    """
    updated_at = updated_at or format_utc(utc_now())
    counts = ExtractionCounts()
    tally = ExtractionTally()
    # Messages dated at or before the window start were due in an earlier run: late (or reconciled).
    # A reconciliation counts only what every run before it missed: all of it is late.
    late_at_or_before = window.window_end if window.reconciliation else window.window_start
    if window.backfill:
        late_at_or_before = None  # a backfill re-reads on purpose
    # Below the window start, a run reading back by the allowed lateness re-reads earlier windows'
    # messages: those unchanged are lookups, not this window's processed messages.
    lateness_margin_end = window.window_start if window.read_from is not None else None

    # Erased addresses and domains (docs/ERASURE.md): read once per call, dropped like internal ones.
    suppressions = read_suppressions(es, settings)
    if suppressions:
        log.info("Honouring %s and %s (suppression list)",
                 plural(len(suppressions.addresses), "erased address", "erased addresses"),
                 plural(len(suppressions.domains), "erased domain"))

    def actions() -> Iterator[dict[str, Any]]:
        hits = scan_window_messages(es, settings.source_index, window, settings.scan_page_size, settings.scroll_keep_alive,
                                    extraction_slice)
        messages = united_messages(hits, settings.domain_in_scope, counts,
                                   suppressions.suppresses if suppressions else None)
        for batch in grouped_batches(messages, settings.lookup_batch_size):
            stored = read_stored_copies(es, settings, batch)
            ledger: list[tuple[str, dict[str, Any]]] = []
            roles = list(classify_messages(batch, stored, tally, updated_at, run_id, ledger=ledger,
                                           late_at_or_before=late_at_or_before,
                                           lateness_margin_end=lateness_margin_end))
            yield from index_actions(settings.roles_index, roles)
            yield from index_actions(settings.ledger_index, ledger)

    started = time.monotonic()
    written = bulk_write(es, actions(), settings.bulk_chunk, "message roles")  # and their ledger records
    roles_written = written - tally.ledger_written
    # Searches see a write only after a refresh: the compile's scans, and the next runs' lookups of
    # other accounts' copies and reconciliation's ledger counts, search what was just written.
    refresh(es, settings.roles_index, settings.ledger_index)
    undated, future_count, future_max = 0, 0, None
    if extraction_slice.number == 1:  # window-wide counts: once per run
        undated = count_undated(es, settings.source_index, window)
        future_count, future_max = future_dated(es, settings.source_index, window)
    summary = tally.summary(counts, roles_written, undated, future_dated_messages=future_count,
                            future_dated_max_date=future_max, ledger_written=tally.ledger_written,
                            sliced=not extraction_slice.whole)
    log.info(
        "Window %s%s: processed %s of %s from %s in %.1f s: counted %s (new, changed or late), %s already "
        "counted and unchanged (looked up only); wrote %s, touching %s; skipped %d without date, %d without "
        "account; %s; %s carry no usable date at all; %s re-read for the allowed lateness, unchanged; %s of "
        "messages other mailboxes had counted (added to their mailbox's figures only)",
        describe_window(window), "" if extraction_slice.whole else f", slice {extraction_slice.label}",
        plural(summary.processed_messages, "message"),
        plural(summary.processed_accounts_count, "account"), plural(counts.source_documents, "source document"),
        time.monotonic() - started, plural(summary.messages, "message"),
        f"{summary.processed_messages - summary.messages:,}",
        plural(roles_written, "roles document"), plural(summary.domains_count, "domain"),
        counts.skipped_no_date, counts.skipped_no_account, plural(counts.invalid_addresses, "invalid address", "invalid addresses"),
        plural(undated, "source document"),
        plural(summary.unchanged_messages - (summary.processed_messages - summary.messages), "message"),
        plural(summary.counted_elsewhere, "new copy", "new copies"),
    )
    log.log(logging.WARNING if summary.late_messages else logging.INFO, late_messages_sentence(summary, window))
    if future_count:
        log.warning(
            "%s dated after this window's end (a sender's clock ahead?), the latest %s; "
            "they are counted by the run whose window reaches their date",
            plural(future_count, "source document"), future_max,
        )
    return summary


def late_messages_sentence(summary: ExtractionSummary, window: Window) -> str:
    """What the run counted late, in words that fit the run: before the window, or missed by every
    earlier run (a reconciliation); every late day counted, the first few named."""
    if window.backfill:
        return "Counted no late messages (a backfill re-reads its accounts on purpose)"
    why = ("missed by every earlier run, found by this reconciliation" if window.reconciliation
           else "dated at or before this window's start")
    if not summary.late_messages:
        return ("Counted no late messages (the reconciliation found nothing missing)" if window.reconciliation
                else "Counted no late messages (none dated at or before this window's start)")
    shown = summary.late_days[:MAX_NAMED]
    more = summary.late_days_count - len(shown)
    return (f"Counted {plural(summary.late_messages, 'late message')} ({why}) in "
            f"{plural(len(summary.late_accounts), 'account')} ({', '.join(summary.late_accounts[:MAX_NAMED])}"
            f"{f', and {len(summary.late_accounts) - MAX_NAMED:,} more' if len(summary.late_accounts) > MAX_NAMED else ''}), "
            f"on {plural(summary.late_days_count, 'day')} ({', '.join(shown)}{f', and {more:,} more' if more > 0 else ''})")
