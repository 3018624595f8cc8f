"""Accounts in Elasticsearch: which account ids the source index holds (the unknown-account check), and
the account statistics documents, summed from the engagement documents (the statistics stage and the
erasure write them), keeping the owner fields `mailforce.es.owners` wrote."""

from __future__ import annotations

from typing import Iterator, Sequence

from mailforce.core.batches import batched
from mailforce.core.ids import document_id
from mailforce.es.owners import stored_owner_fields
from mailforce.es.reads import search, sums_by_account
from mailforce.es.writes import bulk_write, index_actions, refresh
from mailforce.settings import Settings


def accounts_in_source(es, index: str, accounts: Sequence[str], field: str = "account") -> frozenset[str]:
    """The given account ids that have at least one document in `index` (size 0, one aggregation)."""
    if not accounts:
        return frozenset()
    names = sorted(set(accounts))
    if not es.indices.exists(index=index):
        return frozenset()
    response = search(
        es, "account check", index=index, size=0, query={"terms": {field: names}},
        aggs={"accounts": {"terms": {"field": field, "size": len(names)}}},
    )
    buckets = (response.get("aggregations") or {}).get("accounts", {}).get("buckets", [])
    return frozenset(str(bucket["key"]) for bucket in buckets if bucket.get("doc_count"))


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
        owners = stored_owner_fields(es, settings, batch)  # written before the compile: kept as they are
        for account in batch:
            figures = sums.get(account, dict.fromkeys(COUNT_FIELDS, 0))
            document = {"account": account, **figures}
            document["total_emails_count"] = sum(figures.values())
            document.update(owners.get(account) or {})
            document["updated_at"] = updated_at
            yield document_id(account), document


def write_account_statistics(es, settings: Settings, accounts: Sequence[str], updated_at: str) -> int:
    """Write the statistics of these accounts (refreshed for readers); returns how many were written."""
    written = bulk_write(
        es,
        index_actions(settings.account_stats_index, account_statistics_documents(es, settings, accounts, updated_at)),
        settings.bulk_chunk,
        "account statistics",
    )
    refresh(es, settings.account_stats_index)
    return written
