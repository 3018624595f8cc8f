"""Stage 6: per account seen in the window, distinct addresses per role."""

from __future__ import annotations

import logging
from typing import Iterator, Sequence

from mailforce.core.batches import batched
from mailforce.core.dates import format_utc, utc_now
from mailforce.core.ids import document_id
from mailforce.core.wording import plural
from mailforce.es.reads import sums_by_account
from mailforce.es.writes import bulk_write, index_actions, refresh
from mailforce.settings import Settings

log = logging.getLogger(__name__)

ACCOUNTS_PER_QUERY = 1_000  # terms per aggregation query, and buckets per response
COUNT_FIELDS = ("emails_from_count", "emails_to_count", "emails_cc_count")


def account_statistics_documents(
    es, settings: Settings, accounts: Sequence[str], updated_at: str
) -> Iterator[tuple[str, dict]]:
    """Distinct addresses per role for each account, summed from its engagement documents.

    An address belongs to one domain, so the per-domain counts of distinct addresses add up exactly.
    """
    for batch in batched(sorted(accounts), ACCOUNTS_PER_QUERY):
        sums = sums_by_account(es, settings.engagements_index, batch, COUNT_FIELDS)
        for account in batch:
            figures = sums.get(account, dict.fromkeys(COUNT_FIELDS, 0))
            document = {"account": account, **figures}
            document["total_emails_count"] = sum(figures.values())
            document["updated_at"] = updated_at
            yield document_id(account), document


def index_account_statistics(
    es, settings: Settings, accounts: Sequence[str], *, updated_at: str | None = None
) -> int:
    """Write the statistics of these accounts; returns how many were written."""
    updated_at = updated_at or format_utc(utc_now())
    written = bulk_write(
        es,
        index_actions(settings.account_stats_index, account_statistics_documents(es, settings, accounts, updated_at)),
        settings.bulk_chunk,
        "account statistics",
    )
    refresh(es, settings.account_stats_index)
    log.info("Wrote the statistics of %s", plural(written, "account"))
    return written
