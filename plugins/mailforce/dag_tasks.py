"""The DAG's task bodies: read the run's context and settings, open a client, call a stage.

Kept out of the DAG file so that it stays wiring and docs, and so that each body can be called with
a plain dict standing in for the Airflow context. Values cross XCom as the summaries' `to_xcom()`
dicts and are read back with `from_xcom()`.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import date, datetime, timezone
from typing import Any, Mapping, Sequence

from airflow.sdk.bases.hook import BaseHook
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from mailforce.assets import output_assets
from mailforce.core.dates import utc_now
from mailforce.core.extraction_slices import ExtractionSlice, merge_extractions
from mailforce.core.kinds import CHANGES, COMPILED_KIND_NAMES
from mailforce.core.partitions import Partition
from mailforce.core.run_params import RunKind, RunParamsError, parse_run_params
from mailforce.core.run_stats import outputs_written, runtime_stats
from mailforce.core.setting_checks import UnusableSetting
from mailforce.core.summaries import CompileResult, ExtractionSummary, FetchedWindow, PeopleResult, RescoreResult
from mailforce.core.wording import plural, run_summary
from mailforce.es.hook import MailforceElasticsearchHook
from mailforce.es.lease import Holder, acquire_lease, release_lease, renew_or_fail
from mailforce.es.preflight import check_settings
from mailforce.settings import Settings, SettingsError, load_settings
from mailforce.stages.compile_domain_partition import compile_domain_partition as compile_partition_stage
from mailforce.stages.compile_people import compile_people as compile_people_stage
from mailforce.es.scoring import scoring_for
from mailforce.stages.extract_message_roles import extract_message_roles as extract_stage
from mailforce.stages.fetch_watermark import fetch_watermark as fetch_watermark_stage
from mailforce.stages.fetch_watermark import unknown_accounts
from mailforce.stages.identify_account_owners import identify_account_owners as owners_stage
from mailforce.stages.index_account_statistics import index_account_statistics as account_statistics_stage
from mailforce.stages.list_domains import list_domains as list_domains_stage
from mailforce.stages.plan_extraction_slices import plan_extraction_slices as plan_slices_stage
from mailforce.stages.publish_stats import publish_stats as publish_stats_stage
from mailforce.stages.rescore_relationships import rescore_relationships as rescore_stage


log = logging.getLogger(__name__)

RUN_SUMMARY_KEY = "run_summary"  # the one XCom entry a person reads (Admin -> XComs, or the run's XCom tab)


def param_error(error: Exception) -> AirflowFailException:
    """A wrong param: one plain sentence, logged as an ERROR before Airflow's traceback (which it
    always adds for a failed task) so that the useful line is the first one a person sees."""
    message = f"Wrong run parameter, nothing was read or written: {error}. Fix it and trigger the run again."
    log.error(message)
    return AirflowFailException(message)


def setting_error(error: Exception) -> AirflowFailException:
    """A setting that cannot work (`SettingsError`, `UnusableSetting`): one sentence naming the setting
    and the fix, logged as an ERROR like `param_error`; no retry, since retrying cannot change a setting."""
    message = f"Setting that cannot work, nothing was written: {error}"
    log.error(message)
    return AirflowFailException(message)


def settings_or_fail() -> Settings:
    """A first task's settings: a wrong value fails the task at once, naming the setting."""
    try:
        return load_settings()
    except SettingsError as error:
        raise setting_error(error) from None


def check_settings_or_fail(es, settings: Settings, *, arrival: bool = True) -> None:
    """A first task, before its lease and any write: the settings checked against the cluster
    (`mailforce.es.preflight`): the arrival field's mapping, existing output indices' mappings."""
    try:
        check_settings(es, settings, arrival=arrival)
    except UnusableSetting as error:
        raise setting_error(error) from None


def record_asset_event(context: Mapping[str, Any], kind: str, written: int, *, settings: Settings | None = None,
                       **extra: Any) -> None:
    """The extras of this task's event on one output asset: index, documents written, run id."""
    events = context.get("outlet_events")
    if events is None:  # called outside Airflow
        return
    asset = output_assets(settings or load_settings())[kind]
    events[asset].extra = {"index": asset.name, "documents_written": written, "run_id": context.get("run_id"), **extra}


def elasticsearch(settings: Settings) -> MailforceElasticsearchHook:
    """`with elasticsearch(settings) as es:` a client from the configured connection, closed after."""
    return MailforceElasticsearchHook(settings.conn_id)


def lease_holder(context: Mapping[str, Any]) -> Holder:
    dag_run = context["dag_run"]
    return Holder(dag_id=str(getattr(dag_run, "dag_id", "") or ""), run_id=str(context["run_id"]))


def run_is_active(context: Mapping[str, Any]):
    """(dag_id, run_id) -> whether Airflow has that run queued or running (None: it cannot say)."""
    ti = context.get("ti")
    getter = getattr(ti, "get_dagrun_state", None)

    def is_active(dag_id: str, run_id: str) -> bool | None:
        if getter is None or not dag_id or not run_id:
            return None
        try:
            state = getter(dag_id, run_id)
        except Exception:  # unknown run (deleted) or no API: let the lease's expiry decide
            return None
        return str(getattr(state, "value", state)) in ("queued", "running")

    return is_active


def take_lease(es, settings: Settings, context: Mapping[str, Any]) -> None:
    """A run's first task: wait for any other Mailforce run to finish (`mailforce.es.lease`)."""
    acquire_lease(es, settings, lease_holder(context), is_active=run_is_active(context))


def renew_lease(es, settings: Settings, context: Mapping[str, Any] | None) -> None:
    """A later task: renew the run's lease, or fail before writing if another run took it."""
    if context is not None and "dag_run" in context:
        renew_or_fail(es, settings, lease_holder(context), is_active=run_is_active(context))


def give_back_lease(es, settings: Settings, context: Mapping[str, Any]) -> None:
    """A run's last task, after its last write."""
    if "dag_run" in context:
        release_lease(es, settings, lease_holder(context))


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
    settings = settings_or_fail()
    conf = getattr(context["dag_run"], "conf", None) or {}
    try:
        request = parse_run_params(context["params"], conf)  # refuses bad params before any read
    except RunParamsError as error:
        raise param_error(error) from None  # retrying cannot fix a wrong param
    run_end = run_end_from_context(context)
    with elasticsearch(settings) as es:
        check_settings_or_fail(es, settings)  # before the lease: a refused run writes nothing at all
        take_lease(es, settings, context)
        try:
            fetched = fetch_watermark_stage(es, settings, request, run_end, kind=run_kind_from_context(context),
                                            settings_checked=True)
        except RunParamsError as error:
            raise param_error(error) from None
        except UnusableSetting as error:  # an output index made meanwhile by someone else
            raise setting_error(error) from None
        unknown = unknown_accounts(es, settings, fetched.window)
    return replace(fetched, unknown_accounts={param: tuple(names) for param, names in unknown.items()}).to_xcom()


def plan_extraction_slices(context: Mapping[str, Any], window: Mapping[str, Any]) -> list[dict[str, Any]]:
    settings = load_settings()
    with elasticsearch(settings) as es:
        renew_lease(es, settings, context)
        planned = plan_slices_stage(es, settings, FetchedWindow.from_xcom(window).window)
    return [extraction_slice.to_xcom() for extraction_slice in planned]


def extract_message_roles(context: Mapping[str, Any], window: Mapping[str, Any],
                          extraction_slice: Mapping[str, Any] | None = None) -> dict[str, Any]:
    settings = load_settings()
    with elasticsearch(settings) as es:
        renew_lease(es, settings, context)
        summary = extract_stage(es, settings, FetchedWindow.from_xcom(window).window, context["run_id"],
                                extraction_slice=ExtractionSlice.from_xcom(extraction_slice))
    record_asset_event(context, "roles", summary.roles_written, messages=summary.messages,
                       accounts=summary.accounts_count, late_messages=summary.late_messages,
                       source_index=settings.source_index)
    return summary.to_xcom()


def merged_extraction(extraction: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> ExtractionSummary:
    """The whole window's summary from the mapped extraction's results (or one result)."""
    if isinstance(extraction, Mapping):
        return ExtractionSummary.from_xcom(extraction)
    return merge_extractions([ExtractionSummary.from_xcom(result) for result in mapped_results(extraction)])


def identify_account_owners(context: Mapping[str, Any],
                            extraction: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    settings = load_settings()
    with elasticsearch(settings) as es:
        renew_lease(es, settings, context)
        summary = owners_stage(es, settings, merged_extraction(extraction), context["run_id"])
    return summary.to_xcom()


def list_domains(extraction: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    settings = load_settings()
    with elasticsearch(settings) as es:
        partitions = list_domains_stage(merged_extraction(extraction), settings, es)
    return [partition.to_xcom() for partition in partitions]


def compile_domain_partition(
    context: Mapping[str, Any], window: Mapping[str, Any], partition: Mapping[str, Any],
    rescored: Mapping[str, Any],
) -> dict[str, Any]:
    """One partition, scored at the date the rescoring fixed for this run (`RescoreResult`)."""
    settings = load_settings()
    planned = Partition.from_xcom(partition)
    scoring_date = date.fromisoformat(RescoreResult.from_xcom(rescored).scoring_date)
    # Only a first attempt may add the window to stored documents; a retry recomputes.
    first_attempt = getattr(context["ti"], "try_number", 1) <= 1
    with elasticsearch(settings) as es:
        renew_lease(es, settings, context)
        result = compile_partition_stage(
            es, settings, planned, context["run_id"], add_window=first_attempt,
            scoring=scoring_for(settings, scoring_date),
        )
    return result.to_xcom()


def compile_people(context: Mapping[str, Any]) -> dict[str, Any]:
    """The person documents the run's writes touched (after every partition)."""
    settings = load_settings()
    with elasticsearch(settings) as es:
        renew_lease(es, settings, context)
        return compile_people_stage(es, settings).to_xcom()


def announce_outputs(context: Mapping[str, Any], compiled: Sequence[Mapping[str, Any]],
                     rescored: Mapping[str, Any]) -> dict[str, int]:
    """One asset event per compiled output, recorded once per run (`mailforce.assets` says why not
    by the mapped instances); skipped when the run wrote none of them, so no downstream DAG wakes."""
    every_kind = outputs_written(compile_results(compiled), RescoreResult.from_xcom(rescored))
    written = {kind: every_kind[kind] for kind in COMPILED_KIND_NAMES}  # the feed is `announce_changes`'s
    if not any(written.values()):
        log.info("Announced nothing: the run wrote no engagement, relationship, contact, timeline or domain "
                 "document, so no asset event is recorded")
        raise AirflowSkipException("nothing written: no asset event")
    settings = load_settings()
    for kind, count in written.items():
        record_asset_event(context, kind, count, settings=settings)
    log.info("Announced the outputs written: %s", ", ".join(f"{kind} {count}" for kind, count in written.items()))
    return written


def announce_changes(context: Mapping[str, Any], compiled: Sequence[Mapping[str, Any]],
                     rescored: Mapping[str, Any]) -> int:
    """The change feed's asset event, once per run, only when the run recorded a band crossing (the
    example digest DAG is scheduled on it); skipped otherwise."""
    rescore = RescoreResult.from_xcom(rescored)
    crossings = outputs_written(compile_results(compiled), rescore)[CHANGES.name]
    if not crossings:
        log.info("Announced no change: no relationship crossed a strength band in this run")
        raise AirflowSkipException("no band crossing: no asset event")
    record_asset_event(context, CHANGES.name, crossings, scoring_date=rescore.scoring_date)
    log.info("Announced %s on %s", plural(crossings, "band crossing"), rescore.scoring_date)
    return crossings


def cold_digest(context: Mapping[str, Any]) -> dict[str, int]:
    """The example digest DAG's task: per account, the relationships that went cold on the scoring
    dates of the feed events that triggered it (the feed's latest scoring date when run by hand)."""
    from mailforce.digest import cold_digest as digest, latest_scoring_date, scoring_dates_of

    settings = settings_or_fail()
    with elasticsearch(settings) as es:
        scoring_dates = scoring_dates_of(context.get("triggering_asset_events"))
        if not scoring_dates:
            latest = latest_scoring_date(es, settings)
            scoring_dates = [latest] if latest is not None else []
        if not scoring_dates:
            log.info("The change feed is empty: no digest")
            return {}
        connection = (BaseHook.get_connection(settings.digest_webhook_conn_id)
                      if settings.digest_webhook_conn_id else None)
        return digest(es, settings, scoring_dates, connection=connection)


def mapped_results(results: Sequence[Any]) -> list[Any]:
    """A mapped task's results by index: iterating Airflow's lazy sequence reads one past the end
    and logs that miss as an error, which would mislead whoever reads the log."""
    return [results[index] for index in range(len(results))]


def compile_results(compiled: Sequence[Mapping[str, Any]]) -> list[CompileResult]:
    return [CompileResult.from_xcom(result) for result in mapped_results(compiled)]


def rescore_relationships(window: Mapping[str, Any], context: Mapping[str, Any] | None = None) -> dict[str, Any]:
    settings = load_settings()
    with elasticsearch(settings) as es:
        renew_lease(es, settings, context)
        result = rescore_stage(es, settings, FetchedWindow.from_xcom(window).window.window_end)
    return result.to_xcom()


def index_account_statistics(extraction: Mapping[str, Any] | Sequence[Mapping[str, Any]], context: Mapping[str, Any] | None = None,
                             extraction_slice: Mapping[str, Any] | None = None) -> int:
    """The statistics of the run's accounts in this slice's account range (every account: one slice)."""
    settings = load_settings()
    with elasticsearch(settings) as es:
        renew_lease(es, settings, context)
        owned = ExtractionSlice.from_xcom(extraction_slice).owns_account
        written = account_statistics_stage(es, settings, [account for account in merged_extraction(extraction).accounts
                                                          if owned(account)])
    record_asset_event(context or {}, "account_stats", written)
    return written


def run_started_at(context: Mapping[str, Any], fetched: FetchedWindow) -> datetime:
    """When the whole run started, retries included: the earlier of the DAG run's start (which
    Airflow resets when an instance is cleared) and the moment the first task fixed the window."""
    dag_run_start = getattr(context["dag_run"], "start_date", None)
    candidates = [fetched.run_started]
    if isinstance(dag_run_start, datetime):
        candidates.append(dag_run_start.astimezone(timezone.utc))
    return min(candidates)


def publish_stats(
    context: Mapping[str, Any],
    window: Mapping[str, Any],
    extraction: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    compiled: Sequence[Mapping[str, Any]],
    rescored: Mapping[str, Any],
    accounts_written: int | Sequence[int],
    people: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    settings = load_settings()
    fetched = FetchedWindow.from_xcom(window)
    run_started = run_started_at(context, fetched)
    stats = runtime_stats(
        context["run_id"], fetched.window, merged_extraction(extraction), compile_results(compiled),
        RescoreResult.from_xcom(rescored),
        accounts_written if isinstance(accounts_written, int) else sum(mapped_results(accounts_written)),
        run_started, utc_now(), people_written=PeopleResult.from_xcom(people).people_written,
    )
    with elasticsearch(settings) as es:
        renew_lease(es, settings, context)
        publish_stats_stage(es, settings, stats)
        give_back_lease(es, settings, context)
    document = stats.to_xcom()
    summary = run_summary(document, document["duration_seconds"], fetched.unknown_accounts)
    log.info("Run summary: %s", summary)
    ti = context.get("ti")
    if ti is not None and hasattr(ti, "xcom_push"):
        ti.xcom_push(key=RUN_SUMMARY_KEY, value=summary)
    record_asset_event(context, "runtime_stats", 1, window_end=document["window_end"],
                       messages=document["emails_processed"], late_messages=document["late_messages"],
                       documents_written=sum(document["documents_written"].values()), summary=summary)
    return document


def reconcile_window(context: Mapping[str, Any]) -> dict[str, Any]:
    """The reconciliation DAG's first task: the (account, day) slices holding mail no run counted."""
    from mailforce.stages.reconcile import reconcile_window as reconcile_stage

    settings = settings_or_fail()
    with elasticsearch(settings) as es:
        check_settings_or_fail(es, settings, arrival=False)  # reconciliation windows on date, not on arrival
        take_lease(es, settings, context)
        try:
            return reconcile_stage(es, settings).to_xcom()
        except UnusableSetting as error:
            raise setting_error(error) from None


def plan_history_chunks(context: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The history DAG's first task: one `mailforce_engagements` conf (`to_date`) per chunk still to load."""
    from mailforce.core.dates import format_utc, parse_param_date
    from mailforce.core.history import HistoryError
    from mailforce.stages.plan_history_chunks import plan_history_chunks as plan_stage

    settings = settings_or_fail()
    params = context.get("params") or {}
    run_end = run_end_from_context(context)
    try:
        until = parse_param_date(params["until"], "until") if params.get("until") else run_end
        if until > run_end:
            raise HistoryError(f"param 'until' ({format_utc(until)}) is after this run's end ({format_utc(run_end)})")
        with elasticsearch(settings) as es:
            ends = plan_stage(es, settings, until.replace(microsecond=0), str(params.get("chunk") or "month"))
    except (HistoryError, ValueError) as error:
        raise param_error(error) from None
    return [{"to_date": format_utc(end)} for end in ends]

