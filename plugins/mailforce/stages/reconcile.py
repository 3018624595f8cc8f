"""Reconciliation: what the source holds against what the outputs counted, over all time.

Cheap first: distinct dated messages per (account, UTC day) in the source (a composite aggregation
with a cardinality of `messageId`, plus the documents without one) against the ledger's records per
(account, day). Only where the counts differ are ids fetched (the source's keys, looked up in the
ledger by id), and the (account, day) slices that hold a message no run counted become the window
of a reconciliation run, which the usual stages then process exactly like a normal run (messages
already counted cost a lookup only). Its runtime-stats record carries `reconciliation: true` and
`late_messages` (what it found); it never moves the watermark. Erased addresses and domains stay
out: the extraction it runs honours the suppression list (README "Erasure"), and the ledger keeps the
records of erased messages, so erasing never makes mail look uncounted.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime
from typing import Any, Iterator

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

COMPOSITE_PAGE = 1000
# Exact below this many distinct ids per (account, day); above it a difference only costs an id fetch.
CARDINALITY_PRECISION = 40_000


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
        if not buckets or after is None:
            return


def source_counts(es, settings: Settings, up_to: datetime) -> Counter:
    """(account, day) -> distinct dated messages in the source up to `up_to`."""
    query = {"bool": {"filter": [{"range": {"date": {"lte": format_utc(up_to)}}}, {"exists": {"field": "account"}}]}}
    sources = [{"account": {"terms": {"field": "account"}}},
               {"day": {"date_histogram": {"field": "date", "calendar_interval": "day", "format": "yyyy-MM-dd",
                                           "time_zone": "UTC"}}}]
    aggs = {"ids": {"cardinality": {"field": "messageId", "precision_threshold": CARDINALITY_PRECISION}},
            "no_id": {"missing": {"field": "messageId"}}}
    counts: Counter = Counter()
    for bucket in _composite(es, settings.source_index, query, sources, aggs):
        key = (bucket["key"]["account"], bucket["key"]["day"])
        counts[key] = int(bucket["ids"]["value"]) + int(bucket["no_id"]["doc_count"])
    return counts


def ledger_counts(es, settings: Settings, up_to: datetime) -> Counter:
    """(account, day) -> messages the runs counted (ledger records) up to `up_to`."""
    query = {"bool": {"filter": [{"range": {"date": {"lte": format_utc(up_to)}}}]}}
    sources = [{"account": {"terms": {"field": "account"}}}, {"day": {"terms": {"field": "day"}}}]
    counts: Counter = Counter()
    for bucket in _composite(es, settings.ledger_index, query, sources, {}):
        counts[(bucket["key"]["account"], bucket["key"]["day"])] = int(bucket["doc_count"])
    return counts


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
    source = source_counts(es, settings, watermark)
    ledger = ledger_counts(es, settings, watermark)
    differing = sorted(key for key in source if source[key] != ledger.get(key, 0))
    slices = []
    missing_total = 0
    for account, day in differing:
        missing = missing_in_slice(es, settings, account, day, watermark)
        if missing:
            slices.append((account, day))
            missing_total += missing
    log.info(
        "Reconciliation of (the beginning, %s] (the watermark): %s in the source, %d with differing counts, "
        "%d holding %s no run counted%s",
        format_utc(watermark), plural(len(source), "(account, day) slice"), len(differing), len(slices),
        plural(missing_total, "message"),
        (": " + ", ".join(f"{account} {day}" for account, day in slices[:20])) if slices else "",
    )
    window = Window(window_end=watermark, reconciliation=True, slices=tuple(slices))
    return FetchedWindow(window=window, run_started=started)
