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

from typing import Any

import orjson
from elasticsearch.serializer import JsonSerializer, NdjsonSerializer

_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
# The client's own serializer: its conversions of non-JSON values, and the fallback whole.
_CLIENT = JsonSerializer()


def dumps(value: Any) -> bytes:
    """`value` as compact UTF-8 JSON."""
    try:
        return orjson.dumps(value, default=_CLIENT.default, option=_OPTIONS)
    except TypeError:  # orjson.JSONEncodeError: a lone surrogate, a huge integer
        return _CLIENT.json_dumps(value)


def loads(data: bytes | str) -> Any:
    try:
        return orjson.loads(data)
    except ValueError:  # orjson.JSONDecodeError: e.g. a surrogate written through by `dumps`
        return _CLIENT.json_loads(data)


class _Orjson:
    """The client's serializers with this module's `dumps` and `loads`."""

    def json_dumps(self, data: Any) -> bytes:
        return dumps(data)

    def json_loads(self, data: bytes) -> Any:
        return loads(data)


class _Json(_Orjson, JsonSerializer):
    pass


class _Ndjson(_Orjson, NdjsonSerializer):
    pass


# The client's serializers by media type (the compatibility types follow these: elasticsearch-py).
SERIALIZERS = {"application/json": _Json(), "application/x-ndjson": _Ndjson()}
