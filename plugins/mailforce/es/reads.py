"""Reading Elasticsearch: scans of the source and the roles fact table, lookups and counts.

Only the needed fields are read.

Reads use scroll with an explicit sort: the sort lets the callers group copies of one message with
memory bounded by one group, and scroll is supported the same way by Elasticsearch 8/9, OpenSearch 2
and the embedded engine (where it is also the cheapest way to read everything once).

Reads never accept less than the whole answer (docs/REAL_CLUSTERS.md):

- every search, count and scroll page asks `allow_partial_search_results=false` where the API takes
  it, and an answer with `_shards.failed > 0` or `timed_out` raises `IncompleteReadError`;
- a scroll page is never retried (a retried scroll request can skip a page): scroll pages go through
  a client with no retries, and any error ends the scan with `IncompleteReadError`, so the task
  fails and its retry starts the scan from scratch; the first request (which opens the scroll) is
  retried by the client as usual, with backoff;
- an mget item `error` is retried a few times with backoff, then raises: it is never "not found";
- many small searches go in one `_msearch` request (`search_each`); an answer that is an error or
  incomplete asks its batch again a few times, then raises.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Iterator, Mapping, Sequence

from elasticsearch import ApiError, TransportError

from mailforce.core.batches import batched
from mailforce.core.dates import format_utc, parse_source_date
from mailforce.core.extraction import StoredCopies, ledger_document_id, roles_document_id
from mailforce.core.extraction_slices import MESSAGE_ID_FIELD, WHOLE_WINDOW, ExtractionSlice
from mailforce.core.ids import document_id
from mailforce.core.roles import SOURCE_FIELDS, Message
from mailforce.core.rollups import COMPILE_READ_FIELDS
from mailforce.core.window import Window
from mailforce.core.wording import plural
from mailforce.settings import Settings

log = logging.getLogger(__name__)

PROGRESS_STEPS = 10  # a scan logs its progress by tenths ...
MIN_PROGRESS_EVERY = 5_000  # ... but not more often than every this many documents
MGET_ITEM_RETRIES = 3  # tries of the ids an mget answered with an item error, before raising
MGET_RETRY_BACKOFF_SECONDS = 0.2  # doubled at each try
# What the client is sent back of a scroll page or an mget: the scan's and the lookups' own fields,
# and what says whether the answer is complete. Each hit's index, score and sort values (the sort
# repeats the sorted fields) would otherwise be decoded for every document read.
SCAN_RESPONSE_FIELDS = "_scroll_id,_shards,timed_out,hits.total,hits.hits._id,hits.hits._source"
MGET_RESPONSE_FIELDS = "docs._id,docs.found,docs._source,docs.error"  # answers come in the order asked
MGET_VERSIONED_RESPONSE_FIELDS = MGET_RESPONSE_FIELDS + ",docs._seq_no,docs._primary_term"
SEARCHES_PER_REQUEST = 100  # `search_each`: searches sent in one _msearch request


class IncompleteReadError(RuntimeError):
    """A read did not cover everything (failed shards, a timeout, a lost scroll page, documents a
    multi-get answered with an error): never used. `what` was read; `failed_shards`/`total_shards`,
    `timed_out` and `reasons` describe a partial answer; `item_errors` maps a document id to the error
    a multi-get answered for it."""

    def __init__(self, message: str, *, what: str = "", failed_shards: int = 0, total_shards: int | None = None,
                 timed_out: bool = False, reasons: list[str] | None = None,
                 item_errors: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.what = what
        self.failed_shards = failed_shards
        self.total_shards = total_shards
        self.timed_out = timed_out
        self.reasons = list(reasons or [])
        self.item_errors = dict(item_errors or {})


def check_complete(response: Any, what: str) -> Any:
    """The response, unless it covered fewer than all shards or timed out (then IncompleteReadError)."""
    shards = response.get("_shards") or {}
    failed = shards.get("failed") or 0
    if failed or response.get("timed_out"):
        reasons = [
            f"{(failure.get('reason') or {}).get('type', '?')}: {(failure.get('reason') or {}).get('reason', '')}"
            for failure in shards.get("failures") or [] if isinstance(failure, dict)
        ]
        raise IncompleteReadError(
            f"{what}: incomplete answer ({failed} of {shards.get('total', '?')} shards failed"
            f"{', timed out' if response.get('timed_out') else ''}){': ' + '; '.join(reasons[:3]) if reasons else ''}",
            what=what, failed_shards=int(failed), total_shards=shards.get("total"),
            timed_out=bool(response.get("timed_out")), reasons=reasons,
        )
    return response


INCOMPLETE_RETRIES = 3  # an idempotent read (count, search without scroll) answered incompletely is asked again


def check_each_complete(responses: Sequence[Any], what: str) -> Sequence[Any]:
    """An _msearch's answers, unless one is an error (IncompleteReadError, `item_errors` by position)
    or covered fewer than all shards (`check_complete`)."""
    errors = {str(position): answer["error"] for position, answer in enumerate(responses) if "error" in answer}
    if errors:
        first = next(iter(errors.values()))
        reason = f"{first.get('type', '?')}: {first.get('reason', '')}" if isinstance(first, dict) else str(first)
        raise IncompleteReadError(f"{what}: {len(errors)} of {len(responses)} searches answered with an error: {reason}",
                                  what=what, item_errors=errors)
    for answer in responses:
        check_complete(answer, what)
    return responses


def _complete(call: Any, what: str, retries: int = INCOMPLETE_RETRIES, check: Any = check_complete) -> Any:
    for attempt in range(retries + 1):
        try:
            return check(call(), what)
        except IncompleteReadError:
            if attempt == retries:
                raise
            time.sleep(MGET_RETRY_BACKOFF_SECONDS * 2 ** attempt)


def count(es, index: str, query: dict[str, Any] | None = None, what: str = "count") -> int:
    """How many documents match, over every shard (a partial count is asked again, then raises)."""
    kwargs: dict[str, Any] = {"query": query} if query is not None else {}
    return int(_complete(lambda: es.count(index=index, **kwargs), f"{what} of {index}")["count"])


def search(es, what: str, **kwargs: Any) -> Any:
    """`es.search(**kwargs)` over every shard: partial results refused by the server and checked here
    (a search without scroll is asked again a few times; one opening a scroll is not)."""
    kwargs.setdefault("allow_partial_search_results", False)
    return _complete(lambda: es.search(**kwargs), what, 0 if "scroll" in kwargs else INCOMPLETE_RETRIES)


def search_each(es, what: str, index: str, bodies: Sequence[dict[str, Any]]) -> list[Any]:
    """The answer of each search body on `index`, over every shard, `SEARCHES_PER_REQUEST` of them per
    `_msearch` request (one round trip instead of one per search); a batch with an error or an
    incomplete answer is asked again a few times, then raises IncompleteReadError."""
    answers: list[Any] = []
    header = {"index": index, "allow_partial_search_results": False}
    for batch in batched(bodies, SEARCHES_PER_REQUEST):
        searches = [part for body in batch for part in (header, body)]
        answers += _complete(lambda: es.msearch(searches=searches)["responses"], what, check=check_each_complete)
    return answers


def scan(
    es,
    index: str,
    body: dict[str, Any],
    page_size: int,
    keep_alive: str,
    what: str,
    on_total: Any = None,
) -> Iterator[dict[str, Any]]:
    """Every hit of `body` (query, sort, _source) by scroll; any error or incomplete page raises.

    The scroll context is cleared at the end, also after an error (best effort).
    """
    response = search(es, what, index=index, size=page_size, scroll=keep_alive, track_total_hits=True,
                      filter_path=SCAN_RESPONSE_FIELDS, **body)
    if on_total is not None:
        total = response["hits"]["total"]
        on_total(total["value"] if isinstance(total, dict) else int(total))
    pages = es.options(max_retries=0)  # a retried scroll page may skip one: never retry it
    scroll_id = response.get("_scroll_id")
    try:
        while True:
            hits = response.get("hits", {}).get("hits")  # a filtered empty page has no `hits.hits`
            if not hits:
                return
            yield from hits
            if not scroll_id:
                raise IncompleteReadError(f"{what}: the server returned no scroll id", what=what)
            try:
                response = pages.scroll(scroll_id=scroll_id, scroll=keep_alive, filter_path=SCAN_RESPONSE_FIELDS)
            except (ApiError, TransportError) as error:
                raise IncompleteReadError(
                    f"{what}: a scroll page of {index} failed ({type(error).__name__}: {error}); a page may "
                    "be lost, so the scan is not continued (the task's retry reads from the start)", what=what,
                    reasons=[f"{type(error).__name__}: {error}"],
                ) from error
            check_complete(response, what)
            scroll_id = response.get("_scroll_id") or scroll_id
    finally:
        if scroll_id:
            try:
                es.options(max_retries=0).clear_scroll(scroll_id=scroll_id)
            except (ApiError, TransportError):
                pass  # it expires with its keep-alive


def scan_sorted(
    es,
    index: str,
    query: dict[str, Any],
    sort: Sequence[Any],
    source_fields: Sequence[str],
    page_size: int,
    keep_alive: str,
    what: str,
) -> Iterator[dict[str, Any]]:
    """Every hit of the query, in sort order, reading only `source_fields`; logs progress by tenths."""
    started = time.monotonic()
    seen = 0
    total = 0
    progress_every = MIN_PROGRESS_EVERY

    def on_total(value: int) -> None:
        nonlocal total, progress_every
        total = value
        progress_every = max(total // PROGRESS_STEPS, MIN_PROGRESS_EVERY)
        log.info("%s: %s to read from %s", what, plural(total, "document"), index)

    body = {"query": query, "sort": list(sort), "_source": list(source_fields)}
    for hit in scan(es, index, body, page_size, keep_alive, what, on_total):
        seen += 1
        if seen % progress_every == 0:
            rate = seen / max(time.monotonic() - started, 1e-9)
            log.info("%s: %d of %d read (%.0f/s)", what, seen, total, rate)
        yield hit
    log.info("%s: %s read in %.1f s", what, plural(seen, "document"), time.monotonic() - started)


# The source scan's order: a message id's copies in every account come together (one key_date for
# all of them), then by account (copies of one account together); `_doc` breaks the remaining ties.
SOURCE_SORT = [{"messageId": {"order": "asc", "missing": "_last"}}, {"account": "asc"}, "_doc"]


def scan_window_messages(es, index: str, window: Window, page_size: int, keep_alive: str,
                         extraction_slice: ExtractionSlice = WHOLE_WINDOW) -> Iterator[dict]:
    """The window's source copies (of one slice of message ids), grouped by messageId then account
    (copies come together)."""
    what = "source scan" if extraction_slice.whole else f"source scan, slice {extraction_slice.number}/{extraction_slice.of}"
    hits = scan_sorted(es, index, extraction_slice.query(window.source_query()), SOURCE_SORT, SOURCE_FIELDS,
                       page_size, keep_alive, what)
    return hits if extraction_slice.whole else (hit for hit in hits if extraction_slice.owns(hit))


def count_window_documents(es, index: str, window: Window) -> int:
    """The window's source documents (what sizes its extraction)."""
    return count(es, index, window.source_query(), "window source documents")


def sample_message_ids(es, index: str, window: Window, size: int) -> tuple[list[str], list[str]]:
    """(message ids, accounts) of up to `size` of the window's source documents, in index order
    (cheap: one page, no sort on a field), for the extraction slices' boundaries."""
    response = search(es, f"message id sample of {index}", index=index, size=size, query=window.source_query(),
                      sort=["_doc"], source=[MESSAGE_ID_FIELD, "account"])
    values: list[str] = []
    accounts: list[str] = []
    for hit in response["hits"]["hits"]:
        source = hit.get("_source") or {}
        value = source.get(MESSAGE_ID_FIELD)
        if isinstance(value, str):
            values.append(value)
        elif isinstance(value, list):
            values.extend(item for item in value if isinstance(item, str))
        if isinstance(source.get("account"), str):
            accounts.append(source["account"])
    return values, accounts


def count_undated(es, index: str, window: Window) -> int:
    return count(es, index, window.undated_query(), "undated source documents")


def future_dated(es, index: str, window: Window) -> tuple[int, str | None]:
    """(how many source documents of the window's accounts are dated after its end, the latest date)."""
    query = window.future_dated_query()
    how_many = count(es, index, query, "future-dated source documents")
    if not how_many:
        return 0, None
    response = search(es, f"latest future date of {index}", index=index, size=1, query=query,
                      sort=[{"date": {"order": "desc"}}], source=["date"])
    hits = response["hits"]["hits"]
    return how_many, (format_utc(parse_source_date(hits[0]["_source"].get("date"))) if hits else None)


def successful_runs(es, settings: Settings, run_ids: Sequence[str]) -> frozenset[str]:
    """The run ids among these that have a runtime-stats record (the run succeeded)."""
    wanted = sorted({run_id for run_id in run_ids if run_id})
    found = fetch_documents(es, settings.runtime_stats_index, [document_id(run_id) for run_id in wanted])
    return frozenset(document.get("run_id") for document in found.values())


def fetch_documents(
    es, index: str, ids: Sequence[str], *, with_versions: bool = False
) -> dict[str, dict[str, Any]]:
    """id -> _source for the ids that exist (a missing index means none do). Real time (mget).

    `with_versions=True`: id -> ``{"_source": ..., "_seq_no": ..., "_primary_term": ...}`` instead,
    for conditional writes (`writes.conditional_actions`).

    An item answered with an `error` (e.g. a shard relocating) is asked again a few times with
    backoff, then raises IncompleteReadError: an error is never read as "not stored".
    """
    return fetch_from_indices(es, {index: ids}, with_versions=with_versions)[index]


def fetch_from_indices(
    es, wanted: Mapping[str, Sequence[str]], *, with_versions: bool = False
) -> dict[str, dict[str, dict[str, Any]]]:
    """index -> (id -> _source, as `fetch_documents` gives) for the ids of several indices, in one
    mget request (a round trip per lookup instead of one per index); same retries and errors."""
    found: dict[str, dict[str, dict[str, Any]]] = {index: {} for index in wanted}
    pending = [(index, identifier) for index, ids in wanted.items() for identifier in dict.fromkeys(ids)]
    what = f"mget of {', '.join(wanted)}"
    errors: dict[str, Any] = {}
    for attempt in range(MGET_ITEM_RETRIES + 1):
        if not pending:
            return found
        if attempt:
            time.sleep(MGET_RETRY_BACKOFF_SECONDS * 2 ** (attempt - 1))
        response = es.mget(docs=[{"_index": index, "_id": identifier} for index, identifier in pending],
                           filter_path=MGET_VERSIONED_RESPONSE_FIELDS if with_versions else MGET_RESPONSE_FIELDS)
        errors, retry = {}, []
        for (index, identifier), doc in zip(pending, response.get("docs", ())):
            error = doc.get("error")
            if error is not None:
                if isinstance(error, dict) and error.get("type") == "index_not_found_exception":
                    continue  # a missing index holds none of the ids
                errors[identifier] = error
                retry.append((index, identifier))
            elif doc.get("found"):
                found[index][identifier] = (
                    {"_source": doc["_source"], "_seq_no": doc.get("_seq_no"), "_primary_term": doc.get("_primary_term")}
                    if with_versions else doc["_source"]
                )
        pending = retry
    if not pending:
        return found
    first_id, error = next(iter(errors.items()))
    kind = error.get("type") if isinstance(error, dict) else error
    reason = error.get("reason") if isinstance(error, dict) else ""
    raise IncompleteReadError(
        f"{what}: {len(errors)} documents answered with an error after {MGET_ITEM_RETRIES + 1} tries "
        f"(first: id={first_id} {kind}: {reason}); not read as 'not stored'", what=what,
        item_errors=errors,
    )


def read_stored_copies(es, settings: Settings, messages: Sequence[Message]) -> StoredCopies:
    """What the roles index already holds of these messages: their own documents (real-time gets),
    every account's document of each message id (copies in other mailboxes, for the key_date), the
    ledger records of these messages, and which of the runs that wrote them succeeded."""
    documents = fetch_documents(es, settings.roles_index, [roles_document_id(message) for message in messages])
    ledger = fetch_documents(es, settings.ledger_index, [ledger_document_id(message) for message in messages])
    holders: dict[str, set[str]] = {}
    by_message: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for hit in scan(
        es,
        settings.roles_index,
        {"query": {"terms": {"message_id": sorted({message.message_id for message in messages})}}},
        settings.scan_page_size,
        settings.scroll_keep_alive,
        "copies in other mailboxes",
    ):
        source = hit["_source"]
        holders.setdefault(source["message_id"], set()).add(source["account"])
        by_message.setdefault(source["message_id"], []).append((hit["_id"], source))
    copies = [document for entries in by_message.values() for _, document in entries]
    runs = successful_runs(es, settings, [document.get("run_id", "") for document in
                                          [*documents.values(), *ledger.values(), *copies]])
    return StoredCopies(documents=documents, holders=holders, by_message=by_message, successful_runs=runs,
                        ledger=ledger)


def scan_roles(
    es,
    settings: Settings,
    domains: Sequence[str],
    written_by_run: str | None = None,
) -> Iterator[dict[str, Any]]:
    """The roles documents naming these domains, sorted by message id (the copies of one mail in
    several mailboxes arrive together): all time, or only those a given run wrote."""
    filters: list[dict[str, Any]] = [{"terms": {"domains": list(domains)}}]
    if written_by_run is not None:
        filters.append({"term": {"run_id": written_by_run}})
    return scan_sorted(
        es,
        settings.roles_index,
        {"bool": {"filter": filters}},
        [{"message_id": "asc"}, {"account": "asc"}],
        COMPILE_READ_FIELDS,
        settings.scan_page_size,
        settings.scroll_keep_alive,
        f"roles of {len(domains)} domain{'s' if len(domains) != 1 else ''}",
    )


def sums_by_account(es, index: str, accounts: Sequence[str], count_fields: Sequence[str]) -> dict[str, dict[str, int]]:
    """account -> the sum of each count field over the account's documents (accounts with none left out)."""
    response = search(
        es,
        f"sums by account of {index}",
        index=index,
        size=0,
        query={"bool": {"filter": [{"terms": {"account": list(accounts)}}]}},
        aggs={
            "by_account": {
                "terms": {"field": "account", "size": len(accounts)},
                "aggs": {name: {"sum": {"field": name}} for name in count_fields},
            }
        },
    )
    return {
        bucket["key"]: {name: int(round(bucket[name]["value"] or 0)) for name in count_fields}
        for bucket in response["aggregations"]["by_account"]["buckets"]
    }
