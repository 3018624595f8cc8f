"""The window a run covers, and the runtime-stats record that doubles as the watermark.

The watermark is the latest `window_end` among non-backfill runs recorded in the runtime-stats
index. A record is written only after every stage succeeded, so a failed run never moves it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Mapping

from elasticsearch import NotFoundError

from mailforce.dates import format_utc, parse_param_date, parse_source_date
from mailforce.indices import document_id
from mailforce.settings import Settings
from mailforce.source import Window

log = logging.getLogger(__name__)

RUN_PARAMS = ("from_date", "to_date", "backfilled_accounts", "exclude_accounts")


class RunParamsError(ValueError):
    """A run's params are wrong; the message names the param."""


@dataclass(frozen=True)
class RunRequest:
    """The validated params of one run."""

    from_date: datetime | None = None
    to_date: datetime | None = None
    backfilled_accounts: tuple[str, ...] | None = None
    exclude_accounts: tuple[str, ...] = ()

    @property
    def backfill(self) -> bool:
        return self.backfilled_accounts is not None


def _account_list(value: Any, name: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise RunParamsError(f"param {name!r} must be a list of account ids, got {type(value).__name__}: {value!r}")
    accounts = []
    for item in value:
        if not isinstance(item, str) or not item.strip():
            raise RunParamsError(f"param {name!r}: every account id must be a non-empty string, got {item!r}")
        accounts.append(item.strip())
    return tuple(sorted(set(accounts)))


def parse_run_params(params: Mapping[str, Any], conf: Mapping[str, Any] | None = None) -> RunRequest:
    """Validate params (and refuse conf keys that are not params) before any data is read."""
    unknown = sorted(set(conf or {}) - set(RUN_PARAMS))
    if unknown:
        raise RunParamsError(f"unknown param(s) {unknown}; this DAG takes {list(RUN_PARAMS)}")
    dates: dict[str, datetime | None] = {}
    for name in ("from_date", "to_date"):
        value = params.get(name)
        if value in (None, ""):
            dates[name] = None
        elif isinstance(value, str):
            try:
                dates[name] = parse_param_date(value, name)
            except ValueError as error:
                raise RunParamsError(str(error)) from None
        else:
            raise RunParamsError(f"param {name!r} must be an ISO-8601 date-time string, got {value!r}")
    if dates["from_date"] and dates["to_date"] and dates["from_date"] > dates["to_date"]:
        raise RunParamsError("param 'from_date' is after 'to_date'")
    backfilled = _account_list(params.get("backfilled_accounts"), "backfilled_accounts")
    if backfilled == ():
        raise RunParamsError("param 'backfilled_accounts' is an empty list; leave it out to process every account")
    excluded = _account_list(params.get("exclude_accounts"), "exclude_accounts") or ()
    return RunRequest(dates["from_date"], dates["to_date"], backfilled, excluded)


def read_watermark(es, settings: Settings) -> datetime | None:
    """The latest window end of a successful non-backfill run; None on a fresh cluster."""
    try:
        response = es.search(
            index=settings.runtime_stats_index,
            size=1,
            query={"bool": {"filter": [{"term": {"backfill": False}}]}},
            sort=[{"window_end": {"order": "desc"}}],
            source=["window_end", "run_id"],
        )
    except NotFoundError:
        return None
    hits = response["hits"]["hits"]
    if not hits:
        return None
    return parse_source_date(hits[0]["_source"]["window_end"])


def resolve_window(request: RunRequest, run_end: datetime, watermark: datetime | None) -> Window:
    """The window: (watermark, run end], or [from_date, run end]; account filters applied."""
    window_end = run_end.replace(microsecond=0)
    if request.to_date is not None:
        if request.to_date > window_end:
            raise RunParamsError(
                f"param 'to_date' ({format_utc(request.to_date)}) is after this run's end "
                f"({format_utc(window_end)}): mail up to then may not have been harvested yet"
            )
        window_end = request.to_date
    if request.from_date is not None:
        start, inclusive = request.from_date, True
    elif request.backfill:
        start, inclusive = None, False  # a backfill starts at the accounts' very first message
    else:
        start, inclusive = watermark, False
    if start is not None and start > window_end:
        raise RunParamsError(
            f"the window would start ({format_utc(start)}) after it ends ({format_utc(window_end)}); "
            "give 'from_date' to reprocess earlier mail"
        )
    return Window(
        window_end=window_end,
        window_start=start,
        start_inclusive=inclusive,
        accounts=request.backfilled_accounts,
        exclude_accounts=request.exclude_accounts,
    )


def window_to_dict(window: Window) -> dict[str, Any]:
    """A window for XCom (strings only)."""
    return {
        "window_start": format_utc(window.window_start) if window.window_start else None,
        "window_end": format_utc(window.window_end),
        "start_inclusive": window.start_inclusive,
        "accounts": list(window.accounts) if window.accounts is not None else None,
        "exclude_accounts": list(window.exclude_accounts),
    }


def window_from_dict(data: Mapping[str, Any]) -> Window:
    start = parse_source_date(data["window_start"]) if data.get("window_start") else None
    end = parse_source_date(data["window_end"])
    assert end is not None
    accounts = data.get("accounts")
    return Window(
        window_end=end,
        window_start=start,
        start_inclusive=bool(data.get("start_inclusive")),
        accounts=tuple(accounts) if accounts is not None else None,
        exclude_accounts=tuple(data.get("exclude_accounts") or ()),
    )


def runtime_stats_document(
    run_id: str,
    window: Window,
    extraction: Mapping[str, Any],
    partitions: list[Mapping[str, Any]],
    merged: Mapping[str, Any],
    accounts_written: int,
    run_started: datetime,
    now: datetime,
) -> tuple[str, dict[str, Any]]:
    """(id, document) of one successful run; the id is the run id's, so a re-publish overwrites."""
    role_entries = extraction.get("role_entries", {})
    document = {
        "run_id": run_id,
        "run_date": format_utc(now),
        "window_start": format_utc(window.window_start) if window.window_start else None,
        "window_start_inclusive": window.start_inclusive,
        "window_end": format_utc(window.window_end),
        "backfill": window.accounts is not None,
        "backfilled_accounts": list(window.accounts) if window.accounts is not None else [],
        "exclude_accounts": list(window.exclude_accounts),
        "email_accounts_processed": extraction["accounts_count"],
        "domains_processed": extraction["domains_count"],
        "emails_processed": extraction["messages"],
        "source_documents": extraction["counts"]["source_documents"],
        "from_roles": role_entries.get("From", 0),
        "to_roles": role_entries.get("To", 0),
        "cc_roles": role_entries.get("CC", 0),
        "skipped_no_date": extraction["counts"]["skipped_no_date"],
        "skipped_no_account": extraction["counts"]["skipped_no_account"],
        "invalid_addresses": extraction["counts"]["invalid_addresses"],
        "filtered_addresses": extraction["counts"]["filtered_addresses"],
        "undated_source_documents": extraction["undated_source_documents"],
        "partitions": len(partitions),
        "documents_written": {
            "message_roles": extraction["roles_written"],
            "accounts_engagements": sum(p["engagements_written"] for p in partitions) + merged["engagements_written"],
            "domains_engagements": sum(p["domains_written"] for p in partitions) + merged["domains_written"],
            "accounts_statistics": accounts_written,
        },
        "duration_seconds": round((now - run_started).total_seconds(), 3),
        "updated_at": format_utc(now),
    }
    return document_id(run_id), document
