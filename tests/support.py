"""Small helpers the tests share: put source documents in, run the pipeline (`driver.run_once`), read outputs back."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone
from typing import Any, Iterable

from elasticsearch import helpers

from mailforce.tools.loader import ensure_source_index
from mailforce.settings import Settings
from mailforce.core.run_params import parse_run_params
from driver import run_once
from oracle import Coverage, assert_outputs_equal, expected_outputs, read_outputs

UTC = timezone.utc
FAR_FUTURE_RUN_END = datetime(2030, 1, 1, tzinfo=UTC)


def small_settings() -> Settings:
    """The tests' settings: small pages and chunks, so that even small corpora page, chunk and partition."""
    return Settings(
        max_partitions=4, min_partition_work=1, scan_page_size=500, bulk_chunk_size=500, lookup_batch_size=200,
        schedule=None,
    )


def with_extraction_slices(settings: Settings, slices: int) -> Settings:
    """`slices` extraction slices for any window with at least that many documents (the plan still
    counts the window and samples its message ids, as a large window's does)."""
    return replace(settings, max_extraction_slices=slices, min_slice_documents=1)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def load_source(es, settings: Settings, documents: Iterable[dict[str, Any]]) -> int:
    ensure_source_index(es, settings.source_index)
    ok, errors = helpers.bulk(
        es,
        ({"_index": settings.source_index, "_id": doc["_id"], "_source": doc["_source"]} for doc in documents),
        raise_on_error=True,
    )
    es.indices.refresh(index=settings.source_index)
    return ok


def read_source(es, settings: Settings) -> list[dict[str, Any]]:
    return [
        {"_id": hit["_id"], "_source": hit["_source"]}
        for hit in helpers.scan(es, index=settings.source_index, query={"query": {"match_all": {}}})
    ]


def run(es, settings: Settings, run_id: str, run_end: datetime = FAR_FUTURE_RUN_END, **params) -> dict[str, Any]:
    """One run of every stage, with params exactly as a DAG run's conf would carry them."""
    request = parse_run_params(params, params)
    return run_once(es, settings, request, run_end, run_id)


def index_names(settings: Settings) -> dict[str, str]:
    return {
        "roles": settings.roles_index,
        "engagements": settings.engagements_index,
        "account_stats": settings.account_stats_index,
        "domains": settings.domains_index,
        "relationships": settings.relationships_index,
        "contacts": settings.contacts_index,
        "timeline": settings.timeline_index,
        "organizations": settings.organizations_index,
        "people": settings.people_index,
    }


# Every output kind, compared on the current data model (docs/SEMANTICS.md).
COMPARED_KINDS = ("roles", "engagements", "account_stats", "domains", "relationships", "contacts", "timeline",
                  "organizations", "people")


def oracle_options(settings: Settings) -> dict[str, Any]:
    """The settings the oracle needs to compute what the product should have written."""
    return {
        "kinds": COMPARED_KINDS,
        "top_addresses": settings.domain_top_addresses,
        "half_life_days": settings.strength_half_life_days,
        "automated_patterns": list(settings.automated_patterns) or None,
        "automated_patterns_extra": list(settings.automated_patterns_extra),
        "account_addresses": {account: sorted(addresses)
                              for account, addresses in settings.owner_addresses_by_account.items()},
        "broadcast_min_messages": settings.broadcast_min_messages,
        "broadcast_min_audience": settings.broadcast_min_audience,
        "internal_organizations": settings.internal_organizations,
        "allowed_organizations": settings.allowed_organizations,
        "organization_overrides": settings.organization_overrides,
    }


def latest_window_end(es, settings: Settings) -> datetime | None:
    """The latest window end any run recorded: the date strengths are scored at (a run fact, not a
    figure; tests' coverages often say "up to the far future" for runs that ended earlier)."""
    if not es.indices.exists(index=settings.runtime_stats_index):
        return None
    es.indices.refresh(index=settings.runtime_stats_index)
    found = es.search(index=settings.runtime_stats_index, size=1, sort=[{"window_end": "desc"}], source=["window_end"])
    assert not found["_shards"].get("failed"), "the runs' latest window end must be read from every shard"
    hits = found["hits"]["hits"]
    return utc(hits[0]["_source"]["window_end"]) if hits else None


def assert_matches_oracle(es, settings: Settings, source: list[dict], coverages: list[Coverage],
                          scoring_date: datetime | None = None, *, erased_addresses: Iterable[str] = (),
                          erased_domains: Iterable[str] = (), erased_organizations: Iterable[str] = ()) -> dict:
    """The outputs equal the oracle's; erased addresses, domains and organisations are treated as absent."""
    expected = expected_outputs(source, coverages, settings.internal_domains, settings.allowed_domains,
                                scoring_date=scoring_date or latest_window_end(es, settings),
                                erased_addresses=erased_addresses, erased_domains=erased_domains,
                                erased_organizations=erased_organizations, aliases=stored_aliases(es, settings),
                                **oracle_options(settings))
    actual = read_outputs(es, {kind: index for kind, index in index_names(settings).items() if kind in expected})
    assert_outputs_equal(actual, expected)
    return expected


def stored_aliases(es, settings: Settings) -> list[tuple[str, str]]:
    """The operator's alias list as stored (address, same-person address), read without the product."""
    if not es.indices.exists(index=settings.aliases_index):
        return []
    es.indices.refresh(index=settings.aliases_index)
    return sorted((hit["_source"]["email_address"], hit["_source"]["same_person_as"])
                  for hit in helpers.scan(es, index=settings.aliases_index))


def raw_outputs(es, settings: Settings) -> dict[str, dict[str, dict]]:
    """Every output document by index and _id, exactly as stored (updated_at included)."""
    result = {}
    for index in settings.output_indices:
        if es.indices.exists(index=index):
            result[index] = {hit["_id"]: hit["_source"] for hit in helpers.scan(es, index=index)}
    return result


def with_settings(settings: Settings, **changes) -> Settings:
    return replace(settings, **changes)
