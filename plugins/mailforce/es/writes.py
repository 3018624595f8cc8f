"""Writing Elasticsearch: bulk writes that report every failed item, and refreshes."""

from __future__ import annotations

import logging
import time
from typing import Any, Iterable, Iterator

from elasticsearch import helpers


log = logging.getLogger(__name__)

PROGRESS_EVERY = 50_000  # documents between two progress lines
# Overload (429) rejections: retried by the helper with exponential backoff.
OVERLOAD_RETRIES = 5
INITIAL_BACKOFF_SECONDS = 1
MAX_BACKOFF_SECONDS = 30
FAILURES_SHOWN = 5  # failed items quoted in the error, of however many failed

class BulkWriteError(RuntimeError):
    """Some documents were not written; the message lists the first failures."""


def index_actions(index: str, documents: Iterable[tuple[str, dict[str, Any]]]) -> Iterator[dict[str, Any]]:
    """(id, document) pairs -> bulk `index` actions (overwrite by id: idempotent)."""
    for document_id, document in documents:
        yield {"_op_type": "index", "_index": index, "_id": document_id, "_source": document}


def bulk_write(
    es,
    actions: Iterable[dict[str, Any]],
    chunk_size: int,
    what: str,
    progress_every: int = PROGRESS_EVERY,
) -> int:
    """Write all actions; returns how many were written, raises BulkWriteError if any failed.

    Rejections for overload (429) are retried with backoff by the helper; anything else is a real
    failure (mapping conflict, bad document) and fails the task after the whole stream was tried,
    so the log shows every kind of failure at once.
    """
    written = 0
    failures: list[dict[str, Any]] = []
    failure_count = 0
    started = time.monotonic()
    next_report = progress_every
    for ok, item in helpers.streaming_bulk(
        es,
        actions,
        chunk_size=chunk_size,
        raise_on_error=False,
        raise_on_exception=True,
        max_retries=OVERLOAD_RETRIES,
        initial_backoff=INITIAL_BACKOFF_SECONDS,
        max_backoff=MAX_BACKOFF_SECONDS,
    ):
        if ok:
            written += 1
            if written >= next_report:
                rate = written / max(time.monotonic() - started, 1e-9)
                log.info("%s: %d documents written (%.0f/s)", what, written, rate)
                next_report += progress_every
        else:
            failure_count += 1
            if len(failures) < FAILURES_SHOWN:
                failures.append(item)
    if failure_count:
        detail = "; ".join(_describe_failure(item) for item in failures)
        raise BulkWriteError(f"{what}: {failure_count} documents failed to index (first: {detail})")
    return written


def _describe_failure(item: dict[str, Any]) -> str:
    operation = next(iter(item.values()), {})
    error = operation.get("error", {})
    if isinstance(error, dict):
        error = f"{error.get('type')}: {error.get('reason')}"
    return f"id={operation.get('_id')} status={operation.get('status')} {error}"


def refresh(es, index: str) -> None:
    """Make what was written to `index` visible to searches (real clusters refresh on a schedule)."""
    es.indices.refresh(index=index)
