"""One run at a time across the Mailforce DAGs (`mailforce.es.lease`), on the real engine.

The engagements DAG's hourly run and the reconciliation DAG's daily run start at the same midnight;
without the lease they would both add the same late message to the stored figures.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from mailforce import dag_tasks
from mailforce.es.lease import LEASE_ID, Holder, LeaseHeld, acquire_lease, release_lease, renew_or_fail, try_acquire
from mailforce.es.reads import fetch_documents

HOURLY = Holder("mailforce_engagements", "scheduled__2026-12-06T00:00:00+00:00")
RECONCILE = Holder("mailforce_reconcile", "scheduled__2026-12-06T00:00:00+00:00")
NOW = datetime(2026, 12, 6, 0, 0, 5, tzinfo=timezone.utc)


def stored_lease(es, settings):
    return fetch_documents(es, settings.lease_index, [LEASE_ID]).get(LEASE_ID)


def test_a_held_lease_blocks_another_dag_until_it_is_given_back(es, settings):
    assert try_acquire(es, settings, HOURLY, now=NOW)[0]
    taken, lease = try_acquire(es, settings, RECONCILE, is_active=lambda dag_id, run_id: True, now=NOW)
    assert not taken and (lease["dag_id"], lease["run_id"]) == (HOURLY.dag_id, HOURLY.run_id)
    with pytest.raises(LeaseHeld, match="mailforce_engagements run scheduled__.*waited 0.*Nothing was read or written"):
        acquire_lease(es, replace(settings, lease_wait="0"), RECONCILE, is_active=lambda dag_id, run_id: True)
    assert not release_lease(es, settings, RECONCILE)  # not its lease: left alone
    assert stored_lease(es, settings)["dag_id"] == HOURLY.dag_id
    assert release_lease(es, settings, HOURLY)
    assert stored_lease(es, settings) is None
    assert try_acquire(es, settings, RECONCILE, is_active=lambda dag_id, run_id: True, now=NOW)[0]


def test_the_holder_itself_renews_and_a_run_airflow_reports_ended_is_taken_over(es, settings):
    assert try_acquire(es, settings, HOURLY, now=NOW)[0]
    later = NOW + timedelta(minutes=20)
    assert try_acquire(es, settings, HOURLY, now=later)[0]  # a retried task, or the next task: renews
    lease = stored_lease(es, settings)
    assert lease["acquired_at"] == "2026-12-06T00:00:05Z" and lease["expires_at"] == "2026-12-06T07:20:05Z"
    states = {(HOURLY.dag_id, HOURLY.run_id): "failed"}
    ended = lambda dag_id, run_id: states[(dag_id, run_id)] in ("queued", "running")  # noqa: E731
    assert try_acquire(es, settings, RECONCILE, is_active=ended, now=later)[0]
    assert stored_lease(es, settings)["dag_id"] == RECONCILE.dag_id
    # the failed run, cleared by an operator, must not write under the reconciliation
    with pytest.raises(LeaseHeld, match="mailforce_reconcile run .* took over"):
        renew_or_fail(es, settings, HOURLY, is_active=lambda dag_id, run_id: True)


def test_without_word_from_airflow_only_an_expired_lease_is_taken(es, settings):
    assert try_acquire(es, settings, HOURLY, now=NOW)[0]
    assert not try_acquire(es, settings, RECONCILE, now=NOW + timedelta(hours=6, minutes=59))[0]
    assert try_acquire(es, settings, RECONCILE, now=NOW + timedelta(hours=7))[0]


def test_runs_asking_at_the_same_moment_get_it_once(es, settings):
    holders = [Holder(f"dag-{number}", "run") for number in range(8)]
    results: dict[Holder, bool] = {}
    barrier = threading.Barrier(len(holders))

    def ask(holder: Holder) -> None:
        barrier.wait()
        results[holder] = try_acquire(es, settings, holder, is_active=lambda dag_id, run_id: True, now=NOW)[0]

    threads = [threading.Thread(target=ask, args=(holder,)) for holder in holders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [holder for holder, taken in results.items() if taken]
    assert len(winners) == 1
    assert stored_lease(es, settings)["dag_id"] == winners[0].dag_id


def test_a_run_waits_for_the_holder_to_finish(es, settings):
    assert try_acquire(es, settings, HOURLY, now=NOW)[0]
    sleeps = []

    def sleep(seconds: float) -> None:  # meanwhile the hourly run publishes its stats and gives it back
        sleeps.append(seconds)
        release_lease(es, settings, HOURLY)

    acquire_lease(es, settings, RECONCILE, is_active=lambda dag_id, run_id: True, sleep=sleep, poll_seconds=15)
    assert sleeps == [15]
    assert stored_lease(es, settings)["dag_id"] == RECONCILE.dag_id


def test_the_dag_tasks_take_renew_and_give_back_the_runs_lease(es, settings, monkeypatch):
    states = {}
    context = {"dag_run": SimpleNamespace(dag_id=RECONCILE.dag_id), "run_id": RECONCILE.run_id,
               "ti": SimpleNamespace(get_dagrun_state=lambda dag_id, run_id: states.get((dag_id, run_id), "running"))}
    other = {**context, "dag_run": SimpleNamespace(dag_id=HOURLY.dag_id), "run_id": HOURLY.run_id}
    dag_tasks.take_lease(es, settings, context)
    dag_tasks.renew_lease(es, settings, context)
    with pytest.raises(LeaseHeld):  # the hourly run waits while the reconciliation runs ...
        dag_tasks.take_lease(es, replace(settings, lease_wait="0"), other)
    dag_tasks.give_back_lease(es, settings, context)
    dag_tasks.take_lease(es, settings, other)  # ... and gets it once it gave it back
    assert stored_lease(es, settings)["dag_id"] == HOURLY.dag_id
    states[(HOURLY.dag_id, HOURLY.run_id)] = "failed"  # that run failed and kept it
    dag_tasks.take_lease(es, settings, context)
    assert stored_lease(es, settings)["dag_id"] == RECONCILE.dag_id
    dag_tasks.renew_lease(es, settings, None)  # outside Airflow: nothing to renew


def test_the_lease_needs_no_more_than_the_readme_role(es_url, settings):
    from esproxy import EsProxy, missing_privileges, required_privileges
    from test_real_clusters import product_client, readme_role

    with EsProxy(es_url, flavour="es9") as proxy:
        client = product_client(proxy)
        assert try_acquire(client, settings, HOURLY, now=NOW)[0]  # creates the index and the lease
        assert try_acquire(client, settings, HOURLY, now=NOW)[0]  # renews it
        assert release_lease(client, settings, HOURLY)
        client.close()
        required = required_privileges(proxy.records)
    assert required[settings.lease_index] >= {"create_index", "read"}
    assert missing_privileges(required, readme_role()) == {}
