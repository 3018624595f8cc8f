"""The change feed in Elasticsearch (`search-relationship-changes`): recording crossings, removing an
erased address's crossings, and reading the relationships that went cold (the digest, the report).

Shared by the compile, the rescoring and the erasure (stages import `core` and `es`, never each other).
"""

from __future__ import annotations

from datetime import date
from typing import Any, Iterable, Iterator, Mapping, Sequence

from mailforce.core.batches import batched
from mailforce.core.changes import BAND_COLD, BAND_NONE, relationship_changes, scoring_date_field
from mailforce.core.ids import document_id
from mailforce.core.kinds import CHANGES, natural_key
from mailforce.es.reads import scan
from mailforce.es.writes import bulk_write, index_actions, refresh
from mailforce.settings import Settings

TERMS_PER_QUERY = 1_000  # values per terms query (far below index.max_terms_count)


def change_id(document: Mapping[str, Any]) -> str:
    """From (account, email_address, scoring_date, from_band, to_band): a retried task overwrites."""
    return document_id(*natural_key(CHANGES.name, document))


def write_changes(es, settings: Settings, documents: Iterable[dict[str, Any]], updated_at: str) -> int:
    """Index crossing documents by their natural id; returns how many were written."""
    actions = index_actions(settings.changes_index,
                            ((change_id(document), {**document, "updated_at": updated_at}) for document in documents))
    return bulk_write(es, actions, settings.bulk_chunk, "relationship changes")


def record_relationship_changes(es, settings: Settings, before: Mapping[tuple, Mapping[str, Any]],
                                after: Iterable[Mapping[str, Any]], *, scoring_date: date, cause: str,
                                updated_at: str) -> int:
    """The crossings from the stored relationships (`before`, by (account, address)) to those about to
    be written (`after`), recorded before the relationships are written (docs/SEMANTICS.md)."""
    changes = relationship_changes(before, after, bands=settings.strength_bands, scoring_date=scoring_date,
                                   cause=cause)
    return write_changes(es, settings, changes, updated_at)


def _erased_query(addresses: Sequence[str], domains: Sequence[str]) -> dict[str, Any]:
    should: list[dict[str, Any]] = []
    if addresses:
        should.append({"terms": {"email_address": list(addresses)}})
    if domains:
        should.append({"terms": {"domain": list(domains)}})
    return {"bool": {"should": should, "minimum_should_match": 1}}


def _delete_actions(index: str, ids: Iterable[str]) -> Iterator[dict[str, Any]]:
    for identifier in ids:
        yield {"_op_type": "delete", "_index": index, "_id": identifier}


def erase_changes(es, settings: Settings, addresses: Sequence[str], domains: Sequence[str]) -> int:
    """Delete every crossing of the erased addresses and of the addresses of the erased domains."""
    index = settings.changes_index
    if not es.indices.exists(index=index):
        return 0
    refresh(es, index)
    chunks = [(list(chunk), []) for chunk in batched(addresses, TERMS_PER_QUERY)]
    chunks += [([], list(chunk)) for chunk in batched(domains, TERMS_PER_QUERY)]
    ids: set[str] = set()
    for chunk_addresses, chunk_domains in chunks:
        ids.update(hit["_id"] for hit in scan(
            es, index, {"query": _erased_query(chunk_addresses, chunk_domains), "_source": False},
            settings.scan_page_size, settings.scroll_keep_alive, "relationship changes of erased values"))
    removed = bulk_write(es, _delete_actions(index, sorted(ids)), settings.bulk_chunk, "erased relationship changes")
    refresh(es, index)
    return removed


def went_cold_query(scoring_dates: Sequence[date] = (), *, since: date | None = None) -> dict[str, Any]:
    """Crossings into `cold` of relationships that existed before (not a new one created cold), on
    these scoring dates, or on every scoring date from `since`."""
    filters: list[dict[str, Any]] = [{"term": {"to_band": BAND_COLD}}]
    if scoring_dates:
        filters.append({"terms": {"scoring_date": [scoring_date_field(day) for day in scoring_dates]}})
    if since is not None:
        filters.append({"range": {"scoring_date": {"gte": scoring_date_field(since)}}})
    return {"bool": {"filter": filters, "must_not": [{"term": {"from_band": BAND_NONE}}]}}


def went_cold(es, settings: Settings, scoring_dates: Sequence[date]) -> list[dict[str, Any]]:
    """The crossings into cold recorded on these scoring dates, sorted by account, date, address."""
    index = settings.changes_index
    if not es.indices.exists(index=index):
        return []
    refresh(es, index)
    hits = scan(es, index, {"query": went_cold_query(scoring_dates)}, settings.scan_page_size,
                settings.scroll_keep_alive, "relationships that went cold")
    return sorted((hit["_source"] for hit in hits),
                  key=lambda document: (document["account"], document["scoring_date"], document["email_address"]))
