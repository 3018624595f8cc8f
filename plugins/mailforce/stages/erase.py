"""The erase DAG's stages (`mailforce_erase`): remove addresses and domains from every output.

In order, each a plain function (client + settings + typed records -> a typed record from
`mailforce.core.erasure`, or a count), all idempotent:
1. `record_suppressions`: the erased values into the suppression index, which every later run and
   reconciliation honours at extraction (docs/SEMANTICS.md "Erasure");
2. `erase_message_roles`: every roles document naming an erased address (or another spelling of its
   mailbox under a provider rule: `stored_spellings`) or domain, rewritten without it (deleted when no
   address is left); the key dates of all copies of those messages recomputed; every change-feed
   document of an erased address (any spelling of its mailbox) or domain deleted;
3. `recompute_outputs`: every domain those messages named, recomputed over all time; every output
   document whose natural key is no longer produced (the erased addresses' relationships, contacts,
   engagements of erased domains, timeline months, domain documents) deleted; a remaining relationship
   whose strength the erasure moves into another band gets a change-feed document (cause `erasure`);
4. `recompute_account_statistics`: the statistics of every affected account;
   `recompute_people`: the person documents of every erased address, of every address of an erased
   domain or organisation, and of every address whose documents step 3 rewrote (a person left with no
   address loses its document; alias entries naming an erased address are removed first, so that no
   person is named after one); a person named in `people` was resolved to all of their addresses by
   `resolve_people` before step 1;
5. `audit`: the audit record (who, when, why, what, and what was removed per output kind).

Logs carry counts only, never the erased values; the audit record holds them (proof of erasure).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Any, Iterable, Iterator, Mapping, Sequence

from mailforce.core.batches import batched
from mailforce.core.dates import format_utc, parse_source_date, utc_now
from mailforce.core.erasure import (
    ErasedRoles,
    ErasureParamsError,
    ErasureRequest,
    RecomputedOutputs,
    audit_document,
    erased_roles_document,
    parse_erasure_params,
    with_people_addresses,
)
from mailforce.core.changes import CAUSE_ERASURE
from mailforce.core.kinds import CHANGES, ERASABLE_KIND_NAMES, KIND_BY_NAME, PEOPLE
from mailforce.core.organizations import organization_chunks
from mailforce.core.rollups import KINDS
from mailforce.core.strength import calendar_date
from mailforce.core.summaries import PeopleResult
from mailforce.core.wording import plural
from mailforce.es.people import (
    CLOCK_MARGIN,
    addresses_of_people_in,
    addresses_of_persons_named,
    addresses_written_since,
    change_aliases,
    entries_naming,
    read_people,
    refresh_people,
)
from mailforce.es.preflight import check_settings
from mailforce.es.reads import fetch_documents, scan
from mailforce.es.accounts import write_account_statistics
from mailforce.es.owners import identify_owners, invalidate_evidence
from mailforce.es.changes import erase_changes
from mailforce.es.outputs import (
    kind_indices,
    recompute_documents,
    organization_hosts,
    output_id,
)
from mailforce.es.scoring import last_scoring_date, scoring_for
from mailforce.es.suppressions import (
    OUTPUT_KINDS,
    record_suppressions as record_suppressions_io,
    stored_spellings,
    write_audit,
)
from mailforce.es.writes import bulk_write, index_actions, refresh
from mailforce.settings import Settings

log = logging.getLogger(__name__)

__all__ = ["ErasureParamsError", "validate_request", "resolve_people", "record_suppressions", "erase_message_roles",
           "recompute_outputs", "recompute_account_statistics", "recompute_people", "audit", "erase"]

TERMS_PER_QUERY = 1_000  # values per terms query (far below index.max_terms_count)


def output_indices_by_kind(settings: Settings) -> dict[str, str]:
    """Every kind an erasure changes -> its index (the audit record names them)."""
    return {name: KIND_BY_NAME[name].index(settings) for name in ERASABLE_KIND_NAMES}


def validate_request(params: Mapping[str, Any], requested_at: str | None = None) -> ErasureRequest:
    """The form's values checked (ErasureParamsError with a clear message) before any write."""
    return parse_erasure_params(params, requested_at or format_utc(utc_now()))


def resolve_people(es, settings: Settings, request: ErasureRequest) -> ErasureRequest:
    """Every known address of each person the request names, added to its addresses."""
    if not request.people:
        return request
    addresses = addresses_of_persons_named(es, settings, read_people(es, settings), request.people)
    log.info("Erasure: %s named resolved to %s", plural(len(request.people), "person", "people"),
             plural(len(addresses), "address", "addresses"))
    return with_people_addresses(request, addresses)


def recompute_people(es, settings: Settings, request: ErasureRequest) -> PeopleResult:
    """The alias entries naming an erased address removed (with what that relabels), then the person
    documents the erasure changed recomputed (see the module docstring)."""
    updated_at = format_utc(utc_now())
    suppressions = request.suppressions.with_organizations(settings.organizations.organization_of)
    stale = entries_naming(read_people(es, settings), suppressions.suppresses)
    relabelled = written_first = deleted_first = 0
    if stale:
        audit_fields = {"change_id": request.erasure_id, "requested_by": request.requested_by,
                        "requested_at": request.requested_at}
        relabelled, written_first, deleted_first = change_aliases(es, settings, [], stale, audit_fields, updated_at)
        log.info("Erasure: %s naming an erased address removed; %s relabelled",
                 plural(len(stale), "alias entry", "alias entries"), plural(relabelled, "address", "addresses"))
    since = format_utc(parse_source_date(request.requested_at) - CLOCK_MARGIN)
    addresses = set(request.addresses) | addresses_written_since(es, settings, since)
    addresses |= addresses_of_people_in(es, settings, request.domains, request.organizations)
    written, deleted = refresh_people(es, settings, read_people(es, settings), addresses, updated_at)
    log.info("Recomputed the people of %s: %d written, %d deleted", plural(len(addresses), "address", "addresses"),
             written, deleted)
    return PeopleResult(addresses_read=len(addresses), people_written=written + written_first,
                        people_deleted=deleted + deleted_first, addresses_relabelled=relabelled)


def record_suppressions(es, settings: Settings, request: ErasureRequest) -> int:
    created = record_suppressions_io(es, settings, request)
    log.info("Suppression list: %d of %s newly recorded (%s, %s, %s)",
             created, plural(len(request.suppressions), "erased value"),
             plural(len(request.addresses), "address", "addresses"), plural(len(request.domains), "domain"),
             plural(len(request.organizations), "organisation"))
    return created


def _naming_query(values: Sequence[str], domains: Sequence[str]) -> dict[str, Any]:
    should: list[dict[str, Any]] = []
    if values:
        should += [{"terms": {field: list(values)}}
                   for field in ("from_addresses", "to_addresses", "cc_addresses", "participants")]
    if domains:
        should.append({"terms": {"domains": list(domains)}})
    return {"bool": {"should": should, "minimum_should_match": 1}}


def _roles_naming(es, settings: Settings, request: ErasureRequest, organization_hosts_known: Sequence[str] = (),
                  spellings: Iterable[str] = ()) -> Iterator[dict[str, Any]]:
    """Every roles document naming an erased value, another spelling of an erased mailbox, or a
    stored host of an erased organisation (queries of at most TERMS_PER_QUERY values each)."""
    seen: set[str] = set()
    chunks = [(list(chunk), []) for chunk in batched(sorted({*request.addresses, *spellings}), TERMS_PER_QUERY)]
    chunks += [([], list(chunk)) for chunk in batched(sorted({*request.domains, *organization_hosts_known}),
                                                      TERMS_PER_QUERY)]
    for addresses, domains in chunks:
        for hit in scan(es, settings.roles_index, {"query": _naming_query(addresses, domains)},
                        settings.scan_page_size, settings.scroll_keep_alive, "roles documents naming erased values"):
            if hit["_id"] not in seen:
                seen.add(hit["_id"])
                yield hit


def _delete_actions(index: str, ids: Iterable[str]) -> Iterator[dict[str, Any]]:
    for identifier in ids:
        yield {"_op_type": "delete", "_index": index, "_id": identifier}


def erase_message_roles(es, settings: Settings, request: ErasureRequest, *, updated_at: str | None = None
                        ) -> ErasedRoles:
    """Rewrite (or delete) the roles documents naming erased values; move the key dates of all copies.

    Returns the affected domains (every domain those messages named, and those of copies whose key
    date moved) and accounts, and counts.
    """
    updated_at = updated_at or format_utc(utc_now())
    if not es.indices.exists(index=settings.roles_index):
        return ErasedRoles(domains=tuple(sorted(request.domains)))
    refresh(es, settings.roles_index)
    suppressions = request.suppressions.with_organizations(settings.organizations.organization_of)
    rewritten: list[tuple[str, dict[str, Any]]] = []
    deleted: list[str] = []
    organization_hosts_known = organization_hosts(es, settings, request.organizations) if request.organizations else []
    spellings = stored_spellings(es, settings, request.addresses)  # the same mailboxes, written otherwise
    erased_addresses = sorted({*request.addresses, *spellings})
    domains: set[str] = set(request.domains) | {address.rpartition("@")[2] for address in erased_addresses}
    domains.update(organization_hosts_known)
    accounts: set[str] = set()
    message_ids: set[str] = set()
    entries_removed = 0
    for hit in _roles_naming(es, settings, request, organization_hosts_known, spellings):
        source = hit["_source"]
        erased = erased_roles_document(source, suppressions, updated_at)
        # an erased address of an internal domain holds no role, but leaves the message's audience
        if not erased.removed_entries and (erased.document or {}).get("participants") == source.get("participants"):
            continue
        entries_removed += erased.removed_entries
        domains.update(erased.domains_before)
        accounts.add(source["account"])
        message_ids.add(source["message_id"])
        if erased.document is None:
            deleted.append(hit["_id"])
        else:
            rewritten.append((hit["_id"], erased.document))
    # their stored owner evidence no longer counts these documents: not to be added to, even if this dies
    invalidate_evidence(es, settings, sorted(accounts))
    written = bulk_write(es, index_actions(settings.roles_index, rewritten), settings.bulk_chunk,
                         "roles documents without erased addresses")
    removed = bulk_write(es, _delete_actions(settings.roles_index, deleted), settings.bulk_chunk,
                         "roles documents left with no address")
    refresh(es, settings.roles_index)
    moved = _move_key_dates(es, settings, sorted(message_ids), updated_at, domains)
    # an erased address may have been a mailbox's own, or have made one stand out: its owners again
    owners = identify_owners(es, settings, sorted(accounts), run_id=None)
    domains.update(owners.domains)
    changes_removed = erase_changes(es, settings, erased_addresses, request.domains)
    log.info("Erasure of %s and %s: %s of their mailboxes found; %s removed from %s; %s rewritten, %s deleted "
             "(no address left); %s of other copies moved; %s deleted; %s and %s to recompute",
             plural(len(request.addresses), "address", "addresses"), plural(len(request.domains), "domain"),
             plural(len(spellings), "other spelling"),
             plural(entries_removed, "role entry", "role entries"), plural(len(message_ids), "message"),
             plural(written, "roles document"), f"{removed:,}", plural(moved, "key date"),
             plural(changes_removed, "relationship change"),
             plural(len(domains), "domain"), plural(len(accounts), "account"))
    return ErasedRoles(domains=tuple(sorted(domains)), accounts=tuple(sorted(accounts)),
                       roles_rewritten=written + moved, roles_deleted=removed, entries_removed=entries_removed,
                       key_dates_moved=moved, changes_deleted=changes_removed)


def _move_key_dates(es, settings: Settings, message_ids: Sequence[str], updated_at: str, domains: set[str]) -> int:
    """The key date of a message id is the earliest date of its copies that have a roles document:
    with a copy gone it may move later, for every remaining copy. Adds their domains to `domains`."""
    changes: list[tuple[str, dict[str, Any]]] = []
    for batch in batched(message_ids, settings.lookup_batch_size):
        copies: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        for hit in scan(es, settings.roles_index, {"query": {"terms": {"message_id": list(batch)}}},
                        settings.scan_page_size, settings.scroll_keep_alive, "copies of erased messages"):
            copies.setdefault(hit["_source"]["message_id"], []).append((hit["_id"], hit["_source"]))
        for group in copies.values():
            key_date = format_utc(min(parse_source_date(source["date"]) for _, source in group))
            for identifier, source in group:
                if source.get("key_date") != key_date:
                    changes.append((identifier, {**source, "key_date": key_date, "updated_at": updated_at}))
                    domains.update(source.get("domains") or ())
    moved = bulk_write(es, index_actions(settings.roles_index, changes), settings.bulk_chunk,
                       "key dates of remaining copies")
    refresh(es, settings.roles_index)
    return moved


def _scoring(es, settings: Settings):
    """Score at the date the stored strengths are at (the last run's), never a new one: an erasure
    must not rescore the affected domains to a date the rest of the outputs are not at."""
    scoring_date = last_scoring_date(es, settings) or calendar_date(utc_now())
    return scoring_for(settings, scoring_date)


def _stored_ids(es, settings: Settings, index: str, domains: Sequence[str], organizations: Sequence[str]) -> set[str]:
    """The ids of the documents of these domains or organisations stored in `index`."""
    if not es.indices.exists(index=index):
        return set()
    query = {"bool": {"should": [{"terms": {"domain": list(domains)}}, {"terms": {"organization": list(organizations)}}],
                      "minimum_should_match": 1}}
    return {hit["_id"] for hit in scan(es, index, {"query": query, "_source": False},
                                       settings.scan_page_size, settings.scroll_keep_alive, f"stored ids of {index}")}


def recompute_outputs(es, settings: Settings, domains: Sequence[str], *, updated_at: str | None = None
                      ) -> RecomputedOutputs:
    """Every document of these domains, and of every host of their organisations, recomputed over all
    time from the roles documents; those whose natural key is no longer produced deleted (an
    organisation left with no host included). Returns documents written and removed per kind."""
    updated_at = updated_at or format_utc(utc_now())
    scoring = _scoring(es, settings)
    indices = kind_indices(settings)
    written: Counter = Counter()
    removed: Counter = Counter()
    organizations = settings.organizations
    hosts = organization_hosts(es, settings, domains)
    people = read_people(es, settings)
    for chunk in organization_chunks(hosts, organizations, {}, TERMS_PER_QUERY, TERMS_PER_QUERY):
        documents, _, counts = recompute_documents(es, settings, chunk, scoring, updated_at, cause=CAUSE_ERASURE,
                                                   people=people)
        written.update(counts)
        names = sorted({organizations.organization_of(domain) for domain in chunk})
        refresh(es, *(indices[kind] for kind in KINDS))
        for kind in KINDS:
            expected = {output_id(kind, document) for document in getattr(documents, kind)}
            stale = sorted(_stored_ids(es, settings, indices[kind], chunk, names) - expected)
            removed[kind] += bulk_write(es, _delete_actions(indices[kind], stale), settings.bulk_chunk,
                                        f"erased {kind}")
    refresh(es, *indices.values(), settings.changes_index)
    log.info("Recomputed %s over all time: wrote %s; deleted %s", plural(len(domains), "domain"),
             dict(written), dict(removed))
    return RecomputedOutputs(written={kind: written[kind] for kind in KINDS + (CHANGES.name,)},
                             removed={kind: removed[kind] for kind in KINDS})


def recompute_account_statistics(es, settings: Settings, accounts: Sequence[str]) -> int:
    """The statistics of these accounts recomputed; returns how many changed."""
    if not accounts:
        return 0
    from mailforce.core.ids import document_id

    ids = [document_id(account) for account in accounts]
    before = fetch_documents(es, settings.account_stats_index, ids)
    write_account_statistics(es, settings, accounts, format_utc(utc_now()))
    after = fetch_documents(es, settings.account_stats_index, ids)
    changed = sum(1 for identifier in ids if
                  {k: v for k, v in (before.get(identifier) or {}).items() if k != "updated_at"}
                  != {k: v for k, v in (after.get(identifier) or {}).items() if k != "updated_at"})
    log.info("Recomputed the statistics of %s: %d changed", plural(len(accounts), "account"), changed)
    return changed


def audit(es, settings: Settings, request: ErasureRequest, roles: ErasedRoles, outputs: RecomputedOutputs,
          accounts_changed: int, started: float | None = None, people: PeopleResult | None = None) -> dict[str, Any]:
    """Write the audit record; returns it."""
    people = people or PeopleResult()
    removed = {"roles": roles.roles_deleted, **{kind: int(outputs.removed.get(kind, 0)) for kind in KINDS},
               "account_stats": 0, CHANGES.name: roles.changes_deleted, PEOPLE.name: people.people_deleted}
    rewritten = {"roles": roles.roles_rewritten, **{kind: int(outputs.written.get(kind, 0)) for kind in KINDS},
                 "account_stats": int(accounts_changed), CHANGES.name: int(outputs.written.get(CHANGES.name, 0)),
                 PEOPLE.name: people.people_written}
    document = audit_document(
        request, {kind: removed[kind] for kind in OUTPUT_KINDS}, {kind: rewritten[kind] for kind in OUTPUT_KINDS},
        output_indices_by_kind(settings), len(roles.domains), len(roles.accounts), format_utc(utc_now()),
        time.monotonic() - started if started is not None else 0.0,
    )
    write_audit(es, settings, document)
    log.info("Erasure %s recorded in %s: %s removed (%s), %d rewritten",
             request.erasure_id, settings.erasure_audit_index, plural(document["removed_total"], "document"),
             ", ".join(f"{kind} {count}" for kind, count in removed.items() if count) or "none",
             sum(rewritten.values()))
    return document


def erase(es, settings: Settings, params: Mapping[str, Any], *, requested_at: str | None = None) -> dict[str, Any]:
    """Every stage in the DAG's order, in this process; returns the audit record."""
    started = time.monotonic()
    request = validate_request(params, requested_at)
    check_settings(es, settings, arrival=False)  # a foreign output mapping: refused before any write
    request = resolve_people(es, settings, request)
    record_suppressions(es, settings, request)
    roles = erase_message_roles(es, settings, request)
    outputs = recompute_outputs(es, settings, roles.domains)
    changed = recompute_account_statistics(es, settings, roles.accounts)
    people = recompute_people(es, settings, request)
    return audit(es, settings, request, roles, outputs, changed, started, people)
