"""The compiled outputs in Elasticsearch: which index holds each kind, reading the stored documents
of given natural keys, writing what changed, rolling a set of domains up from the roles index, and
the stored hosts of their organisations.

Shared by the compile stage and the erasure (stages import `core` and `es`, never each other).
"""

from __future__ import annotations

from itertools import groupby
from typing import Any, Iterable, Iterator, Mapping, Sequence

from mailforce.core.batches import batched, without
from mailforce.core.ids import document_id
from mailforce.core.kinds import CHANGES, COMPILED_KINDS, natural_key
from mailforce.core.conversations import Conversations
from mailforce.core.org_rollups import OrganizationRollup, finished_organizations
from mailforce.core.people import People, label_people
from mailforce.core.rollups import KINDS, DomainDocuments, Scoring, finished_documents
from mailforce.es.changes import record_relationship_changes
from mailforce.es.owners import OwnerDirectory
from mailforce.es.reads import fetch_documents, fetch_from_indices, scan_roles
from mailforce.es.scoring import broadcast_rule
from mailforce.es.writes import bulk_write, index_actions, version_of
from mailforce.settings import Settings


def kind_indices(settings: Settings) -> dict[str, str]:
    """Compiled kind -> the index holding its documents."""
    return {kind.name: kind.index(settings) for kind in COMPILED_KINDS}


def output_id(kind: str, document: Mapping[str, Any]) -> str:
    return document_id(*natural_key(kind, document))


Versions = dict[str, dict[str, "tuple[int, int] | None"]]


def stored_documents(
    es, settings: Settings, documents: Mapping[str, list[dict[str, Any]]]
) -> tuple[dict[str, dict], Versions]:
    """Per kind, the stored documents of the same natural keys (by id: real time, never a search),
    and the version each was read at (None: absent), for conditional writes."""
    indices = kind_indices(settings)
    stored: dict[str, dict] = {kind: {} for kind in KINDS}
    versions: Versions = {kind: {} for kind in KINDS}
    wanted = ((kind, output_id(kind, document), natural_key(kind, document))
              for kind in KINDS for document in documents.get(kind, ()))
    for batch in batched(wanted, settings.lookup_batch_size):  # the kinds share each lookup request
        by_index: dict[str, list[str]] = {}
        for kind, identifier, _ in batch:
            by_index.setdefault(indices[kind], []).append(identifier)
        fetched = fetch_from_indices(es, by_index, with_versions=True)
        for kind, identifier, key in batch:
            entry = fetched[indices[kind]].get(identifier)
            versions[kind][identifier] = version_of(entry)
            if entry is not None:
                stored[kind][key] = without(dict(entry["_source"]), "updated_at")
    return stored, versions


def _changed(kind: str, documents: Iterable[dict[str, Any]], stored: Mapping[tuple, Mapping[str, Any]] | None
             ) -> Iterator[dict[str, Any]]:
    for document in documents:
        if stored is None or stored.get(natural_key(kind, document)) != document:
            yield document


def write_documents(es, settings: Settings, documents: DomainDocuments, updated_at: str, *,
                    stored: Mapping[str, Mapping[tuple, Mapping[str, Any]]] | None = None,
                    versions: Versions | None = None) -> dict[str, int]:
    """Write each kind's documents: only those that differ from `stored` when it is given; each
    conditional on the version it was read at when `versions` is given (a concurrent attempt that
    wrote them first makes this one fail instead of adding the same mail twice)."""
    written = {}
    for kind, index in kind_indices(settings).items():
        changed = ((output_id(kind, document), {**document, "updated_at": updated_at})
                   for document in _changed(kind, getattr(documents, kind), None if stored is None else stored[kind]))
        actions = index_actions(index, changed, None if versions is None else versions[kind])
        written[kind] = bulk_write(es, actions, settings.bulk_chunk, kind)
    return written


def organization_hosts(es, settings: Settings, domains: Sequence[str]) -> list[str]:
    """`domains` and every other stored host of their organisations (each organisation document's
    `domains`, read by id: real time), sorted: what recomputing their organisations reads."""
    organizations = settings.organizations
    names = sorted({organizations.organization_of(domain) for domain in domains})
    wanted = set(names)
    hosts = set(domains)
    for batch in batched(names, settings.lookup_batch_size):
        fetched = fetch_documents(es, settings.organizations_index, [document_id(name) for name in batch])
        for document in fetched.values():
            hosts.update(host for host in document.get("domains", ())
                         if organizations.organization_of(host) in wanted)  # a host regrouped elsewhere is not
    return sorted(hosts)


def rollup_of(es, settings: Settings, domains: Sequence[str], written_by_run: str | None) -> OrganizationRollup:
    """The figures of these domains (whole organisations) from the roles index: all time, or only
    what one run wrote."""
    conversations = Conversations(owners_of=OwnerDirectory(es, settings), broadcast=broadcast_rule(settings))
    rollup = OrganizationRollup(domains, settings.organizations, window_only=written_by_run is not None,
                                conversations=conversations)
    hits = scan_roles(es, settings, domains, written_by_run=written_by_run)  # sorted by message id
    for _, group in groupby(hits, key=lambda hit: hit["_source"]["message_id"]):
        rollup.add_message([hit["_source"] for hit in group])
    return rollup


def recompute_documents(es, settings: Settings, domains: Sequence[str], scoring: Scoring, updated_at: str, *,
                        cause: str, people: People) -> tuple[DomainDocuments, int, dict[str, int]]:
    """Every document of these domains recomputed over all time from their roles documents (with every
    host of their organisations among `domains`), labelled with their people; a relationship that
    crosses a strength band gets a change-feed document with `cause`; what changed written.

    What the compile's recompute and the erasure share. Returns the documents, the messages read and
    the documents written per kind (the feed's under its own kind's name).
    """
    rollup = rollup_of(es, settings, domains, written_by_run=None)
    documents = finished_documents(rollup, scoring)
    finished_organizations(rollup, documents, scoring)
    label_people([*documents.relationships, *documents.contacts], people)
    stored, _ = stored_documents(es, settings, vars(documents))
    changes = record_relationship_changes(es, settings, stored["relationships"], documents.relationships,
                                          scoring_date=scoring.scoring_date, cause=cause, updated_at=updated_at)
    written = write_documents(es, settings, documents, updated_at, stored=stored)
    return documents, rollup.messages_read, {**written, CHANGES.name: changes}
