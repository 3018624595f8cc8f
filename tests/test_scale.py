"""Company scale, as small as still proves it: a domain with 10,001 addresses, all in one mailbox (one
more than Elasticsearch's default `index.mapping.nested_objects.limit`, 10,000 per document, SPEC 5),
runs end to end on the embedded engine (which enforces Elasticsearch's default limits), equals the
oracle, and no written document comes near a limit. Throughput at larger sizes is scripts/benchmark.py's
job (docs/BENCHMARK.md)."""

from __future__ import annotations

from elasticsearch import helpers

from mailforce.es.indices import index_mappings
from oracle import MAX_DOCUMENT_BYTES, MAX_NESTED_OBJECTS, Coverage, size_violations
from support import FAR_FUTURE_RUN_END, assert_matches_oracle, load_source, run, with_settings

ADDRESSES = MAX_NESTED_OBJECTS + 1  # one over the limit: a listing of them as nested objects would be refused
ACCOUNTS = 1  # every address of the big domain in the one mailbox: its engagements document lists them all


def big_domain_corpus() -> list[dict]:
    documents = []
    for number in range(ADDRESSES):
        account = f"kunai-{number % ACCOUNTS}"
        documents.append({"_id": f"big-{number}", "_source": {
            "account": account, "messageId": f"<big-{number}@bigcorp.com>",
            "date": f"2001-{number % 12 + 1:02d}-{number % 28 + 1:02d}T{number % 24:02d}:00:00Z",
            "from": {"address": f"person{number}@bigcorp.com"},
            "to": {"address": [f"{account}@kunaico.com", f"team{number % 7}@bigcorp.com"]},
        }})
    return documents


def nested_fields_of(properties: dict, prefix: str = "") -> list[str]:
    found = []
    for name, spec in properties.items():
        path = f"{prefix}{name}"
        if spec.get("type") == "nested":
            found.append(path)
        if "properties" in spec:
            found += nested_fields_of(spec["properties"], f"{path}.")
    return found


def test_a_domain_just_over_the_nested_objects_limit_runs_within_default_limits_and_equals_the_oracle(es, settings):
    scaled = with_settings(settings, internal_domains=("kunaico.com",), scan_page_size=5000, bulk_chunk_size=2000,
                           lookup_batch_size=2000)
    documents = big_domain_corpus()
    assert ADDRESSES // ACCOUNTS > MAX_NESTED_OBJECTS  # the mailbox's listing is over the limit as nested objects
    load_source(es, scaled, documents)

    stats = run(es, scaled, "scale")

    assert stats["emails_processed"] == ADDRESSES
    expected = assert_matches_oracle(es, scaled, documents, [Coverage(window_end=FAR_FUTURE_RUN_END)])
    assert expected["domains"]["bigcorp.com"]["addresses_count"] == ADDRESSES + 7
    assert max(len(doc["emails_from"]) for doc in expected["engagements"].values()) == ADDRESSES // ACCOUNTS
    checked = 0
    for index, properties in index_mappings(scaled).items():
        nested = nested_fields_of(properties)
        written = [hit["_source"] for hit in helpers.scan(es, index=index, size=2000)]
        checked += len(written)
        assert size_violations(written, nested) == [], index
        if index == scaled.engagements_index:
            assert max(len(doc["emails_from"]) for doc in written) == ADDRESSES // ACCOUNTS
            assert all(len(str(doc)) < MAX_DOCUMENT_BYTES for doc in written)
    assert checked > 2 * ADDRESSES
