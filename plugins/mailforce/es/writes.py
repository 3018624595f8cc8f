"""Writing Elasticsearch: bulk writes that report every failed item, and writes that first look at
what is stored (only what changed, or added to what is there)."""

from __future__ import annotations

import logging
import time
from typing import Any, Iterable, Iterator, Mapping

from elasticsearch import helpers

from mailforce.es.codec import dumps
from mailforce.es.reads import check_complete

log = logging.getLogger(__name__)

PROGRESS_EVERY = 50_000  # documents between two progress lines
# Overload (429) rejections: retried by the helper with exponential backoff.
OVERLOAD_RETRIES = 5
INITIAL_BACKOFF_SECONDS = 1
MAX_BACKOFF_SECONDS = 30
FAILURES_SHOWN = 5  # failed items quoted in the error, of however many failed
# Bytes per bulk request when only a document count is given (Elasticsearch's guidance: no more than
# a couple of tens of megabytes; its http.max_content_length refuses more than 100 MB).
DEFAULT_CHUNK_BYTES = 10 * 1024 * 1024
# What a bulk answer keeps of each item: its status, its error, its id (for the failure's message).
# The rest (index, version, shards, sequence numbers) is most of the answer's bytes and would be
# decoded for every document written (docs/BENCHMARK.md, "Client CPU").
BULK_RESPONSE_FIELDS = "errors,items.*.status,items.*.error,items.*._id"

class BulkWriteError(RuntimeError):
    """Some documents were not written. The message lists the first failures; the attributes keep
    them for a caller to act on: `what` was written, `failed` items in all, `conflicts` among them
    (409), `written` the items that succeeded, and `errors`, the first `FAILURES_SHOWN` failed bulk
    items as Elasticsearch answered them (``{"index": {"_id", "status", "error", ...}}``)."""

    def __init__(self, message: str, *, what: str = "", failed: int = 0, conflicts: int = 0, written: int = 0,
                 errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.what = what
        self.failed = failed
        self.conflicts = conflicts
        self.written = written
        self.errors = list(errors or [])


class ConcurrentUpdateError(BulkWriteError):
    """A conditional write found the document changed (or created) since it was read: another attempt
    wrote it concurrently (HTTP 409). The task fails; its retry recomputes."""


def refresh(es, *indices: str, missing_ok: bool = False) -> None:
    """Make what was written to `indices` visible to search, in one request (an explicit refresh: works
    whatever an index's `refresh_interval`, also -1). Every stage calls it on the indices it wrote, at
    its end. `missing_ok`: an index that does not exist (yet) is skipped instead of failing."""
    names = ",".join(indices)
    options = {"ignore_unavailable": True, "allow_no_indices": True} if missing_ok else {}
    response = es.indices.refresh(index=names, **options)
    check_complete(response, f"refresh of {names}")


def index_actions(
    index: str, documents: Iterable[tuple[str, dict[str, Any]]], versions: Mapping[str, Any] | None = None
) -> Iterator[dict[str, Any]]:
    """(id, document) pairs -> bulk `index` actions (overwrite by id: idempotent).

    `versions` (id -> ``(seq_no, primary_term)`` of the stored document, or None when it was absent)
    makes the listed ids conditional: ``if_seq_no``/``if_primary_term`` for a stored document, ``op_type
    create`` for an absent one, so a write that raced another attempt's write fails with 409
    (`ConcurrentUpdateError` from `bulk_write`). Ids not in `versions` are plain overwrites.
    """
    for document_id, document in documents:
        action: dict[str, Any] = {"_op_type": "index", "_index": index, "_id": document_id, "_source": document}
        if versions is not None and document_id in versions:
            version = versions[document_id]
            if version is None:
                action["_op_type"] = "create"
            else:
                action["if_seq_no"], action["if_primary_term"] = version
        yield action


# The actions `index_actions` makes: their header is built here without the helper's general expansion.
_PLAIN_ACTION_KEYS = frozenset({"_op_type", "_index", "_id", "_source", "if_seq_no", "if_primary_term"})
_PLAIN_HEADER_KEYS = ("_id", "_index", "if_seq_no", "if_primary_term")  # in `expand_action`'s order


def encoded_action(action: dict[str, Any]) -> tuple[bytes, bytes | None]:
    """A bulk action's two lines as the helper's `expand_action` makes them, already JSON: the helper
    sends bytes as they are, so each line is encoded once (`mailforce.es.codec`)."""
    operation = action.get("_op_type", "index")
    if operation in ("index", "create") and action.keys() <= _PLAIN_ACTION_KEYS and isinstance(
            action.get("_source"), Mapping):
        header = {operation: {key: action[key] for key in _PLAIN_HEADER_KEYS if key in action}}
        return dumps(header), dumps(action["_source"])
    header, body = helpers.expand_action(action)
    return dumps(header), None if body is None else dumps(body)


def version_of(stored: Mapping[str, Any] | None) -> tuple[int, int] | None:
    """``(seq_no, primary_term)`` of a `fetch_documents(..., with_versions=True)` entry (None: absent)."""
    if stored is None:
        return None
    return int(stored["_seq_no"]), int(stored["_primary_term"])


def bulk_write(
    es,
    actions: Iterable[dict[str, Any]],
    chunk: int | tuple[int, int],
    what: str,
    progress_every: int = PROGRESS_EVERY,
) -> int:
    """Write all actions; returns how many were written, raises BulkWriteError if any failed.

    `chunk` bounds each request: a document count, or ``(documents, bytes)`` (`Settings.bulk_chunk`).
    Few large requests are the cheap way to overwrite stored documents: on the embedded engine every
    request that overwrites documents costs a fixed rebuild that grows with the index, whatever the
    number of documents in it (docs/BENCHMARK.md, "Overwrites cost per request").

    Rejections for overload (429), of the whole bulk or of single items, are retried with
    exponential backoff by the helper (`OVERLOAD_RETRIES` times); anything else is a real failure
    (mapping conflict, bad document) and fails the task after the whole stream was tried, so the log
    shows every kind of failure at once. Version conflicts (409) of conditional writes raise
    `ConcurrentUpdateError`.
    """
    chunk_size, chunk_bytes = (chunk, DEFAULT_CHUNK_BYTES) if isinstance(chunk, int) else chunk
    written = 0
    failures: list[dict[str, Any]] = []
    failure_count = 0
    conflicts = 0
    started = time.monotonic()
    next_report = progress_every
    for ok, item in helpers.streaming_bulk(
        es,
        actions,
        chunk_size=chunk_size,
        max_chunk_bytes=chunk_bytes,
        raise_on_error=False,
        raise_on_exception=True,
        max_retries=OVERLOAD_RETRIES,
        initial_backoff=INITIAL_BACKOFF_SECONDS,
        max_backoff=MAX_BACKOFF_SECONDS,
        expand_action_callback=encoded_action,
        filter_path=BULK_RESPONSE_FIELDS,
    ):
        if ok:
            written += 1
            if written >= next_report:
                rate = written / max(time.monotonic() - started, 1e-9)
                log.info("%s: %d documents written (%.0f/s)", what, written, rate)
                next_report += progress_every
        else:
            failure_count += 1
            if _status(item) == 409:
                conflicts += 1
            if len(failures) < FAILURES_SHOWN:
                failures.append(item)
    if failure_count:
        detail = "; ".join(_describe_failure(item) for item in failures)
        error_type = ConcurrentUpdateError if conflicts else BulkWriteError
        raise error_type(f"{what}: {failure_count} documents failed to index ({conflicts} version conflicts: "
                         f"written concurrently by another attempt) (first: {detail})" if conflicts else
                         f"{what}: {failure_count} documents failed to index (first: {detail})",
                         what=what, failed=failure_count, conflicts=conflicts, written=written, errors=failures)
    return written


def _status(item: dict[str, Any]) -> int | None:
    operation = next(iter(item.values()), {})
    status = operation.get("status") if isinstance(operation, dict) else None
    return int(status) if isinstance(status, int) else None


def _describe_failure(item: dict[str, Any]) -> str:
    operation = next(iter(item.values()), {})
    error = operation.get("error", {})
    if isinstance(error, dict):
        error = f"{error.get('type')}: {error.get('reason')}"
    return f"id={operation.get('_id')} status={operation.get('status')} {error}"
