"""Stage 1: refuse settings that cannot work, create missing output indices, fix the run's window once."""

from __future__ import annotations

import logging
from datetime import datetime

from mailforce.core.dates import format_utc, utc_now
from mailforce.core.run_params import RunKind, RunRequest, parse_duration, resolve_window
from mailforce.core.summaries import FetchedWindow
from mailforce.core.window import Window
from mailforce.core.wording import UNKNOWN_ACCOUNTS_HINT, describe_window, unknown_accounts_text
from mailforce.es.accounts import accounts_in_source
from mailforce.es.indices import prepare_indices
from mailforce.es.ledger import ensure_ledger_index
from mailforce.es.preflight import check_settings
from mailforce.es.watermark import read_watermark
from mailforce.settings import Settings

log = logging.getLogger(__name__)


def fetch_watermark(
    es,
    settings: Settings,
    request: RunRequest,
    run_end: datetime,
    *,
    run_started: datetime | None = None,
    kind: RunKind = RunKind(),
    settings_checked: bool = False,
) -> FetchedWindow:
    """(watermark, run end], or [from_date, run end], with the account filters; raises
    RunParamsError when the params cannot give a window. Late mail: on the arrival field when set,
    else reaching back by the allowed lateness; an Airflow backfill covers its data interval.

    First, before anything is written, `check_settings` (`mailforce.es.preflight`) raises
    UnusableSetting for an arrival field the source does not map as a date or an output index with a
    foreign mapping; `settings_checked=True` when the caller did so already (the DAG's task checks
    before it takes the lease)."""
    if not settings_checked:
        check_settings(es, settings)
    # Only a run that covers the whole source may rebuild outputs of an earlier data model: not a
    # backfill (accounts, or an Airflow backfill's data interval) nor a reprocessing from a date.
    covers_everything = request.from_date is None and not request.backfill and kind.run_type != "backfill"
    created = prepare_indices(es, settings, allow_rebuild=covers_everything)
    if ensure_ledger_index(es, settings):
        created = [*created, settings.ledger_index]
    watermark = read_watermark(es, settings)
    window = resolve_window(request, run_end, watermark, kind=kind, arrival_field=settings.arrival_field,
                            allowed_lateness=parse_duration(settings.allowed_lateness))
    fetched = FetchedWindow(window=window, run_started=run_started or utc_now())
    log.info(
        "Window %s; watermark %s; accounts %s; excluded %s; indices created: %s",
        describe_window(window),
        format_utc(watermark) if watermark else "none (fresh cluster)",
        list(window.accounts) if window.accounts is not None else "all",
        list(window.exclude_accounts) or "none", created or "none",
    )
    if window.interval_backfill:
        log.info("Airflow backfill/catch-up of a past data interval: every account, on date; the watermark "
                 "stays at %s", format_utc(watermark) if watermark else "none")
    elif window.arrival_field:
        log.info("Late mail: window on max(%s, date), so mail indexed late is read by the first run after it "
                 "arrived", window.arrival_field)
    elif window.read_from is not None:
        log.info("Late mail: re-reading from %s (allowed lateness %s below the watermark)",
                 format_utc(window.read_from), settings.allowed_lateness)
    return fetched


def unknown_accounts(es, settings: Settings, window: Window) -> dict[str, list[str]]:
    """Per account param, the ids the source index does not hold (one terms aggregation), each
    logged as a WARNING: not a failure, since a new mailbox may simply not be loaded yet."""
    named = {"backfilled_accounts": list(window.accounts or ()), "exclude_accounts": list(window.exclude_accounts)}
    present = accounts_in_source(es, settings.source_index, [name for names in named.values() for name in names])
    unknown = {param: sorted(set(names) - present) for param, names in named.items() if set(names) - present}
    if unknown:
        log.warning("Unknown accounts (%s): %s", unknown_accounts_text(unknown), UNKNOWN_ACCOUNTS_HINT)
    return unknown
