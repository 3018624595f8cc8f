"""The run's stages as plain functions: a client, settings and small summaries in, summaries out.

The DAG calls these in order; tests call them directly. Data moves Elasticsearch to Elasticsearch;
what is returned is small enough for XCom (counts, names, partitions).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import replace
from datetime import datetime, timezone
from itertools import chain, islice
from typing import Any, Iterable, Iterator, Sequence

from elasticsearch import helpers

from mailforce.dates import format_utc
from mailforce.engagements import (
    PartitionCompiler,
    merge_domain_documents,
    merge_engagement_documents,
)
from mailforce.indices import document_id, ensure_output_indices
from mailforce.partitions import plan_partitions
from mailforce.roles import (
    ExtractionCounts,
    Message,
    message_from_hit,
    message_from_roles_document,
    message_key,
    roles_document,
)
from mailforce.settings import Settings
from mailforce.source import (
    Window,
    count_undated,
    fetch_documents,
    index_is_empty,
    scan_sorted,
    scan_window_messages,
)
from mailforce.watermark import (
    RunRequest,
    read_watermark,
    resolve_window,
    runtime_stats_document,
)
from mailforce.writer import bulk_write, index_actions

log = logging.getLogger(__name__)

ROLES_READ_FIELDS = ["account", "message_id", "date", "message_roles"]
# Domains per terms query: far below Elasticsearch's index.max_terms_count (65,536).
DOMAINS_PER_QUERY = 5_000
ACCOUNTS_PER_QUERY = 1_000


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


class SourceIndexMissing(RuntimeError):
    """The configured source index does not exist: a typo must not look like a quiet mailbox."""


def prepare_indices(es, settings: Settings) -> list[str]:
    """Check the source exists, and create missing output indices before anything is written.

    A run over a missing source would record an empty window and move the watermark past mail that
    appears there later, so it fails instead.
    """
    if not es.indices.exists(index=settings.source_index):
        raise SourceIndexMissing(
            f"source index {settings.source_index!r} does not exist; check the setting 'source_index' "
            "(MAILFORCE_SOURCE_INDEX) or load mail first"
        )
    return ensure_output_indices(es, settings)


def _united_messages(hits: Iterable[dict], settings: Settings, counts: ExtractionCounts) -> Iterator[Message]:
    """Copies of one (account, messageId) arrive together (the scan's sort): unite them."""
    current: Message | None = None
    for hit in hits:
        message = message_from_hit(hit, settings.domain_in_scope, counts)
        if message is None:
            continue
        _, from_message_id = message_key(hit)
        if not from_message_id:  # keyed by its own document id: a message by itself
            yield message
            continue
        if current is not None and (current.account, current.message_id) == (message.account, message.message_id):
            current.merge(message)
            continue
        if current is not None:
            yield current
        current = message
    if current is not None:
        yield current


def _accounts_by_message_id(es, settings: Settings, message_ids: Sequence[str]) -> dict[str, set[str]]:
    """message_id -> the accounts whose roles documents already hold it."""
    found: dict[str, set[str]] = {}
    for hit in helpers.scan(
        es,
        index=settings.roles_index,
        query={"query": {"terms": {"message_id": list(message_ids)}}, "_source": ["account", "message_id"]},
        size=settings.scan_page_size,
        scroll=settings.scroll_keep_alive,
    ):
        found.setdefault(hit["_source"]["message_id"], set()).add(hit["_source"]["account"])
    return found


def extract_message_roles(
    es, settings: Settings, window: Window, run_id: str = "", updated_at: str | None = None
) -> dict[str, Any]:
    """Read the window's source copies once and write one roles document per message.

    Messages already in the roles index (copies seen by an earlier run) are united with the new
    copies, so a message's roles and earliest date cover every run. Returns the run summary: the
    accounts seen, the work per domain for partitioning, the domains that must be recomputed over
    all time (those of a message some run already counted), and counts.
    """
    updated_at = updated_at or format_utc(utc_now())
    counts = ExtractionCounts()
    unite_with_written = not index_is_empty(es, settings.roles_index)
    work_by_domain: Counter = Counter()
    role_entries: Counter = Counter()
    accounts: set[str] = set()
    recompute_domains: set[str] = set()
    messages = 0

    def actions() -> Iterator[dict[str, Any]]:
        nonlocal messages
        hits = scan_window_messages(es, settings.source_index, window, settings.scan_page_size, settings.scroll_keep_alive)
        for batch in batched(_united_messages(hits, settings, counts), settings.lookup_batch_size):
            ids = [document_id(message.account, message.message_id) for message in batch]
            written = fetch_documents(es, settings.roles_index, ids) if unite_with_written else {}
            holders = (
                _accounts_by_message_id(es, settings, [message.message_id for message in batch])
                if unite_with_written else {}
            )
            for message_document_id, message in zip(ids, batch):
                messages += 1
                accounts.add(message.account)
                stored = written.get(message_document_id)
                if stored is not None:
                    message.merge(message_from_roles_document(stored))
                if not message.roles:
                    continue
                # Every message of the window marks its domains, changed or not: a run that died
                # after this stage left them uncompiled, and its re-run must compile them.
                for address, role in message.roles:
                    work_by_domain[address.rpartition("@")[2]] += 1
                    role_entries[role] += 1
                # A message that some run already counted (this copy or another mailbox's) cannot
                # simply be added to the stored figures: its domains are recomputed over all time.
                if stored is not None or holders.get(message.message_id, set()) - {message.account}:
                    recompute_domains.update(message.domains)
                document = roles_document(message, updated_at, run_id)
                if stored is not None and _without(stored, "updated_at", "run_id") == _without(document, "updated_at", "run_id"):
                    continue
                yield {"_op_type": "index", "_index": settings.roles_index, "_id": message_document_id,
                       "_source": document}

    started = time.monotonic()
    roles_written = bulk_write(es, actions(), settings.bulk_chunk_size, "message roles")
    undated = count_undated(es, settings.source_index, window)
    elapsed = time.monotonic() - started
    log.info(
        "Extracted %d messages of %d accounts from %d source documents in %.1f s: %d roles documents, "
        "%d domains; skipped %d without date, %d without account; %d invalid addresses; "
        "%d source documents carry no usable date at all",
        messages, len(accounts), counts.source_documents, elapsed, roles_written, len(work_by_domain),
        counts.skipped_no_date, counts.skipped_no_account, counts.invalid_addresses, undated,
    )
    return {
        "messages": messages,
        "accounts": sorted(accounts),
        "accounts_count": len(accounts),
        "work_by_domain": dict(work_by_domain),
        "recompute_domains": sorted(recompute_domains),
        "domains_count": len(work_by_domain),
        "role_entries": dict(role_entries),
        "roles_written": roles_written,
        "undated_source_documents": undated,
        "counts": vars(counts),
    }


def list_domain_partitions(extraction: dict[str, Any], settings: Settings) -> list[dict[str, Any]]:
    partitions = plan_partitions(
        extraction["work_by_domain"], settings.max_partitions, settings.min_split_work, settings.min_partition_work
    )
    recompute = set(extraction.get("recompute_domains", ()))
    planned = []
    for partition in partitions:
        log.info("Partition %s", partition.label)
        summary = partition.to_dict()
        summary["recompute_domains"] = [domain for domain in partition.domains if domain in recompute]
        planned.append(summary)
    log.info("%d of %d domains are recomputed over all time; the others add the window's messages",
             len(recompute), len(extraction["work_by_domain"]))
    return planned


def _message_groups(hits: Iterable[dict]) -> Iterator[list[dict]]:
    """Roles documents sorted by message_id -> the copies of one message across accounts."""
    group: list[dict] = []
    for hit in hits:
        source = hit["_source"]
        if group and group[0]["message_id"] != source["message_id"]:
            yield group
            group = []
        group.append(source)
    if group:
        yield group


def _compile(
    es,
    settings: Settings,
    domains: Sequence[str],
    bucket_range: tuple[int, int] | None = None,
    written_by_run: str | None = None,
) -> PartitionCompiler:
    """Read the roles documents naming these domains: all time, or one bucket range, or only
    those a given run wrote."""
    compiler = PartitionCompiler(domains)
    filters: list[dict[str, Any]] = [{"terms": {"domains": list(domains)}}]
    if written_by_run is not None:
        filters.append({"term": {"run_id": written_by_run}})
    if bucket_range is not None:
        filters.append({"range": {"message_bucket": {"gte": bucket_range[0], "lt": bucket_range[1]}}})
    hits = scan_sorted(
        es,
        settings.roles_index,
        {"bool": {"filter": filters}},
        [{"message_id": "asc"}, {"account": "asc"}],
        ROLES_READ_FIELDS,
        settings.scan_page_size,
        settings.scroll_keep_alive,
        f"roles of {len(domains)} domains" if bucket_range is None else f"roles of {domains[0]} {bucket_range}",
    )
    for copies in _message_groups(hits):
        compiler.add_message(copies)
    return compiler


def changed_documents(
    es, index: str, documents: Iterable[tuple[str, dict[str, Any]]], batch_size: int, compare: bool
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Only the documents that differ from what is stored (updated_at aside).

    Rewriting an unchanged document costs a write and tells nobody anything; an incremental run
    recomputes whole domains but writes only what its new mail changed.
    """
    for identifier, document, previous in _with_stored(es, index, documents, batch_size, compare):
        if previous is None or _without(previous, "updated_at") != _without(document, "updated_at"):
            yield identifier, document


def _with_stored(
    es, index: str, documents: Iterable[tuple[str, dict]], batch_size: int, look_up: bool
) -> Iterator[tuple[str, dict, dict | None]]:
    """(id, document, the stored version or None), looked up a batch at a time."""
    for batch in batched(documents, batch_size):
        stored = fetch_documents(es, index, [identifier for identifier, _ in batch]) if look_up else {}
        for identifier, document in batch:
            yield identifier, document, stored.get(identifier)


def _without(document: dict[str, Any], *names: str) -> dict[str, Any]:
    return {key: value for key, value in document.items() if key not in names}


def write_changed(es, settings: Settings, index: str, documents: Iterable[tuple[str, dict]], what: str) -> int:
    compare = not index_is_empty(es, index)
    changed = changed_documents(es, index, documents, settings.lookup_batch_size, compare)
    return bulk_write(es, index_actions(index, changed), settings.bulk_chunk_size, what)


def _final_documents(compiler: PartitionCompiler, updated_at: str):
    engagements = ((document_id(d["account"], d["domain"]), d) for d in compiler.engagement_documents(updated_at))
    domains = ((document_id(d["domain"]), d) for d in compiler.domain_documents(updated_at))
    return engagements, domains


def compile_domains(es, settings: Settings, domains: Sequence[str], updated_at: str | None = None) -> dict[str, Any]:
    """Recompute, over all time, the engagement and domain documents of these whole domains."""
    updated_at = updated_at or format_utc(utc_now())
    engagements_written = domains_written = messages_read = 0
    for chunk in batched(domains, DOMAINS_PER_QUERY):
        compiler = _compile(es, settings, chunk)
        messages_read += compiler.messages_read
        engagements, domain_documents = _final_documents(compiler, updated_at)
        engagements_written += write_changed(es, settings, settings.engagements_index, engagements, "account engagements")
        domains_written += write_changed(es, settings, settings.domains_index, domain_documents, "domain engagements")
    return {"roles_read": messages_read, "engagements_written": engagements_written, "domains_written": domains_written}


def _added_to_stored(
    es, settings: Settings, index: str, documents: Iterable[tuple[str, dict]], merge, updated_at: str
) -> Iterator[tuple[str, dict]]:
    """Each new-messages document merged with the stored one (the same sums as shard merging)."""
    look_up = not index_is_empty(es, index)
    for identifier, document, previous in _with_stored(es, index, documents, settings.lookup_batch_size, look_up):
        yield identifier, (merge([previous, document], updated_at) if previous else document)


def _write_added(es, settings: Settings, index: str, documents, merge, updated_at: str) -> int:
    added = _added_to_stored(es, settings, index, documents, merge, updated_at)
    return bulk_write(es, index_actions(index, added), settings.bulk_chunk_size, index)


def add_window_to_domains(es, settings: Settings, domains: Sequence[str], run_id: str) -> dict[str, Any]:
    """Domains whose window messages no run counted before: add them to the stored documents.

    Counts over disjoint sets of messages add up and dates take min/max, so this equals a
    recomputation over all time while reading only the window's roles documents.
    """
    updated_at = format_utc(utc_now())
    engagements_written = domains_written = messages_read = 0
    for chunk in batched(domains, DOMAINS_PER_QUERY):
        compiler = _compile(es, settings, chunk, written_by_run=run_id)
        messages_read += compiler.messages_read
        engagements, domain_documents = _final_documents(compiler, updated_at)
        engagements_written += _write_added(
            es, settings, settings.engagements_index, engagements, merge_engagement_documents, updated_at
        )
        domains_written += _write_added(es, settings, settings.domains_index, domain_documents,
                                        merge_domain_documents, updated_at)
    return {"roles_read": messages_read, "engagements_written": engagements_written, "domains_written": domains_written}


def compile_shard(es, settings: Settings, shard: dict[str, Any], run_id: str) -> dict[str, Any]:
    """One shard of a heavy domain: its documents go to the partials index until merged."""
    updated_at = format_utc(utc_now())
    domain = shard["domain"]
    compiler = _compile(es, settings, [domain], (shard["bucket_from"], shard["bucket_to"]))

    def partials() -> Iterator[tuple[str, dict[str, Any]]]:
        for kind, documents in (("engagement", compiler.engagement_documents(updated_at)),
                                ("domain", compiler.domain_documents(updated_at))):
            for document in documents:
                key = document_id(run_id, kind, domain, str(shard["shard"]), document.get("account", ""))
                yield key, {"run_id": run_id, "domain": domain, "kind": kind, "shard": shard["shard"],
                            "account": document.get("account", ""), "document": document,
                            "updated_at": updated_at}

    written = bulk_write(es, index_actions(settings.partials_index, partials()), settings.bulk_chunk_size,
                         f"partials of {domain}")
    return {"roles_read": compiler.messages_read, "partials_written": written}


def compile_partition(
    es, settings: Settings, partition: dict[str, Any], run_id: str, add_window: bool = True
) -> dict[str, Any]:
    """A mapped task's work: its whole domains, then its shards of heavy domains.

    Whole domains whose window messages are all new add them to the stored documents; the others
    are recomputed over all time. `add_window=False` recomputes every domain: a retry must, since
    a failed attempt may already have added the window to some documents.
    """
    started = time.monotonic()
    result = {"label": partition.get("label", ""), "roles_read": 0, "engagements_written": 0,
              "domains_written": 0, "partials_written": 0,
              "split_domains": sorted({shard["domain"] for shard in partition.get("shards", [])})}
    recompute = set(partition.get("recompute_domains", ())) if add_window else set(partition["domains"])
    recomputed = [domain for domain in partition["domains"] if domain in recompute]
    added = [domain for domain in partition["domains"] if domain not in recompute]
    for domains, stage in ((recomputed, compile_domains), (added, add_window_to_domains)):
        if domains:
            arguments = (run_id,) if stage is add_window_to_domains else ()
            for key, value in stage(es, settings, domains, *arguments).items():
                result[key] += value
    for shard in partition.get("shards", []):
        for key, value in compile_shard(es, settings, shard, run_id).items():
            result[key] += value
    log.info(
        "Partition %s: read %d roles documents, wrote %d account engagements, %d domain documents, "
        "%d shard partials in %.1f s",
        result["label"], result["roles_read"], result["engagements_written"], result["domains_written"],
        result["partials_written"], time.monotonic() - started,
    )
    return result


def _partial_groups(es, settings: Settings, run_id: str, domain: str) -> Iterator[tuple[tuple[str, str], list[dict]]]:
    """A split domain's partial documents, grouped by (kind, account): the domain's own parts
    ("domain" sorts first), then each account's, so memory holds one group's shards at a time."""
    hits = scan_sorted(
        es,
        settings.partials_index,
        {"bool": {"filter": [{"term": {"run_id": run_id}}, {"term": {"domain": domain}}]}},
        [{"kind": "asc"}, {"account": "asc"}],
        ["kind", "account", "document"],
        min(settings.scan_page_size, 10),
        settings.scroll_keep_alive,
        f"shards of {domain}",
    )
    key: tuple[str, str] | None = None
    parts: list[dict] = []
    for hit in hits:
        partial = hit["_source"]
        partial_key = (partial["kind"], partial.get("account") or "")
        if key is not None and partial_key != key:
            yield key, parts
            parts = []
        key = partial_key
        parts.append(partial["document"])
    if key is not None:
        yield key, parts


def merge_split_domains(es, settings: Settings, domains: Sequence[str], run_id: str) -> dict[str, int]:
    """Merge the shards of each heavy domain into its final documents, then drop the partials."""
    updated_at = format_utc(utc_now())
    engagements_written = domains_written = 0
    # Split domains are the heaviest: their documents are large, so compare and write few at a time.
    merge_settings = replace(settings, lookup_batch_size=min(settings.lookup_batch_size, 5),
                             bulk_chunk_size=min(settings.bulk_chunk_size, 5))
    for domain in sorted(set(domains)):
        groups = _partial_groups(es, settings, run_id, domain)  # one (kind, account) at a time
        first = next(groups, None)
        domain_parts = first[1] if first is not None and first[0][0] == "domain" else []
        if first is not None and not domain_parts:
            groups = chain([first], groups)
        engagements = (
            (document_id(account, domain), merge_engagement_documents(parts, updated_at))
            for (_, account), parts in groups
        )
        engagements_written += write_changed(
            es, merge_settings, settings.engagements_index, engagements, "account engagements"
        )
        if domain_parts:
            merged = [(document_id(domain), merge_domain_documents(domain_parts, updated_at))]
            domains_written += write_changed(es, merge_settings, settings.domains_index, merged, "domain engagements")
    if domains:
        es.delete_by_query(index=settings.partials_index, query={"term": {"run_id": run_id}}, refresh=True)
    log.info("Merged %d split domains: %d account engagements, %d domain documents written",
             len(set(domains)), engagements_written, domains_written)
    return {"engagements_written": engagements_written, "domains_written": domains_written}


def account_statistics_documents(es, settings: Settings, accounts: Sequence[str], updated_at: str) -> Iterator[tuple[str, dict]]:
    """Distinct addresses per role for each account, summed from its engagement documents.

    An address belongs to one domain, so the per-domain counts of distinct addresses add up exactly.
    """
    count_fields = ("emails_from_count", "emails_to_count", "emails_cc_count")
    for batch in batched(sorted(accounts), ACCOUNTS_PER_QUERY):
        response = es.search(
            index=settings.engagements_index,
            size=0,
            query={"bool": {"filter": [{"terms": {"account": batch}}]}},
            aggs={
                "by_account": {
                    "terms": {"field": "account", "size": len(batch)},
                    "aggs": {name: {"sum": {"field": name}} for name in count_fields},
                }
            },
        )
        sums = {
            bucket["key"]: {name: int(round(bucket[name]["value"] or 0)) for name in count_fields}
            for bucket in response["aggregations"]["by_account"]["buckets"]
        }
        for account in batch:
            figures = sums.get(account, dict.fromkeys(count_fields, 0))
            document = {"account": account, **figures}
            document["total_emails_count"] = sum(figures.values())
            document["updated_at"] = updated_at
            yield document_id(account), document


def index_account_statistics(es, settings: Settings, accounts: Sequence[str], updated_at: str | None = None) -> int:
    updated_at = updated_at or format_utc(utc_now())
    written = bulk_write(
        es,
        index_actions(settings.account_stats_index, account_statistics_documents(es, settings, accounts, updated_at)),
        settings.bulk_chunk_size,
        "account statistics",
    )
    log.info("Wrote statistics of %d accounts", written)
    return written


def publish_runtime_stats(es, settings: Settings, document_id_and_body: tuple[str, dict[str, Any]]) -> None:
    identifier, body = document_id_and_body
    es.index(index=settings.runtime_stats_index, id=identifier, document=body, refresh="wait_for")
    log.info(
        "Published run stats: window (%s, %s], %d messages, %d accounts, %d domains",
        body["window_start"], body["window_end"], body["emails_processed"], body["email_accounts_processed"],
        body["domains_processed"],
    )


def run_once(
    es,
    settings: Settings,
    request: RunRequest,
    run_end: datetime,
    run_id: str,
    stop_after_partitions: int | None = None,
) -> dict[str, Any]:
    """Every stage in order, in this process: what the DAG does, without a scheduler.

    `stop_after_partitions` simulates a run that dies after that many partitions were written.
    """
    run_started = utc_now()
    prepare_indices(es, settings)
    window = resolve_window(request, run_end, read_watermark(es, settings))
    extraction = extract_message_roles(es, settings, window, run_id)
    partitions = list_domain_partitions(extraction, settings)
    compiled = []
    for number, partition in enumerate(partitions):
        if stop_after_partitions is not None and number >= stop_after_partitions:
            raise RuntimeError(f"run {run_id} stopped after {number} partitions (simulated failure)")
        compiled.append(compile_partition(es, settings, partition, run_id))
    split_domains = sorted({domain for result in compiled for domain in result["split_domains"]})
    merged = merge_split_domains(es, settings, split_domains, run_id)
    accounts_written = index_account_statistics(es, settings, extraction["accounts"])
    stats = runtime_stats_document(run_id, window, extraction, compiled, merged, accounts_written, run_started, utc_now())
    publish_runtime_stats(es, settings, stats)
    return stats[1]
