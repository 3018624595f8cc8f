"""The outputs equal an independent brute-force computation (tests/oracle.py), on real and dirty mail."""

from __future__ import annotations

import pytest

from mailforce.tools.synthetic import CorpusSpec, dirty_corpus, iter_corpus
from oracle import Coverage, summarise
from support import FAR_FUTURE_RUN_END, assert_matches_oracle, load_source, run, with_settings

EVERYTHING = Coverage(window_end=FAR_FUTURE_RUN_END)


def test_enron_corpus_matches_oracle(enron_run):
    es, settings, source, stats = enron_run.es, enron_run.settings, enron_run.source, enron_run.stats
    assert len(source) == 1702  # every message parsed (conftest's enron_documents checks the loader's count)

    expected = assert_matches_oracle(es, settings, source, [EVERYTHING])
    counts = summarise(expected)
    assert counts["roles"] > 1600 and counts["domains"] > 100  # a real, non-trivial comparison
    assert stats["email_accounts_processed"] == 60  # every mailbox, not the first 10
    assert len(expected["account_stats"]) == 60


def test_enron_stats_count_every_mailbox_and_message(enron_run):
    source, stats = enron_run.source, enron_run.stats  # the same run as above
    pairs = {(doc["_source"]["account"], doc["_source"].get("messageId") or doc["_id"]) for doc in source}
    assert stats["emails_processed"] == len(pairs)
    assert stats["source_documents"] == 1702
    assert stats["backfill"] is False
    assert stats["window_start"] is None


@pytest.mark.extraction_slices(1, 2, 8)
def test_dirty_data_matches_oracle(es, settings):
    documents = dirty_corpus()
    load_source(es, settings, documents)
    stats = run(es, settings, "dirty")
    assert_matches_oracle(es, settings, documents, [EVERYTHING])
    assert stats["invalid_addresses"] > 0
    assert stats["undated_source_documents"] > 0  # missing and unparseable dates are counted, not lost


def test_dirty_data_with_internal_domain_and_allow_list(es, settings):
    documents = dirty_corpus()
    load_source(es, settings, documents)
    internal = with_settings(settings, internal_domains=("kunaico.com",))
    run(es, internal, "internal")
    assert_matches_oracle(es, internal, documents, [EVERYTHING])


def test_allow_list_restricts_every_output(es, settings):
    documents = dirty_corpus()
    load_source(es, settings, documents)
    domains = sorted({
        address.rpartition("@")[2].lower()
        for doc in documents
        for address in (doc["_source"].get("to") or {}).get("address") or []
        if isinstance(address, str) and address.count("@") == 1 and "<" not in address and " " not in address
        and all(address.rpartition("@")[2].split("."))  # a domain: `acme.com.` is refused as a setting
    })
    allowed = with_settings(settings, allowed_domains=tuple(domains[:3]))
    run(es, allowed, "allow-list")
    expected = assert_matches_oracle(es, allowed, documents, [EVERYTHING])
    assert set(expected["domains"]) <= set(domains[:3])


def test_mailbox_over_2500_messages_is_not_double_counted(es, settings):
    """The old script re-added aggregations per 2,500-hit page: every figure of a big mailbox doubled."""
    spec = CorpusSpec(seed=3, messages=3200, accounts=1, correspondent_domains=40, dirt=0.05)
    documents = list(iter_corpus(spec))
    load_source(es, settings, documents)
    run(es, with_settings(settings, scan_page_size=250), "big-mailbox")
    assert_matches_oracle(es, settings, documents, [EVERYTHING])


def test_messages_sharing_a_timestamp_across_page_boundaries_are_all_read(es, settings):
    """The old script paged on `date` alone and lost messages sharing a timestamp at a boundary."""
    documents = [
        {
            "_id": f"same-{number}",
            "_source": {
                "account": "kunai-jim",
                "messageId": f"<same-{number}@example.com>",
                "date": "2001-05-14T23:39:00Z",
                "from": {"address": f"person{number}@acme.com"},
                "to": {"address": ["kunai-jim@kunaico.com"]},
            },
        }
        for number in range(53)
    ]
    load_source(es, settings, documents)
    stats = run(es, with_settings(settings, scan_page_size=7, lookup_batch_size=5, bulk_chunk_size=11), "timestamps")
    expected = assert_matches_oracle(es, settings, documents, [EVERYTHING])
    assert stats["emails_processed"] == 53
    assert expected["domains"]["acme.com"]["total_from"] == 53


@pytest.mark.parametrize("partitions", [1, 3, 16])
def test_partition_count_does_not_change_the_outputs(es, settings, partitions):
    documents = list(iter_corpus(CorpusSpec(seed=11, messages=400, accounts=5, dirt=0.1,
                                            cross_account_duplicate_rate=0.1)))
    load_source(es, settings, documents)
    stats = run(es, with_settings(settings, max_partitions=partitions), f"partitions-{partitions}")
    assert 1 <= stats["partitions"] <= min(partitions, stats["domains_processed"])
    assert (stats["partitions"] > 1) == (partitions > 1)  # the outputs were split when allowed to be
    assert_matches_oracle(es, settings, documents, [EVERYTHING])


def test_dates_are_written_utc_to_the_second(es, settings):
    documents = [{
        "_id": "zoned",
        "_source": {
            "account": "kunai-jim", "messageId": "<z@x>", "date": "2001-05-14T16:39:07.250-07:00",
            "from": {"address": "Jim <JIM@Acme.com>"}, "to": {"address": "sara@beta.org"},
        },
    }]
    load_source(es, settings, documents)
    run(es, settings, "zoned")
    role = es.search(index=settings.roles_index)["hits"]["hits"][0]["_source"]
    assert role["date"] == "2001-05-14T23:39:07Z"
    domain = es.get(index=settings.domains_index, id=_domain_id("acme.com"))["_source"]
    assert domain["first_contact_date"] == "2001-05-14T23:39:07Z"
    assert domain["email_engagements"][0]["email_address"] == "jim@acme.com"


def _domain_id(domain: str) -> str:
    from mailforce.core.ids import document_id

    return document_id(domain)
