"""The DAG's task bodies: read the run's context and settings, open a client, call a stage.

Kept out of the DAG file so that it stays wiring and docs, and so that each body can be called with
a plain dict standing in for the Airflow context. Values cross XCom as the summaries' `to_xcom()`
dicts and are read back with `from_xcom()`.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Mapping, Sequence

from airflow.sdk.exceptions import AirflowFailException

from mailforce.core.dates import utc_now
from mailforce.core.partitions import Partition
from mailforce.core.run_params import RunKind, RunParamsError, parse_run_params
from mailforce.core.run_stats import runtime_stats
from mailforce.core.summaries import CompileResult, ExtractionSummary, FetchedWindow, RescoreResult
from mailforce.es.client import MailforceElasticsearchHook
from mailforce.settings import Settings, load_settings
from mailforce.stages.compile_domain_partition import compile_domain_partition as compile_partition_stage
from mailforce.stages.compile_domain_partition import scoring_for
from mailforce.stages.extract_message_roles import extract_message_roles as extract_stage
from mailforce.stages.fetch_watermark import fetch_watermark as fetch_watermark_stage
from mailforce.stages.index_account_statistics import index_account_statistics as account_statistics_stage
from mailforce.stages.list_domains import list_domains as list_domains_stage
from mailforce.stages.publish_stats import publish_stats as publish_stats_stage
from mailforce.stages.rescore_relationships import rescore_relationships as rescore_stage
from mailforce.stages.rescore_relationships import scoring_date_of_run


def elasticsearch(settings: Settings) -> MailforceElasticsearchHook:
    """`with elasticsearch(settings) as es:` a client from the configured connection, closed after."""
    return MailforceElasticsearchHook(settings.conn_id)


def run_end_from_context(context: Mapping[str, Any]) -> datetime:
    """The run's logical end, fixed for the run: never a `now()` read later."""
    dag_run = context["dag_run"]
    for name in ("data_interval_end", "run_after", "logical_date"):
        candidate = getattr(dag_run, name, None)
        if isinstance(candidate, datetime):
            return candidate.astimezone(timezone.utc)
    raise RuntimeError("the run has no logical end (no data interval, run_after or logical date)")


def run_kind_from_context(context: Mapping[str, Any]) -> RunKind:
    """The run's type and data-interval start: an Airflow backfill or catch-up covers that interval."""
    dag_run = context["dag_run"]
    run_type = getattr(dag_run, "run_type", "") or ""
    start = getattr(dag_run, "data_interval_start", None)
    return RunKind(run_type=str(getattr(run_type, "value", run_type)),
                   interval_start=start.astimezone(timezone.utc) if isinstance(start, datetime) else None)


def fetch_watermark(context: Mapping[str, Any]) -> dict[str, Any]:
    settings = load_settings()
    conf = getattr(context["dag_run"], "conf", None) or {}
    try:
        request = parse_run_params(context["params"], conf)  # refuses bad params before any read
    except RunParamsError as error:
        raise AirflowFailException(str(error)) from None  # retrying cannot fix a wrong param
    run_end = run_end_from_context(context)
    with elasticsearch(settings) as es:
        try:
            fetched = fetch_watermark_stage(es, settings, request, run_end, kind=run_kind_from_context(context))
        except RunParamsError as error:
            raise AirflowFailException(str(error)) from None
    return fetched.to_xcom()


def extract_message_roles(context: Mapping[str, Any], window: Mapping[str, Any]) -> dict[str, Any]:
    settings = load_settings()
    with elasticsearch(settings) as es:
        return extract_stage(es, settings, FetchedWindow.from_xcom(window).window, context["run_id"]).to_xcom()


def list_domains(extraction: Mapping[str, Any]) -> list[dict[str, Any]]:
    partitions = list_domains_stage(ExtractionSummary.from_xcom(extraction), load_settings())
    return [partition.to_xcom() for partition in partitions]


def compile_domain_partition(
    context: Mapping[str, Any], window: Mapping[str, Any], partition: Mapping[str, Any]
) -> dict[str, Any]:
    settings = load_settings()
    planned = Partition.from_xcom(partition)
    window_end = FetchedWindow.from_xcom(window).window.window_end
    # Only a first attempt may add the window to stored documents; a retry recomputes.
    first_attempt = getattr(context["ti"], "try_number", 1) <= 1
    with elasticsearch(settings) as es:
        scoring = scoring_for(settings, scoring_date_of_run(es, settings, window_end))
        return compile_partition_stage(
            es, settings, planned, context["run_id"], add_window=first_attempt, scoring=scoring
        ).to_xcom()


def mapped_results(results: Sequence[Any]) -> list[Any]:
    """A mapped task's results by index: iterating Airflow's lazy sequence reads one past the end
    and logs that miss as an error, which would mislead whoever reads the log."""
    return [results[index] for index in range(len(results))]


def compile_results(compiled: Sequence[Mapping[str, Any]]) -> list[CompileResult]:
    return [CompileResult.from_xcom(result) for result in mapped_results(compiled)]


def rescore_relationships(window: Mapping[str, Any]) -> dict[str, Any]:
    settings = load_settings()
    with elasticsearch(settings) as es:
        return rescore_stage(es, settings, FetchedWindow.from_xcom(window).window.window_end).to_xcom()


def index_account_statistics(extraction: Mapping[str, Any]) -> int:
    settings = load_settings()
    with elasticsearch(settings) as es:
        return account_statistics_stage(es, settings, ExtractionSummary.from_xcom(extraction).accounts)


def publish_stats(
    context: Mapping[str, Any],
    window: Mapping[str, Any],
    extraction: Mapping[str, Any],
    compiled: Sequence[Mapping[str, Any]],
    rescored: Mapping[str, Any],
    accounts_written: int,
) -> dict[str, Any]:
    settings = load_settings()
    fetched = FetchedWindow.from_xcom(window)
    # The run's own start (the scheduler's), else when the window was fixed.
    dag_run_start = getattr(context["dag_run"], "start_date", None)
    run_started = dag_run_start.astimezone(timezone.utc) if isinstance(dag_run_start, datetime) else fetched.run_started
    stats = runtime_stats(
        context["run_id"], fetched.window, ExtractionSummary.from_xcom(extraction), compile_results(compiled),
        RescoreResult.from_xcom(rescored), accounts_written, run_started, utc_now(),
    )
    with elasticsearch(settings) as es:
        publish_stats_stage(es, settings, stats)
    return stats.to_xcom()


def reconcile_window(context: Mapping[str, Any]) -> dict[str, Any]:
    """The reconciliation DAG's first task: the (account, day) slices holding mail no run counted."""
    from mailforce.stages.reconcile import reconcile_window as reconcile_stage

    settings = load_settings()
    with elasticsearch(settings) as es:
        return reconcile_stage(es, settings).to_xcom()
