"""The change feed, the pure part: strength bands and the crossings between them (docs/SEMANTICS.md,
"Strength bands and the change feed").

A relationship's band is a function of its stored `strength` only (thresholds are settings). Whenever
a stage changes a stored strength so that its band differs (the compile adding mail, the daily
rescoring, an erasure's recomputation), it records one crossing document in
`search-relationship-changes`, before it writes the relationship: a task that dies in between is
retried from the same stored strength and records the same document again, under the same id.

The feed is built on whatever `strength` the relationship documents carry; it never recomputes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, Iterable, Iterator, Mapping

BAND_STRONG = "strong"
BAND_WARM = "warm"
BAND_COOLING = "cooling"
BAND_COLD = "cold"
BAND_NONE = "none"  # no relationship yet: the `from_band` of a relationship's first document
BANDS_STRONGEST_FIRST = (BAND_STRONG, BAND_WARM, BAND_COOLING, BAND_COLD)
BAND_RANK = {BAND_NONE: -1, **{band: len(BANDS_STRONGEST_FIRST) - 1 - rank
                              for rank, band in enumerate(BANDS_STRONGEST_FIRST)}}

CAUSE_MAIL = "mail"  # the compile: new (or late, or reconciled) mail changed the figures
CAUSE_TIME = "time"  # the daily rescoring: the scoring date moved, the figures did not
CAUSE_ERASURE = "erasure"  # an erasure's recomputation
DEFAULT_STRONG_FROM = 60
DEFAULT_WARM_FROM = 30
DEFAULT_COOLING_FROM = 10

# The relationship's figures a crossing carries (what the strength was computed from).
FIGURE_FIELDS = ("from_count", "to_count", "cc_count", "total_count", "first_engagement_date",
                 "latest_engagement_date", "two_way", "automated")
# Carried over from the relationship document when it has them (organisations, people).
CARRIED_FIELDS = ("organization", "person_id")


@dataclass(frozen=True)
class Bands:
    """Lower bounds (inclusive) of the bands on `strength`; below `cooling_from` is cold."""

    strong_from: int = DEFAULT_STRONG_FROM
    warm_from: int = DEFAULT_WARM_FROM
    cooling_from: int = DEFAULT_COOLING_FROM

    def __post_init__(self) -> None:
        if not 1 <= self.cooling_from < self.warm_from < self.strong_from <= 100:
            raise ValueError("strength bands need 1 <= cooling < warm < strong <= 100, got "
                             f"cooling {self.cooling_from}, warm {self.warm_from}, strong {self.strong_from}")

    def of(self, strength: int | None) -> str:
        """The band of a stored strength; `none` when there is no relationship (None)."""
        if strength is None:
            return BAND_NONE
        if strength >= self.strong_from:
            return BAND_STRONG
        if strength >= self.warm_from:
            return BAND_WARM
        if strength >= self.cooling_from:
            return BAND_COOLING
        return BAND_COLD


def scoring_date_field(scoring_date: date) -> str:
    """The feed's `scoring_date`: the date's midnight UTC, as every output date is written."""
    return f"{scoring_date.isoformat()}T00:00:00Z"


def change_document(relationship: Mapping[str, Any], *, strength_before: int | None, bands: Bands,
                    scoring_date: date, cause: str) -> dict[str, Any]:
    """The crossing of one relationship from the band of `strength_before` to that of its `strength`."""
    from_band, to_band = bands.of(strength_before), bands.of(relationship["strength"])
    document: dict[str, Any] = {
        "account": relationship["account"],
        "email_address": relationship["email_address"],
        "domain": relationship["domain"],
    }
    document.update({name: relationship[name] for name in CARRIED_FIELDS if relationship.get(name) is not None})
    document.update({
        "scoring_date": scoring_date_field(scoring_date),
        "from_band": from_band,
        "to_band": to_band,
        "direction": "up" if BAND_RANK[to_band] > BAND_RANK[from_band] else "down",
        "went_cold": to_band == BAND_COLD and from_band != BAND_NONE,
        "cause": cause,
        "strength_before": strength_before,
        "strength": relationship["strength"],
    })
    document.update({name: relationship.get(name) for name in FIGURE_FIELDS})
    return document


def relationship_changes(before: Mapping[tuple, Mapping[str, Any]], after: Iterable[Mapping[str, Any]], *,
                         bands: Bands, scoring_date: date, cause: str) -> Iterator[dict[str, Any]]:
    """A crossing per relationship of `after` whose band differs from its `before` document's (keyed by
    (account, email_address); absent: band `none`). Relationships only in `before` record nothing."""
    for relationship in after:
        previous = before.get((relationship["account"], relationship["email_address"]))
        strength_before = None if previous is None else previous.get("strength")
        if bands.of(strength_before) != bands.of(relationship["strength"]):
            yield change_document(relationship, strength_before=strength_before, bands=bands,
                                  scoring_date=scoring_date, cause=cause)
