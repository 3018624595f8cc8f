"""The watermark: the latest `window_end` of a successful non-backfill run, in the runtime-stats index.

A record is written (`publish_runtime_stats`) only after every stage succeeded, so a failed run
never moves it. The record itself is built in `mailforce.core.run_stats`.
"""

from __future__ import annotations

import logging
from datetime import datetime

from elasticsearch import NotFoundError

from mailforce.core.dates import parse_source_date
from mailforce.core.run_stats import MODEL_VERSION
from mailforce.core.summaries import RunStats
from mailforce.core.wording import plural, window_notation
from mailforce.es.writes import refresh
from mailforce.es.reads import search
from mailforce.settings import Settings

log = logging.getLogger(__name__)


def read_watermark(es, settings: Settings) -> datetime | None:
    """The latest window end of a successful non-backfill run of this data model; None on a fresh
    cluster, and on one just upgraded (records of an earlier model are history, not a watermark: the
    outputs were rebuilt, so the first run of this version reads the source from the beginning)."""
    try:
        response = search(
            es,
            "the watermark",  # a partial answer could miss the latest record: refused
            index=settings.runtime_stats_index,
            size=1,
            # backfills (account lists, Airflow backfills) and reconciliations never move it
            query={"bool": {"filter": [{"term": {"backfill": False}}, {"term": {"model_version": MODEL_VERSION}}],
                            "must_not": [{"term": {"reconciliation": True}}]}},
            sort=[{"window_end": {"order": "desc"}}],
            source=["window_end", "run_id"],
        )
    except NotFoundError:
        return None
    hits = response["hits"]["hits"]
    if not hits:
        return None
    return parse_source_date(hits[0]["_source"]["window_end"])


def publish_runtime_stats(es, settings: Settings, stats: RunStats) -> None:
    """Write the run's record: from now on it is the watermark (unless the run was a backfill)."""
    body = stats.document
    es.index(index=settings.runtime_stats_index, id=stats.identifier, document=dict(body))
    # An explicit refresh, not refresh="wait_for" (which waits forever when refresh_interval is -1):
    # the next run's watermark search sees the record.
    refresh(es, settings.runtime_stats_index)
    log.info(
        "Published run stats: window %s, %s of %s (%s counted), %s",
        window_notation(body["window_start"], body["window_end"], bool(body.get("window_start_inclusive"))),
        plural(body["emails_processed"], "message"), plural(body["email_accounts_processed"], "account"),
        f"{body.get('counted_messages', body['emails_processed']):,}", plural(body["domains_processed"], "domain"),
    )
