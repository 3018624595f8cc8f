"""Late mail (issue 9): a harvester simulation over hourly scheduled runs, in each mode.

Messages are indexed after a seeded random lag (seconds to two days), out of order; some copies of
one message reach a second mailbox a day or two later (some dated a minute earlier, which lowers
the message's key_date); a few are dated ahead of their arrival (a sender's clock). After the last
run (and, with a too-short lateness, a reconciliation) the outputs equal the brute-force oracle
over the whole source.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from elasticsearch import helpers

from driver import run_once
from mailforce.core.dates import format_utc
from mailforce.core.run_params import RunKind, RunRequest
from mailforce.es.watermark import read_watermark
from mailforce.stages.fetch_watermark import fetch_watermark
from mailforce.stages.reconcile import reconcile_window
from oracle import Coverage
from driver import run_stages
from harvester import RUNS, T0
from support import assert_matches_oracle, load_source, raw_outputs, read_source


def stages_once(es, settings, fetched, run_id: str) -> dict:
    """Every stage after the window is fixed, in the DAG's order."""
    return run_stages(es, settings, fetched, run_id)


def reconcile_once(es, settings, run_id: str) -> dict:
    """The reconciliation DAG's path: its window, then the same stages as a normal run."""
    return stages_once(es, settings, reconcile_window(es, settings), run_id)


def simulate(es, settings, documents, *, reconcile: bool = False) -> list[dict]:
    """Hourly runs; before each, the harvester indexes what arrived by its end (stamped indexed_at)."""
    loaded: set[str] = set()
    stats = []
    for hour in range(1, RUNS + 1):
        run_end = T0 + timedelta(hours=hour)
        batch = [{"_id": identifier, "_source": dict(source, indexed_at=format_utc(arrival))}
                 for identifier, source, arrival in documents if arrival <= run_end and identifier not in loaded]
        load_source(es, settings, batch)
        loaded.update(doc["_id"] for doc in batch)
        stats.append(run_once(es, settings, RunRequest(), run_end, f"scheduled-{hour:02d}"))
    if reconcile:
        stats.append(reconcile_once(es, settings, "reconcile-1"))
    return stats


def whole_source(es, settings) -> list[Coverage]:
    return [Coverage(window_end=T0 + timedelta(hours=RUNS))]


@pytest.mark.extraction_slices(1, 8)
def test_arrival_windows_count_every_message_whatever_its_lag(es, settings, harvest):
    settings = replace(settings, arrival_field="indexed_at")
    stats = simulate(es, settings, harvest)
    assert_matches_oracle(es, settings, read_source(es, settings), whole_source(es, settings))
    assert sum(record["late_messages"] for record in stats) > 0
    assert any(record["future_dated_messages"] for record in stats)
    assert read_watermark(es, settings) == T0 + timedelta(hours=RUNS)


def test_a_long_enough_lateness_counts_everything_and_rereads_cost_a_lookup_only(es, settings, harvest):
    settings = replace(settings, allowed_lateness="3d")
    stats = simulate(es, settings, harvest)
    source = read_source(es, settings)
    assert_matches_oracle(es, settings, source, whole_source(es, settings))
    assert sum(record["late_messages"] for record in stats) > 0
    assert sum(record["unchanged_messages"] for record in stats) > 0
    roles = [hit["_source"] for hit in helpers.scan(es, index=settings.roles_index)]
    assert any(document["key_date"] < document["date"] for document in roles)  # an earlier copy elsewhere

    # Nothing arrived: re-reading the lateness window writes nothing and marks no domain.
    before = raw_outputs(es, settings)
    again = run_once(es, settings, RunRequest(), T0 + timedelta(hours=RUNS, minutes=30), "scheduled-idle")
    after = raw_outputs(es, settings)
    del before[settings.runtime_stats_index], after[settings.runtime_stats_index]
    assert after == before
    assert (again["emails_processed"], again["domains_processed"], again["partitions"]) == (0, 0, 0)
    assert again["unchanged_messages"] > 0
    assert again["documents_written"]["message_roles"] == 0


@pytest.mark.extraction_slices(1, 2, 8)
def test_a_too_short_lateness_loses_mail_until_reconciliation_counts_it(es, settings, harvest):
    settings = replace(settings, allowed_lateness="1h")
    stats = simulate(es, settings, harvest, reconcile=True)
    source = read_source(es, settings)
    assert_matches_oracle(es, settings, source, whole_source(es, settings))
    reconciliation = stats[-1]
    assert reconciliation["reconciliation"] is True
    assert reconciliation["late_messages"] > 0
    assert reconciliation["late_accounts"] and reconciliation["late_days"]
    assert read_watermark(es, settings) == T0 + timedelta(hours=RUNS)  # never moved by it
    # a second reconciliation finds nothing
    assert reconcile_once(es, settings, "reconcile-2")["late_messages"] == 0


def test_airflow_backfill_intervals_cover_exactly_their_interval_and_leave_the_watermark(es, settings, harvest):
    settings = replace(settings, allowed_lateness="3d")
    simulate(es, settings, harvest)
    watermark = read_watermark(es, settings)
    before = raw_outputs(es, settings)
    for hour in (3, 4, 5):  # three past hourly intervals, as `airflow backfill create` makes them
        start, end = T0 + timedelta(hours=hour - 1), T0 + timedelta(hours=hour)
        fetched = fetch_watermark(es, settings, RunRequest(), end, kind=RunKind("backfill", start))
        assert (fetched.window.window_start, fetched.window.window_end) == (start, end)
        assert fetched.window.interval_backfill and fetched.window.read_from is None
        record = stages_once(es, settings, fetched, f"backfill-{hour}")
        assert record["backfill"] is True
        assert read_watermark(es, settings) == watermark
    # a catch-up run (not typed backfill) for an interval before the watermark is one too
    fetched = fetch_watermark(es, settings, RunRequest(), T0 + timedelta(hours=2),
                              kind=RunKind("scheduled", T0 + timedelta(hours=1)))
    assert fetched.window.interval_backfill
    after = raw_outputs(es, settings)
    del before[settings.runtime_stats_index], after[settings.runtime_stats_index]
    assert after == before  # nothing changed: everything was already counted
    assert_matches_oracle(es, settings, read_source(es, settings), whole_source(es, settings))


def test_the_reconciliation_dag_loads_and_reuses_the_stages():
    import os

    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    assert bag.import_errors == {}
    dag = bag.dags["mailforce_reconcile"]
    assert dag.schedule == "@daily" or str(dag.timetable.summary) == "@daily"
    assert {"reconcile_window", "extract_message_roles", "compile_domain_partition", "publish_stats"} <= set(dag.task_ids)
    assert dag.max_active_runs == 1


def test_months_first_finds_the_same_days_as_comparing_every_day(es, settings, harvest, monkeypatch):
    """The reconciliation compares months, then the days of the months that differ: it must find
    exactly the days a comparison of every (account, day) finds, also when no month is trusted."""
    from mailforce.stages import reconcile

    settings = replace(settings, allowed_lateness="1h")
    simulate(es, settings, harvest)  # mail later than an hour is missed
    watermark = read_watermark(es, settings)
    every_day_source = reconcile.source_counts(es, settings, watermark)
    every_day_ledger = reconcile.ledger_counts(es, settings, watermark)
    expected = sorted(key for key in every_day_source if every_day_source[key] != every_day_ledger.get(key, 0))
    assert expected  # some mail was missed
    months, found = reconcile.differing_days(es, settings, watermark)
    assert found == expected
    assert months == len({(account, day[:7]) for account, day in every_day_source})
    monkeypatch.setattr(reconcile, "TRUSTED_MONTH_BELOW", 1)  # every month compared day by day
    assert reconcile.differing_days(es, settings, watermark)[1] == expected
    monkeypatch.setattr(reconcile, "COMPOSITE_PAGE", 3)  # many pages, the last one short or empty
    monkeypatch.setattr(reconcile, "PAIRS_PER_QUERY", 2)
    assert reconcile.differing_days(es, settings, watermark) == (months, expected)
    assert reconcile.source_counts(es, settings, watermark) == every_day_source
