"""The relationship strength of docs/SEMANTICS.md, as the oracle computes it (tests/oracle.py).

Every expected value below was worked out by hand from the formula

    weighted = from + to + 0.5 * cc;  exchange = 1.0 if two-way else 0.5
    age_days = max(0, scoring date - UTC date of latest);  recency = 0.5 ** (age_days / half_life)
    strength = 0 if automated else floor(100 * weighted / (weighted + 5) * exchange * recency + 0.5)

and is written here as a literal, with the arithmetic in the comment.
"""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest

from oracle import strength

UTC = timezone.utc
SCORING = date(2001, 6, 30)


def test_worked_example_two_way() -> None:
    # weighted 3 + 4 + 1 = 8; two-way; age 60; 100 * 8 / 13 * 1.0 * 0.5 ** (60 / 90) = 38.7668 -> 39
    assert strength(3, 4, 2, datetime(2001, 5, 1, 10, 0, tzinfo=UTC), SCORING) == 39


def test_worked_example_one_way_cc_only() -> None:
    # weighted 1; one-way (no From); 100 * 1 / 6 * 0.5 * 0.629961 = 5.2497 -> 5
    assert strength(0, 0, 2, datetime(2001, 5, 1, 10, 0, tzinfo=UTC), SCORING) == 5


def test_automated_is_always_zero() -> None:
    assert strength(3, 4, 2, datetime(2001, 5, 1, 10, 0, tzinfo=UTC), SCORING, automated=True) == 0
    assert strength(10_000, 10_000, 0, datetime(2001, 6, 30, tzinfo=UTC), SCORING, automated=True) == 0


def test_future_dated_latest_has_age_zero() -> None:
    # latest after the scoring date: age max(0, -15) = 0; 100 * 8 / 13 = 61.538 -> 62
    assert strength(3, 4, 2, datetime(2001, 7, 15, 8, 0, tzinfo=UTC), SCORING) == 62


def test_exactly_one_half_life_halves_the_score() -> None:
    # 2001-04-01 -> 2001-06-30 is 30 + 31 + 29 = 90 days; 61.538 * 0.5 = 30.769 -> 31
    assert strength(3, 4, 2, datetime(2001, 4, 1, 23, 59, 59, tzinfo=UTC), SCORING) == 31


def test_big_counts_reach_at_most_100() -> None:
    # 100 * 20000 / 20005 = 99.975 -> 100, never more
    assert strength(10_000, 10_000, 0, datetime(2001, 6, 30, tzinfo=UTC), SCORING) == 100
    assert strength(10**9, 10**9, 10**9, datetime(2001, 6, 30, tzinfo=UTC), SCORING) == 100
    # one-way saturates at 50: 100 * 1000 / 1005 * 0.5 = 49.75 -> 50
    assert strength(1000, 0, 0, datetime(2001, 6, 30, tzinfo=UTC), SCORING) == 50


def test_the_calendar_date_counts_not_the_time() -> None:
    # 23:30 at -02:00 on the 29th is 01:30 UTC on the 30th: age 0 -> 62
    assert strength(3, 4, 2, "2001-06-29T23:30:00-02:00", SCORING) == 62
    # 23:59:59 UTC on the 29th: age 1; 61.538 * 0.5 ** (1 / 90) = 61.066 -> 61
    assert strength(3, 4, 2, "2001-06-29T23:59:59Z", SCORING) == 61
    # a scoring datetime is taken by its UTC date
    assert strength(3, 4, 2, "2001-06-29T23:59:59Z", datetime(2001, 6, 30, 23, 0, tzinfo=UTC)) == 61


LATEST_TODAY = datetime(2001, 6, 30, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("from_count", "to_count", "cc_count", "age_days", "half_life", "expected"),
    [
        (1, 0, 0, 0, 90, 8),  # w 1, one-way: 100 * 1 / 6 * 0.5 = 8.333 -> 8
        (0, 1, 0, 0, 90, 8),  # w 1, one-way (To only): 8.333 -> 8
        (1, 1, 0, 0, 90, 29),  # w 2, two-way: 100 * 2 / 7 = 28.571 -> 29
        (0, 0, 1, 0, 90, 5),  # w 0.5, one-way: 100 * 0.5 / 5.5 * 0.5 = 4.545 -> 5
        (1, 0, 1, 0, 90, 23),  # w 1.5, two-way through CC: 100 * 1.5 / 6.5 = 23.077 -> 23
        (5, 0, 0, 0, 90, 25),  # w 5, one-way: 100 * 5 / 10 * 0.5 = 25.0 exactly -> floor(25.5) = 25
        (4, 1, 0, 0, 90, 50),  # w 5, two-way: 50.0 exactly -> 50
        (5, 5, 0, 180, 90, 17),  # w 10: 100 * 10 / 15 * 0.25 = 16.667 -> 17
        (2, 3, 4, 30, 90, 46),  # w 7: 100 * 7 / 12 = 58.333; * 0.5 ** (1/3) = 0.793701 -> 46.299 -> 46
        (10, 10, 10, 365, 90, 5),  # w 25: 83.333 * 0.5 ** (365/90) = 0.060139 -> 5.0116 -> 5
        (3, 4, 2, 60, 30, 15),  # half-life 30: 61.538 * 0.25 = 15.385 -> 15
        (990, 1, 0, 0, 90, 99),  # w 991: 100 * 991 / 996 = 99.498 -> 99
        (994, 1, 0, 0, 90, 100),  # w 995: 100 * 995 / 1000 = 99.5 -> floor(100.0) = 100
    ],
)
def test_table_of_hand_computed_strengths(
    from_count: int, to_count: int, cc_count: int, age_days: int, half_life: int, expected: int
) -> None:
    scoring = date.fromordinal(LATEST_TODAY.date().toordinal() + age_days)
    assert strength(from_count, to_count, cc_count, LATEST_TODAY, scoring, half_life_days=half_life) == expected
