"""Params: backfills, exclusions, from_date; bad values refused before any data is read."""

from __future__ import annotations

import pytest

from mailforce.tools.synthetic import CorpusSpec, iter_corpus
from mailforce.core.run_params import RunParamsError, parse_run_params
from mailforce.es.watermark import read_watermark
from oracle import Coverage
from support import FAR_FUTURE_RUN_END, assert_matches_oracle, load_source, run, utc

RUN_END = utc("2026-01-01T00:00:00Z")


@pytest.fixture
def corpus(es, settings):
    documents = list(iter_corpus(CorpusSpec(seed=5, messages=500, accounts=6, dirt=0.1,
                                            cross_account_duplicate_rate=0.1, within_account_duplicate_rate=0.05)))
    load_source(es, settings, documents)
    return documents


def test_backfilled_accounts_only_and_the_watermark_stays(es, settings, corpus):
    run(es, settings, "scheduled", run_end=RUN_END, exclude_accounts=["acct-0001", "acct-0002"])
    watermark = read_watermark(es, settings)

    stats = run(es, settings, "backfill", run_end=RUN_END, backfilled_accounts=["acct-0002"])

    assert stats["backfill"] is True and stats["backfilled_accounts"] == ["acct-0002"]
    assert read_watermark(es, settings) == watermark == RUN_END
    expected = assert_matches_oracle(es, settings, corpus, [
        Coverage(window_end=RUN_END, exclude_accounts=frozenset({"acct-0001", "acct-0002"})),
        Coverage(window_end=RUN_END, accounts=frozenset({"acct-0002"})),
    ])
    assert "acct-0001" not in expected["account_stats"] and "acct-0002" in expected["account_stats"]


def test_backfill_does_not_move_the_watermark_even_on_a_fresh_cluster(es, settings, corpus):
    run(es, settings, "backfill-first", run_end=RUN_END, backfilled_accounts=["acct-0003"])
    assert read_watermark(es, settings) is None
    stats = run(es, settings, "then-scheduled", run_end=RUN_END)
    assert stats["window_start"] is None  # the scheduled run still starts at the beginning
    assert_matches_oracle(es, settings, corpus, [Coverage(window_end=FAR_FUTURE_RUN_END)])


def test_backfill_and_exclusion_together(es, settings, corpus):
    run(es, settings, "both", run_end=RUN_END,
        backfilled_accounts=["acct-0001", "acct-0004"], exclude_accounts=["acct-0004"])
    expected = assert_matches_oracle(es, settings, corpus, [
        Coverage(window_end=RUN_END, accounts=frozenset({"acct-0001"})),
    ])
    assert set(expected["account_stats"]) == {"acct-0001"}


def test_from_date_is_inclusive_and_replaces_the_watermark(es, settings):
    documents = [
        {"_id": str(n), "_source": {"account": "a", "messageId": f"<{n}@x>", "date": date,
                                    "from": {"address": f"p{n}@acme.com"}}}
        for n, date in enumerate(["2001-01-01T00:00:00Z", "2001-02-01T00:00:00Z", "2001-03-01T00:00:00Z"])
    ]
    load_source(es, settings, documents)
    stats = run(es, settings, "from", run_end=RUN_END, from_date="2001-02-01T00:00:00Z")
    assert stats["emails_processed"] == 2 and stats["window_start_inclusive"] is True
    assert read_watermark(es, settings) == RUN_END
    assert_matches_oracle(es, settings, documents, [Coverage(from_date=utc("2001-02-01T00:00:00Z"), window_end=RUN_END)])


def test_backfill_from_date_covers_only_that_range(es, settings, corpus):
    stats = run(es, settings, "bf-from", run_end=RUN_END, backfilled_accounts=["acct-0005"],
                from_date="2025-03-01T00:00:00Z", to_date="2025-09-01T00:00:00Z")
    assert stats["window_end"] == "2025-09-01T00:00:00Z"
    assert_matches_oracle(es, settings, corpus, [Coverage(
        from_date=utc("2025-03-01T00:00:00Z"), window_end=utc("2025-09-01T00:00:00Z"),
        accounts=frozenset({"acct-0005"}))])


@pytest.mark.parametrize(
    ("conf", "message"),
    [
        ({"from_date": "yesterday"}, "param 'from_date'"),
        ({"from_date": "2001-05-14 23:39:00"}, "param 'from_date'"),
        ({"to_date": 20010514}, "param 'to_date'"),
        ({"backfilled_accounts": "kunai-jim"}, "param 'backfilled_accounts' must be a list"),
        ({"exclude_accounts": {"a": 1}}, "param 'exclude_accounts' must be a list"),
        ({"exclude_accounts": ["ok", ""]}, "param 'exclude_accounts'"),
        ({"backfilled_accounts": []}, "param 'backfilled_accounts' is an empty list"),
        ({"from_date": "2002-01-01T00:00:00Z", "to_date": "2001-01-01T00:00:00Z"}, "after 'to_date'"),
        ({"exclude": ["kunai-jim"]}, r"unknown param\(s\) \['exclude'\]"),
    ],
)
def test_bad_params_are_refused_with_a_message_naming_them(conf, message):
    with pytest.raises(RunParamsError, match=message):
        parse_run_params(conf, conf)


def test_to_date_after_the_run_end_is_refused_before_reading(es, settings, corpus):
    with pytest.raises(RunParamsError, match="'to_date'.*after this run's end"):
        run(es, settings, "future", run_end=RUN_END, to_date="2027-01-01T00:00:00Z")
    assert not es.indices.exists(index=settings.roles_index) or es.count(index=settings.roles_index)["count"] == 0
