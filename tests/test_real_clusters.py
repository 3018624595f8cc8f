"""The product's own client against Elasticsearch 8, 9 and OpenSearch 2 as the test proxy plays them
(tests/esproxy.py in front of a real osmem): the engine is chosen by the server's answer, a small run
equals the oracle, every read of a written index follows a refresh, and the privileges a run uses
are exactly the role docs/CONFIGURATION.md lists."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from elasticsearch import BadRequestError

from esproxy import CLUSTER, EsProxy, missing_privileges, required_privileges, unrefreshed_reads
from mailforce.es.client import ClientOptions, build_client, options_from_connection
from mailforce.es.reads import fetch_documents
from mailforce.es.writes import ConcurrentUpdateError, bulk_write, index_actions, refresh, version_of
from mailforce.tools.synthetic import CorpusSpec, iter_corpus
from oracle import Coverage
from support import FAR_FUTURE_RUN_END, assert_matches_oracle, load_source, run

ROOT = Path(__file__).resolve().parents[1]
EVERYTHING = Coverage(window_end=FAR_FUTURE_RUN_END)
FLAVOURS = {"es9": "es9", "es8": "es8", "opensearch": "opensearch"}


def product_client(proxy: EsProxy, engine: str = "auto"):
    return build_client(ClientOptions(url=proxy.url, engine=engine, max_retries=3, request_timeout=60,
                                      retry_backoff_base=0.01, retry_backoff_cap=0.05))


@pytest.fixture
def small_corpus():
    return list(iter_corpus(CorpusSpec(seed=5, messages=120, accounts=3, correspondent_domains=12, dirt=0.1)))


def documented_role() -> dict[str, set[str]]:
    """The role docs/CONFIGURATION.md lists: {index or "cluster": privileges}, from its JSON block."""
    text = (ROOT / "docs" / "CONFIGURATION.md").read_text()
    block = re.search(r"<!-- mailforce-role -->\s*```json\n(.*?)```", text, re.S)
    assert block, "docs/CONFIGURATION.md must carry the role as a ```json block after <!-- mailforce-role -->"
    role = json.loads(block.group(1))
    granted: dict[str, set[str]] = {CLUSTER: set(role["cluster"])}
    for entry in role["indices"]:
        for name in entry["names"]:
            granted.setdefault(name, set()).update(entry["privileges"])
    return granted


@pytest.mark.parametrize("flavour", sorted(FLAVOURS))
def test_each_server_gets_its_own_path_and_a_run_equals_the_oracle(es, es_url, settings, small_corpus, flavour):
    load_source(es, settings, small_corpus)
    with EsProxy(es_url, flavour=flavour) as proxy:
        client = product_client(proxy)
        try:
            assert client.mailforce_engine == FLAVOURS[flavour]  # asked once, GET /
            run(client, settings, f"run-{flavour}")
            run(client, settings, f"again-{flavour}")  # a second run reads the first one's outputs
        finally:
            client.close()
        records = proxy.records
    assert [r for r in records if r.status is not None and r.status >= 400 and r.op != "exists"] == []
    assert unrefreshed_reads(records) == []
    assert_matches_oracle(es, settings, small_corpus, [EVERYTHING])


def test_the_engine_extra_overrides_the_probe_and_the_plain_client_fails_on_es8(es_url):
    with EsProxy(es_url, flavour="es8") as proxy:
        client = product_client(proxy, engine="es8")
        assert client.info()["version"]["number"].startswith("8.")
        assert not any(r.op == "info" for r in proxy.records[:-1])  # no probe: the extra decides
        client.indices.create(index="t")
        client.close()
        client = product_client(proxy, engine="es9")
        with pytest.raises(BadRequestError, match="media_type_header_exception"):
            client.count(index="t")
        client.close()


def test_a_whole_run_needs_exactly_the_privileges_the_documented_role_lists(es, es_url, settings, small_corpus):
    load_source(es, settings, small_corpus)
    with EsProxy(es_url, flavour="es9") as proxy:
        client = product_client(proxy)  # the probe: GET / needs cluster monitor
        run(client, settings, "first")
        run(client, settings, "second")
        client.close()
        required = required_privileges(proxy.records)
    role = documented_role()
    assert missing_privileges(required, {**{name: privileges for name, privileges in role.items()}}) == {}
    # Exactly: the source's role is what the run used; the outputs' is the union of what the run used
    # on any output, plus `manage` (mapping updates, called only when an older output mapping lacks fields),
    # `delete`, which only the erase DAG uses (tests/test_erasure.py records an erasure and checks it), and
    # `delete_index` (called only by the run that upgrades an earlier data model's outputs,
    # docs/UPGRADING.md; tests/test_migration.py records that run's privileges).
    assert role[settings.source_index] == required[settings.source_index]
    used_on_outputs = set().union(*(required.get(index, set()) for index in settings.output_indices))
    if "index" in used_on_outputs:  # `index` covers `create_doc` (the add path's conditional creates)
        used_on_outputs.discard("create_doc")
    for index in settings.output_indices:
        assert role[index] == used_on_outputs | {"manage", "delete", "delete_index"}, index
    assert role[CLUSTER] == required[CLUSTER] == {"monitor"}


def test_an_https_url_without_a_port_is_443_and_http_is_9200():
    class Connection:
        login = password = None
        port = None
        schema = None
        extra_dejson = {}

        def __init__(self, host):
            self.host = host

    assert options_from_connection(Connection("https://my.es.cloud.example")).url == "https://my.es.cloud.example:443"
    assert options_from_connection(Connection("http://localhost")).url == "http://localhost:9200"
    assert options_from_connection(Connection("https://h.example:9243")).url == "https://h.example:9243"


def test_conditional_writes_make_a_concurrent_attempt_fail(es):
    es.indices.create(index="cond")
    bulk_write(es, index_actions("cond", [("a", {"n": 1})]), 10, "seed")
    stored = fetch_documents(es, "cond", ["a", "b"], with_versions=True)
    assert stored["a"]["_source"] == {"n": 1} and "b" not in stored
    versions = {"a": version_of(stored.get("a")), "b": version_of(stored.get("b"))}
    # the first attempt writes conditionally: fine
    assert bulk_write(es, index_actions("cond", [("a", {"n": 2}), ("b", {"n": 1})], versions), 10, "first") == 2
    # a second attempt that read the same versions fails, on both the update and the create
    with pytest.raises(ConcurrentUpdateError, match="2 documents failed.*2 version conflicts") as raised:
        bulk_write(es, index_actions("cond", [("a", {"n": 3}), ("b", {"n": 2})], versions), 10, "second")
    error = raised.value  # the payload a caller can act on, as elasticsearch-py's BulkIndexError.errors
    assert (error.what, error.failed, error.conflicts, error.written) == ("second", 2, 2, 0)
    assert sorted(next(iter(item.values()))["_id"] for item in error.errors) == ["a", "b"]
    assert all(next(iter(item.values()))["status"] == 409 for item in error.errors)
    refresh(es, "cond")
    assert fetch_documents(es, "cond", ["a", "b"]) == {"a": {"n": 2}, "b": {"n": 1}}


def test_bulk_requests_are_bounded_by_documents_and_bytes(es, es_url):
    """`Settings.bulk_chunk` bounds every request by both figures; a document count alone keeps the
    default byte bound. Checked on the requests the server received."""
    es.indices.create(index="chunks")
    documents = [(f"d{number:03d}", {"text": "x" * 1000, "n": number}) for number in range(60)]
    with EsProxy(es_url, flavour="es9") as proxy:
        client = product_client(proxy)
        assert bulk_write(client, index_actions("chunks", documents), (1000, 8 * 1024), "by bytes") == 60
        by_bytes = [len(record.bulk_items) for record in proxy.records if record.op == "bulk"]
        assert bulk_write(client, index_actions("chunks", documents), 25, "by count") == 60
        by_count = [len(record.bulk_items) for record in proxy.records if record.op == "bulk"][len(by_bytes):]
        assert bulk_write(client, index_actions("chunks", documents), (1000, 10 * 1024 * 1024), "one") == 60
        one = [len(record.bulk_items) for record in proxy.records if record.op == "bulk"][len(by_bytes) + len(by_count):]
        client.close()
    # ~1 KB per document and its action line: at most 7 fit under 8 KiB
    assert sum(by_bytes) == 60 and max(by_bytes) <= 7 and len(by_bytes) >= 9
    assert by_count == [25, 25, 10]
    assert one == [60]
    refresh(es, "chunks")
    assert es.count(index="chunks")["count"] == 60


def test_many_searches_in_one_request_are_asked_again_when_one_loses_a_shard_then_raise(es, es_url):
    """`search_each` sends its searches as one _msearch; a search of it that lost a shard (refused
    partial results: an error answer) asks the batch again, and one that keeps failing raises with
    the errors by position as payload."""
    from esproxy import PARTIAL_SHARDS, Rule, FaultPlan
    from mailforce.es import reads
    from mailforce.es.reads import IncompleteReadError, search_each

    es.indices.create(index="kept", mappings={"properties": {"n": {"type": "integer"}, "even": {"type": "boolean"}}})
    bulk_write(es, index_actions("kept", [(f"d{n}", {"n": n, "even": n % 2 == 0}) for n in range(6)]), 10, "seed")
    refresh(es, "kept")
    bodies = [{"query": {"term": {"even": even}}, "sort": [{"n": "asc"}], "size": 10} for even in (True, False)]
    original = reads.MGET_RETRY_BACKOFF_SECONDS
    reads.MGET_RETRY_BACKOFF_SECONDS = 0.01
    try:
        with EsProxy(es_url, flavour="es9", faults=FaultPlan([Rule(PARTIAL_SHARDS, op="msearch", nth=1)])) as proxy:
            client = product_client(proxy)
            answers = search_each(client, "evens and odds", "kept", bodies)
            client.close()
            assert [fault.kind for fault in proxy.faults] == [PARTIAL_SHARDS]
            assert [record.op for record in proxy.records if record.op != "info"] == ["msearch", "msearch"]  # one retry
        assert [[hit["_id"] for hit in answer["hits"]["hits"]] for answer in answers] == [["d0", "d2", "d4"],
                                                                                          ["d1", "d3", "d5"]]
        with EsProxy(es_url, flavour="es9", faults=FaultPlan([Rule(PARTIAL_SHARDS, op="msearch")])) as proxy:
            client = product_client(proxy)
            with pytest.raises(IncompleteReadError, match="answered with an error") as failed:
                search_each(client, "evens and odds", "kept", bodies)
            client.close()
    finally:
        reads.MGET_RETRY_BACKOFF_SECONDS = original
    assert failed.value.what == "evens and odds" and len(failed.value.item_errors) == 1
    [error] = failed.value.item_errors.values()
    assert error["type"] == "search_phase_execution_exception"


def test_incomplete_reads_raise_with_the_shards_and_the_item_errors_as_payload(es, es_url):
    from esproxy import MGET_ITEM_ERROR, PARTIAL_SHARDS, Rule, FaultPlan
    from mailforce.es import reads
    from mailforce.es.reads import IncompleteReadError, count

    es.indices.create(index="kept")
    bulk_write(es, index_actions("kept", [(f"d{n}", {"n": n}) for n in range(6)]), 10, "seed")
    refresh(es, "kept")
    # the first item of every mget (the retries ask again for what errored) and every count fail
    faults = FaultPlan([Rule(MGET_ITEM_ERROR, items=[0]), Rule(PARTIAL_SHARDS, op="count")])
    with EsProxy(es_url, flavour="es9", faults=faults) as proxy:
        client = product_client(proxy)
        original = reads.MGET_RETRY_BACKOFF_SECONDS
        reads.MGET_RETRY_BACKOFF_SECONDS = 0.01
        try:
            with pytest.raises(IncompleteReadError, match="not read as 'not stored'") as mget:
                fetch_documents(client, "kept", [f"d{n}" for n in range(6)])
            with pytest.raises(IncompleteReadError, match="incomplete answer") as partial:
                count(client, "kept", {"match_all": {}}, "documents kept")
        finally:
            reads.MGET_RETRY_BACKOFF_SECONDS = original
            client.close()
    assert mget.value.what == "mget of kept" and list(mget.value.item_errors) == ["d0"]
    assert mget.value.item_errors and all(isinstance(error, dict) for error in mget.value.item_errors.values())
    assert partial.value.failed_shards >= 1 and partial.value.total_shards and partial.value.reasons
    assert partial.value.what == "documents kept of kept"
