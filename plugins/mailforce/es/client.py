"""The Elasticsearch client, built from an Airflow Connection.

Only this module knows how a client is made. The connection carries host, port, scheme, login and
password (basic auth); its extras may carry:

- ``api_key``: an API key (used instead of basic auth),
- ``verify_certs`` (bool, default true), ``ca_certs`` (path): TLS verification,
- ``request_timeout`` (seconds, default 60), ``max_retries`` (default 5),
- ``engine``: ``"elasticsearch"`` (default) or ``"osmem"`` for the embedded OpenSearch-compatible
  test engine, which needs plain JSON media types.

Secrets are never logged: :func:`describe_options` is what log lines use.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from airflow.sdk.bases.hook import BaseHook
from elastic_transport import ApiResponseMeta, HttpHeaders, Urllib3HttpNode

log = logging.getLogger(__name__)

DEFAULT_CONN_ID = "elasticsearch_default"
ENGINES = ("elasticsearch", "osmem")
CONNECTION_EXTRAS = frozenset({"api_key", "verify_certs", "ca_certs", "request_timeout", "max_retries", "engine", "scheme"})
DEFAULT_PORT = 9200
DEFAULT_REQUEST_TIMEOUT_SECONDS = 60.0
DEFAULT_MAX_RETRIES = 5
RETRY_ON_STATUS = (429, 502, 503, 504)  # overload and gateways: worth another try

_PLAIN_TYPES = {
    "application/vnd.elasticsearch+json; compatible-with=9": "application/json",
    "application/vnd.elasticsearch+json; compatible-with=8": "application/json",
    "application/vnd.elasticsearch+x-ndjson; compatible-with=9": "application/x-ndjson",
    "application/vnd.elasticsearch+x-ndjson; compatible-with=8": "application/x-ndjson",
}


class OsmemHttpNode(Urllib3HttpNode):
    """Speaks to osmem-server: plain media types.

    The official client sends Elasticsearch's ``compatible-with`` media types and expects the
    ``X-Elastic-Product`` response header; the embedded engine does neither.
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


@dataclass(frozen=True)
class ClientOptions:
    """What a client needs, read from a Connection; holds secrets, so it has no useful repr."""

    url: str
    engine: str = "elasticsearch"
    username: str | None = None
    password: str | None = None
    api_key: str | None = None
    verify_certs: bool = True
    ca_certs: str | None = None
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT_SECONDS
    max_retries: int = DEFAULT_MAX_RETRIES

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
    engine = str(extra.get("engine", "elasticsearch")).lower()
    if engine not in ENGINES:
        raise ValueError(f"connection extra 'engine' must be one of {ENGINES}, got {engine!r}")
    host = connection.host or "localhost"
    scheme = extra.get("scheme") or connection.schema or "http"
    if "://" in host:  # a full URL in the host field
        parts = urlsplit(host)
        scheme, host = parts.scheme, parts.hostname or "localhost"
        port = parts.port or connection.port or DEFAULT_PORT
    else:
        port = connection.port or DEFAULT_PORT
    if scheme not in ("http", "https"):
        raise ValueError(f"connection scheme must be http or https, got {scheme!r}")
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
    )


def build_client(options: ClientOptions):
    """An ``elasticsearch.Elasticsearch`` that retries on timeouts and overload."""
    from elasticsearch import Elasticsearch

    kwargs: dict[str, Any] = {
        "request_timeout": options.request_timeout,
        "max_retries": options.max_retries,
        "retry_on_timeout": True,
        "retry_on_status": RETRY_ON_STATUS,
    }
    if options.api_key:
        kwargs["api_key"] = options.api_key
    elif options.username:
        kwargs["basic_auth"] = (options.username, options.password or "")
    if options.url.startswith("https"):
        kwargs["verify_certs"] = options.verify_certs
        if options.ca_certs:
            kwargs["ca_certs"] = options.ca_certs
    if options.engine == "osmem":
        kwargs["node_class"] = OsmemHttpNode
    return Elasticsearch(options.url, **kwargs)


class MailforceElasticsearchHook(BaseHook):
    """An Airflow hook: builds the client once from an Airflow Connection and its extras.

    Used as a context manager it closes the client on exit::

        with MailforceElasticsearchHook(settings.conn_id) as es:
            es.count(index=...)
    """

    conn_name_attr = "elasticsearch_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = "elasticsearch"
    hook_name = "Mailforce Elasticsearch"

    def __init__(self, elasticsearch_conn_id: str = DEFAULT_CONN_ID, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.elasticsearch_conn_id = elasticsearch_conn_id
        self._client: Any = None

    def get_options(self) -> ClientOptions:
        return options_from_connection(self.get_connection(self.elasticsearch_conn_id))

    def get_conn(self):
        """The client (built on first use, then the same one)."""
        if self._client is None:
            options = self.get_options()
            log.info("Elasticsearch connection %r: %s", self.elasticsearch_conn_id, describe_options(options))
            # One line per HTTP request drowns the stage's own progress lines in task logs.
            logging.getLogger("elastic_transport.transport").setLevel(logging.WARNING)
            self._client = build_client(options)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self):
        return self.get_conn()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def test_connection(self) -> tuple[bool, str]:
        """What `airflow connections test` and the Connection form's Test button report."""
        try:
            info = self.get_conn().info()
        except Exception as error:  # the cause is the answer, not a crash
            return False, f"{type(error).__name__}: {error}"
        return True, f"connected to {info.get('version', {}).get('number', 'an unknown version')}"

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return {
            "hidden_fields": [],
            "relabeling": {"schema": "Scheme (http or https)"},
            "placeholders": {
                "host": "localhost or https://my-cluster.example:9243",
                "port": str(DEFAULT_PORT),
                "extra": '{"api_key": "...", "verify_certs": true, "ca_certs": "/path/ca.pem"}',
            },
        }
