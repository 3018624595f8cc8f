"""Stage 4: rescore what time alone changed, once per new scoring date.

Strength decays with the calendar date (docs/SEMANTICS.md), so the runs of one day score alike and
this stage does nothing but one lookup. On the first run of a new day it reads every relationship
once, sorted by address, and rewrites only the relationships whose integer strength changed, the
contacts whose best-connected accounts those change, the engagement documents whose strongest
relationship changed, and the domains and organisations ranking those accounts (a personal
provider's domains rank none); and, before those, one change-feed document per relationship whose
new strength is in another band (`mailforce.core.changes`).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from datetime import date, datetime
from itertools import groupby
from typing import Any, Iterator

from mailforce.core.changes import CARRIED_FIELDS, CAUSE_TIME, change_document
from mailforce.core.dates import format_utc, utc_now
from mailforce.core.ids import document_id
from mailforce.core.rollups import connection_entry
from mailforce.core.strength import STRENGTH_FIELDS, best_connected, calendar_date, relationship_strength
from mailforce.core.summaries import RescoreResult
from mailforce.core.wording import plural
from mailforce.es.changes import write_changes
from mailforce.es.organizations import rescore_organizations
from mailforce.es.reads import scan_sorted
from mailforce.es.scoring import best_connected_by_engagement, last_scoring_date
from mailforce.es.writes import bulk_write, refresh
from mailforce.settings import Settings

log = logging.getLogger(__name__)

RELATIONSHIP_FIELDS = ["account", "email_address", "domain", "from_count", "to_count", "cc_count",
                       "total_count", "first_engagement_date", "latest_engagement_date", "automated", "two_way",
                       "strength", *CARRIED_FIELDS]
RELATIONSHIP_FIELDS += [name for name in STRENGTH_FIELDS if name not in RELATIONSHIP_FIELDS]


def run_scoring_date(window_end: datetime, last: date | None) -> date:
    """The date this run scores at: its window end's, never earlier than a scoring already done."""
    today = calendar_date(window_end)
    return max(today, last) if last is not None else today


def _updates(index: str, changes: Iterator[tuple[str, dict[str, Any]]]) -> Iterator[dict[str, Any]]:
    for identifier, fields in changes:
        yield {"_op_type": "update", "_index": index, "_id": identifier, "doc": fields}


def rescore_relationships(es, settings: Settings, window_end: datetime) -> RescoreResult:
    """Bring every strength and ranking to this run's scoring date (see the module docstring)."""
    last = last_scoring_date(es, settings)
    scoring_date = run_scoring_date(window_end, last)
    if last is None or scoring_date <= last:
        # Fresh cluster: this run's compile scored every relationship. Same date: nothing decayed.
        log.info("Relationship strengths are current for %s: nothing to rescore", scoring_date.isoformat())
        return RescoreResult(scoring_date=scoring_date.isoformat())
    started = time.monotonic()
    updated_at = format_utc(utc_now())
    refresh(es, settings.relationships_index)
    strongest: dict[tuple[str, str], int] = defaultdict(int)
    changed_pairs: set[tuple[str, str]] = set()
    relationship_changes: list[tuple[str, dict[str, Any]]] = []
    bands = settings.strength_bands
    crossings: list[dict[str, Any]] = []  # the rescored relationships whose band changed
    contact_changes: list[tuple[str, dict[str, Any]]] = []
    read = 0
    hits = scan_sorted(es, settings.relationships_index, {"match_all": {}},
                       [{"email_address": "asc"}, {"account": "asc"}], RELATIONSHIP_FIELDS,
                       settings.scan_page_size, settings.scroll_keep_alive, "relationships to rescore")
    for address, group in groupby((hit["_source"] for hit in hits), key=lambda source: source["email_address"]):
        entries = []
        address_changed = False
        for relationship in group:
            read += 1
            score = relationship_strength(relationship, scoring_date, settings.strength_half_life_days)
            pair = (relationship["account"], relationship["domain"])
            strongest[pair] = max(strongest[pair], score)
            entries.append(connection_entry(relationship["account"], score, relationship["total_count"]))
            if score != relationship.get("strength"):
                address_changed = True
                changed_pairs.add(pair)
                relationship_changes.append((document_id(relationship["account"], address),
                                             {"strength": score, "updated_at": updated_at}))
                if bands.of(score) != bands.of(relationship.get("strength")):
                    crossings.append(change_document({**relationship, "strength": score},
                                                     strength_before=relationship.get("strength"), bands=bands,
                                                     scoring_date=scoring_date, cause=CAUSE_TIME))
        if address_changed:
            contact_changes.append((document_id(address),
                                    {"best_connected_accounts": best_connected(entries), "updated_at": updated_at}))
    # The feed first: a retry after a failure in between reads the same stored strengths again.
    changes_written = write_changes(es, settings, crossings, updated_at)
    relationships_written = bulk_write(es, _updates(settings.relationships_index, iter(relationship_changes)),
                                       settings.bulk_chunk, "rescored relationships")
    contacts_written = bulk_write(es, _updates(settings.contacts_index, iter(contact_changes)),
                                  settings.bulk_chunk, "rescored contacts")
    engagement_changes = ((document_id(account, domain), {"strength_max": strongest[(account, domain)],
                                                          "updated_at": updated_at})
                          for account, domain in sorted(changed_pairs))
    engagements_written = bulk_write(es, _updates(settings.engagements_index, engagement_changes),
                                     settings.bulk_chunk, "rescored engagements")
    refresh(es, settings.engagements_index)
    organizations = settings.organizations
    changed_domains = sorted({domain for _, domain in changed_pairs})
    domains = [domain for domain in changed_domains if not organizations.is_personal(organizations.organization_of(domain))]
    rankings = best_connected_by_engagement(es, settings, domains)
    domains_written = bulk_write(
        es, _updates(settings.domains_index, ((document_id(domain), {"best_connected_accounts": rankings[domain],
                                                                     "updated_at": updated_at})
                                              for domain in domains)),
        settings.bulk_chunk, "rescored domains")
    organizations_written = rescore_organizations(
        es, settings, sorted({organizations.organization_of(domain) for domain in changed_domains}), updated_at)
    refresh(es, settings.relationships_index, settings.contacts_index, settings.domains_index, settings.changes_index)
    log.info(
        "Rescored %s for %s (last scored %s) in %.1f s: time changed %s (%s), "
        "the best-connected accounts of %s, %s and %s",
        plural(read, "relationship"), scoring_date.isoformat(), last.isoformat(), time.monotonic() - started,
        plural(relationships_written, "strength"), plural(changes_written, "band crossing"),
        plural(contacts_written, "contact"), plural(domains_written, "domain"),
        plural(organizations_written, "organisation"),
    )
    return RescoreResult(scoring_date=scoring_date.isoformat(), rescored=True, relationships_read=read,
                         relationships_written=relationships_written, contacts_written=contacts_written,
                         engagements_written=engagements_written, domains_written=domains_written,
                         changes_written=changes_written)
