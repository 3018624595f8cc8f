"""Reading Elasticsearch: the window's source messages and the roles fact table, only needed fields.

Reads use scroll with an explicit sort: the sort lets the callers group copies of one message with
memory bounded by one group, and scroll is supported the same way by Elasticsearch 8/9 and the
embedded engine (where it is also the cheapest way to read everything once).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterator, Sequence

from elasticsearch import NotFoundError, helpers

from mailforce.dates import format_utc
from mailforce.roles import SOURCE_FIELDS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Window:
    """Which source messages a run covers; bounds are UTC datetimes."""

    window_end: datetime
    window_start: datetime | None = None  # exclusive; None = from the very first message
    start_inclusive: bool = False  # True when the start is a `from_date`
    accounts: tuple[str, ...] | None = None  # only these accounts (a backfill)
    exclude_accounts: tuple[str, ...] = ()

    def date_range(self) -> dict[str, Any]:
        bounds: dict[str, Any] = {"lte": format_utc(self.window_end)}
        if self.window_start is not None:
            bounds["gte" if self.start_inclusive else "gt"] = format_utc(self.window_start)
        return {"range": {"date": bounds}}

    def account_filters(self, field: str = "account") -> tuple[list[dict], list[dict]]:
        """(filter clauses, must_not clauses) for the account lists."""
        filters = [{"terms": {field: list(self.accounts)}}] if self.accounts is not None else []
        must_not = [{"terms": {field: list(self.exclude_accounts)}}] if self.exclude_accounts else []
        return filters, must_not

    def source_query(self) -> dict[str, Any]:
        filters, must_not = self.account_filters()
        return {"bool": {"filter": [self.date_range(), *filters], "must_not": must_not}}

    def undated_query(self) -> dict[str, Any]:
        """Documents of the window's accounts that no window can ever select: no usable date."""
        filters, must_not = self.account_filters()
        return {"bool": {"filter": filters, "must_not": [{"exists": {"field": "date"}}, *must_not]}}


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
    progress_every = max(total // 10, 5_000)
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
