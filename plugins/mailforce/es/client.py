"""The Elasticsearch client, built from an Airflow Connection's fields (the hook that reads the
Connection is `mailforce.es.hook`; this module imports nothing of Airflow, so the command-line tools
start without it).

Only this module knows how a client is made. The connection carries host, port, scheme, login and
password (basic auth); its extras may carry:

- ``api_key``: an API key (used instead of basic auth),
- ``verify_certs`` (bool, default true), ``ca_certs`` (path): TLS verification,
- ``request_timeout`` (seconds, default 60), ``max_retries`` (default 5),
- ``retry_backoff_base``/``retry_backoff_cap`` (seconds, default 1 and 30): the exponential backoff
  (with jitter) between two tries of a request answered 429/502/503/504 or timed out,
- ``engine``: which server speaks at the other end and so how the pinned 9.x client talks to it:
  ``"auto"`` (default; ``"elasticsearch"`` means the same): ask the server once (``GET /``) when the
  client is built; ``"es9"``: Elasticsearch 9.x (the client as it is); ``"es8"``: Elasticsearch 8.x
  (media types sent as ``compatible-with=8``); ``"opensearch"``: OpenSearch 2.x (plain JSON media
  types; OpenSearch sends no ``X-Elastic-Product``); ``"osmem"``: the embedded test engine (as
  OpenSearch).

Secrets are never logged: :func:`describe_options` is what log lines use.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from elastic_transport import ApiResponseMeta, HttpHeaders, Urllib3HttpNode

from mailforce.es.codec import SERIALIZERS

log = logging.getLogger(__name__)

DEFAULT_CONN_ID = "elasticsearch_default"
AUTO = "auto"
ENGINES = (AUTO, "elasticsearch", "es8", "es9", "opensearch", "osmem")
# Engines whose answers carry no X-Elastic-Product and which want plain JSON media types.
PLAIN_JSON_ENGINES = ("opensearch", "osmem")
CONNECTION_EXTRAS = frozenset({"api_key", "verify_certs", "ca_certs", "request_timeout", "max_retries", "engine", "scheme",
                               "retry_backoff_base", "retry_backoff_cap"})
DEFAULT_PORT = 9200
DEFAULT_HTTPS_PORT = 443  # Elastic Cloud (and most TLS front ends) listen on 443 when no port is given
DEFAULT_REQUEST_TIMEOUT_SECONDS = 60.0
DEFAULT_MAX_RETRIES = 5
DEFAULT_RETRY_BACKOFF_BASE = 1.0
DEFAULT_RETRY_BACKOFF_CAP = 30.0
RETRY_ON_STATUS = (429, 502, 503, 504)  # overload and gateways: worth another try

_PLAIN_TYPES = {
    "application/vnd.elasticsearch+json; compatible-with=9": "application/json",
    "application/vnd.elasticsearch+json; compatible-with=8": "application/json",
    "application/vnd.elasticsearch+x-ndjson; compatible-with=9": "application/x-ndjson",
    "application/vnd.elasticsearch+x-ndjson; compatible-with=8": "application/x-ndjson",
}


class Compat8HttpNode(Urllib3HttpNode):
    """Speaks to Elasticsearch 8.x: ``compatible-with=9`` becomes ``=8`` on the wire.

    Elasticsearch 8 refuses ``compatible-with=9`` with 400 ``media_type_header_exception``; client
    ``headers=`` cannot fix it, since each API method sets its own Accept/Content-Type.
    """

    def perform_request(self, method, target, body=None, headers=None, **kwargs):  # type: ignore[override]
        if headers:
            headers = HttpHeaders(headers)
            for name in ("accept", "content-type"):
                if headers.get(name):
                    headers[name] = headers[name].replace("compatible-with=9", "compatible-with=8")
        return super().perform_request(method, target, body=body, headers=headers, **kwargs)


class PlainJsonHttpNode(Urllib3HttpNode):
    """Speaks to OpenSearch 2.x and osmem-server: plain media types, no product header expected.

    The official client sends Elasticsearch's ``compatible-with`` media types (OpenSearch answers
    406) and checks that every 2xx answer carries ``X-Elastic-Product: Elasticsearch`` (raising
    ``UnsupportedProductError`` after the request has run); the client has no supported switch for
    that check, so this node marks the answers of the engine it was chosen for (by the server's own
    ``GET /`` answer or the connection's ``engine`` extra).
    """

    def perform_request(self, method, target, body=None, headers=None, **kwargs):  # type: ignore[override]
        plain = HttpHeaders()
        for name, value in (headers or {}).items():
            plain[name] = _PLAIN_TYPES.get(value, value)
        response = super().perform_request(method, target, body=body, headers=plain, **kwargs)
        meta, data = response.meta, response.body
        response_headers = HttpHeaders(meta.headers)
        response_headers["x-elastic-product"] = "Elasticsearch"
        content_type = response_headers.get("content-type", "application/json")
        response_headers["content-type"] = content_type.split(";")[0].strip() or "application/json"
        patched = ApiResponseMeta(
            status=meta.status,
            http_version=meta.http_version,
            headers=response_headers,
            duration=meta.duration,
            node=meta.node,
        )
        return type(response)(meta=patched, body=data)


OsmemHttpNode = PlainJsonHttpNode  # the name earlier code used
NODE_CLASSES = {"es8": Compat8HttpNode, "es9": None, "opensearch": PlainJsonHttpNode, "osmem": PlainJsonHttpNode}


@dataclass(frozen=True)
class ClientOptions:
    """What a client needs, read from a Connection; holds secrets, so it has no useful repr."""

    url: str
    engine: str = AUTO
    username: str | None = None
    password: str | None = None
    api_key: str | None = None
    verify_certs: bool = True
    ca_certs: str | None = None
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT_SECONDS
    max_retries: int = DEFAULT_MAX_RETRIES
    retry_backoff_base: float = DEFAULT_RETRY_BACKOFF_BASE
    retry_backoff_cap: float = DEFAULT_RETRY_BACKOFF_CAP

    def __repr__(self) -> str:
        return f"ClientOptions({describe_options(self)})"


def describe_options(options: ClientOptions) -> str:
    """A log-safe one-line description: never a password or key."""
    auth = "api-key" if options.api_key else ("basic" if options.username else "none")
    return f"url={options.url} engine={options.engine} auth={auth} verify_certs={options.verify_certs}"


def _as_bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "false", "0", "no"):
        return value.strip().lower() in ("true", "1", "yes")
    raise ValueError(f"connection extra {name!r} must be true or false, got {value!r}")


def options_from_connection(connection: Any) -> ClientOptions:
    """Turn an Airflow Connection (or anything with the same attributes) into client options."""
    extra = connection.extra_dejson or {}
    unknown = set(extra) - CONNECTION_EXTRAS
    if unknown:
        raise ValueError(f"unknown connection extras: {sorted(unknown)}")
    engine = str(extra.get("engine", AUTO)).lower()
    if engine not in ENGINES:
        raise ValueError(f"connection extra 'engine' must be one of {ENGINES}, got {engine!r}")
    host = connection.host or "localhost"
    scheme = extra.get("scheme") or connection.schema or "http"
    if "://" in host:  # a full URL in the host field
        parts = urlsplit(host)
        scheme, host = parts.scheme, parts.hostname or "localhost"
        port = parts.port or connection.port
    else:
        port = connection.port
    if scheme not in ("http", "https"):
        raise ValueError(f"connection scheme must be http or https, got {scheme!r}")
    port = port or (DEFAULT_HTTPS_PORT if scheme == "https" else DEFAULT_PORT)
    return ClientOptions(
        url=f"{scheme}://{host}:{port}",
        engine=engine,
        username=connection.login or None,
        password=connection.password or None,
        api_key=extra.get("api_key") or None,
        verify_certs=_as_bool(extra.get("verify_certs", True), "verify_certs"),
        ca_certs=extra.get("ca_certs") or None,
        request_timeout=float(extra.get("request_timeout", DEFAULT_REQUEST_TIMEOUT_SECONDS)),
        max_retries=int(extra.get("max_retries", DEFAULT_MAX_RETRIES)),
        retry_backoff_base=float(extra.get("retry_backoff_base", DEFAULT_RETRY_BACKOFF_BASE)),
        retry_backoff_cap=float(extra.get("retry_backoff_cap", DEFAULT_RETRY_BACKOFF_CAP)),
    )


def engine_of(info: dict[str, Any]) -> str:
    """The engine a ``GET /`` answer describes: ``es8``, ``es9`` or ``opensearch``."""
    version = info.get("version") or {}
    if str(version.get("distribution", "")).lower() == "opensearch":
        return "opensearch"
    number = str(version.get("number", ""))
    major = int(number.split(".")[0]) if number.split(".")[0].isdigit() else 0
    if major == 8:
        return "es8"
    if major >= 9:
        return "es9"
    raise ValueError(f"unsupported server: {version.get('distribution', 'elasticsearch')} {number or '?'} "
                     "(this product supports Elasticsearch 8.x/9.x and OpenSearch 2.x)")


def _client_kwargs(options: ClientOptions) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "request_timeout": options.request_timeout,
        "max_retries": options.max_retries,
        "retry_on_timeout": True,
        "retry_on_status": RETRY_ON_STATUS,
        "retry_backoff_base": options.retry_backoff_base,
        "retry_backoff_cap": options.retry_backoff_cap,
        "serializers": SERIALIZERS,
    }
    if options.api_key:
        kwargs["api_key"] = options.api_key
    elif options.username:
        kwargs["basic_auth"] = (options.username, options.password or "")
    if options.url.startswith("https"):
        kwargs["verify_certs"] = options.verify_certs
        if options.ca_certs:
            kwargs["ca_certs"] = options.ca_certs
    return kwargs


def probe_engine(options: ClientOptions) -> str:
    """Ask the server what it is (``GET /`` in plain JSON, which every supported version accepts)."""
    from elasticsearch import Elasticsearch

    with Elasticsearch(options.url, node_class=PlainJsonHttpNode, **_client_kwargs(options)) as probe:
        return engine_of(dict(probe.info()))


def build_client(options: ClientOptions):
    """An ``elasticsearch.Elasticsearch`` for the connection's engine (asked once when ``auto``),
    retrying timeouts and overload with exponential backoff."""
    from elasticsearch import Elasticsearch

    engine = options.engine
    if engine in (AUTO, "elasticsearch"):
        engine = probe_engine(options)
        log.info("Elasticsearch engine detected: %s", engine)
    kwargs = _client_kwargs(options)
    node_class = NODE_CLASSES[engine]
    if node_class is not None:
        kwargs["node_class"] = node_class
    client = Elasticsearch(options.url, **kwargs)
    client.mailforce_engine = engine  # type: ignore[attr-defined]
    return client
