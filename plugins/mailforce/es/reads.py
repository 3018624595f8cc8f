"""Reading Elasticsearch: scans of the source and the roles fact table, lookups and counts.

Only the needed fields are read.

Reads use scroll with an explicit sort: the sort lets the callers group copies of one message with
memory bounded by one group, and scroll is supported the same way by Elasticsearch 8/9 and the
embedded engine (where it is also the cheapest way to read everything once).
"""

from __future__ import annotations

import logging
import time
from typing import Any, Iterator, Sequence

from elasticsearch import NotFoundError, helpers

from mailforce.core.extraction import StoredCopies, roles_document_id
from mailforce.core.roles import SOURCE_FIELDS, Message
from mailforce.core.rollups import COMPILE_READ_FIELDS
from mailforce.core.window import Window
from mailforce.settings import Settings

log = logging.getLogger(__name__)

PROGRESS_STEPS = 10  # a scan logs its progress by tenths ...
MIN_PROGRESS_EVERY = 5_000  # ... but not more often than every this many documents


def scan_sorted(
    es,
    index: str,
    query: dict[str, Any],
    sort: Sequence[Any],
    source_fields: Sequence[str],
    page_size: int,
    keep_alive: str,
    what: str,
) -> Iterator[dict[str, Any]]:
    """Every hit of the query, in sort order, reading only `source_fields`; logs progress by tenths."""
    started = time.monotonic()
    seen = 0
    total = es.count(index=index, query=query)["count"]
    progress_every = max(total // PROGRESS_STEPS, MIN_PROGRESS_EVERY)
    log.info("%s: %d documents to read from %s", what, total, index)
    for hit in helpers.scan(
        es,
        index=index,
        query={"query": query, "sort": list(sort), "_source": list(source_fields)},
        size=page_size,
        scroll=keep_alive,
        preserve_order=True,
        clear_scroll=True,
    ):
        seen += 1
        if seen % progress_every == 0:
            rate = seen / max(time.monotonic() - started, 1e-9)
            log.info("%s: %d of %d read (%.0f/s)", what, seen, total, rate)
        yield hit
    log.info("%s: %d documents read in %.1f s", what, seen, time.monotonic() - started)


def scan_window_messages(es, index: str, window: Window, page_size: int, keep_alive: str) -> Iterator[dict]:
    """The window's source copies, grouped by account then messageId (copies come together)."""
    sort = [{"account": "asc"}, {"messageId": {"order": "asc", "missing": "_last"}}]
    return scan_sorted(es, index, window.source_query(), sort, SOURCE_FIELDS, page_size, keep_alive, "source scan")


def count_undated(es, index: str, window: Window) -> int:
    return es.count(index=index, query=window.undated_query())["count"]


def fetch_documents(es, index: str, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """id -> _source for the ids that exist (a missing index means none do)."""
    if not ids:
        return {}
    try:
        response = es.mget(index=index, ids=list(ids))
    except NotFoundError:
        return {}
    return {doc["_id"]: doc["_source"] for doc in response["docs"] if doc.get("found")}


def index_is_empty(es, index: str) -> bool:
    try:
        return es.count(index=index)["count"] == 0
    except NotFoundError:
        return True


def read_stored_copies(es, settings: Settings, messages: Sequence[Message]) -> StoredCopies:
    """What the roles index already holds of these messages: their own documents, and which
    accounts hold each message id (copies in other mailboxes)."""
    documents = fetch_documents(es, settings.roles_index, [roles_document_id(message) for message in messages])
    holders: dict[str, set[str]] = {}
    for hit in helpers.scan(
        es,
        index=settings.roles_index,
        query={"query": {"terms": {"message_id": [message.message_id for message in messages]}},
               "_source": ["account", "message_id"]},
        size=settings.scan_page_size,
        scroll=settings.scroll_keep_alive,
    ):
        holders.setdefault(hit["_source"]["message_id"], set()).add(hit["_source"]["account"])
    return StoredCopies(documents=documents, holders=holders)


def scan_roles(
    es,
    settings: Settings,
    domains: Sequence[str],
    written_by_run: str | None = None,
) -> Iterator[dict[str, Any]]:
    """The roles documents naming these domains, sorted by message id (the copies of one mail in
    several mailboxes arrive together): all time, or only those a given run wrote."""
    filters: list[dict[str, Any]] = [{"terms": {"domains": list(domains)}}]
    if written_by_run is not None:
        filters.append({"term": {"run_id": written_by_run}})
    return scan_sorted(
        es,
        settings.roles_index,
        {"bool": {"filter": filters}},
        [{"message_id": "asc"}, {"account": "asc"}],
        COMPILE_READ_FIELDS,
        settings.scan_page_size,
        settings.scroll_keep_alive,
        f"roles of {len(domains)} domain{'s' if len(domains) != 1 else ''}",
    )


def sums_by_account(es, index: str, accounts: Sequence[str], count_fields: Sequence[str]) -> dict[str, dict[str, int]]:
    """account -> the sum of each count field over the account's documents (accounts with none left out)."""
    response = es.search(
        index=index,
        size=0,
        query={"bool": {"filter": [{"terms": {"account": list(accounts)}}]}},
        aggs={
            "by_account": {
                "terms": {"field": "account", "size": len(accounts)},
                "aggs": {name: {"sum": {"field": name}} for name in count_fields},
            }
        },
    )
    return {
        bucket["key"]: {name: int(round(bucket[name]["value"] or 0)) for name in count_fields}
        for bucket in response["aggregations"]["by_account"]["buckets"]
    }
