"""The test proxy (tests/esproxy.py) shows what a real Elasticsearch/OpenSearch cluster would show.

Every test talks real HTTP: the pinned elasticsearch client -> EsProxy -> a fresh osmem clone. What the
server really holds is read straight from osmem (``direct``), bypassing the proxy.
"""

from __future__ import annotations

import re
import threading
import time

import elastic_transport
import pytest
import urllib3
from elasticsearch import ApiError, BadRequestError, Elasticsearch, UnsupportedProductError, helpers
from elasticsearch import ConnectionError as EsConnectionError

from esproxy import (
    BULK_429, BULK_ITEM_429, CLUSTER, DROP_AFTER_FORWARD, LATENCY, MGET_ITEM_ERROR, PARTIAL_SHARDS, SEARCH_503,
    EsProxy, FaultPlan, Rule, missing_privileges, required_privileges, unrefreshed_reads,
)

VENDOR_8 = "application/vnd.elasticsearch+json; compatible-with=8"


class Compat8Node(elastic_transport.Urllib3HttpNode):
    """How the pinned 9.x client talks to Elasticsearch 8: rewrite compatible-with=9 to 8 on the wire.

    Client-level ``headers=`` do not work: each API call passes its own Accept/Content-Type, which
    replace the client's and are then turned into compatible-with=9.
    """

    def perform_request(self, method, target, body=None, headers=None, **kwargs):
        if headers:
            headers = headers.copy()
            for name in ("accept", "content-type"):
                if headers.get(name):
                    headers[name] = headers[name].replace("compatible-with=9", "compatible-with=8")
        return super().perform_request(method, target, body=body, headers=headers, **kwargs)


class PlainJsonNode(elastic_transport.Urllib3HttpNode):
    """Sends plain application/json and application/x-ndjson instead of the vendor media types."""

    def perform_request(self, method, target, body=None, headers=None, **kwargs):
        if headers:
            headers = headers.copy()
            for name in ("accept", "content-type"):
                if headers.get(name):
                    headers[name] = re.sub(r"application/vnd\.elasticsearch\+([\w-]+).*", r"application/\1",
                                           headers[name])
        return super().perform_request(method, target, body=body, headers=headers, **kwargs)


@pytest.fixture
def direct(es_url):
    """A client straight to osmem, to see what the server really holds (osmem refuses vendor ndjson)."""
    client = Elasticsearch(es_url, max_retries=0, node_class=PlainJsonNode)
    yield client
    client.close()


@pytest.fixture
def proxies(es_url):
    """proxies(flavour=..., faults=..., seed=...) -> a started EsProxy in front of this test's clone."""
    started: list[EsProxy] = []
    clients: list[Elasticsearch] = []
    threads_before = threading.active_count()

    def make(**kwargs) -> EsProxy:
        proxy = EsProxy(es_url, **kwargs).start()
        started.append(proxy)
        return proxy

    def client(proxy: EsProxy, **kwargs) -> Elasticsearch:
        kwargs.setdefault("max_retries", 0)
        c = Elasticsearch(proxy.url, **kwargs)
        clients.append(c)
        return c

    make.client = client
    yield make
    for c in clients:
        c.close()
    for proxy in started:
        proxy.stop()
    assert threading.active_count() <= threads_before, "the proxy left a thread running"


def docs(index, n, start=0):
    return [{"_index": index, "_id": str(i), "n": i} for i in range(start, start + n)]


# ---------------------------------------------------------------------------------------------
# Flavours


def test_the_es9_flavour_answers_like_elasticsearch_9_and_the_pinned_client_works(proxies):
    proxy = proxies(flavour="es9")
    es = proxies.client(proxy)
    info = es.info()
    assert info["version"]["number"].startswith("9.")
    assert info["tagline"] == "You Know, for Search"
    assert "distribution" not in info["version"]
    es.indices.create(index="mail")
    resp = es.index(index="mail", id="1", document={"a": 1}, refresh=True)
    assert resp.meta.headers["x-elastic-product"] == "Elasticsearch"
    assert es.search(index="mail")["hits"]["total"]["value"] == 1
    # A compatible-with=8 request (an 8.x client) is accepted by 9.x too.
    r = urllib3.request("POST", proxy.url + "/mail/_count", body=b"{}",
                        headers={"Accept": VENDOR_8, "Content-Type": VENDOR_8})
    assert (r.status, r.json()["count"], r.headers["X-Elastic-Product"]) == (200, 1, "Elasticsearch")
    # ... but 7 is too old for 9.x, with Elasticsearch's own message.
    r = urllib3.request("GET", proxy.url + "/", headers={"Accept": "application/vnd.elasticsearch+json; compatible-with=7"})
    assert r.status == 400
    assert r.json()["error"]["caused_by"]["reason"] == (
        "Accept version must be either version 9 or 8, but found 7. "
        "Accept=application/vnd.elasticsearch+json; compatible-with=7")


def test_the_es8_flavour_refuses_the_9x_client_with_the_real_media_type_error(proxies):
    proxy = proxies(flavour="es8")
    es = proxies.client(proxy)
    with pytest.raises(BadRequestError) as raised:
        es.info()
    assert raised.value.meta.status == 400
    assert raised.value.body == {
        "error": {
            "root_cause": [{"type": "media_type_header_exception",
                            "reason": "Invalid media-type value on headers [Accept, Content-Type]"}],
            "type": "media_type_header_exception",
            "reason": "Invalid media-type value on headers [Accept, Content-Type]",
            "caused_by": {"type": "status_exception",
                          "reason": "Accept version must be either version 8 or 7, but found 9. "
                                    "Accept=application/vnd.elasticsearch+json; compatible-with=9"}},
        "status": 400}
    # Client-level headers are no way out: the API call's own headers replace them.
    es_headers = proxies.client(proxy, headers={"accept": VENDOR_8, "content-type": VENDOR_8})
    with pytest.raises(BadRequestError):
        es_headers.indices.create(index="mail")
    with pytest.raises(BadRequestError) as raised:
        es.index(index="mail", id="1", document={"a": 1})
    assert raised.value.body["error"]["caused_by"]["reason"].startswith(
        "Accept version must be either version 8 or 7, but found 9.")
    assert [r.forwarded for r in proxy.records] == [False, False, False]
    assert proxy.records[-1].op == "index"


def test_the_es8_flavour_accepts_compatible_with_8_from_the_9x_client_through_a_node_class(proxies, direct):
    proxy = proxies(flavour="es8")
    es = proxies.client(proxy, node_class=Compat8Node)
    assert es.info()["version"]["number"].startswith("8.")
    es.indices.create(index="mail", mappings={"properties": {"n": {"type": "integer"}}})
    assert helpers.bulk(es, docs("mail", 3), refresh="wait_for") == (3, [])
    assert es.count(index="mail")["count"] == 3
    assert direct.count(index="mail")["count"] == 3
    # Plain application/json passes too (what a pre-8 or hand-made client sends).
    r = urllib3.request("POST", proxy.url + "/mail/_search", body=b'{"query":{"term":{"n":2}}}',
                        headers={"Content-Type": "application/json"})
    assert [h["_id"] for h in r.json()["hits"]["hits"]] == ["2"]
    # Elasticsearch also refuses a versioned Accept with an unversioned body.
    r = urllib3.request("POST", proxy.url + "/mail/_count", body=b"{}",
                        headers={"Accept": VENDOR_8, "Content-Type": "application/json"})
    assert r.status == 400
    assert r.json()["error"]["caused_by"]["reason"].startswith(
        "A compatible version is required on both Content-Type and Accept headers")


def test_the_opensearch_flavour_sends_no_product_header_so_the_9x_client_refuses_it(proxies, direct):
    proxy = proxies(flavour="opensearch")
    es = proxies.client(proxy)
    with pytest.raises(UnsupportedProductError):
        es.info()
    # Vendor media types in a body are a 406 with OpenSearch's own body (checked before any product check).
    with pytest.raises(ApiError) as raised:
        es.index(index="mail", id="1", document={"a": 1})
    assert raised.value.meta.status == 406
    assert raised.value.body == {
        "error": "Content-Type header [application/vnd.elasticsearch+json; compatible-with=9] is not supported",
        "status": 406}
    assert not direct.indices.exists(index="mail")
    # Plain media types get past the 406, and the server executes the request, but the client then
    # refuses the answer: the index exists although the call raised.
    plain_client = proxies.client(proxy, node_class=PlainJsonNode)
    with pytest.raises(UnsupportedProductError):
        plain_client.indices.create(index="made")
    assert direct.indices.exists(index="made")
    # Plain JSON through the client's own transport works (no compat rewrite, no product check).
    plain = {"accept": "application/json", "content-type": "application/json"}
    root = es.transport.perform_request("GET", "/", headers={"accept": "application/json"})
    assert root.meta.status == 200
    assert root.body["version"]["distribution"] == "opensearch"
    assert root.body["version"]["number"].startswith("2.")
    assert "x-elastic-product" not in root.meta.headers
    put = es.transport.perform_request("PUT", "/mail/_doc/1?refresh=true", headers=plain, body={"a": 1})
    assert put.meta.status == 201
    found = es.transport.perform_request("POST", "/mail/_search", headers=plain, body={"query": {"match_all": {}}})
    assert [h["_id"] for h in found.body["hits"]["hits"]] == ["1"]
    assert "x-elastic-product" not in found.meta.headers


# ---------------------------------------------------------------------------------------------
# Records and analyzers


def test_a_search_after_a_bulk_without_refresh_is_an_unrefreshed_read_and_a_refresh_clears_it(proxies):
    proxy = proxies(flavour="es9")
    es = proxies.client(proxy)
    es.indices.create(index="mail")
    es.indices.create(index="roles")
    helpers.bulk(es, docs("roles", 3))
    es.mget(index="roles", ids=["0", "1"])  # real time: never a violation
    es.get(index="roles", id="2")
    assert unrefreshed_reads(proxy.records) == []
    es.search(index="roles")
    es.count(index="rol*")
    violations = unrefreshed_reads(proxy.records)
    assert [(v.index, v.write.op, v.read.op) for v in violations] == [("roles", "bulk", "search"),
                                                                    ("roles", "bulk", "count")]
    assert "no refresh in between" in str(violations[0])

    proxy.clear()
    helpers.bulk(es, docs("roles", 2, start=10))
    es.indices.refresh(index="roles")
    es.search(index="roles")
    es.index(index="mail", id="m1", document={"a": 1}, refresh="wait_for")
    es.count(index="mail")
    helpers.bulk(es, docs("mail", 1))
    es.indices.refresh()  # every index
    es.delete_by_query(index="mail", query={"match_all": {}})
    assert unrefreshed_reads(proxy.records) == []
    assert [r.op for r in proxy.records] == ["bulk", "refresh", "search", "index", "count", "bulk", "refresh",
                                             "delete_by_query"]
    es.search(index="mail")  # delete_by_query wrote to mail without refreshing it
    assert [(v.index, v.write.op, v.read.op) for v in unrefreshed_reads(proxy.records)] == [
        ("mail", "delete_by_query", "search")]


def test_required_privileges_of_a_scripted_sequence_are_the_least_elasticsearch_privileges(proxies):
    proxy = proxies(flavour="es9")
    es = proxies.client(proxy)
    es.info()
    es.indices.exists(index="source")
    es.indices.create(index="source")
    es.indices.create(index="out")
    es.indices.put_mapping(index="out", properties={"n": {"type": "integer"}})
    es.indices.get_mapping(index="source")
    helpers.bulk(es, docs("source", 3) + [{"_op_type": "update", "_index": "out", "_id": "9", "doc": {"n": 1},
                                           "doc_as_upsert": True}])
    es.indices.refresh(index="source")
    list(helpers.scan(es, index="source", size=2, scroll="10s"))
    es.count(index="source")
    es.mget(index="out", ids=["9"])
    es.delete_by_query(index="out", query={"match_all": {}})
    es.delete(index="source", id="0")
    required = required_privileges(proxy.records)
    assert required == {
        CLUSTER: {"monitor"},
        "source": {"view_index_metadata", "create_index", "index", "maintenance", "read", "delete"},
        "out": {"create_index", "manage", "index", "read", "delete"},
    }
    assert any(r.op == "scroll" and r.indices == ("source",) for r in proxy.records)
    # A role like "read on the source, create_index/write/manage on the outputs" misses these:
    granted = {"source": {"read"}, "out": {"create_index", "write", "manage"}}
    assert missing_privileges(required, granted) == {
        CLUSTER: {"monitor"},
        "source": {"view_index_metadata", "create_index", "index", "maintenance", "delete"},
        "out": {"read"},
    }
    assert missing_privileges(required, {CLUSTER: {"all"}, "*": {"all"}}) == {}


# ---------------------------------------------------------------------------------------------
# Faults


def test_a_whole_bulk_429_is_not_forwarded_and_the_client_sees_es_rejected_execution(proxies, direct):
    proxy = proxies(faults=FaultPlan([Rule(BULK_429, max_count=1)]))
    es = proxies.client(proxy)
    es.indices.create(index="out")
    with pytest.raises(ApiError) as raised:
        es.bulk(operations=[{"index": {"_index": "out", "_id": "1"}}, {"n": 1}])
    assert raised.value.meta.status == 429
    assert raised.value.body["error"]["type"] == "es_rejected_execution_exception"
    assert raised.value.body["error"]["reason"].startswith("rejected execution of coordinating operation")
    assert direct.count(index="out")["count"] == 0
    # max_count=1: the next bulk goes through.
    assert es.bulk(operations=[{"index": {"_index": "out", "_id": "1"}}, {"n": 1}])["errors"] is False
    assert direct.get(index="out", id="1")["_source"] == {"n": 1}
    assert proxy.fault_counts == {BULK_429: 1}
    assert [r.forwarded for r in proxy.records if r.op == "bulk"] == [False, True]


def test_bulk_item_429s_are_spliced_into_the_server_answer_and_only_the_other_items_are_written(proxies, direct):
    proxy = proxies(faults=FaultPlan([Rule(BULK_ITEM_429, index="out", items=[1, 3])]))
    es = proxies.client(proxy)
    es.indices.create(index="out")
    ok, errors = helpers.bulk(es, docs("out", 5), raise_on_error=False)
    assert ok == 3
    assert [(e["index"]["_id"], e["index"]["status"], e["index"]["error"]["type"]) for e in errors] == [
        ("1", 429, "es_rejected_execution_exception"), ("3", 429, "es_rejected_execution_exception")]
    direct.indices.refresh(index="out")
    held = sorted(h["_id"] for h in direct.search(index="out")["hits"]["hits"])
    assert held == ["0", "2", "4"]
    with pytest.raises(helpers.BulkIndexError) as raised:
        helpers.bulk(es, docs("out", 2, start=10))
    assert [e["index"]["_id"] for e in raised.value.errors] == ["11"]
    raw = es.bulk(operations=[{"index": {"_index": "out", "_id": "a"}}, {"n": 0},
                              {"delete": {"_index": "out", "_id": "0"}}])
    assert raw["errors"] is True
    assert [(next(iter(i)), i[next(iter(i))]["status"]) for i in raw["items"]] == [("index", 201), ("delete", 429)]
    assert direct.get(index="out", id="0")["found"] is True
    assert [f.detail["positions"] for f in proxy.faults] == [[1, 3], [1], [1]]
    assert proxy.records[-1].written_indices == ("out",) and proxy.records[-1].rejected_items == (1,)


def test_a_503_on_a_search_is_not_forwarded_and_the_client_retry_would_hide_it(proxies):
    proxy = proxies(faults=FaultPlan([Rule(SEARCH_503, op="search", index="mail", max_count=2)]))
    es = proxies.client(proxy)
    es.index(index="mail", id="1", document={"a": 1}, refresh=True)
    with pytest.raises(ApiError) as raised:
        es.search(index="mail")
    assert raised.value.meta.status == 503
    assert raised.value.body["error"]["type"] == "search_phase_execution_exception"
    assert raised.value.body["error"]["reason"] == "all shards failed"
    assert es.count(index="mail")["count"] == 1  # the rule matches searches only
    retrying = proxies.client(proxy, max_retries=1)
    assert retrying.search(index="mail")["hits"]["total"]["value"] == 1  # 503 again, retried, then answered
    assert proxy.fault_counts == {SEARCH_503: 2}
    assert [r.status for r in proxy.records if r.op == "search"] == [503, 503, 200]


def test_a_scroll_dropped_after_forwarding_raises_and_a_client_retry_silently_skips_a_page(proxies, direct):
    proxy = proxies(faults=FaultPlan([Rule(DROP_AFTER_FORWARD, op="scroll", nth=1),
                                      Rule(DROP_AFTER_FORWARD, op="scroll", nth=3)]))
    helpers.bulk(direct, docs("mail", 30), refresh=True)
    es = proxies.client(proxy)
    page = es.search(index="mail", scroll="30s", size=10, sort=["n"])
    assert [h["_id"] for h in page["hits"]["hits"]] == [str(i) for i in range(10)]
    with pytest.raises(EsConnectionError):
        es.scroll(scroll_id=page["_scroll_id"], scroll="30s")
    # The server had answered that page: asking again returns the one after it.
    again = es.scroll(scroll_id=page["_scroll_id"], scroll="30s")
    assert [h["_id"] for h in again["hits"]["hits"]] == [str(i) for i in range(20, 30)]

    retrying = proxies.client(proxy, max_retries=1)
    page = retrying.search(index="mail", scroll="30s", size=10, sort=["n"])
    page = retrying.scroll(scroll_id=page["_scroll_id"], scroll="30s")  # dropped, retried by the client
    assert [h["_id"] for h in page["hits"]["hits"]] == [str(i) for i in range(20, 30)]  # 10..19 never seen
    assert proxy.fault_counts == {DROP_AFTER_FORWARD: 2}
    assert [(r.op, r.status, r.indices) for r in proxy.records if r.op == "scroll"] == [
        ("scroll", None, ("mail",)), ("scroll", 200, ("mail",)), ("scroll", None, ("mail",)),
        ("scroll", 200, ("mail",))]


def test_an_mget_item_error_replaces_one_document_of_the_server_answer(proxies, direct):
    proxy = proxies(faults=FaultPlan([Rule(MGET_ITEM_ERROR, items=[1], max_count=1)]))
    helpers.bulk(direct, docs("out", 3))
    es = proxies.client(proxy)
    got = es.mget(index="out", ids=["0", "1", "2"])["docs"]
    assert [d.get("found") for d in got] == [True, None, True]
    assert got[1]["_id"] == "1" and got[1]["_index"] == "out"
    assert got[1]["error"]["type"] == "no_shard_available_action_exception"
    assert "_source" not in got[1]
    assert [d["found"] for d in es.mget(index="out", ids=["0", "1", "2"])["docs"]] == [True, True, True]
    assert [(f.kind, f.detail["ids"]) for f in proxy.faults] == [(MGET_ITEM_ERROR, ["1"])]


def test_partial_shard_results_show_a_failed_shard_and_fewer_hits_unless_partial_results_are_refused(proxies, direct):
    proxy = proxies(faults=FaultPlan([Rule(PARTIAL_SHARDS, op="search", drop_hits=0.5),
                                      Rule(PARTIAL_SHARDS, op="count")]), seed=3)
    helpers.bulk(direct, docs("mail", 20), refresh=True)
    es = proxies.client(proxy)
    found = es.search(index="mail", size=20)
    shards = found["_shards"]
    assert (shards["total"], shards["successful"], shards["failed"]) == (2, 1, 1)
    assert shards["failures"][0]["index"] == "mail"
    assert shards["failures"][0]["reason"]["type"] == "node_not_connected_exception"
    dropped = proxy.faults[0].detail["dropped"]
    assert 0 < len(dropped) < 20
    assert len(found["hits"]["hits"]) == 20 - len(dropped) == found["hits"]["total"]["value"]
    assert not set(dropped) & {h["_id"] for h in found["hits"]["hits"]}
    counted = es.count(index="mail")
    assert counted["_shards"]["failed"] == 1 and counted["count"] == 20
    with pytest.raises(ApiError) as raised:
        es.search(index="mail", allow_partial_search_results=False)
    assert raised.value.meta.status == 503
    assert raised.value.body["error"]["reason"] == "Partial shards failure"
    assert proxy.fault_counts == {PARTIAL_SHARDS: 3}


def test_latency_delays_the_matching_requests_only(proxies):
    proxy = proxies(faults=FaultPlan([Rule(LATENCY, op="count", latency_ms=300)]))
    es = proxies.client(proxy)
    es.indices.create(index="mail")
    es.search(index="mail")  # not delayed: the only fault logged is the count's
    start = time.monotonic()
    assert es.count(index="mail")["count"] == 0
    slow = time.monotonic() - start
    assert slow >= 0.3
    assert [(f.kind, f.op, f.detail) for f in proxy.faults] == [(LATENCY, "count", {"ms": 300})]


def _seeded_run(url: str, seed: int) -> list[tuple]:
    plan = FaultPlan([
        Rule(BULK_ITEM_429, item_probability=0.3),
        Rule(MGET_ITEM_ERROR, probability=0.5),
        Rule(PARTIAL_SHARDS, op="search", probability=0.5, drop_hits=0.3),
        Rule(SEARCH_503, op="count", probability=0.3),
    ])
    with EsProxy(url, faults=plan, seed=seed) as proxy:
        with Elasticsearch(proxy.url, max_retries=0) as es:
            for round_ in range(4):
                helpers.bulk(es, docs("mail", 10, start=10 * round_), raise_on_error=False, refresh=True)
                es.mget(index="mail", ids=[str(i) for i in range(10 * round_, 10 * round_ + 5)])
                es.search(index="mail", size=40, sort=["n"])
                try:
                    es.count(index="mail")
                except ApiError:
                    pass
        return [(f.seq, f.kind, f.rule, sorted((k, str(v)) for k, v in f.detail.items())) for f in proxy.faults]


def test_the_same_seed_gives_the_same_faults_and_another_seed_other_faults(osmem_server):
    runs = {}
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        with osmem_server.clone() as clone:
            runs[name] = _seeded_run(clone.url, seed)
    assert runs["a"] == runs["b"]
    assert len(runs["a"]) >= 4
    assert {kind for _, kind, _, _ in runs["a"]} >= {BULK_ITEM_429, PARTIAL_SHARDS}
    assert runs["c"] != runs["a"]
