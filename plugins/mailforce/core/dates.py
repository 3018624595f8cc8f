"""Dates at the edges: parse what the source holds, write ISO-8601 UTC to the second (pure)."""

from __future__ import annotations

import re
from datetime import datetime, timezone

UTC = timezone.utc
# What Elasticsearch's default `strict_date_optional_time` takes, minus its rarer forms (week dates,
# hour-only times), which the source never holds and which would only make the figures ambiguous.
_TIME = r"T\d{2}:\d{2}(:\d{2}(\.\d+)?)?([zZ]|[+-]\d{2}:?\d{2})?"
ISO_DATE = re.compile(rf"^\d{{4}}-\d{{2}}-\d{{2}}({_TIME})?$")
# What a person gives as a param: a full date-time (the trigger form validates it with this).
ISO_DATE_TIME_PATTERN = rf"^\d{{4}}-\d{{2}}-\d{{2}}{_TIME}$"


def parse_source_date(value: object) -> datetime | None:
    """A timezone-aware UTC datetime, or None when the value is missing or unparseable.

    Accepts ISO-8601 date-times with or without zone (no zone means UTC), plain dates (midnight
    UTC) and epoch milliseconds, as Elasticsearch's default date format does.
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        try:
            return datetime.fromtimestamp(value / 1000, tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not ISO_DATE.match(text):
        return None
    if text.endswith(("z", "Z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def format_utc(moment: datetime) -> str:
    """`2001-05-14T23:39:00Z`: UTC, to the second, with a Z."""
    utc = moment.astimezone(UTC)
    if 1000 <= utc.year:  # four digits: the same text as strftime, a few times faster (one per date written)
        return (f"{utc.year}-{utc.month:02d}-{utc.day:02d}T{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}Z")
    return utc.strftime("%Y-%m-%dT%H:%M:%SZ")  # the platform's own rendering of years below 1000


def parse_param_date(value: str, name: str) -> datetime:
    """A date-time given by a person (a param or setting); a clear error names the param."""
    parsed = parse_source_date(value) if isinstance(value, str) else None
    if parsed is None:
        raise ValueError(f"param {name!r}: {value!r} is not an ISO-8601 date-time (e.g. 2001-05-14T23:39:00Z)")
    return parsed


def utc_now() -> datetime:
    """Now, timezone-aware UTC."""
    return datetime.now(UTC)
