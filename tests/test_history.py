"""A history loaded in resumable chunks (issue 25): the plan, a failed chunk, the resume, the DAG."""

from __future__ import annotations

import pytest

from driver import run_once
from mailforce.core.history import HistoryError, chunk_end, chunk_ends, history_chunks
from mailforce.core.run_params import RunRequest
from mailforce.es.watermark import read_watermark
from mailforce.stages.plan_history_chunks import plan_history_chunks
from mailforce.tools.synthetic import CorpusSpec, iter_corpus
from oracle import Coverage
from support import FAR_FUTURE_RUN_END, assert_matches_oracle, load_source, utc


def test_chunks_end_at_calendar_boundaries_and_at_until():
    assert history_chunks(utc("2001-01-15T10:00:00Z"), utc("2001-04-03T00:00:00Z")) == [
        utc("2001-02-01T00:00:00Z"), utc("2001-03-01T00:00:00Z"), utc("2001-04-01T00:00:00Z"),
        utc("2001-04-03T00:00:00Z")]
    assert history_chunks(None, utc("2001-05-03T00:00:00Z"), "quarter", utc("2000-11-15T00:00:00Z")) == [
        utc("2001-01-01T00:00:00Z"), utc("2001-04-01T00:00:00Z"), utc("2001-05-03T00:00:00Z")]
    assert history_chunks(utc("2001-05-03T00:00:00Z"), utc("2001-05-03T00:00:00Z")) == []  # done already
    assert chunk_end(utc("2001-12-15T08:00:00Z"), "month") == utc("2002-01-01T00:00:00Z")
    assert chunk_end(utc("2001-03-07T08:00:00Z"), "week") == utc("2001-03-12T00:00:00Z")  # the next Monday
    assert chunk_end(utc("2001-12-31T23:59:59Z"), "year") == utc("2002-01-01T00:00:00Z")
    # periods without mail make no chunk: a stray date decades early costs one
    assert chunk_ends([utc("1980-01-01T00:00:00Z"), utc("2001-02-01T00:00:00Z")], utc("2001-02-20T00:00:00Z"),
                      "month") == [utc("1980-02-01T00:00:00Z"), utc("2001-02-20T00:00:00Z")]
    with pytest.raises(HistoryError, match="chunk must be one of"):
        chunk_ends([], utc("2001-02-20T00:00:00Z"), "fortnight")


def test_a_history_in_chunks_resumes_after_a_failed_chunk_and_equals_the_oracle(es, settings):
    documents = list(iter_corpus(CorpusSpec(seed=41, messages=200, accounts=4, correspondent_domains=20, dirt=0.05,
                                            cross_account_duplicate_rate=0.2)))
    load_source(es, settings, documents)
    until = utc("2002-01-01T00:00:00Z")
    planned = plan_history_chunks(es, settings, until, "quarter")
    assert len(planned) >= 3 and planned[-1] == until and planned == sorted(planned)
    done = planned[0]
    run_once(es, settings, RunRequest(to_date=done), FAR_FUTURE_RUN_END, "history-1")
    # the second chunk dies half-way: the watermark stays at the end of the first
    with pytest.raises(RuntimeError, match="simulated failure"):
        run_once(es, settings, RunRequest(to_date=planned[1]), FAR_FUTURE_RUN_END, "history-2",
                 stop_after_partitions=0)
    assert read_watermark(es, settings) == done
    # planned again (the history DAG triggered again): it resumes at the watermark
    resumed = plan_history_chunks(es, settings, until, "quarter")
    assert resumed == planned[1:]
    for number, end in enumerate(resumed, start=2):
        run_once(es, settings, RunRequest(to_date=end), FAR_FUTURE_RUN_END, f"history-{number}-again")
        assert read_watermark(es, settings) == end  # never past a chunk that is not done
    assert plan_history_chunks(es, settings, until, "quarter") == []
    run_once(es, settings, RunRequest(), FAR_FUTURE_RUN_END, "after-the-history")  # the rest, as hourly runs would
    assert_matches_oracle(es, settings, documents, [Coverage(window_end=FAR_FUTURE_RUN_END)])


def test_the_history_dag_runs_one_chunk_at_a_time_each_a_run_of_the_main_dag():
    import os

    from airflow.dag_processing.dagbag import DagBag

    from mailforce import DAG_ID

    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    assert bag.import_errors == {}
    dag = bag.dags["mailforce_history"]
    assert set(dag.task_ids) == {"plan_history_chunks", "load_history_chunk"}
    assert dag.max_active_runs == 1 and dag.doc_md and "Resume" in dag.doc_md
    chunk = dag.get_task("load_history_chunk")
    assert chunk.partial_kwargs["trigger_dag_id"] == DAG_ID and chunk.partial_kwargs["wait_for_completion"]
    assert chunk.partial_kwargs.get("max_active_tis_per_dag") == 1
    assert dag.params.get_param("chunk").schema["enum"] == ["week", "month", "quarter", "year"]
