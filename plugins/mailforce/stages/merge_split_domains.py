"""Stage 5: merge the shards of heavy domains into their final documents, then drop the partials."""

from __future__ import annotations

import logging
from dataclasses import replace
from itertools import chain, groupby
from typing import Iterator, Sequence

from mailforce.core.dates import format_utc, utc_now
from mailforce.core.engagements import merge_domain_documents, merge_engagement_documents
from mailforce.core.ids import document_id
from mailforce.core.summaries import MergeResult
from mailforce.es.reads import scan_partials
from mailforce.es.writes import refresh, write_with_stored
from mailforce.settings import Settings

log = logging.getLogger(__name__)

# Split domains are the heaviest: their documents are large, so compare and write few at a time.
MERGE_BATCH_SIZE = 5


def partial_groups(es, settings: Settings, run_id: str, domain: str) -> Iterator[tuple[tuple[str, str], list[dict]]]:
    """A split domain's partial documents, grouped by (kind, account): the domain's own parts
    ("domain" sorts first), then each account's, so memory holds one group's shards at a time."""
    hits = scan_partials(es, settings, run_id, domain)
    for key, group in groupby(hits, key=lambda hit: (hit["_source"]["kind"], hit["_source"].get("account") or "")):
        yield key, [hit["_source"]["document"] for hit in group]


def merge_split_domains(es, settings: Settings, domains: Sequence[str], run_id: str) -> MergeResult:
    """Merge the shards of each heavy domain into its final documents, then drop the partials."""
    updated_at = format_utc(utc_now())
    engagements_written = domains_written = 0
    merge_settings = replace(settings, lookup_batch_size=min(settings.lookup_batch_size, MERGE_BATCH_SIZE),
                             bulk_chunk_size=min(settings.bulk_chunk_size, MERGE_BATCH_SIZE))
    for domain in sorted(set(domains)):
        groups = partial_groups(es, settings, run_id, domain)  # one (kind, account) at a time
        first = next(groups, None)
        domain_parts = first[1] if first is not None and first[0][0] == "domain" else []
        if first is not None and not domain_parts:
            groups = chain([first], groups)
        engagements = (
            (document_id(account, domain), merge_engagement_documents(parts, updated_at))
            for (_, account), parts in groups
        )
        engagements_written += write_with_stored(
            es, merge_settings, settings.engagements_index, engagements, "account engagements"
        )
        if domain_parts:
            merged = [(document_id(domain), merge_domain_documents(domain_parts, updated_at))]
            domains_written += write_with_stored(es, merge_settings, settings.domains_index, merged,
                                                 "domain engagements")
    if domains:
        es.delete_by_query(index=settings.partials_index, query={"term": {"run_id": run_id}}, refresh=True)
    refresh(es, ",".join((settings.engagements_index, settings.domains_index)))
    log.info("Merged %d split domains: %d account engagements, %d domain documents written",
             len(set(domains)), engagements_written, domains_written)
    return MergeResult(engagements_written=engagements_written, domains_written=domains_written)
