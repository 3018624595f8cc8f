"""Extraction in slices of message ids (issue 25): the plan, the merge, and runs that stay exact.

The oracle scenarios of other modules marked `extraction_slices(...)` run with 1, 2 and 8 slices too
(tests/conftest.py); here: the slicing itself, a run killed between slices, and the runtime stats of
one window equal whatever the number of slices.
"""

from __future__ import annotations

import pytest

from mailforce.core.dates import utc_now
from mailforce.core.extraction_slices import (
    WHOLE_WINDOW, ExtractionSlice, merge_extractions, plan_slices, slice_count, slices_between,
)
from mailforce.core.roles import ExtractionCounts
from mailforce.core.run_params import RunRequest
from mailforce.core.summaries import ExtractionSummary
from mailforce.sequence import count_window_in_process, run_step
from mailforce.stages.fetch_watermark import fetch_watermark
from mailforce.stages.plan_extraction_slices import plan_extraction_slices
from mailforce.tools.synthetic import CorpusSpec, iter_corpus
from oracle import Coverage
from support import (
    FAR_FUTURE_RUN_END, assert_matches_oracle, load_source, run, small_settings, utc, with_extraction_slices,
)

EVERYTHING = Coverage(window_end=FAR_FUTURE_RUN_END)
TIMING = {"run_date", "run_id", "duration_seconds", "run_started", "run_finished", "updated_at", "stage_seconds"}


def test_slice_count_follows_the_window_and_is_bounded():
    assert slice_count(0, 8, 100_000) == 1
    assert slice_count(45_000, 8, 100_000) == 1  # an hourly run of a 10,000-person company
    assert slice_count(250_000, 8, 100_000) == 2
    assert slice_count(40_000_000, 8, 100_000) == 8
    assert slice_count(40_000_000, 1, 100_000) == 1


def test_slices_cover_the_id_space_once_at_the_sample_quantiles():
    ids = [f"<{number:04d}@x>" for number in range(1000)]
    slices = plan_slices(reversed(ids), 4)
    assert [(item.number, item.of) for item in slices] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert slices[0].lower is None and slices[-1].upper is None
    for before, after in zip(slices, slices[1:]):
        assert before.upper == after.lower
    owners = [[item for item in slices if (item.lower is None or value >= item.lower)
               and (item.upper is None or value < item.upper)] for value in ids]
    assert all(len(found) == 1 for found in owners)
    assert sorted(sum(1 for found in owners if found[0] is item) for item in slices) == [250] * 4
    assert plan_slices(["<a>"] * 50, 8) == [WHOLE_WINDOW]  # one distinct id: nothing to cut
    assert len(plan_slices(["<a>", "<b>", "<c>"], 8)) == 3  # never more slices than distinct ids


def test_the_account_statistics_are_split_among_the_slices_by_account_range():
    ids = [f"<{number:04d}@x>" for number in range(100)]
    accounts = [f"kunai-{number % 10}" for number in range(100)]
    slices = plan_slices(ids, 4, accounts)
    every = [f"kunai-{number}" for number in range(10)] + ["a", "zzz", ""]
    assert all(sum(item.owns_account(account) for item in slices) == 1 for account in every)
    assert all(any(item.owns_account(f"kunai-{n}") for n in range(10)) for item in slices)  # balanced: none empty
    few = plan_slices(ids, 4, ["kunai-1"] * 100)  # one account: one slice writes it, the others none
    assert sum(item.owns_account("kunai-1") for item in few) == 1
    assert [item.accounts_label for item in few].count("4/4 no account") == 1
    assert all(WHOLE_WINDOW.owns_account(account) for account in every)


def test_a_slice_query_keeps_the_window_and_the_last_slice_holds_documents_without_an_id():
    window = {"match_all": {}}
    first, middle, last = slices_between(["<k>", "<t>"])
    assert first.query(window) == {"bool": {"filter": [window, {"range": {"messageId": {"lt": "<k>"}}}]}}
    assert middle.query(window)["bool"]["filter"][1] == {"range": {"messageId": {"gte": "<k>", "lt": "<t>"}}}
    should = last.query(window)["bool"]["filter"][1]["bool"]["should"]
    assert {"bool": {"must_not": [{"exists": {"field": "messageId"}}]}} in should
    assert WHOLE_WINDOW.query(window) == window
    # a multi-valued messageId is matched by every slice holding a value: only its smallest value's keeps it
    hit = {"_source": {"messageId": ["<x>", "<b>"]}}
    assert [item.owns(hit) for item in (first, middle, last)] == [True, False, False]
    assert [item.owns({"_source": {"messageId": "<x>"}}) for item in (first, middle, last)] == [True, True, True]
    assert ExtractionSlice.from_xcom(middle.to_xcom()) == middle
    assert ExtractionSlice.from_xcom(None) == WHOLE_WINDOW


def test_merged_summaries_add_figures_and_unite_accounts_and_days():
    one = ExtractionSummary(messages=2, accounts=("a",), work_by_domain={"x.com": 2}, recompute_domains=("x.com",),
                            role_entries={"From": 2}, counts=ExtractionCounts(source_documents=3),
                            late_messages=1, late_accounts=("a",), late_days=("2001-01-01",), late_days_count=1,
                            processed_messages=3, processed_accounts_count=2, unchanged_accounts=("c",), rewritten_accounts=("c",),
                            undated_source_documents=4, future_dated_messages=1, future_dated_max_date="2031-01-01T00:00:00Z")
    two = ExtractionSummary(messages=1, accounts=("a", "b"), work_by_domain={"x.com": 1, "y.com": 1},
                            role_entries={"From": 1, "To": 1}, counts=ExtractionCounts(source_documents=1),
                            late_messages=1, late_accounts=("b",), late_days=("2001-01-01", "2001-01-02"),
                            late_days_count=2, processed_messages=2, processed_accounts_count=2, unchanged_accounts=("a",),
                            rewritten_accounts=("a",))
    merged = merge_extractions([one, two])
    assert merged.messages == 3 and merged.accounts == ("a", "b")
    assert merged.work_by_domain == {"x.com": 3, "y.com": 1} and merged.recompute_domains == ("x.com",)
    assert merged.role_entries == {"From": 3, "To": 1} and merged.counts.source_documents == 4
    assert merged.late_days == ("2001-01-01", "2001-01-02") and merged.late_days_count == 2
    assert merged.processed_messages == 5 and merged.processed_accounts_count == 3  # a, b and c
    assert merged.undated_source_documents == 4 and merged.future_dated_max_date == "2031-01-01T00:00:00Z"
    assert merged.rewritten_accounts == ("a", "c")
    assert ExtractionSummary.from_xcom(merged.to_xcom()) == merged
    assert merge_extractions([one]) is one


def comparable(stats: dict) -> dict:
    return {key: value for key, value in stats.items() if key not in TIMING and "seconds" not in key}


def test_the_runtime_stats_and_outputs_of_a_window_do_not_depend_on_its_slices(osmem_server):
    """The same corpus, first half then the rest, with 1 and 8 slices: identical records and outputs
    (the oracle), and the plan really cut the windows (2 slices: the marked scenarios of other modules)."""
    from mailforce.es.client import ClientOptions, build_client

    documents = list(iter_corpus(CorpusSpec(seed=31, messages=300, accounts=4, correspondent_domains=20, dirt=0.1,
                                            cross_account_duplicate_rate=0.3)))
    records = {}
    for slices in (1, 8):
        clone = osmem_server.clone()
        es = build_client(ClientOptions(url=clone.url, engine="osmem", max_retries=1, request_timeout=120))
        try:
            settings = with_extraction_slices(small_settings(), slices)
            load_source(es, settings, documents)
            fetched = fetch_watermark(es, settings, RunRequest(), utc("2001-06-30T00:00:00Z"), run_started=utc_now())
            assert len(plan_extraction_slices(es, settings, fetched.window)) == slices
            first = run(es, settings, "first", run_end=utc("2001-06-30T00:00:00Z"))
            second = run(es, settings, "second")
            if slices == 8:
                assert_matches_oracle(es, settings, documents, [EVERYTHING])
            records[slices] = [comparable(first), comparable(second)]
        finally:
            es.close()
            clone.close()
    assert records[8] == records[1]


@pytest.mark.parametrize("slices", [2, 8])
def test_a_run_killed_between_slices_then_rerun_equals_the_oracle(es, slices):
    """Some slices wrote their roles and ledger, the run died: nothing moved the watermark, and the
    next run (its own slices, maybe cut elsewhere) counts every message once."""
    settings = with_extraction_slices(small_settings(), slices)
    documents = list(iter_corpus(CorpusSpec(seed=32, messages=400, accounts=5, correspondent_domains=25, dirt=0.05,
                                            cross_account_duplicate_rate=0.3)))
    load_source(es, settings, documents)
    run(es, settings, "before", run_end=utc("2001-03-31T00:00:00Z"))
    extracted = 0

    def dies_after_one_slice(name, call):
        nonlocal extracted
        if name == "extract_message_roles":
            if extracted == 1:
                raise RuntimeError("killed after one slice (simulated)")
            extracted += 1
        return run_step(name, call)

    fetched = fetch_watermark(es, settings, RunRequest(), FAR_FUTURE_RUN_END, run_started=utc_now())
    with pytest.raises(RuntimeError, match="killed"):
        count_window_in_process(es, settings, fetched, "dies", step=dies_after_one_slice)
    run(es, with_extraction_slices(small_settings(), 3), "rerun")
    assert_matches_oracle(es, settings, documents, [EVERYTHING])


@pytest.mark.parametrize("slices", [8])
def test_enron_in_slices_equals_the_oracle(es, enron, slices):
    settings = with_extraction_slices(small_settings(), slices)
    stats = run(es, settings, "enron-sliced")
    assert_matches_oracle(es, settings, enron, [EVERYTHING])
    assert stats["email_accounts_processed"] == 60
