"""A run's params: validated before any read, and the window they give (pure)."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Mapping

from mailforce.core.dates import format_utc, parse_param_date
from mailforce.core.window import Window

RUN_PARAMS = ("from_date", "to_date", "backfilled_accounts", "exclude_accounts")


DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """`"6h"`, `"30m"`, `"2d"`, `"90s"`, `"0"` -> a timedelta; ValueError otherwise."""
    value = str(text).strip().lower()
    if value in ("", "0"):
        return timedelta(0)
    match = re.fullmatch(r"(\d+)\s*([smhd])", value)
    if not match:
        raise ValueError(f"{text!r} is not a duration like '30m', '6h' or '2d'")
    return timedelta(seconds=int(match.group(1)) * DURATION_UNITS[match.group(2)])


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


@dataclass(frozen=True)
class RunKind:
    """What Airflow says about the run: its type and data interval (None outside Airflow)."""

    run_type: str = ""  # "scheduled", "manual", "backfill", "asset_triggered"
    interval_start: datetime | None = None


def resolve_window(
    request: RunRequest,
    run_end: datetime,
    watermark: datetime | None,
    *,
    kind: RunKind = RunKind(),
    arrival_field: str = "",
    allowed_lateness: timedelta = timedelta(0),
) -> Window:
    """The window: (watermark, run end], or [from_date, run end]; account filters applied.

    Late mail: with an arrival field the window is on max(arrival, date); without, a run from the
    watermark re-reads `allowed_lateness` below it on `date`. An Airflow backfill or catch-up run
    (run type "backfill", or a data interval ending before the watermark) covers exactly its data
    interval on `date`, for all accounts, and never moves the watermark.
    """
    window_end = run_end.replace(microsecond=0)
    plain = request.from_date is None and request.to_date is None and not request.backfill
    past_interval = watermark is not None and window_end < watermark
    if plain and kind.interval_start is not None and (kind.run_type == "backfill" or past_interval):
        return Window(
            window_end=window_end,
            window_start=kind.interval_start.replace(microsecond=0),
            exclude_accounts=request.exclude_accounts,
            interval_backfill=True,
        )
    window = _resolved(request, window_end, watermark)
    if window.start_inclusive or window.backfill or window.window_start is None:
        return window
    if arrival_field:
        return replace(window, arrival_field=arrival_field)
    if allowed_lateness > timedelta(0):
        return replace(window, read_from=window.window_start - allowed_lateness)
    return window


def _resolved(request: RunRequest, window_end: datetime, watermark: datetime | None) -> Window:
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
