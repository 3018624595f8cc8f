"""Partitions are bounded in number and balanced by work, heavy domains included."""

from __future__ import annotations

import pytest

from mailforce.core.batches import batched_by_work
from mailforce.core.partitions import MESSAGE_BUCKETS, message_bucket, plan_partitions
from mailforce.tools.synthetic import CorpusSpec, iter_corpus
from oracle import Coverage
from support import FAR_FUTURE_RUN_END, assert_matches_oracle, load_source, run, with_settings


def _covered_once(partitions, work):
    domains = [domain for partition in partitions for domain in partition.domains]
    assert sorted(domains) == sorted(work)


def test_the_heaviest_domain_goes_to_the_lightest_partition():
    work = {"gmail.com": 9000, **{f"d{number}.example": 10 for number in range(100)}}
    partitions = plan_partitions(work, 4)
    _covered_once(partitions, work)
    assert partitions[0].domains == ("gmail.com",)  # a domain is the unit of work: never split
    # gmail.com alone takes 9,000 whatever the count: the other 100 domains fit in one partition
    # beside it, so two tasks finish as soon as four would.
    assert [(partition.of, partition.work) for partition in partitions] == [(2, 9000), (2, 1000)]


def test_partitions_that_would_not_finish_sooner_are_not_started():
    work = {"gmail.com": 6000, **{f"d{number}.example": 10 for number in range(800)}}  # 6,000 + 8,000
    partitions = plan_partitions(work, 8)
    _covered_once(partitions, work)
    # 8 partitions cannot beat gmail.com's 6,000; 3 reach it (6,000 | 4,000 | 4,000), 2 cannot.
    assert [partition.work for partition in partitions] == [6000, 4000, 4000]


def test_uneven_domains_without_a_giant_still_use_every_partition():
    work = {f"d{number}.example": 10 + number % 13 for number in range(400)}
    partitions = plan_partitions(work, 8)
    assert len(partitions) == 8
    assert max(p.work for p in partitions) - min(p.work for p in partitions) <= 22


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
    assert labels == ["1/2 gmail.com (90% of work)", "2/2 acme.com +1 more (10% of work)"]
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
    # The heavy domain sets the run's length; fewer partitions than allowed reach it.
    assert 2 <= stats["partitions"] < settings.max_partitions


def test_work_bounded_batches_hold_a_heavy_item_alone():
    work = {"gmail.com": 500, "a.example": 30, "b.example": 30, "c.example": 30, "d.example": 5}
    batches = list(batched_by_work(list(work), work, budget=70, size=1000))
    assert batches == [["gmail.com"], ["a.example", "b.example"], ["c.example", "d.example"]]
    assert list(batched_by_work(["x", "y", "z"], {}, budget=2, size=1000)) == [["x", "y"], ["z"]]  # unknown: 1 each
    assert list(batched_by_work(["x", "y", "z"], {}, budget=100, size=2)) == [["x", "y"], ["z"]]


def test_a_partition_read_in_chunks_of_bounded_work_matches_the_oracle(es, settings, monkeypatch):
    from mailforce.stages import compile_domain_partition as compile_stage

    chunks = []
    original = compile_stage.rollup_of

    def recording(es, settings, domains, written_by_run):
        chunks.append(tuple(domains))
        return original(es, settings, domains, written_by_run)

    monkeypatch.setattr(compile_stage, "WORK_PER_CHUNK", 60)
    monkeypatch.setattr(compile_stage, "rollup_of", recording)
    documents = list(iter_corpus(CorpusSpec(seed=12, messages=500, accounts=5, heavy_domain_share=0.3, dirt=0.1,
                                            cross_account_duplicate_rate=0.1)))
    load_source(es, settings, documents)
    from support import utc

    first = run(es, with_settings(settings, max_partitions=2), "chunks-1", run_end=utc("2000-09-01T00:00:00Z"))
    full_chunks = len(chunks)
    run(es, with_settings(settings, max_partitions=2), "chunks-2")

    assert first["emails_processed"] > 100
    assert full_chunks > 2 * first["partitions"]  # each partition was read in several chunks
    assert_matches_oracle(es, settings, documents, [Coverage(window_end=FAR_FUTURE_RUN_END)])
