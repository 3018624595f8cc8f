"""The scoring date recorded in the runtime stats, and the searches a rescore needs."""

from __future__ import annotations

from datetime import date
from typing import Any, Sequence

from elasticsearch import NotFoundError

from mailforce.core.automated import AddressClassifier
from mailforce.core.conversations import BroadcastRule
from mailforce.core.rollups import Scoring
from mailforce.core.strength import BEST_CONNECTED_LIMIT, calendar_date
from mailforce.core.wording import plural
from mailforce.es.reads import search, search_each
from mailforce.settings import Settings


def scoring_for(settings: Settings, scoring_date: date) -> Scoring:
    """How the outputs are scored at `scoring_date`, from the settings (half-life, automated patterns, top list)."""
    classifier = AddressClassifier(settings.automated_address_patterns)
    return Scoring(scoring_date=scoring_date, half_life_days=settings.strength_half_life_days,
                   is_automated_address=classifier.is_automated, top_addresses=settings.domain_top_addresses,
                   broadcast=broadcast_rule(settings))


def broadcast_rule(settings: Settings) -> BroadcastRule:
    return BroadcastRule(settings.broadcast_min_messages, settings.broadcast_min_audience)


def last_scoring_date(es, settings: Settings) -> date | None:
    """The latest scoring date of a successful run (backfills included); None on a fresh cluster."""
    try:
        response = search(
            es, "the last scoring date", index=settings.runtime_stats_index, size=1, source=["scoring_date"],
            query={"bool": {"filter": [{"exists": {"field": "scoring_date"}}]}},
            sort=[{"scoring_date": {"order": "desc"}}],
        )
    except NotFoundError:
        return None
    hits = response["hits"]["hits"]
    return calendar_date(hits[0]["_source"]["scoring_date"]) if hits else None


def best_connected_by_engagement(es, settings: Settings, domains: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """Per domain, its top accounts by their strongest relationship there (engagement documents)."""
    bodies = [{"size": BEST_CONNECTED_LIMIT, "query": {"bool": {"filter": [{"term": {"domain": domain}}]}},
               "sort": [{"strength_max": "desc"}, {"total_count": "desc"}, {"account": "asc"}],
               "_source": ["account", "strength_max", "total_count"]} for domain in domains]
    answers = search_each(es, f"best-connected accounts of {plural(len(domains), 'domain')}",
                          settings.engagements_index, bodies)
    return {domain: [{"account": hit["_source"]["account"], "strength": int(hit["_source"].get("strength_max", 0)),
                      "total_count": hit["_source"]["total_count"]} for hit in answer["hits"]["hits"]]
            for domain, answer in zip(domains, answers)}
