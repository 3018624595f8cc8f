"""Organisation documents in Elasticsearch beyond the compile: rescoring their rankings, and
regrouping hosts when what decides organisations (the Public Suffix List's version, the
`organization_overrides` setting) changed since the last successful run (docs/SEMANTICS.md,
"Organisations")."""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any, Iterator, Sequence

from elasticsearch import NotFoundError

from mailforce.core.batches import batched
from mailforce.core.ids import document_id
from mailforce.core.organizations import psl_version
from mailforce.core.strength import best_connected
from mailforce.es.reads import fetch_documents, scan, search
from mailforce.es.writes import bulk_write, refresh
from mailforce.settings import Settings

log = logging.getLogger(__name__)

TERMS_PER_QUERY = 1_000


def organizations_record(es, settings: Settings) -> dict[str, Any]:
    """What a run's runtime-stats record says about how organisations were computed; the run that
    first applies a change (an override, a list version) also says what was in force before: the
    runtime stats are the overrides' audit trail (docs/SEMANTICS.md, "Organisations")."""
    record: dict[str, Any] = {"public_suffix_list_version": psl_version(),
                              "organization_overrides": list(settings.organization_overrides),
                              "organizations_fingerprint": settings.organizations.fingerprint}
    previous = last_organizations_record(es, settings)
    if previous is not None and previous.get("organizations_fingerprint") != record["organizations_fingerprint"]:
        record["organizations_changed"] = True
        record["previous_organization_overrides"] = list(previous.get("organization_overrides") or ())
        record["previous_public_suffix_list_version"] = previous.get("public_suffix_list_version")
    return record


def last_organizations_record(es, settings: Settings) -> dict[str, Any] | None:
    """The organisations' part of the last successful run's record (None on a fresh cluster)."""
    try:
        response = search(
            es, "the last run's organisations", index=settings.runtime_stats_index, size=1,
            source=["organizations_fingerprint", "organization_overrides", "public_suffix_list_version"],
            query={"bool": {"filter": [{"exists": {"field": "run_date"}}]}},
            sort=[{"run_date": {"order": "desc"}}],
        )
    except NotFoundError:
        return None
    hits = response["hits"]["hits"]
    return hits[0]["_source"] if hits else None


def rescore_organizations(es, settings: Settings, names: Sequence[str], updated_at: str) -> int:
    """The strengths in `account_connections` (and the best-connected accounts of a company) of these
    organisations, from their engagement documents' `strength_max`; returns documents written."""
    changes: list[dict[str, Any]] = []
    for batch in batched(sorted(names), TERMS_PER_QUERY):
        strongest: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for hit in scan(es, settings.engagements_index,
                        {"query": {"terms": {"organization": list(batch)}},
                         "_source": ["account", "organization", "strength_max"]},
                        settings.scan_page_size, settings.scroll_keep_alive, "engagements of rescored organisations"):
            source = hit["_source"]
            by_account = strongest[source["organization"]]
            by_account[source["account"]] = max(by_account[source["account"]], int(source.get("strength_max", 0)))
        stored = fetch_documents(es, settings.organizations_index, [document_id(name) for name in batch])
        for name in batch:
            document = stored.get(document_id(name))
            if document is None:
                continue
            connections = [{**entry, "strength": strongest[name].get(entry["account"], 0)}
                           for entry in document.get("account_connections", ())]
            fields: dict[str, Any] = {"account_connections": connections, "updated_at": updated_at}
            if document.get("kind") != "personal":
                fields["best_connected_accounts"] = best_connected(connections)
            if any(document.get(key) != value for key, value in fields.items() if key != "updated_at"):
                changes.append({"_op_type": "update", "_index": settings.organizations_index,
                                "_id": document_id(name), "doc": fields})
    written = bulk_write(es, iter(changes), settings.bulk_chunk, "rescored organisations")
    refresh(es, settings.organizations_index)
    return written


def last_fingerprints(es, settings: Settings) -> set[str | None]:
    """The organisations' fingerprint of the last successful run (of each run recorded at that same
    second); {None} when no run recorded one, empty on a fresh cluster."""
    try:
        response = search(
            es, "the last organisations' fingerprint", index=settings.runtime_stats_index, size=10,
            source=["run_date", "organizations_fingerprint"],
            query={"bool": {"filter": [{"exists": {"field": "run_date"}}]}},
            sort=[{"run_date": {"order": "desc"}}],
        )
    except NotFoundError:
        return set()
    hits = [hit["_source"] for hit in response["hits"]["hits"]]
    return {hit.get("organizations_fingerprint") for hit in hits if hit["run_date"] == hits[0]["run_date"]}


def _stored_hosts(es, settings: Settings) -> Iterator[dict[str, Any]]:
    if not es.indices.exists(index=settings.domains_index):
        return iter(())
    refresh(es, settings.domains_index)
    return (hit["_source"] for hit in scan(
        es, settings.domains_index, {"query": {"match_all": {}}, "_source": ["domain", "organization",
                                                                             "total_from", "total_to", "total_cc"]},
        settings.scan_page_size, settings.scroll_keep_alive, "stored domains (organisations regrouped)"))


def _delete(es, settings: Settings, index: str, query: dict[str, Any], what: str) -> int:
    if not es.indices.exists(index=index):
        return 0
    refresh(es, index)
    ids = [hit["_id"] for hit in scan(es, index, {"query": query, "_source": False}, settings.scan_page_size,
                                      settings.scroll_keep_alive, what)]
    return bulk_write(es, ({"_op_type": "delete", "_index": index, "_id": identifier} for identifier in ids),
                      settings.bulk_chunk, what)


def _stored_organizations(es, settings: Settings) -> dict[str, list[str]]:
    if not es.indices.exists(index=settings.organizations_index):
        return {}
    refresh(es, settings.organizations_index)
    return {hit["_source"]["organization"]: list(hit["_source"].get("domains") or ()) for hit in scan(
        es, settings.organizations_index, {"query": {"match_all": {}}, "_source": ["organization", "domains"]},
        settings.scan_page_size, settings.scroll_keep_alive, "stored organisations (regrouped)")}


def regroup_organizations(es, settings: Settings) -> dict[str, int]:
    """When the organisations' fingerprint differs from the last successful run's: the stored hosts to
    recompute over all time (host -> work, by its domain document's role totals): every host whose
    stored organisation (on its domain document, or the organisation document listing it) is not
    its organisation now, or whose organisation has no document, and every host of the
    organisations they leave or join. The documents and months of an organisation left with no
    host are deleted. Empty when nothing changed (the usual case: one search)."""
    fingerprint = settings.organizations.fingerprint
    lasts = last_fingerprints(es, settings)
    if lasts <= {fingerprint}:
        return {}
    last = ", ".join(sorted(str(value) for value in lasts))
    organizations = settings.organizations
    hosts: dict[str, tuple[str | None, int]] = {}
    for source in _stored_hosts(es, settings):
        work = sum(int(source.get(name) or 0) for name in ("total_from", "total_to", "total_cc"))
        hosts[source["domain"]] = (source.get("organization"), work)
    stored_organizations = _stored_organizations(es, settings)
    now = {host: organizations.organization_of(host) for host in hosts}
    affected: set[str] = set()
    for host, (stored, _) in hosts.items():
        if stored != now[host] or now[host] not in stored_organizations:
            affected.update(name for name in (stored, now[host]) if name)
    for name, listed in stored_organizations.items():
        if any(organizations.organization_of(host) != name or host not in hosts for host in listed):
            affected.add(name)
    if not affected:
        log.info("Organisations: what decides them changed (fingerprint %s, was %s) but no stored host changed "
                 "organisation", fingerprint, last)
        return {}
    regrouped = {host: max(work, 1) for host, (_, work) in hosts.items() if now[host] in affected}
    vanished = sorted(affected - set(now.values()))
    deleted = 0
    for batch in batched(vanished, TERMS_PER_QUERY):
        deleted += _delete(es, settings, settings.organizations_index, {"terms": {"organization": batch}},
                           "organisation documents left with no host")
        deleted += _delete(es, settings, settings.timeline_index, organization_months_query(batch),
                           "months of organisations left with no host")
    log.info("Organisations regrouped (fingerprint %s, was %s; Public Suffix List %s): %d organisations changed "
             "hosts; their %d hosts are recomputed over all time; %d organisations left with no host deleted "
             "(%d documents)", fingerprint, last, psl_version(), len(affected), len(regrouped), len(vanished), deleted)
    return regrouped


def organization_months_query(names: Sequence[str]) -> dict[str, Any]:
    return {"bool": {"filter": [{"term": {"scope": "organization"}}, {"terms": {"organization": list(names)}}]}}


def delete_stale_months(es, settings: Settings, names: Sequence[str], expected_ids: set[str]) -> int:
    """The stored months of these organisations that a recomputation no longer produced (a host
    regrouped away, or erased), deleted."""
    if not names or not es.indices.exists(index=settings.timeline_index):
        return 0
    refresh(es, settings.timeline_index)
    stale = [hit["_id"] for hit in scan(es, settings.timeline_index,
                                        {"query": organization_months_query(names), "_source": False},
                                        settings.scan_page_size, settings.scroll_keep_alive,
                                        "months of recomputed organisations")
             if hit["_id"] not in expected_ids]
    return bulk_write(es, ({"_op_type": "delete", "_index": settings.timeline_index, "_id": identifier}
                           for identifier in stale), settings.bulk_chunk, "stale organisation months")
