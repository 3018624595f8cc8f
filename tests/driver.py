"""A test-only driver: every stage in the DAG's order, in this process, without a scheduler.

It calls the same stage functions as the DAG's task bodies and passes the same typed summaries.
Each partition is compiled as a first attempt (`add_window=True`), as the DAG's first try is;
`stop_after_partitions` simulates a run that dies after that many partitions were written.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from mailforce.core.dates import utc_now
from mailforce.core.run_params import RunRequest
from mailforce.core.run_stats import runtime_stats
from mailforce.core.summaries import FetchedWindow
from mailforce.settings import Settings
from mailforce.stages.compile_domain_partition import compile_domain_partition
from mailforce.stages.extract_message_roles import extract_message_roles
from mailforce.stages.fetch_watermark import fetch_watermark
from mailforce.stages.index_account_statistics import index_account_statistics
from mailforce.stages.list_domains import list_domains
from mailforce.stages.publish_stats import publish_stats
from mailforce.stages.rescore_relationships import rescore_relationships, scoring_date_of_run
from mailforce.es.scoring import scoring_for


def run_once(
    es,
    settings: Settings,
    request: RunRequest,
    run_end: datetime,
    run_id: str,
    *,
    stop_after_partitions: int | None = None,
) -> dict[str, Any]:
    """One run of every stage; returns the runtime-stats document (what `publish_stats` returns)."""
    fetched = fetch_watermark(es, settings, request, run_end, run_started=utc_now())
    return run_stages(es, settings, fetched, run_id, stop_after_partitions=stop_after_partitions)


def run_stages(
    es, settings: Settings, fetched: FetchedWindow, run_id: str, *, stop_after_partitions: int | None = None
) -> dict[str, Any]:
    """Every stage after the window is fixed (a scheduled run's or the reconciliation's), in order."""
    extraction = extract_message_roles(es, settings, fetched.window, run_id)
    partitions = list_domains(extraction, settings)
    rescored = rescore_relationships(es, settings, fetched.window.window_end)
    scoring = scoring_for(settings, scoring_date_of_run(es, settings, fetched.window.window_end))
    compiled = []
    for number, partition in enumerate(partitions):
        if stop_after_partitions is not None and number >= stop_after_partitions:
            raise RuntimeError(f"run {run_id} stopped after {number} partitions (simulated failure)")
        compiled.append(compile_domain_partition(es, settings, partition, run_id, add_window=True, scoring=scoring))
    accounts_written = index_account_statistics(es, settings, extraction.accounts)
    stats = runtime_stats(run_id, fetched.window, extraction, compiled, rescored, accounts_written,
                          fetched.run_started, utc_now())
    publish_stats(es, settings, stats)
    return stats.to_xcom()
