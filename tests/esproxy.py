"""A real-HTTP proxy in front of osmem that stops hiding what real clusters do (issue 8, point 7).

osmem makes every write visible at once, accepts any client's media types, always sends
``X-Elastic-Product`` and never fails. ``EsProxy`` sits between a client and a real osmem process
(real HTTP on both sides, nothing mocked) and

* answers like Elasticsearch 9.x, Elasticsearch 8.x or OpenSearch 2.x in its version handshake
  (``flavour``), with the real servers' error bodies;
* records every request (``proxy.records``), so that ``unrefreshed_reads`` finds a search / count /
  scroll / point in time / delete-by-query on an index that follows a write to it with no refresh in
  between, and ``required_privileges`` derives the Elasticsearch privileges the calls need;
* injects seeded faults by rule (``FaultPlan``): 429 for a whole bulk or for chosen items (the other
  items really forwarded), 503 on a search, a connection dropped after the request was forwarded,
  an mget item error, partial shard results, latency. Every injected fault is logged.

Usage::

    with EsProxy(osmem_clone.url, flavour="es9", faults=FaultPlan([Rule(BULK_ITEM_429, items=[1])]),
                 seed=7) as proxy:
        client = Elasticsearch(proxy.url)
        ...
        assert unrefreshed_reads(proxy.records) == []
        assert proxy.fault_counts[BULK_ITEM_429] == 1

See docs/REAL_CLUSTERS.md for what each behaviour reproduces and where Elasticsearch documents it.
"""

from __future__ import annotations

import fnmatch
import gzip
import http.client
import json
import random
import re
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterable, Mapping, Sequence
from urllib.parse import parse_qsl, unquote, urlsplit

__all__ = [
    "EsProxy", "FaultPlan", "Rule", "Record", "BulkItem", "InjectedFault", "Violation",
    "unrefreshed_reads", "required_privileges", "missing_privileges", "CLUSTER",
    "BULK_429", "BULK_ITEM_429", "SEARCH_503", "DROP_AFTER_FORWARD", "MGET_ITEM_ERROR",
    "PARTIAL_SHARDS", "LATENCY", "FLAVOURS",
]

# ---------------------------------------------------------------------------------------------
# Flavours: what GET / answers and how the version headers are checked.

FLAVOURS = ("es9", "es8", "opensearch")

_ROOT = {
    "es9": {
        "name": "es-node-1", "cluster_name": "mailforce-test", "cluster_uuid": "T2BN0kY0QnOFFSd6oq2z1w",
        "version": {
            "number": "9.1.0", "build_flavor": "default", "build_type": "docker",
            "build_hash": "0000000000000000000000000000000000000000", "build_date": "2025-07-17T22:00:00.000Z",
            "build_snapshot": False, "lucene_version": "10.2.2",
            "minimum_wire_compatibility_version": "8.19.0", "minimum_index_compatibility_version": "8.0.0",
        },
        "tagline": "You Know, for Search",
    },
    "es8": {
        "name": "es-node-1", "cluster_name": "mailforce-test", "cluster_uuid": "T2BN0kY0QnOFFSd6oq2z1w",
        "version": {
            "number": "8.18.2", "build_flavor": "default", "build_type": "docker",
            "build_hash": "0000000000000000000000000000000000000000", "build_date": "2025-05-28T09:00:00.000Z",
            "build_snapshot": False, "lucene_version": "9.12.1",
            "minimum_wire_compatibility_version": "7.17.0", "minimum_index_compatibility_version": "7.0.0",
        },
        "tagline": "You Know, for Search",
    },
    "opensearch": {
        "name": "opensearch-node1", "cluster_name": "mailforce-test", "cluster_uuid": "T2BN0kY0QnOFFSd6oq2z1w",
        "version": {
            "distribution": "opensearch", "number": "2.19.1", "build_type": "tar",
            "build_hash": "0000000000000000000000000000000000000000", "build_date": "2025-02-27T01:16:47.726162386Z",
            "build_snapshot": False, "lucene_version": "9.12.1",
            "minimum_wire_compatibility_version": "7.10.0", "minimum_index_compatibility_version": "7.0.0",
        },
        "tagline": "The OpenSearch Project: https://opensearch.org/",
    },
}
# (current major, oldest major the REST compatibility layer accepts)
_MAJORS = {"es9": (9, 8), "es8": (8, 7)}
_COMPAT_RE = re.compile(r"compatible-with\s*=\s*(\d+)")
_VENDOR_RE = re.compile(r"application/vnd\.elasticsearch\+", re.I)
# Media types OpenSearch 2.x parses (XContentType): anything else with a body is a 406.
_OPENSEARCH_TYPES = {"application/json", "application/x-ndjson", "application/smile", "application/cbor",
                     "application/yaml", "text/plain"}


def _es_error(status: int, type_: str, reason: str, **extra: Any) -> dict:
    cause = {"type": type_, "reason": reason, **extra}
    return {"error": {"root_cause": [cause], **cause}, "status": status}


def _compat_version(value: str | None) -> int | None:
    if not value:
        return None
    m = _COMPAT_RE.search(value)
    return int(m.group(1)) if m else None


def _check_es_headers(flavour: str, accept: str | None, ctype: str | None, has_body: bool) -> dict | None:
    """Elasticsearch's RestCompatibleVersionHelper rules; None when the headers are acceptable."""
    current, oldest = _MAJORS[flavour]
    a, c = _compat_version(accept), _compat_version(ctype)
    av = current if a is None else a
    cv = current if c is None else c
    reason = None
    if not oldest <= av <= current:
        reason = f"Accept version must be either version {current} or {oldest}, but found {av}. Accept={accept}"
    elif has_body and not oldest <= cv <= current:
        reason = (f"Content-Type version must be either version {current} or {oldest}, but found {cv}. "
                  f"Content-Type={ctype}")
    elif has_body and cv != av:
        reason = ("A compatible version is required on both Content-Type and Accept headers if either one has "
                  "requested a compatible version and the compatible versions must match. "
                  f"Accept={accept}, Content-Type={ctype}")
    elif has_body and (a is None) != (c is None):
        reason = ("A compatible version is required on both Content-Type and Accept headers if either one has "
                  f"requested a compatible version. Accept={accept}, Content-Type={ctype}")
    if reason is None:
        return None
    outer = {"type": "media_type_header_exception",
             "reason": "Invalid media-type value on headers [Accept, Content-Type]"}
    return {"error": {"root_cause": [outer], **outer, "caused_by": {"type": "status_exception", "reason": reason}},
            "status": 400}


def _check_opensearch_headers(ctype: str | None, has_body: bool) -> dict | None:
    """OpenSearch's RestController: a body whose Content-Type it cannot parse is a 406."""
    if not has_body:
        return None
    if ctype is None:
        return {"error": "Content-Type header is missing", "status": 406}
    if ctype.split(";")[0].strip().lower() not in _OPENSEARCH_TYPES:
        return {"error": f"Content-Type header [{ctype}] is not supported", "status": 406}
    return None


# ---------------------------------------------------------------------------------------------
# Records.

CLUSTER = "_cluster"  # key of cluster privileges in required_privileges()

READ_OPS = frozenset({"search", "count", "msearch", "open_pit", "delete_by_query", "update_by_query"})
"""Reads that see only refreshed data (scroll pages and PIT searches read the snapshot their context
was opened with, so the opening request is the one checked)."""
DOC_WRITE_OPS = frozenset({"index", "create", "update", "delete", "bulk", "delete_by_query", "update_by_query"})


@dataclass(frozen=True)
class BulkItem:
    action: str  # index | create | update | delete
    index: str | None  # the line's _index, else the URL's
    id: str | None


@dataclass(frozen=True)
class Record:
    seq: int
    method: str
    path: str
    query: Mapping[str, str]
    op: str
    indices: tuple[str, ...]  # target indices ("" never; () means every index)
    status: int | None  # None: the connection was dropped, the client got no answer
    bulk_items: tuple[BulkItem, ...] = ()
    rejected_items: tuple[int, ...] = ()  # bulk item positions answered 429 by the proxy (not forwarded)
    forwarded: bool = True  # False when the proxy answered without asking the server
    fault: str | None = None
    pit: bool = False  # a search inside a point in time
    opens_scroll: bool = False  # a search with ?scroll=

    @property
    def refresh(self) -> str | None:
        value = self.query.get("refresh")
        if value is None:
            return None
        return value or "true"

    @property
    def refreshes_after_write(self) -> bool:
        return self.refresh in ("true", "wait_for")

    @property
    def written_indices(self) -> tuple[str, ...]:
        if not self.forwarded or self.op not in DOC_WRITE_OPS:
            return ()
        if self.op == "bulk":
            return tuple(dict.fromkeys(item.index for pos, item in enumerate(self.bulk_items)
                                       if item.index and pos not in self.rejected_items))
        return self.indices

    def __str__(self) -> str:
        q = "&".join(f"{k}={v}" for k, v in self.query.items())
        return f"#{self.seq} {self.method} {self.path}{'?' + q if q else ''} [{self.op}] -> {self.status}"


def _split_indices(segment: str) -> tuple[str, ...]:
    return tuple(p for p in (unquote(s).strip() for s in segment.split(",")) if p and not p.startswith("-"))


def classify(method: str, path: str, query: Mapping[str, str], body: Any) -> tuple[str, tuple[str, ...]]:
    """(operation kind, target indices) of a request, as Elasticsearch's REST layer routes it."""
    segs = [s for s in path.split("/") if s]
    if not segs:
        return "info", ()
    s0 = segs[0]
    if s0.startswith("_"):
        rest, idx = segs[1:], ()
    else:
        idx, rest = _split_indices(s0), segs[1:]
        s0 = rest[0] if rest else ""
        rest = rest[1:]
    if s0 == "":
        return {"PUT": "create_index", "HEAD": "exists", "GET": "get_index", "DELETE": "delete_index"}.get(
            method, "other"), idx
    simple = {"_bulk": "bulk", "_count": "count", "_msearch": "msearch", "_mget": "mget", "_refresh": "refresh",
              "_flush": "flush", "_forcemerge": "forcemerge", "_delete_by_query": "delete_by_query",
              "_update_by_query": "update_by_query", "_create": "create", "_update": "update",
              "_field_caps": "field_caps", "_stats": "stats", "_cat": "cat", "_nodes": "nodes", "_tasks": "tasks"}
    if s0 == "_search":
        if rest[:1] == ["scroll"]:
            return ("clear_scroll" if method == "DELETE" else "scroll"), idx
        return "search", idx
    if s0 == "_pit":
        return ("close_pit" if method == "DELETE" else "open_pit"), idx
    if s0 == "_doc":
        if method in ("PUT", "POST"):
            return ("create" if query.get("op_type") == "create" else "index"), idx
        return {"GET": "get", "HEAD": "exists_doc", "DELETE": "delete"}.get(method, "other"), idx
    if s0 == "_source":
        return ("exists_doc" if method == "HEAD" else "get"), idx
    if s0 == "_mapping" or s0 == "_mappings":
        return ("get_mapping" if method == "GET" else "put_mapping"), idx
    if s0 == "_settings":
        return ("get_settings" if method == "GET" else "put_settings"), idx
    if s0 in ("_alias", "_aliases"):
        if method == "GET":
            return "get_alias", idx
        if method == "HEAD":
            return "exists_alias", idx
        if method == "DELETE":
            return "delete_alias", idx
        return ("update_aliases" if not idx else "put_alias"), idx
    if s0 in ("_index_template", "_template", "_component_template"):
        return {"GET": "get_index_template", "HEAD": "exists_index_template",
                "DELETE": "delete_index_template"}.get(method, "put_index_template"), idx
    if s0 == "_cluster":
        return "cluster_" + (rest[0] if rest else "other"), idx
    return simple.get(s0, "other"), idx


def _parse_bulk(body: bytes) -> list[tuple[BulkItem, list[bytes]]]:
    """Bulk NDJSON as (item, [action line, source line?]) in order."""
    lines = [ln for ln in body.split(b"\n") if ln.strip()]
    out, i = [], 0
    while i < len(lines):
        action_line = json.loads(lines[i])
        (action, meta), = action_line.items()
        meta = meta or {}
        item = BulkItem(action, meta.get("_index"), None if meta.get("_id") is None else str(meta.get("_id")))
        n = 1 if action == "delete" else 2
        out.append((item, lines[i:i + n]))
        i += n
    return out


# ---------------------------------------------------------------------------------------------
# Analyzers.

@dataclass(frozen=True)
class Violation:
    index: str
    write: Record
    read: Record

    def __str__(self) -> str:
        return f"{self.read} reads {self.index!r} written by {self.write} with no refresh in between"


def _covers(target: str, index: str) -> bool:
    if target in ("_all", "*"):
        return True
    if "*" in target or "?" in target:
        return fnmatch.fnmatchcase(index, target)
    return target == index


def unrefreshed_reads(records: Iterable[Record]) -> list[Violation]:
    """Searches/counts/scroll or PIT openings/delete-by-query of an index written since its last refresh.

    A refresh is ``POST /<index>/_refresh`` (answered 2xx), ``/_refresh`` (every index), or a write with
    ``?refresh=true|wait_for`` (which refreshes what it wrote). Get and mget are real time and never
    flagged. Index names are compared exactly, wildcards in a read or refresh target are expanded
    against the written names, ``_all``/no index means every index; aliases are not resolved.
    """
    dirty: dict[str, Record] = {}
    out: list[Violation] = []
    for r in records:
        if not r.forwarded:
            continue
        if r.op in READ_OPS or (r.op == "search" and not r.pit):
            targets = r.indices or ("_all",)
            for name, write in list(dirty.items()):
                if any(_covers(t, name) for t in targets):
                    out.append(Violation(name, write, r))
        if r.op == "refresh" and r.status is not None and 200 <= r.status < 300:
            targets = r.indices or ("_all",)
            for name in [n for n in dirty if any(_covers(t, n) for t in targets)]:
                del dirty[name]
        for name in r.written_indices:
            if r.refreshes_after_write and r.status is not None and r.status < 300:
                dirty.pop(name, None)
            else:
                dirty[name] = r
    return out


_OP_PRIVILEGES: dict[str, tuple[str, ...]] = {
    "search": ("read",), "count": ("read",), "msearch": ("read",), "mget": ("read",), "get": ("read",),
    "exists_doc": ("read",), "open_pit": ("read",), "scroll": ("read",), "field_caps": ("read",),
    "exists": ("view_index_metadata",), "get_index": ("view_index_metadata",),
    "get_mapping": ("view_index_metadata",), "get_settings": ("view_index_metadata",),
    "get_alias": ("view_index_metadata",), "exists_alias": ("view_index_metadata",),
    "create_index": ("create_index",), "delete_index": ("delete_index",),
    "put_mapping": ("manage",), "put_settings": ("manage",), "put_alias": ("manage",), "delete_alias": ("manage",),
    "refresh": ("maintenance",), "flush": ("maintenance",), "forcemerge": ("maintenance",),
    "index": ("index",), "update": ("index",), "create": ("create_doc",), "delete": ("delete",),
    "delete_by_query": ("read", "delete"), "update_by_query": ("read", "index"), "stats": ("monitor",),
}
_CLUSTER_PRIVILEGES: dict[str, str] = {
    "info": "monitor", "cluster_health": "monitor", "cluster_state": "monitor", "cluster_stats": "monitor",
    "cat": "monitor", "nodes": "monitor", "tasks": "monitor", "get_index_template": "monitor",
    "exists_index_template": "monitor", "put_index_template": "manage_index_templates",
    "delete_index_template": "manage_index_templates",
}
_BULK_PRIVILEGES = {"index": "index", "update": "index", "create": "create_doc", "delete": "delete"}


def required_privileges(records: Iterable[Record]) -> dict[str, set[str]]:
    """{index: least index privileges} for what was called, plus {CLUSTER: cluster privileges}.

    Names are Elasticsearch's security privileges (the least one granting each action); compare
    with a role through ``missing_privileges``. Scroll pages are attributed to the indices of the
    search that opened them; closing a scroll or a PIT needs no index privilege. A bulk that
    auto-creates an index would also need ``create_index``/``auto_configure``: not derived here.
    """
    out: dict[str, set[str]] = {}
    for r in records:
        if r.op in _CLUSTER_PRIVILEGES:
            out.setdefault(CLUSTER, set()).add(_CLUSTER_PRIVILEGES[r.op])
        if r.op == "bulk":
            for item in r.bulk_items:
                if item.index:
                    out.setdefault(item.index, set()).add(_BULK_PRIVILEGES.get(item.action, "write"))
            continue
        for name in r.indices:
            for priv in _OP_PRIVILEGES.get(r.op, ()):
                out.setdefault(name, set()).add(priv)
    return out


_ALL_INDEX = frozenset({"read", "view_index_metadata", "create_index", "delete_index", "manage", "maintenance",
                        "monitor", "index", "create", "create_doc", "delete", "write", "auto_configure"})
_INDEX_IMPLIES: dict[str, frozenset[str]] = {
    "all": _ALL_INDEX,
    "write": frozenset({"index", "create", "create_doc", "delete"}),
    "index": frozenset({"create", "create_doc"}),
    "create": frozenset({"create_doc"}),
    "manage": frozenset({"monitor", "view_index_metadata", "maintenance", "create_index", "delete_index",
                         "auto_configure"}),
}
_CLUSTER_IMPLIES: dict[str, frozenset[str]] = {
    "all": frozenset({"monitor", "manage", "manage_index_templates"}),
    "manage": frozenset({"monitor", "manage_index_templates"}),
}


def _expand(granted: Iterable[str], implies: Mapping[str, frozenset[str]]) -> set[str]:
    out = set()
    for g in granted:
        out.add(g)
        out |= implies.get(g, frozenset())
    return out


def missing_privileges(required: Mapping[str, set[str]], granted: Mapping[str, Iterable[str]]) -> dict[str, set[str]]:
    """What ``required`` needs that a role ``granted`` ({index pattern or CLUSTER: privileges}) lacks.

    Applies Elasticsearch's documented inclusions (``all`` > everything; ``write`` > index, create,
    create_doc, delete; ``manage`` > monitor, view_index_metadata, maintenance, create/delete index);
    index patterns are matched with shell wildcards as role index names are.
    """
    out: dict[str, set[str]] = {}
    for name, need in required.items():
        if name == CLUSTER:
            have = _expand(granted.get(CLUSTER, ()), _CLUSTER_IMPLIES)
        else:
            have = set()
            for pattern, privs in granted.items():
                if pattern != CLUSTER and fnmatch.fnmatchcase(name, pattern):
                    have |= _expand(privs, _INDEX_IMPLIES)
        lacking = set(need) - have
        if lacking:
            out[name] = lacking
    return out


# ---------------------------------------------------------------------------------------------
# Faults.

BULK_429 = "bulk_429"
BULK_ITEM_429 = "bulk_item_429"
SEARCH_503 = "search_503"
DROP_AFTER_FORWARD = "drop_after_forward"
MGET_ITEM_ERROR = "mget_item_error"
PARTIAL_SHARDS = "partial_shards"
LATENCY = "latency"

_APPLIES: dict[str, frozenset[str] | None] = {
    BULK_429: frozenset({"bulk"}),
    BULK_ITEM_429: frozenset({"bulk"}),
    SEARCH_503: frozenset({"search", "count", "scroll", "msearch", "open_pit"}),
    DROP_AFTER_FORWARD: None,  # any operation; by default scroll pages and searches opening a scroll
    MGET_ITEM_ERROR: frozenset({"mget"}),
    PARTIAL_SHARDS: frozenset({"search", "count", "scroll", "msearch"}),
    LATENCY: None,
}


@dataclass
class Rule:
    """One fault rule. A request matches when its operation kind is in ``op`` (default: every kind the
    fault applies to; for DROP_AFTER_FORWARD scroll pages and searches with ``?scroll=``), one of its
    target indices matches the ``index`` shell pattern, and ``path`` (a regex) is found in
    ``"<METHOD> <path>?<query>"``. A matching request fires the rule when it is the ``nth`` match
    (1-based; None: any match), the rule fired fewer than ``max_count`` times, and a draw from the
    proxy's seeded random is below ``probability``.
    """

    fault: str
    op: str | Iterable[str] | None = None
    index: str | None = None
    path: str | None = None
    probability: float = 1.0
    nth: int | None = None
    max_count: int | None = None
    items: Sequence[int] | None = None  # BULK_ITEM_429 / MGET_ITEM_ERROR: 0-based positions
    item_probability: float = 0.5  # BULK_ITEM_429 when items is None: each item rejected with this chance
    latency_ms: int = 0  # LATENCY
    drop_hits: float = 0.0  # PARTIAL_SHARDS: share of the hits removed from a search page (the failed shard's)

    def __post_init__(self) -> None:
        if self.fault not in _APPLIES:
            raise ValueError(f"unknown fault {self.fault!r}; one of {sorted(_APPLIES)}")
        ops = {self.op} if isinstance(self.op, str) else (set(self.op) if self.op is not None else None)
        allowed = _APPLIES[self.fault]
        if ops is not None and allowed is not None and not ops <= allowed:
            raise ValueError(f"{self.fault} does not apply to {sorted(ops - allowed)}; it applies to {sorted(allowed)}")
        self._ops = ops
        self._path = re.compile(self.path) if self.path else None

    def matches(self, method: str, target: str, op: str, indices: Sequence[str], query: Mapping[str, str]) -> bool:
        if self._ops is not None:
            if op not in self._ops:
                return False
        elif self.fault == DROP_AFTER_FORWARD:
            if not (op == "scroll" or (op == "search" and "scroll" in query)):
                return False
        elif _APPLIES[self.fault] is not None and op not in _APPLIES[self.fault]:
            return False
        if self.index is not None and not any(fnmatch.fnmatchcase(i, self.index) for i in indices):
            return False
        if self._path is not None and not self._path.search(f"{method} {target}"):
            return False
        return True


@dataclass
class FaultPlan:
    rules: list[Rule] = field(default_factory=list)

    def __init__(self, rules: Iterable[Rule] = ()) -> None:
        self.rules = list(rules)


@dataclass(frozen=True)
class InjectedFault:
    seq: int  # the Record.seq of the request
    kind: str
    rule: int  # position of the rule in the plan
    method: str
    path: str
    op: str
    indices: tuple[str, ...]
    detail: Mapping[str, Any]


def _rejected_bulk_body(nbytes: int) -> dict:
    limit = 53687091
    return _es_error(
        429, "es_rejected_execution_exception",
        f"rejected execution of coordinating operation [coordinating_and_primary_bytes={limit - nbytes + 1}, "
        f"replica_bytes=0, all_bytes={limit + 1}, coordinating_operation_bytes={nbytes}, "
        f"max_coordinating_and_primary_bytes={limit}]")


def _rejected_item(item: BulkItem) -> dict:
    reason = ("rejected execution of primary operation [shard_detail=[" + str(item.index) +
              "][0][es-node-1], shard_primary_bytes=0, shard_operation_bytes=1024, "
              "shard_max_coordinating_and_primary_bytes=0]")
    return {item.action: {"_index": item.index, "_id": item.id, "status": 429,
                          "error": {"type": "es_rejected_execution_exception", "reason": reason}}}


def _search_503(index: str) -> dict:
    cause = {"type": "no_shard_available_action_exception", "reason": None, "index_uuid": "_na_",
             "shard": "0", "index": index}
    return {"error": {"root_cause": [cause], "type": "search_phase_execution_exception",
                      "reason": "all shards failed", "phase": "query", "grouped": True,
                      "failed_shards": [{"shard": 0, "index": index, "node": None, "reason": cause}]},
            "status": 503}


def _shard_failure(index: str) -> dict:
    return {"shard": 1, "index": index, "node": "Qk8xRWbWS3aQ6ZJ5b0dLhw",
            "reason": {"type": "node_not_connected_exception",
                       "reason": "[es-node-2][127.0.0.1:9301] Node not connected"}}


# ---------------------------------------------------------------------------------------------
# The proxy.

_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade",
        "content-length", "host", "accept-encoding", "content-encoding"}


class _Dropped(Exception):
    pass


class EsProxy:
    """A threaded HTTP proxy on 127.0.0.1 in front of ``upstream_url``; a context manager."""

    def __init__(self, upstream_url: str, flavour: str = "es9", faults: FaultPlan | None = None,
                 seed: int = 0, upstream_timeout: float = 60.0) -> None:
        if flavour not in FLAVOURS:
            raise ValueError(f"flavour must be one of {FLAVOURS}, not {flavour!r}")
        parts = urlsplit(upstream_url)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 9200)
        self.flavour = flavour
        self.plan = faults or FaultPlan()
        self.seed = seed
        self.upstream_timeout = upstream_timeout
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._seq = 0
        self._records: list[Record] = []
        self._faults: list[InjectedFault] = []
        self._matched = [0] * len(self.plan.rules)
        self._fired = [0] * len(self.plan.rules)
        self._contexts: dict[str, tuple[str, ...]] = {}  # scroll / pit id -> indices
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._sockets: set[socket.socket] = set()

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> "EsProxy":
        proxy = self

        class Server(ThreadingHTTPServer):
            daemon_threads = False
            block_on_close = True

            def process_request(self, request, client_address):  # type: ignore[override]
                with proxy._lock:
                    proxy._sockets.add(request)
                super().process_request(request, client_address)

            def shutdown_request(self, request):  # type: ignore[override]
                with proxy._lock:
                    proxy._sockets.discard(request)
                super().shutdown_request(request)

        class Handler(_Handler):
            owner = proxy

        self._server = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="esproxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        with self._lock:
            sockets = list(self._sockets)
        for s in sockets:  # idle keep-alive connections: wake their handler threads
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._server.server_close()  # joins the handler threads
        assert self._thread is not None
        self._thread.join(5)
        self._server = None

    def __enter__(self) -> "EsProxy":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "the proxy is not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # -- what happened -----------------------------------------------------------------------
    @property
    def records(self) -> list[Record]:
        with self._lock:
            return list(self._records)

    @property
    def faults(self) -> list[InjectedFault]:
        with self._lock:
            return list(self._faults)

    @property
    def fault_counts(self) -> Counter:
        with self._lock:
            return Counter(f.kind for f in self._faults)

    def clear(self) -> None:
        """Forget the records (not the faults, the rule counters or the random state)."""
        with self._lock:
            self._records.clear()

    # -- internals ---------------------------------------------------------------------------
    def _next_seq(self) -> int:
        with self._lock:
            self._seq += 1
            return self._seq

    def _choose(self, method: str, target: str, op: str, indices: Sequence[str],
                query: Mapping[str, str]) -> tuple[list[tuple[int, Rule]], tuple[int, Rule] | None]:
        """(latency rules that fire, the first other rule that fires: one fault per request besides latency)."""
        latencies: list[tuple[int, Rule]] = []
        chosen = None
        with self._lock:
            for i, rule in enumerate(self.plan.rules):
                if not rule.matches(method, target, op, indices, query):
                    continue
                self._matched[i] += 1  # every matching request counts, whichever rule fires
                if chosen is not None and rule.fault != LATENCY:
                    continue
                if rule.nth is not None and self._matched[i] != rule.nth:
                    continue
                if rule.max_count is not None and self._fired[i] >= rule.max_count:
                    continue
                if rule.probability < 1.0 and self._random.random() >= rule.probability:
                    continue
                self._fired[i] += 1
                if rule.fault == LATENCY:
                    latencies.append((i, rule))
                else:
                    chosen = (i, rule)
        return latencies, chosen

    def _log(self, seq: int, kind: str, rule: int, method: str, path: str, op: str, indices: Sequence[str],
             **detail: Any) -> None:
        with self._lock:
            self._faults.append(InjectedFault(seq, kind, rule, method, path, op, tuple(indices), detail))

    def _record(self, rec: Record) -> None:
        with self._lock:
            self._records.append(rec)
            self._records.sort(key=lambda r: r.seq)

    def _forward(self, method: str, target: str, headers: Mapping[str, str], body: bytes
                 ) -> tuple[int, list[tuple[str, str]], bytes]:
        conn = http.client.HTTPConnection(*self.upstream, timeout=self.upstream_timeout)
        try:
            send = {k: v for k, v in headers.items() if k.lower() not in _HOP}
            if body or method in ("POST", "PUT"):
                send["Content-Length"] = str(len(body))
            conn.request(method, target, body=body or None, headers=send)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, [(k, v) for k, v in resp.getheaders() if k.lower() not in _HOP], data
        finally:
            conn.close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # TCP_NODELAY, as Elasticsearch's HTTP layer (http.tcp.no_delay defaults to true): an answer is
    # written as headers then body, and with Nagle's algorithm the body would wait for the client's
    # delayed ACK of the headers (40 ms on Linux) on every request.
    disable_nagle_algorithm = True
    owner: EsProxy

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
        pass

    def do_GET(self) -> None:
        self._handle()

    do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_GET

    # -- reply helpers -------------------------------------------------------------------
    def _reply(self, status: int, body: bytes | dict, headers: Sequence[tuple[str, str]] = ()) -> None:
        p = self.owner
        if isinstance(body, dict):
            body = json.dumps(body, separators=(",", ":")).encode()
            headers = [("Content-Type", "application/json; charset=UTF-8")]
        out = [(k, v) for k, v in headers if k.lower() != "x-elastic-product"]
        if p.flavour != "opensearch":
            out.append(("X-Elastic-Product", "Elasticsearch"))
        self.send_response(status)
        for k, v in out:
            self.send_header(k, v)
        self.send_header("Content-Length", "0" if self.command == "HEAD" else str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # -- the request -----------------------------------------------------------------------
    def _handle(self) -> None:
        p = self.owner
        seq = p._next_seq()
        method = self.command
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if body and (self.headers.get("Content-Encoding") or "").lower() == "gzip":
            body = gzip.decompress(body)
        parts = urlsplit(self.path)
        path = parts.path or "/"
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        target = path + ("?" + parts.query if parts.query else "")
        accept, ctype = self.headers.get("Accept"), self.headers.get("Content-Type")
        parsed: Any = None
        if body and not path.endswith(("_bulk", "_msearch")):
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = None
        op, indices = classify(method, path, query, parsed)
        pit = op == "search" and isinstance(parsed, dict) and isinstance(parsed.get("pit"), dict)
        indices = self._context_indices(op, indices, query, parsed, path)
        bulk: list[tuple[BulkItem, list[bytes]]] = []
        if op == "bulk" and body:
            try:
                bulk = _parse_bulk(body)
            except (ValueError, AttributeError):
                bulk = []
            default = indices[0] if len(indices) == 1 else None  # the URL's index, for lines without _index
            bulk = [(BulkItem(item.action, item.index or default, item.id), lines) for item, lines in bulk]
            indices = tuple(dict.fromkeys([*indices, *(item.index for item, _ in bulk if item.index)]))
        if op == "mget" and isinstance(parsed, dict):
            indices = tuple(dict.fromkeys([*indices, *(d.get("_index") for d in parsed.get("docs", [])
                                                       if isinstance(d, dict) and d.get("_index"))]))
        if op == "msearch" and body:
            indices = tuple(dict.fromkeys([*indices, *_msearch_indices(body)]))
        base = dict(seq=seq, method=method, path=path, query=query, op=op, indices=indices,
                    bulk_items=tuple(b[0] for b in bulk), pit=pit,
                    opens_scroll=op == "search" and "scroll" in query)

        # 1. the version handshake of the flavour
        if p.flavour == "opensearch":
            error = _check_opensearch_headers(ctype, bool(body))
        else:
            error = _check_es_headers(p.flavour, accept, ctype, bool(body))
        if error is not None:
            p._record(Record(**base, status=error["status"], forwarded=False))
            return self._reply(error["status"], error)
        if op == "info":
            p._record(Record(**base, status=200, forwarded=False))
            return self._reply(200, _ROOT[p.flavour])

        # 2. faults
        latencies, chosen = p._choose(method, target, op, indices, query)
        for i, rule in latencies:
            p._log(seq, LATENCY, i, method, path, op, indices, ms=rule.latency_ms)
            time.sleep(rule.latency_ms / 1000)
        kind = chosen[1].fault if chosen else None
        rule = chosen[1] if chosen else None
        first = indices[0] if indices else "_all"
        if kind == BULK_429:
            p._log(seq, kind, chosen[0], method, path, op, indices, items=len(bulk))
            p._record(Record(**base, status=429, forwarded=False, fault=kind,
                             rejected_items=tuple(range(len(bulk)))))
            return self._reply(429, _rejected_bulk_body(len(body)))
        if kind == SEARCH_503:
            p._log(seq, kind, chosen[0], method, path, op, indices)
            p._record(Record(**base, status=503, forwarded=False, fault=kind))
            return self._reply(503, _search_503(first))

        headers = {k: _plain_media_type(v) if k.lower() in ("accept", "content-type") else v
                   for k, v in self.headers.items()}
        rejected: tuple[int, ...] = ()
        if kind == BULK_ITEM_429 and bulk:
            if rule.items is not None:
                rejected = tuple(sorted(i for i in set(rule.items) if 0 <= i < len(bulk)))
            else:
                with p._lock:
                    rejected = tuple(i for i in range(len(bulk)) if p._random.random() < rule.item_probability)
            if not rejected:
                kind = None
            else:
                p._log(seq, kind, chosen[0], method, path, op, indices, positions=list(rejected),
                       ids=[bulk[i][0].id for i in rejected])
                if len(rejected) == len(bulk):
                    p._record(Record(**base, status=200, forwarded=False, fault=kind, rejected_items=rejected))
                    return self._reply(200, {"errors": True, "took": 0,
                                             "items": [_rejected_item(b[0]) for b in bulk]})
                body = b"".join(line + b"\n" for pos, (_, lines) in enumerate(bulk)
                                if pos not in rejected for line in lines)
        elif kind == BULK_ITEM_429:
            kind = None

        try:
            status, rheaders, data = p._forward(method, target, headers, body)
        except OSError as exc:
            p._record(Record(**base, status=502, forwarded=False, fault=kind, rejected_items=rejected))
            return self._reply(502, _es_error(502, "proxy_upstream_exception", str(exc)))

        if kind == DROP_AFTER_FORWARD:
            p._log(seq, kind, chosen[0], method, path, op, indices, upstream_status=status)
            p._record(Record(**base, status=None, fault=kind))
            self._remember_contexts(op, indices, data, status)
            return self._drop()

        if (kind == PARTIAL_SHARDS and 200 <= status < 300 and op in ("search", "scroll")
                and query.get("allow_partial_search_results") == "false"):
            # What Elasticsearch does when partial results are refused: the whole search fails.
            p._log(seq, kind, chosen[0], method, path, op, indices, refused=True)
            p._record(Record(**base, status=503, fault=kind))
            return self._reply(503, {"error": {
                "root_cause": [_shard_failure(first)["reason"]], "type": "search_phase_execution_exception",
                "reason": "Partial shards failure", "phase": "query", "grouped": True,
                "failed_shards": [_shard_failure(first)]}, "status": 503})
        if kind is not None and 200 <= status < 300 and data:
            data = self._rewrite(seq, kind, chosen[0], rule, base, bulk, rejected, data)
        self._remember_contexts(op, indices, data, status)
        p._record(Record(**base, status=status, fault=kind, rejected_items=rejected))
        self._reply(status, data, rheaders)

    def _rewrite(self, seq: int, kind: str, rule_no: int, rule: Rule, base: dict,
                 bulk: list[tuple[BulkItem, list[bytes]]], rejected: tuple[int, ...], data: bytes) -> bytes:
        p = self.owner
        method, path, op, indices = base["method"], base["path"], base["op"], base["indices"]
        doc = json.loads(data)
        if kind == BULK_ITEM_429:
            upstream_items = iter(doc.get("items", []))
            doc["items"] = [_rejected_item(item) if pos in rejected else next(upstream_items)
                            for pos, (item, _) in enumerate(bulk)]
            doc["errors"] = True
        elif kind == MGET_ITEM_ERROR:
            docs = doc.get("docs", [])
            if docs:
                if rule.items is not None:
                    positions = sorted(i for i in set(rule.items) if 0 <= i < len(docs))
                else:
                    with p._lock:
                        positions = [p._random.randrange(len(docs))]
                for pos in positions:
                    old = docs[pos]
                    index = old.get("_index")
                    docs[pos] = {"_index": index, "_id": old.get("_id"), "error": {
                        "root_cause": [{"type": "no_shard_available_action_exception",
                                        "reason": f"No shard available for [get [{index}][{old.get('_id')}]: "
                                                  "routing [null]]", "index_uuid": "_na_", "shard": "0",
                                        "index": index}],
                        "type": "no_shard_available_action_exception",
                        "reason": f"No shard available for [get [{index}][{old.get('_id')}]: routing [null]]",
                        "index_uuid": "_na_", "shard": "0", "index": index}}
                p._log(seq, kind, rule_no, method, path, op, indices, positions=positions,
                       ids=[docs[i]["_id"] for i in positions])
        elif kind == PARTIAL_SHARDS and op == "msearch":
            # One search of the batch lost a shard. Each search of an _msearch says in its header
            # whether it accepts partial results; one that refuses them is answered with the error
            # Elasticsearch gives (the other searches are answered as usual).
            answers = doc.get("responses") or []
            if answers:
                with p._lock:
                    position = p._random.randrange(len(answers))
                first = indices[0] if indices else "_all"
                answers[position] = {"error": {
                    "root_cause": [_shard_failure(first)["reason"]], "type": "search_phase_execution_exception",
                    "reason": "Partial shards failure", "phase": "query", "grouped": True,
                    "failed_shards": [_shard_failure(first)]}, "status": 503}
                p._log(seq, kind, rule_no, method, path, op, indices, positions=[position], refused=True)
        elif kind == PARTIAL_SHARDS:
            first = indices[0] if indices else "_all"
            doc["_shards"] = {"total": 2, "successful": 1, "skipped": 0, "failed": 1,
                              "failures": [_shard_failure(first)]}
            dropped: list[str] = []
            hits = doc.get("hits")
            if isinstance(hits, dict) and rule.drop_hits > 0:
                keep = []
                with p._lock:
                    for h in hits.get("hits", []):
                        (dropped.append(h.get("_id")) if p._random.random() < rule.drop_hits else keep.append(h))
                hits["hits"] = keep
                total = hits.get("total")
                if isinstance(total, dict) and isinstance(total.get("value"), int):
                    total["value"] = max(0, total["value"] - len(dropped))
            if rule.drop_hits > 0 and isinstance(doc.get("count"), int):
                before = doc["count"]
                doc["count"] = int(before * (1 - rule.drop_hits))
                dropped = [f"{before - doc['count']} counted documents"]
            p._log(seq, kind, rule_no, method, path, op, indices, dropped=dropped)
        return json.dumps(doc, separators=(",", ":")).encode()

    # -- scroll and point-in-time contexts -------------------------------------------------
    def _context_indices(self, op: str, indices: tuple[str, ...], query: Mapping[str, str], parsed: Any,
                         path: str) -> tuple[str, ...]:
        p = self.owner
        key = None
        if op in ("scroll", "clear_scroll"):
            key = query.get("scroll_id")
            if key is None and isinstance(parsed, dict):
                sid = parsed.get("scroll_id")
                key = sid[0] if isinstance(sid, list) and sid else sid
            if key is None:
                tail = path.rstrip("/").split("/")
                key = unquote(tail[-1]) if len(tail) > 3 else None
        elif op in ("search", "close_pit") and isinstance(parsed, dict):
            pit = parsed.get("pit") if op == "search" else parsed
            if isinstance(pit, dict):
                key = pit.get("id")
        if key is None:
            return indices
        with p._lock:
            return p._contexts.get(key, indices)

    def _remember_contexts(self, op: str, indices: tuple[str, ...], data: bytes, status: int) -> None:
        if not (200 <= status < 300) or op not in ("search", "scroll", "open_pit") or not data:
            return
        try:
            doc = json.loads(data)
        except ValueError:
            return
        if not isinstance(doc, dict):
            return
        p = self.owner
        with p._lock:
            for key in (doc.get("_scroll_id"), doc.get("pit_id"), doc.get("id") if op == "open_pit" else None):
                if isinstance(key, str):
                    p._contexts.setdefault(key, indices)


def _plain_media_type(value: str) -> str:
    """The flavour check is done: osmem gets the plain media type (it refuses compatible-with=8 bodies)."""
    m = re.match(r"\s*application/vnd\.elasticsearch\+([\w.-]+)", value, re.I)
    return f"application/{m.group(1)}" if m else value


def _msearch_indices(body: bytes) -> list[str]:
    out: list[str] = []
    lines = [ln for ln in body.split(b"\n") if ln.strip()]
    for header in lines[0::2]:
        try:
            h = json.loads(header)
        except ValueError:
            continue
        idx = h.get("index") if isinstance(h, dict) else None
        if isinstance(idx, str):
            out.extend(_split_indices(idx))
        elif isinstance(idx, list):
            out.extend(i for i in idx if isinstance(i, str))
    return out
