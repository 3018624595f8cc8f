"""The runtime-stats record of one successful run, which doubles as the watermark (pure).

The watermark is the latest `window_end` among non-backfill runs recorded in the runtime-stats
index (`mailforce.es.watermark`). A record is written only after every stage succeeded, so a failed
run never moves it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Mapping, Sequence

from mailforce.core.dates import format_utc
from mailforce.core.kinds import ACCOUNT_STATS, OUTPUT_KINDS, PEOPLE, ROLES
from mailforce.core.roles import ROLE_CC, ROLE_FROM, ROLE_TO
from mailforce.core.summaries import WRITTEN_KINDS, CompileResult, ExtractionSummary, RescoreResult, RunStats
from mailforce.core.window import Window

DURATION_DECIMALS = 3  # milliseconds
# The data model's version, recorded in every runtime-stats document. The watermark reads only the
# records of this version: after an upgrade that rebuilds the outputs (`mailforce.es.indices`), the
# first run starts from the beginning and recomputes everything from the source (docs/UPGRADING.md).
# 1: nested roles/engagement lists (no model_version field); 2: flat relationships, contacts, timeline;
# 3: conversations (roles documents say who wrote to whom; owner addresses; direct exchange; reasons);
# 4: people (`person_id` on relationships and contacts; search-people).
MODEL_VERSION = 4


def outputs_written(compiled: Sequence[CompileResult], rescored: RescoreResult) -> dict[str, int]:
    """Documents the run wrote per compiled output (`WRITTEN_KINDS`): its partitions plus its rescoring."""
    return {kind: sum(result.written.count(kind) for result in compiled)
            + getattr(rescored, f"{kind}_written", 0) for kind in WRITTEN_KINDS}


def documents_written_by_kind(written: Mapping[str, int]) -> dict[str, int]:
    """The runtime stats' `documents_written`: each kind's count under its `stats_key`."""
    return {kind.stats_key: int(written.get(kind.name, 0)) for kind in OUTPUT_KINDS if kind.stats_key}


def runtime_stats(
    run_id: str,
    window: Window,
    extraction: ExtractionSummary,
    compiled: Sequence[CompileResult],
    rescored: RescoreResult,
    accounts_written: int,
    run_started: datetime,
    now: datetime,
    people_written: int = 0,
) -> RunStats:
    """The record of one successful run; its id is the run id's, so a re-publish overwrites."""
    counts = extraction.counts
    written = outputs_written(compiled, rescored)
    document = {
        "model_version": MODEL_VERSION,
        "run_id": run_id,
        "run_date": format_utc(now),
        "window_start": format_utc(window.window_start) if window.window_start else None,
        "window_start_inclusive": window.start_inclusive,
        "window_end": format_utc(window.window_end),
        "backfill": window.backfill,
        "backfilled_accounts": list(window.accounts) if window.accounts is not None else [],
        "exclude_accounts": list(window.exclude_accounts),
        "email_accounts_processed": extraction.processed_accounts_count,
        "domains_processed": extraction.domains_count,
        "emails_processed": extraction.processed_messages,
        "counted_messages": extraction.messages,
        "source_documents": counts.source_documents,
        "from_roles": extraction.role_entries.get(ROLE_FROM, 0),
        "to_roles": extraction.role_entries.get(ROLE_TO, 0),
        "cc_roles": extraction.role_entries.get(ROLE_CC, 0),
        "skipped_no_date": counts.skipped_no_date,
        "skipped_no_account": counts.skipped_no_account,
        "invalid_addresses": counts.invalid_addresses,
        "filtered_addresses": counts.filtered_addresses,
        "undated_source_documents": extraction.undated_source_documents,
        "late_messages": extraction.late_messages,
        "late_accounts": list(extraction.late_accounts),
        "late_days": list(extraction.late_days),
        "late_days_count": extraction.late_days_count,
        "future_dated_messages": extraction.future_dated_messages,
        "future_dated_max_date": extraction.future_dated_max_date,
        "unchanged_messages": extraction.unchanged_messages,
        "read_from": format_utc(window.read_from) if window.read_from else None,
        "reconciliation": window.reconciliation,
        "interval_backfill": window.interval_backfill,
        "partitions": len(compiled),
        "documents_written": documents_written_by_kind(
            {**written, ROLES.name: extraction.roles_written, ACCOUNT_STATS.name: accounts_written,
             PEOPLE.name: people_written}),
        "scoring_date": f"{rescored.scoring_date}T00:00:00Z" if rescored.scoring_date else None,
        "relationships_rescored": rescored.relationships_written,
        "duration_seconds": round((now - run_started).total_seconds(), DURATION_DECIMALS),
        "updated_at": format_utc(now),
    }
    return RunStats(document)
