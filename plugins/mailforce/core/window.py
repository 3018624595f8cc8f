"""The window a run covers, and its XCom form (pure).

The queries it builds are plain dicts; running them is `mailforce.es.reads`'s work.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Mapping

from mailforce.core.dates import format_utc, parse_source_date


@dataclass(frozen=True)
class Window:
    """Which source messages a run covers; bounds are UTC datetimes."""

    window_end: datetime
    window_start: datetime | None = None  # exclusive; None = from the very first message
    start_inclusive: bool = False  # True when the start is a `from_date`
    accounts: tuple[str, ...] | None = None  # only these accounts (a backfill)
    exclude_accounts: tuple[str, ...] = ()
    # Late mail (docs/SEMANTICS.md, docs/LATE_MAIL.md):
    arrival_field: str = ""  # set: a document is in the window when max(arrival, date) is
    read_from: datetime | None = None  # on `date`, reach back to here (exclusive) below window_start
    interval_backfill: bool = False  # an Airflow backfill/catch-up of a past data interval
    reconciliation: bool = False  # a reconciliation run: `slices` name what it reads
    slices: tuple[tuple[str, str], ...] = ()  # (account, UTC day YYYY-MM-DD) read by a reconciliation

    @property
    def backfill(self) -> bool:
        """The watermark ignores the record of such a run."""
        return self.accounts is not None or self.interval_backfill

    @property
    def moves_watermark(self) -> bool:
        return not (self.backfill or self.reconciliation)

    def date_range(self) -> dict[str, Any]:
        return {"range": {"date": self._bounds(self.read_from or self.window_start)}}

    def _bounds(self, start: datetime | None) -> dict[str, Any]:
        bounds: dict[str, Any] = {"lte": format_utc(self.window_end)}
        if start is not None:
            bounds["gte" if self.start_inclusive else "gt"] = format_utc(start)
        return bounds

    def selection(self) -> dict[str, Any]:
        """The clause choosing the window's documents: on date, on max(arrival, date), or the slices."""
        if self.reconciliation and not self.slices:
            return {"bool": {"must_not": [{"match_all": {}}]}}  # nothing was missing
        if self.slices:
            return {"bool": {"should": [
                {"bool": {"filter": [{"term": {"account": account}},
                                     {"range": {"date": {"gte": f"{day}T00:00:00Z", "lt": _next_day(day)}}},
                                     {"range": {"date": {"lte": format_utc(self.window_end)}}}]}}
                for account, day in self.slices
            ], "minimum_should_match": 1}}
        if not self.arrival_field or self.window_start is None or self.start_inclusive:
            return self.date_range()
        end, start = format_utc(self.window_end), format_utc(self.window_start)
        arrival = self.arrival_field
        return {"bool": {"should": [
            # max(arrival, date) in (start, end]
            {"bool": {"filter": [{"range": {arrival: {"lte": end}}}, {"range": {"date": {"lte": end}}}],
                      "should": [{"range": {arrival: {"gt": start}}}, {"range": {"date": {"gt": start}}}],
                      "minimum_should_match": 1}},
            # no arrival stamp: its date decides
            {"bool": {"filter": [{"range": {"date": {"gt": start, "lte": end}}}],
                      "must_not": [{"exists": {"field": arrival}}]}},
        ], "minimum_should_match": 1}}

    def future_dated_query(self) -> dict[str, Any]:
        """The window's accounts' documents dated after its end (a sender's clock ahead)."""
        filters, must_not = self.account_filters()
        return {"bool": {"filter": [{"range": {"date": {"gt": format_utc(self.window_end)}}}, *filters],
                         "must_not": must_not}}

    def account_filters(self, field: str = "account") -> tuple[list[dict], list[dict]]:
        """(filter clauses, must_not clauses) for the account lists."""
        filters = [{"terms": {field: list(self.accounts)}}] if self.accounts is not None else []
        must_not = [{"terms": {field: list(self.exclude_accounts)}}] if self.exclude_accounts else []
        return filters, must_not

    def source_query(self) -> dict[str, Any]:
        filters, must_not = self.account_filters()
        return {"bool": {"filter": [self.selection(), *filters], "must_not": must_not}}

    def undated_query(self) -> dict[str, Any]:
        """Documents of the window's accounts that no window can ever select: no usable date."""
        filters, must_not = self.account_filters()
        return {"bool": {"filter": filters, "must_not": [{"exists": {"field": "date"}}, *must_not]}}

    def to_xcom(self) -> dict[str, Any]:
        """The window for XCom (strings only)."""
        return {
            "window_start": format_utc(self.window_start) if self.window_start else None,
            "window_end": format_utc(self.window_end),
            "start_inclusive": self.start_inclusive,
            "accounts": list(self.accounts) if self.accounts is not None else None,
            "exclude_accounts": list(self.exclude_accounts),
            "arrival_field": self.arrival_field,
            "read_from": format_utc(self.read_from) if self.read_from else None,
            "interval_backfill": self.interval_backfill,
            "reconciliation": self.reconciliation,
            "slices": [list(item) for item in self.slices],
        }

    @classmethod
    def from_xcom(cls, data: Mapping[str, Any]) -> "Window":
        start = parse_source_date(data["window_start"]) if data.get("window_start") else None
        end = parse_source_date(data["window_end"])
        assert end is not None
        accounts = data.get("accounts")
        return cls(
            window_end=end,
            window_start=start,
            start_inclusive=bool(data.get("start_inclusive")),
            accounts=tuple(accounts) if accounts is not None else None,
            exclude_accounts=tuple(data.get("exclude_accounts") or ()),
            arrival_field=data.get("arrival_field") or "",
            read_from=parse_source_date(data["read_from"]) if data.get("read_from") else None,
            interval_backfill=bool(data.get("interval_backfill")),
            reconciliation=bool(data.get("reconciliation")),
            slices=tuple((account, day) for account, day in data.get("slices") or ()),
        )


def _next_day(day: str) -> str:
    return format_utc(datetime.fromisoformat(f"{day}T00:00:00+00:00") + timedelta(days=1))
