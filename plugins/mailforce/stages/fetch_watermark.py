"""Stage 1: create missing output indices and fix the run's window once."""

from __future__ import annotations

import logging
from datetime import datetime

from mailforce.core.dates import format_utc, utc_now
from mailforce.core.run_params import RunRequest, resolve_window
from mailforce.core.summaries import FetchedWindow
from mailforce.es.indices import prepare_indices
from mailforce.es.watermark import read_watermark
from mailforce.settings import Settings

log = logging.getLogger(__name__)


def fetch_watermark(
    es, settings: Settings, request: RunRequest, run_end: datetime, *, run_started: datetime | None = None
) -> FetchedWindow:
    """(watermark, run end], or [from_date, run end], with the account filters; raises
    RunParamsError when the params cannot give a window."""
    created = prepare_indices(es, settings)
    watermark = read_watermark(es, settings)
    window = resolve_window(request, run_end, watermark)
    fetched = FetchedWindow(window=window, run_started=run_started or utc_now())
    log.info(
        "Window (%s, %s]%s; watermark %s; accounts %s; excluded %s; indices created: %s",
        format_utc(window.window_start) if window.window_start else "beginning", format_utc(window.window_end),
        " (start inclusive)" if window.start_inclusive else "",
        format_utc(watermark) if watermark else "none (fresh cluster)",
        list(window.accounts) if window.accounts is not None else "all",
        list(window.exclude_accounts) or "none", created or "none",
    )
    return fetched
