"""Stage 2: the window's source copies -> one roles document per message (the fact table).

Four steps, each testable alone: read the window (`scan_window_messages`, I/O), unite copies
(`united_messages`, pure), classify against what is stored (`read_stored_copies` then
`classify_messages`, pure), write what changed (`bulk_write`, I/O).
"""

from __future__ import annotations

import logging
import time
from typing import Any, Iterator

from mailforce.core.batches import batched
from mailforce.core.dates import format_utc, utc_now
from mailforce.core.extraction import ExtractionTally, classify_messages, united_messages
from mailforce.core.roles import ExtractionCounts
from mailforce.core.summaries import ExtractionSummary
from mailforce.core.window import Window
from mailforce.es.reads import count_undated, read_stored_copies, scan_window_messages
from mailforce.es.writes import bulk_write, index_actions, refresh
from mailforce.settings import Settings

log = logging.getLogger(__name__)


def extract_message_roles(
    es, settings: Settings, window: Window, run_id: str = "", *, updated_at: str | None = None
) -> ExtractionSummary:
    """Read the window's source copies once and write one roles document per message.

    Messages already in the roles index (copies seen by an earlier run) are united with the new
    copies, so a message's roles and earliest date cover every run. Returns the accounts seen, the
    work per domain for partitioning, the domains that must be recomputed over all time (those of
    a message some run already counted), and counts.
    """
    updated_at = updated_at or format_utc(utc_now())
    counts = ExtractionCounts()
    tally = ExtractionTally()

    def documents() -> Iterator[tuple[str, dict[str, Any]]]:
        hits = scan_window_messages(es, settings.source_index, window, settings.scan_page_size, settings.scroll_keep_alive)
        for batch in batched(united_messages(hits, settings.domain_in_scope, counts), settings.lookup_batch_size):
            stored = read_stored_copies(es, settings, batch)
            yield from classify_messages(batch, stored, tally, updated_at, run_id)

    started = time.monotonic()
    roles_written = bulk_write(es, index_actions(settings.roles_index, documents()), settings.bulk_chunk_size,
                               "message roles")
    refresh(es, settings.roles_index)  # compile searches what was just written
    undated = count_undated(es, settings.source_index, window)
    summary = tally.summary(counts, roles_written, undated)
    log.info(
        "Extracted %d messages of %d accounts from %d source documents in %.1f s: %d roles documents, "
        "%d domains; skipped %d without date, %d without account; %d invalid addresses; "
        "%d source documents carry no usable date at all",
        summary.messages, summary.accounts_count, counts.source_documents, time.monotonic() - started, roles_written,
        summary.domains_count, counts.skipped_no_date, counts.skipped_no_account, counts.invalid_addresses, undated,
    )
    return summary
