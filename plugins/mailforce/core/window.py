"""The window a run covers, and its XCom form (pure).

The queries it builds are plain dicts; running them is `mailforce.es.reads`'s work.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
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

    @property
    def backfill(self) -> bool:
        return self.accounts is not None

    def date_range(self) -> dict[str, Any]:
        bounds: dict[str, Any] = {"lte": format_utc(self.window_end)}
        if self.window_start is not None:
            bounds["gte" if self.start_inclusive else "gt"] = format_utc(self.window_start)
        return {"range": {"date": bounds}}

    def account_filters(self, field: str = "account") -> tuple[list[dict], list[dict]]:
        """(filter clauses, must_not clauses) for the account lists."""
        filters = [{"terms": {field: list(self.accounts)}}] if self.accounts is not None else []
        must_not = [{"terms": {field: list(self.exclude_accounts)}}] if self.exclude_accounts else []
        return filters, must_not

    def source_query(self) -> dict[str, Any]:
        filters, must_not = self.account_filters()
        return {"bool": {"filter": [self.date_range(), *filters], "must_not": must_not}}

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
        )
