"""The history DAG's first stage: the range after the watermark -> the chunks' ends (`to_date` each).

Only the calendar periods that hold mail become chunks (one date histogram of the source after the
watermark): a stray date years before the rest of the mail costs one chunk, not one per empty month.
"""

from __future__ import annotations

import logging
from datetime import datetime

from mailforce.core.dates import format_utc, parse_source_date
from mailforce.core.history import CHUNKS, HistoryError, chunk_ends
from mailforce.core.wording import plural
from mailforce.es.reads import search
from mailforce.es.watermark import read_watermark
from mailforce.settings import Settings

log = logging.getLogger(__name__)


def plan_history_chunks(es, settings: Settings, until: datetime, chunk: str = "month") -> list[datetime]:
    """The ends of the chunks still to load, up to `until` (empty: the watermark is there already)."""
    watermark = read_watermark(es, settings)
    if watermark is not None and watermark >= until:
        log.info("Nothing to load: the watermark %s is at or after %s", format_utc(watermark), format_utc(until))
        return []
    bounds = {"lte": format_utc(until), **({"gt": format_utc(watermark)} if watermark is not None else {})}
    if chunk not in CHUNKS:
        raise HistoryError(f"chunk must be one of {', '.join(CHUNKS)}, got {chunk!r}")
    response = search(es, "history periods", index=settings.source_index, size=0,
                      query={"range": {"date": bounds}},
                      aggs={"periods": {"date_histogram": {"field": "date", "calendar_interval": chunk,
                                                           "time_zone": "UTC", "min_doc_count": 1}}})
    starts = [parse_source_date(bucket.get("key_as_string") or bucket["key"])
              for bucket in response.get("aggregations", {}).get("periods", {}).get("buckets", [])
              if bucket.get("doc_count")]
    ends = chunk_ends([start for start in starts if start is not None], until, chunk)
    log.info("History from %s to %s: %s of one %s (%s)", format_utc(watermark) if watermark else "the first message",
             format_utc(until), plural(len(ends), "chunk"), chunk, ", ".join(format_utc(end) for end in ends[:12])
             + (", ..." if len(ends) > 12 else ""))
    return ends
