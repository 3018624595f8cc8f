"""Stage 4 (mapped, one per partition): bring its domains' engagement and domain documents up to date.

Whole domains whose window messages no run counted before add them to the stored documents; the
others are recomputed over all time. Shards of heavy domains go to the partials index until
`merge_split_domains`.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Iterator, Sequence

from mailforce.core.batches import batched
from mailforce.core.dates import format_utc, utc_now
from mailforce.core.engagements import compile_roles_documents, merge_domain_documents, merge_engagement_documents
from mailforce.core.ids import document_id
from mailforce.core.partitions import DomainShard, Partition
from mailforce.core.summaries import CompileResult, WrittenCounts
from mailforce.es.reads import scan_roles
from mailforce.es.writes import added_to_stored, bulk_write, index_actions, only_if_changed, refresh, write_with_stored
from mailforce.settings import Settings

log = logging.getLogger(__name__)

# Domains per terms query: far below Elasticsearch's index.max_terms_count (65,536).
DOMAINS_PER_QUERY = 5_000


def compile_whole_domains(
    es, settings: Settings, domains: Sequence[str], run_id: str, *, add_window: bool, updated_at: str | None = None
) -> WrittenCounts:
    """The engagement and domain documents of these whole domains, one loop for both paths.

    `add_window`: read only the roles documents this run wrote and add them to the stored
    documents (counts over disjoint sets of messages add up and dates take min/max, so this equals
    a recomputation over all time); otherwise recompute over all time and write what changed.
    """
    updated_at = updated_at or format_utc(utc_now())
    if add_window:
        engagements_combine = added_to_stored(merge_engagement_documents, updated_at)
        domains_combine = added_to_stored(merge_domain_documents, updated_at)
    else:
        engagements_combine = domains_combine = only_if_changed
    written = WrittenCounts()
    for chunk in batched(domains, DOMAINS_PER_QUERY):
        compiler = compile_roles_documents(
            chunk, scan_roles(es, settings, chunk, written_by_run=run_id if add_window else None)
        )
        engagements = ((document_id(document["account"], document["domain"]), document)
                       for document in compiler.engagement_documents(updated_at))
        domain_documents = ((document_id(document["domain"]), document)
                            for document in compiler.domain_documents(updated_at))
        written += WrittenCounts(
            roles_read=compiler.messages_read,
            engagements_written=write_with_stored(es, settings, settings.engagements_index, engagements,
                                                  "account engagements", engagements_combine),
            domains_written=write_with_stored(es, settings, settings.domains_index, domain_documents,
                                              "domain engagements", domains_combine),
        )
    return written


def compile_shard(es, settings: Settings, shard: DomainShard, run_id: str) -> WrittenCounts:
    """One shard of a heavy domain: its documents go to the partials index until merged."""
    updated_at = format_utc(utc_now())
    domain = shard.domain
    compiler = compile_roles_documents([domain], scan_roles(es, settings, [domain], shard.bucket_range))

    def partials() -> Iterator[tuple[str, dict[str, Any]]]:
        for kind, documents in (("engagement", compiler.engagement_documents(updated_at)),
                                ("domain", compiler.domain_documents(updated_at))):
            for document in documents:
                key = document_id(run_id, kind, domain, str(shard.shard), document.get("account", ""))
                yield key, {"run_id": run_id, "domain": domain, "kind": kind, "shard": shard.shard,
                            "account": document.get("account", ""), "document": document,
                            "updated_at": updated_at}

    written = bulk_write(es, index_actions(settings.partials_index, partials()), settings.bulk_chunk_size,
                         f"partials of {domain}")
    return WrittenCounts(roles_read=compiler.messages_read, partials_written=written)


def compile_domain_partition(
    es, settings: Settings, partition: Partition, run_id: str, *, add_window: bool = True
) -> CompileResult:
    """A mapped task's work: its whole domains, then its shards of heavy domains.

    `add_window=False` recomputes every domain: a retry must, since a failed attempt may already
    have added the window to some documents.
    """
    started = time.monotonic()
    recompute = set(partition.recompute_domains) if add_window else set(partition.domains)
    written = WrittenCounts()
    for adding in (False, True):
        domains = [domain for domain in partition.domains if (domain not in recompute) == adding]
        if domains:
            written += compile_whole_domains(es, settings, domains, run_id, add_window=adding)
    for shard in partition.shards:
        written += compile_shard(es, settings, shard, run_id)
    refresh(es, ",".join((settings.engagements_index, settings.domains_index, settings.partials_index)))
    log.info(
        "Partition %s: read %d roles documents, wrote %d account engagements, %d domain documents, "
        "%d shard partials in %.1f s",
        partition.label, written.roles_read, written.engagements_written, written.domains_written,
        written.partials_written, time.monotonic() - started,
    )
    return CompileResult(label=partition.label, written=written, split_domains=partition.split_domains)
