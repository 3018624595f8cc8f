"""Each mailbox's own (owner) addresses in Elasticsearch: the evidence from the roles index (over all
an account's roles documents, or the stored evidence plus one run's new documents), the owner
fields of the account statistics documents, and the accounts whose owners changed.

The owner stage (`stages/identify_account_owners.py`) and the erasure share it; the compile reads the
owners through `OwnerDirectory` (docs/SEMANTICS.md, "Conversations").
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Collection, Iterable, Mapping, Sequence

from mailforce.core.batches import batched
from mailforce.core.conversations import (
    OWNER_CANDIDATES,
    OwnerEvidence,
    doubtful_addresses,
    evidence_with_new_mail,
    owner_fields,
    ranked_candidates,
)
from mailforce.core.ids import document_id
from mailforce.es.reads import fetch_documents, scan, search, successful_runs
from mailforce.es.writes import bulk_write, refresh
from mailforce.settings import Settings

log = logging.getLogger(__name__)

ACCOUNTS_PER_QUERY = 100
# Terms asked per account and per shard: the exact counts of these candidates are then counted
# with filters, so the evidence is exact whenever the owner is among them (it is on half the mail).
CANDIDATE_SHARD_SIZE = 1_000
CANDIDATES_ASKED = OWNER_CANDIDATES + 7
# (account, address) pairs per page of the new mail's composite aggregation
NEW_MAIL_PAGE = 1_000
# addresses in doubt counted exactly per account before its evidence is counted over all its mail instead
MAX_DOUBTFUL = 100
# the run whose evidence the statistics document holds ("" after an erasure: not to be added to)
EVIDENCE_RUN_FIELD = "owner_evidence_run_id"
OWNER_FIELDS = ("owner_addresses", "owner_source", "owner_evidence", "owner_run_id", EVIDENCE_RUN_FIELD)


def owner_evidence(es, settings: Settings, accounts: Sequence[str]) -> dict[str, OwnerEvidence]:
    """Per account: its roles documents, and the addresses on most of them (exact counts)."""
    evidence = {account: OwnerEvidence() for account in accounts}
    if not accounts or not es.indices.exists(index=settings.roles_index):
        return evidence
    for batch in batched(sorted(accounts), ACCOUNTS_PER_QUERY):
        response = search(
            es, "owner candidates", index=settings.roles_index, size=0,
            query={"bool": {"filter": [{"terms": {"account": list(batch)}}]}},
            aggs={"by_account": {
                "terms": {"field": "account", "size": len(batch)},
                "aggs": {"candidates": {"terms": {"field": "participants", "size": CANDIDATES_ASKED,
                                                  "shard_size": CANDIDATE_SHARD_SIZE}}},
            }},
        )
        buckets = response["aggregations"]["by_account"]["buckets"]
        candidates = {bucket["key"]: [candidate["key"] for candidate in bucket["candidates"]["buckets"]]
                      for bucket in buckets}
        exact = _exact_counts(es, settings, candidates)
        for bucket in buckets:
            account = bucket["key"]
            evidence[account] = OwnerEvidence(
                messages=int(bucket["doc_count"]),
                candidates=ranked_candidates({address: exact[(account, address)] for address in candidates[account]}))
    return evidence


def _exact_counts(es, settings: Settings, candidates: Mapping[str, Sequence[str]]) -> dict[tuple[str, str], int]:
    """(account, address) -> the account's roles documents naming the address: one filters aggregation
    (exact, whatever the shards) for every candidate of a batch of accounts."""
    pairs = [(account, address) for account, addresses in candidates.items() for address in addresses]
    if not pairs:
        return {}
    response = search(
        es, "owner candidates' counts", index=settings.roles_index, size=0,
        query={"bool": {"filter": [{"terms": {"account": sorted(candidates)}},
                                   {"terms": {"participants": sorted({address for _, address in pairs})}}]}},
        aggs={"exact": {"filters": {"filters": {
            str(position): {"bool": {"filter": [{"term": {"account": account}}, {"term": {"participants": address}}]}}
            for position, (account, address) in enumerate(pairs)}}}},
    )
    buckets = response["aggregations"]["exact"]["buckets"]
    return {pair: int(buckets[str(position)]["doc_count"]) for position, pair in enumerate(pairs)}


@dataclass(frozen=True)
class NewMail:
    """An account's roles documents written by one run: how many, and the addresses on them."""

    messages: int = 0
    counts: Mapping[str, int] = field(default_factory=dict)  # every address on them -> its messages


def new_mail(es, settings: Settings, accounts: Sequence[str], run_id: str) -> dict[str, NewMail]:
    """Per account, its roles documents this run wrote (`run_id`): their number, and every address on
    them with its count (a composite aggregation, paged: exact and complete whatever the shards).
    Reads only this run's documents, not the accounts' history."""
    found = {account: NewMail() for account in accounts}
    for batch in batched(sorted(accounts), ACCOUNTS_PER_QUERY):
        query = {"bool": {"filter": [{"terms": {"account": list(batch)}}, {"term": {"run_id": run_id}}]}}
        messages, counts, after = {}, {account: {} for account in batch}, None
        while True:
            composite: dict[str, Any] = {"size": NEW_MAIL_PAGE, "sources": [
                {"account": {"terms": {"field": "account"}}}, {"address": {"terms": {"field": "participants"}}}]}
            aggs: dict[str, Any] = {"pairs": {"composite": composite}}
            if after is None:
                aggs["by_account"] = {"terms": {"field": "account", "size": len(batch)}}
            else:
                composite["after"] = after
            response = search(es, "owner candidates of the new mail", index=settings.roles_index, size=0,
                              query=query, aggs=aggs)
            if after is None:
                messages = {bucket["key"]: int(bucket["doc_count"])
                            for bucket in response["aggregations"]["by_account"]["buckets"]}
            pairs = response["aggregations"]["pairs"]
            for bucket in pairs["buckets"]:
                counts[bucket["key"]["account"]][bucket["key"]["address"]] = int(bucket["doc_count"])
            after = pairs.get("after_key")
            if len(pairs["buckets"]) < NEW_MAIL_PAGE or after is None:
                break
        for account in batch:
            found[account] = NewMail(messages.get(account, 0), counts[account])
    return found


@dataclass(frozen=True)
class AddedEvidence:
    """The evidence of the accounts that took the stored evidence plus this run's new mail, and how
    many addresses in doubt were counted exactly on the way."""

    evidence: Mapping[str, OwnerEvidence] = field(default_factory=dict)
    addresses_counted: int = 0


def added_evidence(es, settings: Settings, stored: Mapping[str, Mapping[str, Any] | None], accounts: Sequence[str],
                   run_id: str, trusted_runs: Collection[str]) -> AddedEvidence:
    """The evidence of those accounts whose stored evidence a successful run wrote (so it counted every
    roles document of the account up to that run; the extraction names the accounts whose stored
    documents this run rewrote, which are not among `accounts`): the stored evidence plus this run's
    new roles documents, with the exact counts of the few addresses in doubt (`doubtful_addresses`);
    an account with more than `MAX_DOUBTFUL` of them is left out (counted over all its mail)."""
    eligible = [account for account in accounts
                if "owner_evidence" in (stored[account] or {})
                and (stored[account] or {}).get(EVIDENCE_RUN_FIELD) in trusted_runs]
    if not eligible or not es.indices.exists(index=settings.roles_index):
        return AddedEvidence()
    mail = new_mail(es, settings, eligible, run_id)
    before = {account: OwnerEvidence.from_document(stored[account]["owner_evidence"]) for account in eligible}
    doubtful = {account: doubtful_addresses(before[account], mail[account].counts) for account in eligible}
    doubtful = {account: addresses for account, addresses in doubtful.items() if len(addresses) <= MAX_DOUBTFUL}
    counted: dict[tuple[str, str], int] = {}
    for batch in batched(sorted(account for account, addresses in doubtful.items() if addresses), ACCOUNTS_PER_QUERY):
        counted.update(_exact_counts(es, settings, {account: doubtful[account] for account in batch}))
    evidence = {account: evidence_with_new_mail(
        before[account], mail[account].messages, mail[account].counts,
        {address: counted[(account, address)] for address in addresses}) for account, addresses in doubtful.items()}
    return AddedEvidence(evidence, sum(len(addresses) for addresses in doubtful.values()))


def invalidate_evidence(es, settings: Settings, accounts: Sequence[str]) -> int:
    """Mark these accounts' stored evidence as not to be added to (before their roles documents are
    rewritten outside a counting run: the erasure); the next counting run counts it over all time."""
    return bulk_write(es, ({"_op_type": "update", "_index": settings.account_stats_index, "_id": document_id(account),
                            "doc": {"account": account, EVIDENCE_RUN_FIELD: ""}, "doc_as_upsert": True}
                           for account in sorted(accounts)), settings.bulk_chunk, "owner evidence marked stale")


def stored_owner_fields(es, settings: Settings, accounts: Sequence[str]) -> dict[str, dict[str, Any] | None]:
    """Per account, the owner fields of its statistics document (None: no document yet)."""
    stored: dict[str, dict[str, Any] | None] = {}
    for batch in batched(sorted(accounts), settings.lookup_batch_size):
        found = fetch_documents(es, settings.account_stats_index, [document_id(account) for account in batch])
        for account in batch:
            document = found.get(document_id(account))
            stored[account] = None if document is None else {
                name: document[name] for name in OWNER_FIELDS if name in document}
    return stored


@dataclass(frozen=True)
class OwnerChanges:
    """What identifying the owners of some accounts found: whose owners changed, and the domains
    their stored relationships live in (to recompute: every direct figure depends on the owners)."""

    changed_accounts: tuple[str, ...] = ()
    domains: Mapping[str, int] = field(default_factory=dict)  # domain -> messages of those accounts there
    accounts_written: int = 0
    evidence_added: int = 0  # accounts whose evidence added this run's new mail to the stored one
    evidence_counted: int = 0  # accounts whose evidence was counted over all their roles documents
    doubtful_addresses_counted: int = 0  # of the added accounts, addresses in doubt counted exactly


def identify_owners(es, settings: Settings, accounts: Iterable[str], run_id: str | None, *,
                    rewritten_accounts: Collection[str] | None = None) -> OwnerChanges:
    """Infer (or take from the setting) the owner addresses of these accounts and of the accounts the
    setting names; write them with their evidence to the account statistics documents.

    The evidence: with `rewritten_accounts` (a counting run's extraction: the accounts whose stored
    roles documents it rewrote; every other account's documents of `run_id` are new), the stored
    evidence of a successful run plus this run's new documents, with exact counts of the addresses in
    doubt (`added_evidence`); otherwise, and always without it, counted over all the account's roles
    documents.

    An account's owners count as changed when they differ from the stored ones, when none are stored,
    or when the run that stored them did not succeed (it may have died before recomputing); then
    `owner_run_id` becomes this run, and the account's domains are returned for recomputation.
    `run_id=None` (the erasure, which recomputes those domains itself) keeps the stored `owner_run_id`.
    """
    configured = settings.owner_addresses_by_account
    stored = stored_owner_fields(es, settings, sorted(set(accounts) | set(configured)))
    # an account the setting names but that has no statistics yet gets them with its first mail
    wanted = sorted(account for account in stored if account in set(accounts) or stored[account] is not None)
    runs = successful_runs(es, settings, [(stored[account] or {}).get(name, "") for account in wanted
                                          for name in ("owner_run_id", EVIDENCE_RUN_FIELD)])
    added = AddedEvidence()
    if run_id and rewritten_accounts is not None:
        rewritten = set(rewritten_accounts)
        added = added_evidence(es, settings, stored, [account for account in wanted if account not in rewritten],
                               run_id, runs)
    evidence = {**owner_evidence(es, settings, [account for account in wanted if account not in added.evidence]),
                **added.evidence}
    changed: list[str] = []
    updates: list[tuple[str, dict[str, Any]]] = []
    for account in wanted:
        fields = owner_fields(configured.get(account, ()), evidence[account])
        fields[EVIDENCE_RUN_FIELD] = run_id or ""
        previous = stored[account] or {}
        if (previous.get("owner_addresses") != fields["owner_addresses"]
                or previous.get("owner_source") != fields["owner_source"]
                or previous.get("owner_run_id") not in runs):
            changed.append(account)
            fields["owner_run_id"] = run_id if run_id is not None else previous.get("owner_run_id", "")
        updates.append((account, {"account": account, **fields}))
    written = bulk_write(es, ({"_op_type": "update", "_index": settings.account_stats_index,
                               "_id": document_id(account), "doc": fields, "doc_as_upsert": True}
                              for account, fields in updates), settings.bulk_chunk, "owner addresses")
    if written:
        refresh(es, settings.account_stats_index)  # the compile's `OwnerDirectory` searches them
    return OwnerChanges(changed_accounts=tuple(changed), domains=domains_of_accounts(es, settings, changed),
                        accounts_written=written, evidence_added=len(added.evidence),
                        evidence_counted=len(wanted) - len(added.evidence),
                        doubtful_addresses_counted=added.addresses_counted)


def domains_of_accounts(es, settings: Settings, accounts: Sequence[str]) -> dict[str, int]:
    """The domains these accounts' stored engagement documents name, with their messages there."""
    domains: Counter = Counter()
    if not accounts or not es.indices.exists(index=settings.engagements_index):
        return {}
    for batch in batched(sorted(accounts), settings.lookup_batch_size):
        for hit in scan(es, settings.engagements_index,
                        {"query": {"terms": {"account": list(batch)}}, "_source": ["domain", "total_count"]},
                        settings.scan_page_size, settings.scroll_keep_alive, "domains of accounts whose owners changed"):
            domains[hit["_source"]["domain"]] += max(1, int(hit["_source"].get("total_count") or 0))
    return dict(domains)


class OwnerDirectory:
    """account -> its owner addresses, as the account statistics documents hold them (all of them read
    by one scan at the first question: one document per account, its owner fields only); an account
    without stored owners is identified on the spot, without writing."""

    def __init__(self, es, settings: Settings) -> None:
        self.es, self.settings = es, settings
        self.known: dict[str, frozenset[str]] | None = None

    def _stored(self) -> dict[str, frozenset[str]]:
        index = self.settings.account_stats_index
        if not self.es.indices.exists(index=index):
            return {}
        return {hit["_source"]["account"]: frozenset(hit["_source"]["owner_addresses"] or ())
                for hit in scan(self.es, index, {"query": {"match_all": {}}, "_source": ["account", "owner_addresses"]},
                                self.settings.scan_page_size, self.settings.scroll_keep_alive, "stored owner addresses")
                if "owner_addresses" in hit["_source"]}

    def __call__(self, account: str) -> frozenset[str]:
        if self.known is None:
            self.known = self._stored()
        if account not in self.known:
            configured = self.settings.owner_addresses_by_account.get(account, ())
            fields = owner_fields(configured, owner_evidence(self.es, self.settings, [account])[account])
            self.known[account] = frozenset(fields["owner_addresses"])
        return self.known[account]
