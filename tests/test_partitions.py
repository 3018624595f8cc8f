"""Partitions are bounded in number and balanced by work, heavy domains included."""

from __future__ import annotations

import pytest

from mailforce.core.partitions import MESSAGE_BUCKETS, message_bucket, plan_partitions
from mailforce.tools.synthetic import CorpusSpec, iter_corpus
from oracle import Coverage
from support import FAR_FUTURE_RUN_END, assert_matches_oracle, load_source, run


def _covered_once(partitions, work):
    domains = [domain for partition in partitions for domain in partition.domains]
    assert sorted(domains) == sorted(work)


def test_the_heaviest_domain_goes_to_the_lightest_partition():
    work = {"gmail.com": 9000, **{f"d{number}.example": 10 for number in range(100)}}
    partitions = plan_partitions(work, 4)
    assert len(partitions) == 4
    _covered_once(partitions, work)
    assert partitions[0].domains == ("gmail.com",)  # a domain is the unit of work: never split
    others = [partition.work for partition in partitions[1:]]
    assert max(others) - min(others) <= 10


def test_balanced_domains_spread_evenly():
    work = {f"d{number}.example": 5 + number % 7 for number in range(50)}
    partitions = plan_partitions(work, 4)
    _covered_once(partitions, work)
    assert max(p.work for p in partitions) - min(p.work for p in partitions) <= 11


@pytest.mark.parametrize("count", [1, 2, 8])
def test_never_more_partitions_than_the_setting(count):
    work = {f"d{number}.example": number + 1 for number in range(10_000)}
    partitions = plan_partitions(work, count)
    assert len(partitions) == count
    _covered_once(partitions, work)


def test_a_small_window_maps_fewer_tasks():
    work = {f"d{number}.example": 10 for number in range(300)}  # 3,000 role entries
    assert len(plan_partitions(work, 8, min_partition_work=1000)) == 3
    assert len(plan_partitions(work, 8, min_partition_work=100_000)) == 1
    assert len(plan_partitions(work, 8, min_partition_work=1)) == 8


def test_labels_say_what_a_partition_covers():
    partitions = plan_partitions({"gmail.com": 90, "acme.com": 5, "beta.org": 5}, 3)
    labels = [partition.label for partition in partitions]
    assert labels[0] == "1/3 gmail.com (90% of work)"
    assert all("% of work)" in label for label in labels)


def test_message_bucket_is_stable_and_in_range():
    assert message_bucket("<abc@mail.example.com>") == message_bucket("<abc@mail.example.com>")
    assert {message_bucket(f"<{n}@x>") for n in range(5000)} <= set(range(MESSAGE_BUCKETS))
    assert len({message_bucket(f"<{n}@x>") for n in range(5000)}) > 900


def test_a_heavy_domain_in_one_partition_matches_the_oracle_full_and_incremental(es, settings):
    spec = CorpusSpec(seed=21, messages=1500, accounts=6, heavy_domain_share=0.7, dirt=0.1,
                      cross_account_duplicate_rate=0.15, within_account_duplicate_rate=0.05)
    documents = list(iter_corpus(spec))
    load_source(es, settings, documents)
    from support import utc

    first = run(es, settings, "heavy-1", run_end=utc("2000-09-01T00:00:00Z"))
    stats = run(es, settings, "heavy-2")

    assert first["emails_processed"] > 100
    assert_matches_oracle(es, settings, documents, [Coverage(window_end=FAR_FUTURE_RUN_END)])
    assert stats["partitions"] == 4
