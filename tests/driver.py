"""A test-only driver: every stage in the DAG's order, in this process, without a scheduler.

It runs the DAGs' own sequence (`mailforce.sequence`): the same stage functions as the DAG's task
bodies, the same typed summaries.
Each partition is compiled as a first attempt (`add_window=True`), as the DAG's first try is;
`stop_after_partitions` simulates a run that dies after that many partitions were written.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from mailforce.core.dates import utc_now
from mailforce.core.run_params import RunRequest
from mailforce.core.summaries import FetchedWindow
from mailforce.sequence import count_window_in_process, run_step
from mailforce.settings import Settings
from mailforce.stages.fetch_watermark import fetch_watermark


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
    """Every stage after the window is fixed (a scheduled run's or the reconciliation's), in the DAG's
    order (`mailforce.sequence`); with `stop_after_partitions`, the run dies before the next partition."""
    compiled = 0

    def step(name, call):
        nonlocal compiled
        if name == "compile_domain_partition":
            if stop_after_partitions is not None and compiled >= stop_after_partitions:
                raise RuntimeError(f"run {run_id} stopped after {compiled} partitions (simulated failure)")
            compiled += 1
        return run_step(name, call)

    return count_window_in_process(es, settings, fetched, run_id, step=step).to_xcom()
