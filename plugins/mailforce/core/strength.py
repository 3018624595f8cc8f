"""Relationship strength, 0 to 100, from exact figures only (pure; docs/SEMANTICS.md, "Relationship strength").

The score depends on the calendar date of scoring, not the hour: every run of one day scores alike,
and only the first run of a new day needs to rescore what time alone changed.
"""

from __future__ import annotations

import math
from datetime import date, datetime

CC_WEIGHT = 0.5  # From and To weigh more than CC
VOLUME_HALF_POINT = 5.0  # weighted messages at which volume reaches half of its maximum
ONE_WAY_FACTOR = 0.5  # an address that only sent, or only received, weighs half
DEFAULT_HALF_LIFE_DAYS = 90
BEST_CONNECTED_LIMIT = 5


def calendar_date(value: str | datetime | date) -> date:
    """The UTC calendar date of an output date string (`2001-05-14T23:39:00Z`) or a datetime."""
    if isinstance(value, str):
        return date.fromisoformat(value[:10])
    if isinstance(value, datetime):
        return value.date()
    return value


def is_two_way(from_count: int, to_count: int, cc_count: int) -> bool:
    """The address both sent mail seen in the mailbox and received mail from it."""
    return from_count > 0 and to_count + cc_count > 0


def strength(
    *,
    from_count: int,
    to_count: int,
    cc_count: int,
    latest_engagement_date: str | datetime | date,
    scoring_date: date,
    half_life_days: float = DEFAULT_HALF_LIFE_DAYS,
    automated: bool = False,
) -> int:
    """The documented formula, computed in the documented order (so anyone can recompute it)."""
    if automated:
        return 0
    weighted = from_count + to_count + CC_WEIGHT * cc_count
    if weighted <= 0:
        return 0
    exchange = 1.0 if is_two_way(from_count, to_count, cc_count) else ONE_WAY_FACTOR
    age_days = max(0, (scoring_date - calendar_date(latest_engagement_date)).days)
    recency = 0.5 ** (age_days / half_life_days)
    return math.floor(100.0 * weighted / (weighted + VOLUME_HALF_POINT) * exchange * recency + 0.5)


def ranking_key(entry: dict) -> tuple:
    """Best connected first: strength, then messages, then account name."""
    return (-entry["strength"], -entry["total_count"], entry["account"])


def best_connected(entries, limit: int = BEST_CONNECTED_LIMIT) -> list[dict]:
    """The top entries `{account, strength, total_count}` by `ranking_key`."""
    return sorted(entries, key=ranking_key)[:limit]
