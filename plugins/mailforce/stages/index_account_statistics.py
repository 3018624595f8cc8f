"""Stage 6: per account seen in the window, distinct addresses per role."""

from __future__ import annotations

import logging
from typing import Sequence

from mailforce.core.dates import format_utc, utc_now
from mailforce.core.wording import plural
from mailforce.es.accounts import write_account_statistics
from mailforce.settings import Settings

log = logging.getLogger(__name__)


def index_account_statistics(
    es, settings: Settings, accounts: Sequence[str], *, updated_at: str | None = None
) -> int:
    """Write the statistics of these accounts; returns how many were written."""
    written = write_account_statistics(es, settings, accounts, updated_at or format_utc(utc_now()))
    log.info("Wrote the statistics of %s", plural(written, "account"))
    return written
