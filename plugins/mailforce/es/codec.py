"""JSON to and from Elasticsearch: `orjson` first, the standard library for what it refuses.

Encoding every document written and decoding every page read was about a quarter of the product's
own CPU (docs/BENCHMARK.md, "Client CPU"); `orjson` does both several times faster. It is stricter
than the standard library, which stays the fallback, so what is sent and read is unchanged in
meaning:

- a lone surrogate in a string (a badly decoded mail header) is refused by `orjson`; the standard
  library writes it through (``surrogatepass``), as the client always did;
- integers beyond 64 bits, and anything `orjson` cannot encode natively, go the same way;
- dates, times and other non-JSON values take the client's own conversion (`JsonSerializer.default`:
  ISO 8601 text), never `orjson`'s, so a date is written as it always was.

Only this module knows which encoder runs: `dumps`/`loads` for the product's own bulk lines, and
`SERIALIZERS` for the client (`mailforce.es.client`).
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from elasticsearch.serializer import JsonSerializer, NdjsonSerializer

_DEFAULT = JsonSerializer().default
_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
# The client's own JSON settings (compact, UTF-8 as is), built once: the fallback.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False, default=_DEFAULT)


def dumps(value: Any) -> bytes:
    """`value` as compact UTF-8 JSON."""
    try:
        return orjson.dumps(value, default=_DEFAULT, option=_OPTIONS)
    except TypeError:  # orjson.JSONEncodeError: a lone surrogate, a huge integer
        return _ENCODER.encode(value).encode("utf-8", "surrogatepass")


def loads(data: bytes | str) -> Any:
    try:
        return orjson.loads(data)
    except ValueError:  # orjson.JSONDecodeError: e.g. a surrogate written through by `dumps`
        return json.loads(data)


class _Json(JsonSerializer):
    def json_dumps(self, data: Any) -> bytes:
        return dumps(data)

    def json_loads(self, data: bytes) -> Any:
        return loads(data)


class _Ndjson(NdjsonSerializer):
    def json_dumps(self, data: Any) -> bytes:
        return dumps(data)

    def json_loads(self, data: bytes) -> Any:
        return loads(data)


# The client's serializers by media type (the compatibility types follow these: elasticsearch-py).
SERIALIZERS = {"application/json": _Json(), "application/x-ndjson": _Ndjson()}
