"""One run at a time across the DAGs that write the outputs: a lease document in Elasticsearch.

The engagements DAG, the reconciliation DAG and the erase DAG all read what earlier runs stored and
add to it. Two of them at once could count a message twice without any write conflicting (one adds
a message to the stored figures after the other recomputed them with it), so every run takes the
lease before its first read and gives it back after its last write (docs/LATE_MAIL.md, "One run
at a time across the DAGs"). Each DAG runs one run at a time by itself (`max_active_runs=1`); the
lease keeps the DAGs apart from each other, and also any runs of one DAG that Airflow starts side
by side (a backfill next to the scheduled runs): the holder is the (DAG, run) pair.

The stage functions themselves (`mailforce.stages`, called directly by tests/driver.py and the
benchmark) do not take it: the DAG task bodies in `mailforce.dag_tasks` and the erase DAG do.

The lease is one document (`LEASE_ID`) in `lease_index`, written only conditionally: `create` when
absent, `if_seq_no`/`if_primary_term` when taken over, so two runs asking at the same moment cannot
both get it. A run may take the lease when it holds it already (a retried or cleared task), when
Airflow says the holder's run is no longer running (it failed or was marked), or, where that cannot
be asked, when the holder's lease has expired (`lease_ttl`, longer than any task may run).

A run whose worker was killed (`kill -9`, an out-of-memory kill) stays "running" in Airflow until
Airflow notices, and keeps the lease meanwhile. Every waiting message and `LeaseHeld` say who holds
it, since when, when it expires, and the one action that frees it: mark that run failed (Airflow UI,
or the REST API), then the waiting run takes the lease within `POLL_SECONDS`; or give it back with
`python -m mailforce.tools.lease release --run-id RUN_ID` (docs/TROUBLESHOOTING.md).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Mapping

from elasticsearch import ConflictError, NotFoundError

from mailforce.core.dates import format_utc, parse_source_date, utc_now
from mailforce.core.run_params import parse_duration
from mailforce.es.indices import create_index
from mailforce.es.reads import fetch_documents
from mailforce.settings import Settings

log = logging.getLogger(__name__)

LEASE_ID = "outputs"
KEYWORD = {"type": "keyword"}
DATE = {"type": "date", "format": "strict_date_optional_time"}
LEASE_PROPERTIES = {
    "dag_id": KEYWORD,
    "run_id": KEYWORD,
    "acquired_at": DATE,
    "expires_at": DATE,  # only decides when Airflow cannot say whether the holder still runs
}
POLL_SECONDS = 15.0


RELEASE_COMMAND = "python -m mailforce.tools.lease release --run-id"


@dataclass(frozen=True)
class Holder:
    dag_id: str
    run_id: str

    def __str__(self) -> str:
        return f"{self.dag_id} run {self.run_id}"


@dataclass(frozen=True)
class LeaseState:
    """The stored lease as a person reads it: who holds it, since when, until when."""

    holder: Holder
    acquired_at: str | None
    expires_at: str | None

    @classmethod
    def of(cls, stored: Mapping[str, Any] | None) -> "LeaseState":
        stored = stored or {}
        return cls(Holder(str(stored.get("dag_id") or "?"), str(stored.get("run_id") or "?")),
                   stored.get("acquired_at"), stored.get("expires_at"))

    def describe(self) -> str:
        """`mailforce_engagements run R holds the outputs' lease since A (it expires at E)`."""
        return f"{self.holder} holds the outputs' lease since {self.acquired_at} (it expires at {self.expires_at})"

    def remedy(self) -> str:
        """The one action that frees the lease when its holder is dead."""
        return (f"If that run is no longer working (its worker was killed), mark it failed (Airflow UI: "
                f"the run -> Mark run as -> Failed) and the waiting run takes the lease within {POLL_SECONDS:.0f} s, "
                f"or run `{RELEASE_COMMAND} {self.holder.run_id}`")


class LeaseHeld(RuntimeError):
    """Another run holds the lease: kept longer than this run may wait (`waited` is set), or it took
    the lease over from this run (`taken_from` is this run). `lease` says who, since when, until when."""

    def __init__(self, message: str, *, lease: LeaseState, waited: str | None = None,
                 taken_from: Holder | None = None) -> None:
        super().__init__(message)
        self.lease = lease
        self.waited = waited
        self.taken_from = taken_from


# (dag_id, run_id) -> True while that run is queued or running, False once it ended, None: unknown
IsActive = Callable[[str, str], "bool | None"]


def ensure_lease_index(es, settings: Settings) -> bool:
    if es.indices.exists(index=settings.lease_index):
        return False
    return create_index(es, settings, settings.lease_index, LEASE_PROPERTIES)


def _holds(stored: Mapping[str, Any] | None, holder: Holder) -> bool:
    return stored is not None and (stored.get("dag_id"), stored.get("run_id")) == (holder.dag_id, holder.run_id)


def _may_take(stored: Mapping[str, Any], holder: Holder, now: datetime, is_active: IsActive | None) -> bool:
    if _holds(stored, holder):
        return True
    active = is_active(stored.get("dag_id", ""), stored.get("run_id", "")) if is_active else None
    if active is not None:
        return not active
    expires = parse_source_date(stored.get("expires_at"))
    return expires is None or expires <= now


def try_acquire(es, settings: Settings, holder: Holder, *, is_active: IsActive | None = None,
                now: datetime | None = None) -> tuple[bool, Mapping[str, Any] | None]:
    """(True, the lease) when this run holds it now; (False, the holder's lease) when another does."""
    now = now or utc_now()
    ensure_lease_index(es, settings)
    entry = fetch_documents(es, settings.lease_index, [LEASE_ID], with_versions=True).get(LEASE_ID)
    stored = entry["_source"] if entry else None
    if stored is not None and not _may_take(stored, holder, now, is_active):
        return False, stored
    mine = _holds(stored, holder)
    document = {
        "dag_id": holder.dag_id,
        "run_id": holder.run_id,
        "acquired_at": stored["acquired_at"] if mine else format_utc(now),
        "expires_at": format_utc(now + parse_duration(settings.lease_ttl)),
    }
    try:
        if entry is None:
            es.create(index=settings.lease_index, id=LEASE_ID, document=document, refresh=False)
        else:
            es.index(index=settings.lease_index, id=LEASE_ID, document=document,
                     if_seq_no=entry["_seq_no"], if_primary_term=entry["_primary_term"])
    except ConflictError:  # written between the read and the write: by another run, or by a
        # parallel task of this one renewing it (mapped compile tasks)
        current = fetch_documents(es, settings.lease_index, [LEASE_ID]).get(LEASE_ID)
        return _holds(current, holder), current
    if stored is not None and not mine:
        log.warning("Took over the lease from %s %s (acquired %s): that run is no longer running",
                    stored.get("dag_id"), stored.get("run_id"), stored.get("acquired_at"))
    return True, document


def acquire_lease(es, settings: Settings, holder: Holder, *, is_active: IsActive | None = None,
                  sleep: Callable[[float], None] = time.sleep, clock: Callable[[], datetime] = utc_now,
                  poll_seconds: float = POLL_SECONDS) -> Mapping[str, Any]:
    """Take the lease, waiting up to `lease_wait` while another run holds it; LeaseHeld after that
    (the task fails and Airflow retries it later)."""
    started = clock()
    deadline = started + parse_duration(settings.lease_wait)
    announced = False
    while True:
        now = clock()
        taken, lease = try_acquire(es, settings, holder, is_active=is_active, now=now)
        if taken:
            if announced:
                log.info("Got the lease after waiting %.0f s", (now - started).total_seconds())
            return lease
        state = LeaseState.of(lease)
        if now >= deadline:
            raise LeaseHeld(
                f"{state.describe()}; this run waited {settings.lease_wait} (setting lease_wait) and will be retried. "
                f"Nothing was read or written. {state.remedy()}.", lease=state, waited=settings.lease_wait)
        if not announced:
            log.warning("Waiting for the outputs' lease (up to %s, setting lease_wait): %s. %s.",
                        settings.lease_wait, state.describe(), state.remedy())
            announced = True
        sleep(poll_seconds)


def renew_or_fail(es, settings: Settings, holder: Holder, *, is_active: IsActive | None = None) -> None:
    """A later task of the run that took the lease: renew it (its expiry moves on), or fail loudly if
    another run took it over meanwhile (this run's writes must not interleave with that run's)."""
    taken, lease = try_acquire(es, settings, holder, is_active=is_active)
    if not taken:
        state = LeaseState.of(lease)
        raise LeaseHeld(f"{state.holder} took over the outputs' lease from {holder} (Airflow reported this run "
                        f"ended, or its lease expired); this task stops before writing anything",
                        lease=state, taken_from=holder)


def current_lease(es, settings: Settings) -> LeaseState | None:
    """The lease as stored now (None: nobody holds it)."""
    if not es.indices.exists(index=settings.lease_index):
        return None
    entry = fetch_documents(es, settings.lease_index, [LEASE_ID]).get(LEASE_ID)
    return LeaseState.of(entry) if entry else None


def release_lease(es, settings: Settings, holder: Holder) -> bool:
    """Give the lease back if this run holds it; True when it did."""
    try:
        entry = fetch_documents(es, settings.lease_index, [LEASE_ID], with_versions=True).get(LEASE_ID)
    except NotFoundError:
        return False
    if entry is None or not _holds(entry["_source"], holder):
        return False
    try:
        es.delete(index=settings.lease_index, id=LEASE_ID, if_seq_no=entry["_seq_no"],
                  if_primary_term=entry["_primary_term"])
    except (ConflictError, NotFoundError):  # taken over meanwhile: not ours to delete any more
        return False
    return True
