"""Reconciliation: what the source holds against what the outputs counted, over all time.

Cheap first: distinct dated messages per (account, UTC month) in the source (a composite aggregation
with a cardinality of `messageId`, plus the documents without one) against the ledger's records per
(account, month); then the same per (account, UTC day), only within the months that differ. Only
where a day's counts differ are ids fetched (the source's keys, looked up in the
ledger by id), and the (account, day) slices that hold a message no run counted become the window
of a reconciliation run, which the usual stages then process exactly like a normal run (messages
already counted cost a lookup only). Its runtime-stats record carries `reconciliation: true` and
`late_messages` (what it found); it never moves the watermark. Erased addresses and domains stay
out: the extraction it runs honours the suppression list (docs/ERASURE.md), and the ledger keeps the
records of erased messages, so erasing never makes mail look uncounted.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator, Sequence

from mailforce.core.dates import format_utc, utc_now
from mailforce.core.ids import document_id
from mailforce.core.summaries import FetchedWindow
from mailforce.core.window import Window
from mailforce.core.wording import plural
from mailforce.es.indices import prepare_indices
from mailforce.es.ledger import ensure_ledger_index, scan_keys
from mailforce.es.reads import fetch_documents, search
from mailforce.es.watermark import read_watermark
from mailforce.es.writes import refresh
from mailforce.settings import Settings

log = logging.getLogger(__name__)

# Buckets per composite page: each page is one pass over the matching documents, so few large pages
# (within Elasticsearch's search.max_buckets, 65,536 by default).
COMPOSITE_PAGE = 10_000
# Exact below this many distinct ids per (account, day); above it a difference only costs an id fetch.
CARDINALITY_PRECISION = 40_000
# A month's equal counts are trusted only below this many messages (well inside the exact range of
# the cardinality); a larger month is compared day by day.
TRUSTED_MONTH_BELOW = 10_000
PAIRS_PER_QUERY = 500  # (account, month) clauses per day-level query
MONTHS = {"calendar_interval": "month", "format": "yyyy-MM"}
DAYS = {"calendar_interval": "day", "format": "yyyy-MM-dd"}

Slice = tuple[str, str]  # (account, "YYYY-MM") or (account, "YYYY-MM-DD")


def _composite(es, index: str, query: dict[str, Any], sources: list[dict[str, Any]],
               aggs: dict[str, Any]) -> Iterator[dict[str, Any]]:
    after = None
    while True:
        composite: dict[str, Any] = {"size": COMPOSITE_PAGE, "sources": sources}
        if after is not None:
            composite["after"] = after
        response = search(es, f"reconciliation counts of {index}", index=index, size=0, query=query,
                          aggs={"by": {"composite": composite, "aggs": aggs}})
        buckets = response["aggregations"]["by"]["buckets"]
        yield from buckets
        after = response["aggregations"]["by"].get("after_key")
        if len(buckets) < COMPOSITE_PAGE or after is None:  # a short page is the last: no empty pass more
            return


def _in_months(months: Sequence[Slice]) -> dict[str, Any]:
    """Documents of these (account, month) pairs."""
    clauses = []
    for account, month in months:
        start = datetime.strptime(month, "%Y-%m").replace(tzinfo=timezone.utc)
        end = (start + timedelta(days=32)).replace(day=1)
        clauses.append({"bool": {"filter": [{"term": {"account": account}},
                                            {"range": {"date": {"gte": format_utc(start), "lt": format_utc(end)}}}]}})
    return {"bool": {"should": clauses, "minimum_should_match": 1}}


def _counts(es, index: str, filters: list[dict[str, Any]], interval: dict[str, str], aggs: dict[str, Any],
            value, months: Sequence[Slice] | None) -> Counter:
    """(account, period) -> value(bucket), over every document, or those of `months` only."""
    sources = [{"account": {"terms": {"field": "account"}}},
               {"period": {"date_histogram": {"field": "date", **interval, "time_zone": "UTC"}}}]
    groups = [None] if months is None else [months[start:start + PAIRS_PER_QUERY]
                                             for start in range(0, len(months), PAIRS_PER_QUERY)]
    counts: Counter = Counter()
    for group in groups:
        query = {"bool": {"filter": filters + ([] if group is None else [_in_months(group)])}}
        for bucket in _composite(es, index, query, sources, aggs):
            counts[(bucket["key"]["account"], bucket["key"]["period"])] = value(bucket)
    return counts


def source_counts(es, settings: Settings, up_to: datetime, interval: dict[str, str] = DAYS,
                  months: Sequence[Slice] | None = None) -> Counter:
    """(account, day or month) -> distinct dated messages in the source up to `up_to`."""
    filters = [{"range": {"date": {"lte": format_utc(up_to)}}}, {"exists": {"field": "account"}}]
    aggs = {"ids": {"cardinality": {"field": "messageId", "precision_threshold": CARDINALITY_PRECISION}},
            "no_id": {"missing": {"field": "messageId"}}}
    return _counts(es, settings.source_index, filters, interval, aggs,
                   lambda bucket: int(bucket["ids"]["value"]) + int(bucket["no_id"]["doc_count"]), months)


def ledger_counts(es, settings: Settings, up_to: datetime, interval: dict[str, str] = DAYS,
                  months: Sequence[Slice] | None = None) -> Counter:
    """(account, day or month) -> messages the runs counted (ledger records) up to `up_to`."""
    filters = [{"range": {"date": {"lte": format_utc(up_to)}}}]
    return _counts(es, settings.ledger_index, filters, interval, {}, lambda bucket: int(bucket["doc_count"]), months)


def differing_days(es, settings: Settings, up_to: datetime) -> tuple[int, list[Slice]]:
    """(months compared, the (account, day) slices whose counts differ): months first, then the days
    of the months that differ (or are too large to trust their equal counts)."""
    source = source_counts(es, settings, up_to, MONTHS)
    ledger = ledger_counts(es, settings, up_to, MONTHS)
    suspect = sorted(key for key in source if source[key] != ledger.get(key, 0) or source[key] >= TRUSTED_MONTH_BELOW)
    if not suspect:
        return len(source), []
    days = source_counts(es, settings, up_to, DAYS, suspect)
    counted = ledger_counts(es, settings, up_to, DAYS, suspect)
    return len(source), sorted(key for key in days if days[key] != counted.get(key, 0))


def missing_in_slice(es, settings: Settings, account: str, day: str, up_to: datetime) -> int:
    """How many of the slice's source messages have no ledger record (ids fetched, looked up by id)."""
    window = Window(window_end=up_to, reconciliation=True, slices=((account, day),))
    keys = set()
    for hit in scan_keys(es, settings.source_index, window.source_query(), ["account", "messageId"],
                         settings.scan_page_size, settings.scroll_keep_alive):
        message_id = hit["_source"].get("messageId")
        keys.add(message_id if isinstance(message_id, str) and message_id.strip() else hit["_id"])
    ids = [document_id(account, key) for key in sorted(keys)]
    found = 0
    for start in range(0, len(ids), settings.lookup_batch_size):
        found += len(fetch_documents(es, settings.ledger_index, ids[start:start + settings.lookup_batch_size]))
    return len(ids) - found


def reconcile_window(es, settings: Settings, *, run_started: datetime | None = None) -> FetchedWindow:
    """The reconciliation's window: the (account, day) slices up to the watermark holding a message
    that no run counted. Empty slices (nothing to do) select nothing."""
    prepare_indices(es, settings, allow_rebuild=False)  # only a normal run rebuilds an earlier model's outputs
    ensure_ledger_index(es, settings)
    started = run_started or utc_now()
    watermark = read_watermark(es, settings)
    if watermark is None:
        log.info("Reconciliation: no successful run yet, nothing to compare")
        return FetchedWindow(window=Window(window_end=started.replace(microsecond=0), reconciliation=True),
                             run_started=started)
    refresh(es, settings.ledger_index)
    months, differing = differing_days(es, settings, watermark)
    slices = []
    missing_total = 0
    for account, day in differing:
        missing = missing_in_slice(es, settings, account, day, watermark)
        if missing:
            slices.append((account, day))
            missing_total += missing
    log.info(
        "Reconciliation of (the beginning, %s] (the watermark): %s in the source, %d (account, day) slices "
        "with differing counts, %d holding %s no run counted%s",
        format_utc(watermark), plural(months, "(account, month) slice"), len(differing), len(slices),
        plural(missing_total, "message"),
        (": " + ", ".join(f"{account} {day}" for account, day in slices[:20])) if slices else "",
    )
    window = Window(window_end=watermark, reconciliation=True, slices=tuple(slices))
    return FetchedWindow(window=window, run_started=started)
