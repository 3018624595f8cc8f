"""The relationship strength of docs/SEMANTICS.md, as the oracle computes it (tests/oracle.py).

Every expected value below was worked out by hand from the formula

    weighted = direct_weight / 1,000,000     (direct messages, each weighing 1 / its audience)
    exchange = 1.0 if direct_from_count > 0 and direct_to_count > 0 else 0.5
    age_days = max(0, scoring date - UTC date of latest_direct_date);  recency = 0.5 ** (age_days / half_life)
    strength = 0 if automated, the owner's own address, or no direct message,
               else floor(100 * weighted / (weighted + 5) * exchange * recency + 0.5)

and is written here as a literal, with the arithmetic in the comment.
"""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest

from oracle import strength

UTC = timezone.utc
SCORING = date(2001, 6, 30)
LATEST = datetime(2001, 5, 1, 10, 0, tzinfo=UTC)
# The worked example: 3 messages from the address to the owner alone (1,000,000 each), 4 from the
# owner to the address and one colleague (500,000 each), 2 from the owner to 50 people (20,000 each).
WORKED_WEIGHT = 3 * 1_000_000 + 4 * 500_000 + 2 * 20_000


def test_worked_example_two_way() -> None:
    # weighted 5.04; two-way; age 60; 100 * 5.04 / 10.04 = 50.1992 * 0.629961 = 31.6235 -> 32
    assert WORKED_WEIGHT == 5_040_000
    assert strength(WORKED_WEIGHT, 3, 6, LATEST, SCORING) == 32


def test_cc_on_mail_the_mailbox_merely_received_is_no_relationship() -> None:
    # 604 schedule reports from someone else, each CC'd to the address: no direct message, weight 0
    assert strength(0, 0, 0, None, SCORING) == 0


def test_a_mail_to_fifty_people_is_not_fifty_relationships() -> None:
    # one message from the owner to 50 people: 20,000 millionths = 0.02; one-way:
    # 100 * 0.02 / 5.02 * 0.5 = 0.1992 -> 0; the same message to the address alone: 8.333 -> 8
    assert strength(20_000, 0, 1, LATEST, LATEST) == 0
    assert strength(1_000_000, 0, 1, LATEST, LATEST) == 8


def test_automated_and_the_owner_are_always_zero() -> None:
    assert strength(WORKED_WEIGHT, 3, 6, LATEST, SCORING, automated=True) == 0
    assert strength(10**12, 10, 10, datetime(2001, 6, 30, tzinfo=UTC), SCORING, owner=True) == 0


def test_future_dated_latest_has_age_zero() -> None:
    # latest after the scoring date: age max(0, -15) = 0; 100 * 5.04 / 10.04 = 50.199 -> 50
    assert strength(WORKED_WEIGHT, 3, 6, datetime(2001, 7, 15, 8, 0, tzinfo=UTC), SCORING) == 50


def test_exactly_one_half_life_halves_the_score() -> None:
    # 2001-04-01 -> 2001-06-30 is 30 + 31 + 29 = 90 days; 50.199 * 0.5 = 25.0996 -> 25
    assert strength(WORKED_WEIGHT, 3, 6, datetime(2001, 4, 1, 23, 59, 59, tzinfo=UTC), SCORING) == 25


def test_big_weights_reach_at_most_100() -> None:
    # 100 * 1e9 / (1e9 + 5) = 99.9999995 -> 100, never more
    assert strength(10**15, 1, 1, datetime(2001, 6, 30, tzinfo=UTC), SCORING) == 100
    # one-way saturates at 50: 100 * 1000 / 1005 * 0.5 = 49.75 -> 50
    assert strength(1000 * 10**6, 1000, 0, datetime(2001, 6, 30, tzinfo=UTC), SCORING) == 50


def test_the_calendar_date_counts_not_the_time() -> None:
    # 23:30 at -02:00 on the 29th is 01:30 UTC on the 30th: age 0 -> 50
    assert strength(WORKED_WEIGHT, 3, 6, "2001-06-29T23:30:00-02:00", SCORING) == 50
    # 23:59:59 UTC on the 29th: age 1; 50.199 * 0.5 ** (1 / 90) = 49.813 -> 50
    assert strength(WORKED_WEIGHT, 3, 6, "2001-06-29T23:59:59Z", SCORING) == 50
    # a scoring datetime is taken by its UTC date
    assert strength(WORKED_WEIGHT, 3, 6, "2001-06-29T23:59:59Z", datetime(2001, 6, 30, 23, 0, tzinfo=UTC)) == 50


LATEST_TODAY = datetime(2001, 6, 30, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("direct_weight", "direct_from", "direct_to", "age_days", "half_life", "expected"),
    [
        (1_000_000, 1, 0, 0, 90, 8),  # w 1, one-way: 100 * 1 / 6 * 0.5 = 8.333 -> 8
        (1_000_000, 0, 1, 0, 90, 8),  # w 1, one-way (the owner wrote): 8.333 -> 8
        (2_000_000, 1, 1, 0, 90, 29),  # w 2, two-way: 100 * 2 / 7 = 28.571 -> 29
        (20_000, 0, 1, 0, 90, 0),  # w 0.02 (an audience of 50), one-way: 0.199 -> 0
        (5_000_000, 2, 3, 0, 90, 50),  # w 5, two-way: 50.0 exactly -> 50
        (5_000_000, 4, 1, 90, 90, 25),  # w 5, two-way, one half-life: 25.0 exactly -> floor(25.5) = 25
        (10_000_000, 5, 5, 180, 90, 17),  # w 10: 100 * 10 / 15 * 0.25 = 16.667 -> 17
        (7_000_000, 3, 4, 30, 90, 46),  # w 7: 58.333 * 0.5 ** (1/3) = 0.793701 -> 46.299 -> 46
        (991_000_000, 990, 1, 0, 90, 99),  # w 991: 100 * 991 / 996 = 99.498 -> 99
        (995_000_000, 994, 1, 0, 90, 100),  # w 995: 100 * 995 / 1000 = 99.5 -> floor(100.0) = 100
    ],
)
def test_table_of_hand_computed_strengths(
    direct_weight: int, direct_from: int, direct_to: int, age_days: int, half_life: int, expected: int
) -> None:
    scoring = date.fromordinal(LATEST_TODAY.date().toordinal() + age_days)
    assert strength(direct_weight, direct_from, direct_to, LATEST_TODAY, scoring, half_life_days=half_life) == expected


def test_the_product_computes_the_same_strengths() -> None:
    from mailforce.core.strength import relationship_strength

    document = {"direct_weight": WORKED_WEIGHT, "direct_from_count": 3, "direct_to_count": 6,
                "latest_direct_date": "2001-05-01T10:00:00Z", "automated": False, "owner": False}
    assert relationship_strength(document, SCORING) == strength(WORKED_WEIGHT, 3, 6, LATEST, SCORING) == 32
    assert relationship_strength({**document, "owner": True}, SCORING) == 0
