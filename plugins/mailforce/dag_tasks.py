"""The DAG's task bodies: read the run's context and settings, open a client, call a stage.

Kept out of the DAG file so that it stays wiring and docs, and so that each body can be called with
a plain dict standing in for the Airflow context.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, Iterator, Mapping, Sequence

from airflow.sdk.exceptions import AirflowFailException

from mailforce import pipeline
from mailforce.connection import MailforceElasticsearchHook
from mailforce.dates import format_utc, parse_source_date
from mailforce.settings import Settings, load_settings
from mailforce.watermark import (
    RunParamsError,
    parse_run_params,
    read_watermark,
    resolve_window,
    runtime_stats_document,
    window_from_dict,
    window_to_dict,
)

log = logging.getLogger(__name__)


@contextmanager
def elasticsearch(settings: Settings) -> Iterator[Any]:
    client = MailforceElasticsearchHook(settings.conn_id).get_conn()
    try:
        yield client
    finally:
        client.close()


def run_end_from_context(context: Mapping[str, Any]) -> datetime:
    """The run's logical end, fixed for the run: never a `now()` read later."""
    dag_run = context["dag_run"]
    for name in ("data_interval_end", "run_after", "logical_date"):
        candidate = getattr(dag_run, name, None)
        if isinstance(candidate, datetime):
            return candidate.astimezone(timezone.utc)
    raise RuntimeError("the run has no logical end (no data interval, run_after or logical date)")


def fetch_watermark(context: Mapping[str, Any]) -> dict[str, Any]:
    settings = load_settings()
    conf = getattr(context["dag_run"], "conf", None) or {}
    try:
        request = parse_run_params(context["params"], conf)  # refuses bad params before any read
    except RunParamsError as error:
        raise AirflowFailException(str(error)) from None  # retrying cannot fix a wrong param
    run_end = run_end_from_context(context)
    with elasticsearch(settings) as es:
        created = pipeline.prepare_indices(es, settings)
        watermark = read_watermark(es, settings)
    try:
        window = resolve_window(request, run_end, watermark)
    except RunParamsError as error:
        raise AirflowFailException(str(error)) from None
    summary = window_to_dict(window)
    summary["run_started"] = format_utc(pipeline.utc_now())
    log.info(
        "Window (%s, %s]%s; watermark %s; accounts %s; excluded %s; indices created: %s",
        summary["window_start"] or "beginning", summary["window_end"],
        " (start inclusive)" if window.start_inclusive else "",
        format_utc(watermark) if watermark else "none (fresh cluster)",
        summary["accounts"] or "all", summary["exclude_accounts"] or "none", created or "none",
    )
    return summary


def extract_message_roles(context: Mapping[str, Any], window: Mapping[str, Any]) -> dict[str, Any]:
    settings = load_settings()
    with elasticsearch(settings) as es:
        return pipeline.extract_message_roles(es, settings, window_from_dict(window), context["run_id"])


def list_domains(extraction: Mapping[str, Any]) -> list[dict[str, Any]]:
    return pipeline.list_domain_partitions(dict(extraction), load_settings())


def compile_domain_partition(context: Mapping[str, Any], partition: Mapping[str, Any]) -> dict[str, Any]:
    settings = load_settings()
    log.info("Partition %s: %d whole domains, %d shards of heavy domains",
             partition["label"], len(partition["domains"]), len(partition.get("shards", [])))
    with elasticsearch(settings) as es:
        # Only a first attempt may add the window to stored documents; a retry recomputes.
        first_attempt = getattr(context["ti"], "try_number", 1) <= 1
        return pipeline.compile_partition(es, settings, dict(partition), context["run_id"], first_attempt)


def mapped_results(results: Sequence[Any]) -> list[Any]:
    """A mapped task's results by index: iterating Airflow's lazy sequence reads one past the end
    and logs that miss as an error, which would mislead whoever reads the log."""
    return [results[index] for index in range(len(results))]


def merge_split_domains(context: Mapping[str, Any], compiled: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    settings = load_settings()
    results = mapped_results(compiled)
    split_domains = sorted({domain for result in results for domain in result.get("split_domains", [])})
    with elasticsearch(settings) as es:
        return pipeline.merge_split_domains(es, settings, split_domains, context["run_id"])


def index_account_statistics(extraction: Mapping[str, Any]) -> int:
    settings = load_settings()
    with elasticsearch(settings) as es:
        return pipeline.index_account_statistics(es, settings, extraction["accounts"])


def publish_stats(
    context: Mapping[str, Any],
    window: Mapping[str, Any],
    extraction: Mapping[str, Any],
    compiled: Sequence[Mapping[str, Any]],
    merged: Mapping[str, Any],
    accounts_written: int,
) -> dict[str, Any]:
    settings = load_settings()
    # The run's own start (the scheduler's), else when the window was fixed.
    dag_run_start = getattr(context["dag_run"], "start_date", None)
    run_started = (dag_run_start.astimezone(timezone.utc) if isinstance(dag_run_start, datetime) else None) or \
        parse_source_date(window["run_started"]) or pipeline.utc_now()
    stats = runtime_stats_document(
        context["run_id"], window_from_dict(window), extraction, mapped_results(compiled), merged, accounts_written,
        run_started, pipeline.utc_now(),
    )
    with elasticsearch(settings) as es:
        pipeline.publish_runtime_stats(es, settings, stats)
    return stats[1]
