"""The JSON codec (`mailforce.es.codec`): `orjson` where it can, the standard library where it refuses,
the same meaning either way, and through the engine a document comes back as it was written."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

from mailforce.es.codec import dumps, loads
from mailforce.es.reads import fetch_documents
from mailforce.es.writes import bulk_write, index_actions


def test_documents_encode_to_the_same_json_as_the_clients_own_encoder():
    document = {"email_address": "zoë@exämple.com", "count": 3, "strength": 0.25, "two_way": True,
                "accounts": ["a", "b"], "empty": None, "nested": {"k": [1, 2.5, "x"]},
                "when": datetime(2001, 5, 14, 16, 39, tzinfo=UTC), "day": date(2001, 5, 14)}
    expected = json.dumps(document, ensure_ascii=False, separators=(",", ":"),
                          default=lambda value: value.isoformat())
    assert dumps(document) == expected.encode("utf-8")
    assert b'"when":"2001-05-14T16:39:00+00:00"' in dumps(document)


def test_what_orjson_refuses_goes_through_the_standard_library_both_ways():
    lone_surrogate = {"subject": "broken \udc80 header"}
    encoded = dumps(lone_surrogate)
    assert encoded == '{"subject":"broken \udc80 header"}'.encode("utf-8", "surrogatepass")
    assert loads(encoded) == lone_surrogate
    huge = {"n": 2**70}
    assert loads(dumps(huge)) == huge
    assert loads(b'{"a":[1,"\xc3\xa9"]}') == {"a": [1, "é"]}


def test_a_document_written_through_the_codec_reads_back_unchanged(es):
    documents = [("1", {"email_address": "zoë@exämple.com", "total_count": 2**40, "strength": 0.5,
                        "accounts": ["ä", "b"]}),
                 ("2", {"email_address": "plain@example.com", "total_count": 1, "strength": 1.0, "accounts": []})]
    assert bulk_write(es, index_actions("codec-probe", documents), 500, "codec probe") == 2
    es.indices.refresh(index="codec-probe")
    assert fetch_documents(es, "codec-probe", ["1", "2"]) == dict(documents)
