"""Relationship strength, 0 to 100, from exact figures only (pure; docs/SEMANTICS.md, "Relationship strength").

The score depends on the calendar date of scoring, not the hour: every run of one day scores alike,
and only the first run of a new day needs to rescore what time alone changed.
"""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Any, Mapping

from mailforce.core.conversations import AUDIENCE_UNIT

VOLUME_HALF_POINT = 5.0  # audience-weighted direct messages at which volume reaches half of its maximum
ONE_WAY_FACTOR = 0.5  # an exchange one way only (the address only wrote, or was only written to) weighs half
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
    direct_weight: int,
    direct_from_count: int,
    direct_to_count: int,
    latest_direct_date: str | datetime | date | None,
    scoring_date: date,
    half_life_days: float = DEFAULT_HALF_LIFE_DAYS,
    automated: bool = False,
    owner: bool = False,
) -> int:
    """The documented formula, computed in the documented order (so anyone can recompute it).

    Built on direct exchange with the mailbox's owner, each message weighed by its audience
    (`direct_weight`, in millionths of a message: docs/SEMANTICS.md, "Conversations").
    """
    if automated or owner or direct_weight <= 0 or latest_direct_date is None:
        return 0
    weighted = direct_weight / AUDIENCE_UNIT
    exchange = 1.0 if direct_from_count > 0 and direct_to_count > 0 else ONE_WAY_FACTOR
    age_days = max(0, (scoring_date - calendar_date(latest_direct_date)).days)
    recency = 0.5 ** (age_days / half_life_days)
    return math.floor(100.0 * weighted / (weighted + VOLUME_HALF_POINT) * exchange * recency + 0.5)


# What a relationship document must carry for `relationship_strength` (the rescoring reads these).
STRENGTH_FIELDS = ("direct_weight", "direct_from_count", "direct_to_count", "latest_direct_date", "automated", "owner")


def relationship_strength(document: Mapping[str, Any], scoring_date: date,
                          half_life_days: float = DEFAULT_HALF_LIFE_DAYS) -> int:
    """The strength of a relationship document, from its own figures."""
    return strength(
        direct_weight=int(document.get("direct_weight") or 0),
        direct_from_count=int(document.get("direct_from_count") or 0),
        direct_to_count=int(document.get("direct_to_count") or 0),
        latest_direct_date=document.get("latest_direct_date"),
        scoring_date=scoring_date, half_life_days=half_life_days,
        automated=bool(document.get("automated")), owner=bool(document.get("owner")),
    )


def ranking_key(entry: dict) -> tuple:
    """Best connected first: strength, then messages, then account name."""
    return (-entry["strength"], -entry["total_count"], entry["account"])


def best_connected(entries, limit: int = BEST_CONNECTED_LIMIT) -> list[dict]:
    """The top entries `{account, strength, total_count}` by `ranking_key`."""
    return sorted(entries, key=ranking_key)[:limit]
