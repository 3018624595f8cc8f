"""Partitions are bounded in number and balanced by work, heavy domains included."""

from __future__ import annotations

import pytest

from mailforce.core.partitions import MESSAGE_BUCKETS, message_bucket, plan_partitions
from mailforce.tools.synthetic import CorpusSpec, iter_corpus
from oracle import Coverage
from support import FAR_FUTURE_RUN_END, assert_matches_oracle, load_source, run, with_settings


def _covered_once(partitions, work):
    whole = [domain for partition in partitions for domain in partition.domains]
    shards = [shard for partition in partitions for shard in partition.shards]
    assert len(whole) == len(set(whole))
    split = {shard.domain for shard in shards}
    assert set(whole) | split == set(work) and not set(whole) & split
    for domain in split:  # a split domain's shards cover every bucket exactly once
        ranges = sorted((s.bucket_from, s.bucket_to) for s in shards if s.domain == domain)
        assert ranges[0][0] == 0 and ranges[-1][1] == MESSAGE_BUCKETS
        assert all(left[1] == right[0] for left, right in zip(ranges, ranges[1:]))


def test_a_dominant_domain_is_split_so_no_partition_does_nearly_everything():
    work = {"gmail.com": 9000, **{f"d{number}.example": 10 for number in range(100)}}
    partitions = plan_partitions(work, 4)
    assert len(partitions) == 4
    _covered_once(partitions, work)
    assert max(partition.share for partition in partitions) < 0.3
    assert sum(len(partition.shards) for partition in partitions) == 4


def test_small_domains_are_not_split_whatever_their_share():
    partitions = plan_partitions({"gmail.com": 900, "acme.com": 50}, 4, min_split_work=1000)
    assert all(not partition.shards for partition in partitions) and len(partitions) == 2


def test_balanced_domains_are_not_split():
    work = {f"d{number}.example": 5 + number % 7 for number in range(50)}
    partitions = plan_partitions(work, 4)
    assert all(not partition.shards for partition in partitions)
    _covered_once(partitions, work)


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
    assert any(label.startswith("1/3 gmail.com shard") for label in labels)
    assert all("% of work)" in label for label in labels)


def test_message_bucket_is_stable_and_in_range():
    assert message_bucket("<abc@mail.example.com>") == message_bucket("<abc@mail.example.com>")
    assert {message_bucket(f"<{n}@x>") for n in range(5000)} <= set(range(MESSAGE_BUCKETS))
    assert len({message_bucket(f"<{n}@x>") for n in range(5000)}) > 900


def test_heavy_domain_compiled_in_shards_matches_the_oracle(es, settings):
    spec = CorpusSpec(seed=21, messages=1500, accounts=6, heavy_domain_share=0.7, dirt=0.1,
                      cross_account_duplicate_rate=0.15, within_account_duplicate_rate=0.05)
    documents = list(iter_corpus(spec))
    load_source(es, settings, documents)
    sharded = with_settings(settings, max_partitions=4, min_split_work=100)

    stats = run(es, sharded, "heavy")

    assert_matches_oracle(es, sharded, documents, [Coverage(window_end=FAR_FUTURE_RUN_END)])
    assert es.count(index=settings.partials_index)["count"] == 0  # merged, then dropped
    assert stats["partitions"] == 4


def test_incremental_runs_with_a_split_domain_match_the_oracle(es, settings):
    spec = CorpusSpec(seed=22, messages=900, accounts=4, heavy_domain_share=0.6, dirt=0.05,
                      cross_account_duplicate_rate=0.1)
    documents = list(iter_corpus(spec))
    load_source(es, settings, documents)
    sharded = with_settings(settings, max_partitions=3, min_split_work=100)
    from support import utc

    first = run(es, sharded, "heavy-1", run_end=utc("2000-09-01T00:00:00Z"))
    second = run(es, sharded, "heavy-2", run_end=utc("2001-05-01T00:00:00Z"))
    third = run(es, sharded, "heavy-3")
    assert min(first["emails_processed"], second["emails_processed"], third["emails_processed"]) > 100
    assert_matches_oracle(es, sharded, documents, [Coverage(window_end=FAR_FUTURE_RUN_END)])
