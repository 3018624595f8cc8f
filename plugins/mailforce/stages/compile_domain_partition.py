"""Stage 5 (mapped, one per partition): bring its domains' output documents up to date.

For each domain: account engagements, relationships, contacts, timeline months and the domain
document (docs/SEMANTICS.md). A domain none of whose window messages was counted before adds the
window's new mail to the stored documents (reading only this run's roles documents; a copy marked
`counted_elsewhere` adds to its mailbox's figures only, see `DomainRollup`); the others,
and every domain of a retried task, are recomputed over all time and only what changed is written.
"""

from __future__ import annotations

import logging
import time
from itertools import groupby
from typing import Any, Iterable, Iterator, Mapping, Sequence

from mailforce.core.automated import AddressClassifier
from mailforce.core.batches import batched, batched_by_work, without
from mailforce.core.dates import format_utc, utc_now
from mailforce.core.ids import document_id
from mailforce.core.partitions import Partition
from mailforce.core.rollups import (
    KINDS,
    DomainDocuments,
    DomainRollup,
    Scoring,
    add_to_stored,
    finished_documents,
    flipped_to_automated,
    missing_from_stored,
    natural_key,
    window_documents,
)
from mailforce.core.summaries import CompileResult, WrittenCounts
from mailforce.core.wording import plural
from mailforce.es.reads import fetch_documents, scan_roles
from mailforce.es.writes import bulk_write, index_actions, refresh, version_of
from mailforce.settings import Settings

log = logging.getLogger(__name__)

# Domains per terms query: far below Elasticsearch's index.max_terms_count (65,536).
DOMAINS_PER_QUERY = 5_000
# Role entries per chunk of domains read and rolled up together: a task's memory is bounded by this
# (or by its heaviest single domain), not by how many domains its partition holds.
WORK_PER_CHUNK = 40_000


def kind_indices(settings: Settings) -> dict[str, str]:
    """Output kind -> the index holding its documents."""
    return {
        "engagements": settings.engagements_index,
        "relationships": settings.relationships_index,
        "contacts": settings.contacts_index,
        "timeline": settings.timeline_index,
        "domains": settings.domains_index,
    }


def scoring_for(settings: Settings, scoring_date) -> Scoring:
    classifier = AddressClassifier(settings.automated_address_patterns)
    return Scoring(scoring_date=scoring_date, half_life_days=settings.strength_half_life_days,
                   is_automated_address=classifier.is_automated, top_addresses=settings.domain_top_addresses)


def output_id(kind: str, document: Mapping[str, Any]) -> str:
    return document_id(*natural_key(kind, document))


Versions = dict[str, dict[str, "tuple[int, int] | None"]]


def stored_documents(
    es, settings: Settings, documents: Mapping[str, list[dict[str, Any]]]
) -> tuple[dict[str, dict], Versions]:
    """Per kind, the stored documents of the same natural keys (by id: real time, never a search),
    and the version each was read at (None: absent), for conditional writes."""
    indices = kind_indices(settings)
    stored: dict[str, dict] = {}
    versions: Versions = {}
    for kind in KINDS:
        found: dict[tuple, dict] = {}
        kind_versions: dict[str, tuple[int, int] | None] = {}
        for batch in batched(documents.get(kind, ()), settings.lookup_batch_size):
            by_id = {output_id(kind, document): natural_key(kind, document) for document in batch}
            fetched = fetch_documents(es, indices[kind], list(by_id), with_versions=True)
            for identifier, key in by_id.items():
                entry = fetched.get(identifier)
                kind_versions[identifier] = version_of(entry)
                if entry is not None:
                    found[key] = without(dict(entry["_source"]), "updated_at")
        stored[kind] = found
        versions[kind] = kind_versions
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


def rollup_of(es, settings: Settings, domains: Sequence[str], written_by_run: str | None) -> DomainRollup:
    rollup = DomainRollup(domains, window_only=written_by_run is not None)
    hits = scan_roles(es, settings, domains, written_by_run=written_by_run)  # sorted by message id
    for _, group in groupby(hits, key=lambda hit: hit["_source"]["message_id"]):
        rollup.add_message([hit["_source"] for hit in group])
    return rollup


def recompute_domains(es, settings: Settings, domains: Sequence[str], scoring: Scoring, updated_at: str
                      ) -> tuple[int, dict[str, int]]:
    """Every document of these domains from all their roles documents; writes what changed."""
    rollup = rollup_of(es, settings, domains, written_by_run=None)
    documents = finished_documents(rollup, scoring)
    stored, _ = stored_documents(es, settings, vars(documents))
    return rollup.messages_read, write_documents(es, settings, documents, updated_at, stored=stored)


def add_window_to_domains(es, settings: Settings, domains: Sequence[str], run_id: str, scoring: Scoring,
                          updated_at: str) -> tuple[int, dict[str, int], dict[str, str]]:
    """This run's new mail of these domains added to the stored documents.

    Returns the domains that must be recomputed instead, each with the reason: new mail flagged a
    known address as automated, which changes documents this window did not touch, or a copy
    counted elsewhere names an address the stored documents do not hold.
    """
    rollup = rollup_of(es, settings, domains, written_by_run=run_id)
    new = window_documents(rollup)
    stored, versions = stored_documents(es, settings, new)
    reasons = {domain: "new mail flagged a known address as automated"
               for domain in flipped_to_automated(new, stored, scoring)}
    for domain in missing_from_stored(new, stored) - set(reasons):
        reasons[domain] = "a copy counted in other mailboxes names an address missing from the stored contacts"
    if reasons:
        new = {kind: [document for document in documents if document["domain"] not in reasons]
               for kind, documents in new.items()}
    documents = add_to_stored(new, stored, scoring)
    written = write_documents(es, settings, documents, updated_at, versions=versions)
    return rollup.messages_read, written, reasons


def compile_domains(es, settings: Settings, domains: Sequence[str], run_id: str, *, add_window: bool,
                    scoring: Scoring, updated_at: str | None = None,
                    work_by_domain: Mapping[str, int] | None = None) -> WrittenCounts:
    """The output documents of these whole domains, by either path (see the module docstring), in
    chunks of at most `WORK_PER_CHUNK` role entries by `work_by_domain` (a domain it does not know
    weighs 1, so without it the chunks are `DOMAINS_PER_QUERY` domains)."""
    updated_at = updated_at or format_utc(utc_now())
    total = WrittenCounts()
    for chunk in batched_by_work(domains, work_by_domain or {}, WORK_PER_CHUNK, DOMAINS_PER_QUERY):
        recompute = list(chunk)
        if add_window:
            read, written, reasons = add_window_to_domains(es, settings, chunk, run_id, scoring, updated_at)
            total += WrittenCounts.of(read, written)
            recompute = sorted(reasons)
            for reason in sorted(set(reasons.values())):
                named = [domain for domain in recompute if reasons[domain] == reason]
                log.info("Recomputing %s over all time because %s: %s", plural(len(named), "domain"), reason,
                         ", ".join(named[:5]))
        if recompute:
            read, written = recompute_domains(es, settings, recompute, scoring, updated_at)
            total += WrittenCounts.of(read, written)
    return total


def compile_domain_partition(
    es, settings: Settings, partition: Partition, run_id: str, *, add_window: bool = True, scoring: Scoring
) -> CompileResult:
    """A mapped task's work: its domains, each by the path it needs.

    `add_window=False` recomputes every domain: a retry must, since a failed attempt may already
    have added the window to some documents.
    """
    started = time.monotonic()
    recompute = set(partition.recompute_domains) if add_window else set(partition.domains)
    written = WrittenCounts()
    added = [domain for domain in partition.domains if domain not in recompute]
    recomputed = [domain for domain in partition.domains if domain in recompute]
    work = partition.work_by_domain
    if recomputed:
        written += compile_domains(es, settings, recomputed, run_id, add_window=False, scoring=scoring,
                                   work_by_domain=work)
    if added:
        written += compile_domains(es, settings, added, run_id, add_window=True, scoring=scoring,
                                   work_by_domain=work)
    for index in kind_indices(settings).values():  # later stages search what was written
        refresh(es, index)
    how = []
    if added:
        how.append(f"added this run's new mail to {plural(len(added), 'domain')}")
    if recomputed:
        reason = ("this task is a retry: an earlier attempt may have added part of the window" if not add_window
                  else "a message of theirs was counted before")
        how.append(f"recomputed {plural(len(recomputed), 'domain')} over all time ({reason})")
    outcome = (f"wrote {written.describe()}" if written.documents_written
               else "unchanged (every document was already up to date, nothing written)")
    log.info(
        "Partition %s: %s; read %s; %s in %.1f s",
        partition.label, " and ".join(how) or "nothing to do", plural(written.roles_read, "roles document"),
        outcome, time.monotonic() - started,
    )
    return CompileResult(label=partition.label, written=written)
