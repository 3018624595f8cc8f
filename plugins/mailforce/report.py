"""The analyst's report: one self-contained HTML file with pictures of what the pipeline wrote.

Product code: the Airflow API-server plugin (`plugins/mailforce_report_plugin.py`) serves it, and the
command line `python -m mailforce.tools.report` writes it to a file (`mailforce.tools.report`).
Index names come from the product's settings (``MAILFORCE_*``).

The file opens offline: plotly.js and every figure are embedded, nothing is loaded from a network.
Every query is an aggregation or a size-limited search: no index is ever read whole. An index or a
field that is not there yet gives a "no data yet" panel, never a crash.

Three layers, so each can be tested alone:

- I/O (``query_*``, ``collect``): Elasticsearch responses turned into small plain structures;
- pure figure builders (``figure_*``): those structures to plotly figure specs (plain JSON dicts);
- rendering (``render_html``, ``write_report``): the panels into one HTML document, onto disk.

docs/REPORT.md says what each chart answers and which fields it reads.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mailforce.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_OUTPUT = "mailforce-report.html"  # the file name the command line and the demo write
AXIS_NAME = re.compile(r"^[xy]axis\d*$")
DEFAULT_TOP = 10
MAX_TOP = 50
TIMELINE_DOMAINS = 8  # lines in the timeline chart: the first of the top domains
MAX_RUNS = 200  # pipeline-health chart: the latest runs
MAX_TIMELINE_DOCS = 5000  # (top domains x months) cap; a domain with 40 years of monthly mail is 480
MAX_COOLING_ROWS = 50  # "cooling this month": relationships listed under the chart
MAX_COOLING_ACCOUNTS = 30  # ... and accounts charted
MAX_ENGAGEMENT_DOCS = 2000  # fallback of "who knows the domain best": (top domain, account) documents
STRENGTH_BIN = 10

PALETTE = {
    "primary": "#2563eb",
    "secondary": "#0d9488",
    "automated": "#9ca3af",
    "late": "#ea580c",
    "backfill": "#a855f7",
}
LEGEND_ON_TOP = {"orientation": "h", "x": 1, "xanchor": "right", "y": 1.02, "yanchor": "bottom"}
FONT = "Inter, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"


def index_name(settings: Settings, name: str) -> str:
    """The index the setting ``name`` (``relationships_index``...) names."""
    return getattr(settings, name)


# --------------------------------------------------------------------------------------------
# What a query gives: data, or the reason there is none yet


@dataclass(frozen=True)
class NoData:
    """Why a panel has nothing to draw (shown to the reader as is)."""

    reason: str


@dataclass
class ReportData:
    """Everything the report shows, as plain structures (or NoData per section)."""

    generated_at: str
    indices: dict[str, int | None] = field(default_factory=dict)  # name -> documents (None: missing)
    domains: list[dict[str, Any]] | NoData = NoData("not queried")
    companies: list[dict[str, Any]] | NoData = NoData("not queried")  # organisations of kind "company"
    companies_best_connected: dict[str, Any] | NoData = NoData("not queried")
    contacts: list[dict[str, Any]] | NoData = NoData("not queried")
    timeline: list[dict[str, Any]] | NoData = NoData("not queried")
    best_connected: dict[str, Any] | NoData = NoData("not queried")
    strength: dict[str, Any] | NoData = NoData("not queried")
    automated: dict[str, Any] | NoData = NoData("not queried")
    runs: dict[str, Any] | NoData = NoData("not queried")
    cooling: dict[str, Any] | NoData = NoData("not queried")
    people: list[dict[str, Any]] | NoData = NoData("not queried")  # people with several addresses


def _missing(index: str) -> NoData:
    return NoData(f"No data yet: the index {index} does not exist (the pipeline has not written it yet).")


def _empty(index: str) -> NoData:
    return NoData(f"No data yet: the index {index} holds no documents.")


# --------------------------------------------------------------------------------------------
# I/O: queries (each bounded: aggregations or size-limited searches)


def _api_error_types() -> tuple[type[BaseException], ...]:
    from elasticsearch import ApiError

    return (ApiError,)


def _not_found(error: BaseException) -> bool:
    return getattr(error, "status_code", None) == 404 or getattr(getattr(error, "meta", None), "status", None) == 404


def _guarded(index: str, query: Callable[[], Any]) -> Any:
    """Run ``query``; a missing index becomes NoData, another refused request NoData with the cause."""
    try:
        return query()
    except _api_error_types() as error:
        if _not_found(error):
            return _missing(index)
        log.warning("report: query on %s failed: %s", index, error)
        return NoData(f"Could not read {index}: {getattr(error, 'message', None) or error}")


def count_documents(es, index: str) -> int | None:
    """Documents in ``index``, or None when it does not exist."""
    result = _guarded(index, lambda: es.count(index=index)["count"])
    return None if isinstance(result, NoData) else int(result)


def _hits(response: dict[str, Any]) -> list[dict[str, Any]]:
    return [hit.get("_source") or {} for hit in response["hits"]["hits"]]


def _top_documents(es, index: str, top: int, *, fields: list[str], key: str, measure: str
                   ) -> list[dict[str, Any]] | NoData:
    """The `top` documents of `index` by `measure` (then by `key`), each carrying `key`."""

    def run() -> list[dict[str, Any]] | NoData:
        response = es.search(
            index=index, size=top, source=fields, query={"exists": {"field": measure}},
            sort=[{measure: {"order": "desc", "unmapped_type": "long"}},
                  {key: {"order": "asc", "unmapped_type": "keyword"}}],
        )
        rows = [row for row in _hits(response) if row.get(key)]
        return rows or NoData(f"No data yet: no document of {index} carries {measure}.")

    return _guarded(index, run)


def query_top_domains(es, index: str, top: int) -> list[dict[str, Any]] | NoData:
    fields = ["domain", "total_emails", "total_from", "total_to", "total_cc", "addresses_count", "accounts",
              "first_contact_date", "latest_contact_date", "best_connected_accounts"]
    return _top_documents(es, index, top, fields=fields, key="domain", measure="total_emails")


def query_top_companies(es, index: str, top: int) -> list[dict[str, Any]] | NoData:
    """The top organisations of kind "company" by distinct messages (personal providers such as
    gmail.com are not companies and rank no accounts); each row also carries `domain` = the
    organisation, so the domain figures draw it."""
    fields = ["organization", "kind", "domains", "total_emails", "total_from", "total_to", "total_cc",
              "addresses_count", "accounts", "first_contact_date", "latest_contact_date", "best_connected_accounts"]

    def run() -> list[dict[str, Any]] | NoData:
        response = es.search(
            index=index, size=top, source=fields,
            query={"bool": {"filter": [{"term": {"kind": "company"}}, {"exists": {"field": "total_emails"}}]}},
            sort=[{"total_emails": {"order": "desc", "unmapped_type": "long"}},
                  {"organization": {"order": "asc", "unmapped_type": "keyword"}}],
        )
        rows = [{**row, "domain": row["organization"]} for row in _hits(response) if row.get("organization")]
        return rows or NoData(f"No data yet: no company in {index}.")

    return _guarded(index, run)


def query_people_with_addresses(es, index: str, top: int) -> list[dict[str, Any]] | NoData:
    """The `top` people with two or more addresses, by distinct messages (then canonical address)."""
    fields = ["canonical_address", "addresses", "addresses_count", "total_count", "accounts_count", "explanation",
              "first_contact_date", "latest_contact_date", "best_connected_accounts"]

    def run() -> list[dict[str, Any]] | NoData:
        response = es.search(
            index=index, size=top, source=fields, query={"range": {"addresses_count": {"gte": 2}}},
            sort=[{"total_count": {"order": "desc", "unmapped_type": "long"}},
                  {"canonical_address": {"order": "asc", "unmapped_type": "keyword"}}])
        rows = [row for row in _hits(response) if row.get("canonical_address")]
        return rows or NoData("Nobody writes from several addresses yet (no provider rule or alias joins two).")

    return _guarded(index, run)


def query_top_contacts(es, index: str, top: int) -> list[dict[str, Any]] | NoData:
    fields = ["email_address", "domain", "total_count", "from_count", "to_count", "cc_count", "accounts_count",
              "automated", "first_contact_date", "latest_contact_date"]
    return _top_documents(es, index, top, fields=fields, key="email_address", measure="total_count")


def query_domain_timeline(es, index: str, domains: Sequence[str]) -> list[dict[str, Any]] | NoData:
    """The cross-account monthly documents (scope "domain", no account) of ``domains``."""
    if not domains:
        return NoData("No data yet: no top domains to draw a timeline for.")

    def run() -> list[dict[str, Any]] | NoData:
        response = es.search(
            index=index, size=MAX_TIMELINE_DOCS, source=["domain", "month", "messages", "from_count", "to_count", "cc_count"],
            query={"bool": {"filter": [{"terms": {"domain": list(domains)}}, {"exists": {"field": "month"}}],
                            "must_not": [{"exists": {"field": "account"}}]}},
            sort=[{"domain": {"order": "asc", "unmapped_type": "keyword"}},
                  {"month": {"order": "asc", "unmapped_type": "date"}}],
        )
        rows = [row for row in _hits(response) if row.get("domain") and row.get("month")]
        return rows or NoData(f"No data yet: {index} has no domain-wide month for the top domains.")

    return _guarded(index, run)


def query_engagement_accounts(es, index: str, domains: Sequence[str]) -> list[dict[str, Any]] | NoData:
    """(account, domain, total_count) of the top domains: the fallback when domains carry no ranking."""

    def run() -> list[dict[str, Any]] | NoData:
        response = es.search(
            index=index, size=MAX_ENGAGEMENT_DOCS, source=["account", "domain", "total_count"],
            query={"bool": {"filter": [{"terms": {"domain": list(domains)}}]}},
            sort=[{"total_count": {"order": "desc", "unmapped_type": "long"}},
                  {"account": {"order": "asc", "unmapped_type": "keyword"}}],
        )
        rows = [row for row in _hits(response) if row.get("account") and row.get("domain")]
        return rows or _empty(index)

    return _guarded(index, run)


def query_strength_histogram(es, index: str) -> dict[str, Any] | NoData:
    """Histogram buckets of ``strength``, people and automated addresses apart."""

    def histogram() -> dict[str, Any]:
        return {"histogram": {"field": "strength", "interval": STRENGTH_BIN, "min_doc_count": 0,
                              "extended_bounds": {"min": 0, "max": 100}}}

    def run() -> dict[str, Any] | NoData:
        response = es.search(
            index=index, size=0, track_total_hits=True,
            aggs={
                "people": {"filter": {"bool": {"must_not": [{"term": {"automated": True}}]}}, "aggs": {"strength": histogram()}},
                "automated": {"filter": {"term": {"automated": True}}, "aggs": {"strength": histogram()}},
                "scored": {"filter": {"exists": {"field": "strength"}}},
            },
        )
        aggregations = response.get("aggregations") or {}
        if not aggregations.get("scored", {}).get("doc_count"):
            return NoData(f"No data yet: no document of {index} carries strength.")
        return {
            "people": [(bucket["key"], bucket["doc_count"]) for bucket in aggregations["people"]["strength"]["buckets"]],
            "automated": [(bucket["key"], bucket["doc_count"]) for bucket in aggregations["automated"]["strength"]["buckets"]],
            "relationships": response["hits"]["total"]["value"],
        }

    return _guarded(index, run)


AUTOMATED_REASONS = ("pattern", "header", "broadcast")  # docs/SEMANTICS.md, "Automated and role addresses"


def query_automated_share(es, index: str) -> dict[str, Any] | NoData:
    """Contacts flagged automated vs not: addresses, and the messages they are on; the automated
    ones by reason (a name pattern, bulk-mail headers, or broadcasting: robots by behaviour)."""

    def run() -> dict[str, Any] | NoData:
        messages = {"messages": {"sum": {"field": "total_count"}}}
        response = es.search(
            index=index, size=0, track_total_hits=True,
            aggs={
                "automated": {"filter": {"term": {"automated": True}}, "aggs": {
                    **messages,
                    "reasons": {"terms": {"field": "automated_reason", "size": len(AUTOMATED_REASONS)}, "aggs": messages},
                }},
                "people": {"filter": {"bool": {"must_not": [{"term": {"automated": True}}]}},
                           "aggs": {"messages": {"sum": {"field": "total_count"}}}},
            },
        )
        if not response["hits"]["total"]["value"]:
            return _empty(index)
        aggregations = response["aggregations"]
        share: dict[str, Any] = {
            name: {"addresses": aggregations[name]["doc_count"], "messages": int(aggregations[name]["messages"]["value"] or 0)}
            for name in ("automated", "people")
        }
        share["reasons"] = {
            bucket["key"]: {"addresses": bucket["doc_count"], "messages": int(bucket["messages"]["value"] or 0)}
            for bucket in aggregations["automated"].get("reasons", {}).get("buckets", [])
        }
        return share

    return _guarded(index, run)


def query_runs(es, index: str, limit: int = MAX_RUNS) -> dict[str, Any] | NoData:
    """The latest runs (for the chart) and totals over every run (aggregations)."""
    fields = ["run_id", "run_date", "window_start", "window_end", "emails_processed", "late_messages", "backfill",
              "duration_seconds", "email_accounts_processed", "domains_processed"]

    def run() -> dict[str, Any] | NoData:
        response = es.search(
            index=index, size=limit, source=fields, track_total_hits=True,
            sort=[{"run_date": {"order": "desc", "unmapped_type": "date"}}],
            aggs={
                "messages": {"sum": {"field": "emails_processed"}},
                "late": {"sum": {"field": "late_messages"}},
                "scheduled": {"filter": {"bool": {"must_not": [{"term": {"backfill": True}}]}},
                              "aggs": {"window_end": {"max": {"field": "window_end"}}}},
            },
        )
        total = response["hits"]["total"]["value"]
        if not total:
            return _empty(index)
        aggregations = response["aggregations"]
        window_end = aggregations["scheduled"]["window_end"]
        return {
            "runs": list(reversed(_hits(response))),  # oldest first
            "total_runs": total,
            "messages": int(aggregations["messages"]["value"] or 0),
            "late_messages": int(aggregations["late"]["value"] or 0),
            "last_window_end": _epoch_millis_iso(window_end.get("value")),
        }

    return _guarded(index, run)


COOLING_FIELDS = ["account", "email_address", "scoring_date", "from_band", "to_band", "strength_before", "strength",
                  "total_count", "latest_engagement_date", "cause"]


def query_cooling(es, index: str, limit: int = MAX_COOLING_ROWS) -> dict[str, Any] | NoData:
    """The change feed's crossings down a band (`direction: down`) in the month of its latest scoring
    date ("this month" of the data): how many per account and band reached, and the first `limit`
    by the strength they had (strongest first)."""

    def run() -> dict[str, Any] | NoData:
        latest = _hits(es.search(index=index, size=1, sort=[{"scoring_date": {"order": "desc"}}],
                                 source=["scoring_date"]))
        if not latest or not latest[0].get("scoring_date"):
            return _empty(index)
        month = str(latest[0]["scoring_date"])[:7]
        query = {"bool": {"filter": [{"term": {"direction": "down"}},
                                     {"range": {"scoring_date": {"gte": f"{month}-01T00:00:00Z"}}}]}}
        response = es.search(
            index=index, size=limit, query=query, source=COOLING_FIELDS, track_total_hits=True,
            sort=[{"strength_before": {"order": "desc"}}, {"scoring_date": {"order": "desc"}},
                  {"email_address": {"order": "asc"}}],
            aggs={"accounts": {"terms": {"field": "account", "size": MAX_COOLING_ACCOUNTS},
                               "aggs": {"bands": {"terms": {"field": "to_band", "size": 4}}}}},
        )
        per_account = {bucket["key"]: {band["key"]: band["doc_count"] for band in bucket["bands"]["buckets"]}
                       for bucket in response["aggregations"]["accounts"]["buckets"]}
        total = response["hits"]["total"]
        total = total["value"] if isinstance(total, dict) else int(total)
        if not total:
            return NoData(f"No relationship went down a strength band in {month}, the month of the latest scoring date.")
        return {"month": month, "total": total,
                "per_account": per_account, "rows": _hits(response)}

    return _guarded(index, run)


def _epoch_millis_iso(value: Any) -> str | None:
    if value is None:
        return None
    return dt.datetime.fromtimestamp(float(value) / 1000, tz=dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def collect(es, settings: Settings, top: int = DEFAULT_TOP, now: dt.datetime | None = None) -> ReportData:
    """Every query of the report, on ``es``; never raises for a missing index or field."""
    now = now or dt.datetime.now(dt.timezone.utc)
    relationships = index_name(settings, "relationships_index")
    contacts = index_name(settings, "contacts_index")
    timeline = index_name(settings, "timeline_index")
    organizations = index_name(settings, "organizations_index")
    changes = index_name(settings, "changes_index")
    people = index_name(settings, "people_index")
    names = [settings.domains_index, contacts, relationships, timeline, settings.engagements_index, settings.runtime_stats_index,
             changes, organizations, people]
    try:
        es.indices.refresh(index=",".join(names), ignore_unavailable=True, allow_no_indices=True)
    except _api_error_types() as error:  # a user allowed to read but not to refresh: the data as it is
        log.info("report: refresh refused (%s); reading what is visible", error)
    data = ReportData(generated_at=now.strftime("%Y-%m-%d %H:%M UTC"))
    data.indices = {name: count_documents(es, name) for name in names}

    def section(index: str, query: Callable[[], Any]) -> Any:
        if data.indices.get(index) is None:
            return _missing(index)
        if data.indices[index] == 0:
            return _empty(index)
        return query()

    data.companies = section(organizations, lambda: query_top_companies(es, organizations, top))
    data.companies_best_connected = (data.companies if isinstance(data.companies, NoData)
                                     else best_connected_table(data.companies))
    data.domains = section(settings.domains_index, lambda: query_top_domains(es, settings.domains_index, top))
    data.contacts = section(contacts, lambda: query_top_contacts(es, contacts, top))
    top_domains = [row["domain"] for row in data.domains] if isinstance(data.domains, list) else []
    if isinstance(data.domains, NoData):
        data.timeline = data.domains
        data.best_connected = data.domains
    else:
        data.timeline = section(timeline, lambda: query_domain_timeline(es, timeline, top_domains[:TIMELINE_DOMAINS]))
        data.best_connected = best_connected_table(data.domains)
        if isinstance(data.best_connected, NoData):  # the domain documents carry no ranking (yet)
            fallback = section(settings.engagements_index, lambda: query_engagement_accounts(es, settings.engagements_index, top_domains))
            data.best_connected = fallback if isinstance(fallback, NoData) else best_connected_from_engagements(top_domains, fallback)
    data.strength = section(relationships, lambda: query_strength_histogram(es, relationships))
    data.automated = section(contacts, lambda: query_automated_share(es, contacts))
    data.runs = section(settings.runtime_stats_index, lambda: query_runs(es, settings.runtime_stats_index))
    data.cooling = section(changes, lambda: query_cooling(es, changes))
    data.people = section(people, lambda: query_people_with_addresses(es, people, top))
    return data


# --------------------------------------------------------------------------------------------
# Pure: query results -> tables and plotly figure specs (plain JSON-able dicts)


def _figure(data: list[Any], layout: dict[str, Any]) -> dict[str, Any]:
    """A validated plotly figure as a plain dict (``{"data": [...], "layout": {...}}``)."""
    import plotly.graph_objects as go

    base = {
        "template": "plotly_white",
        "font": {"family": FONT, "size": 13, "color": "#1f2937"},
        "margin": {"l": 10, "r": 20, "t": 10, "b": 40},
        "hoverlabel": {"font": {"family": FONT}},
    }
    base.update(layout)
    for name, axis in base.items():  # room for an axis title and its tick labels: never cut off
        if AXIS_NAME.match(name) and isinstance(axis, dict) and axis.get("title"):
            axis.setdefault("automargin", True)
    figure = go.Figure(data=data, layout=base)
    return json.loads(figure.to_json())


def _short_date(value: Any) -> str:
    return str(value)[:10] if value else "?"


def _message_bars(names: Sequence[str], values: Sequence[int], hover: Sequence[str], color: str, axis_title: str
                  ) -> dict[str, Any]:
    """One trace of horizontal bars, messages per name, the first on top, each bar's hover its own."""
    import plotly.graph_objects as go

    bar = go.Bar(x=list(values), y=list(names), orientation="h", name="messages", marker={"color": color},
                 text=list(values), textposition="auto", hovertext=list(hover), hoverinfo="text")
    return _figure([bar], {
        "height": max(260, 34 * len(names) + 70),
        "yaxis": {"autorange": "reversed", "automargin": True, "title": None},
        "xaxis": {"title": {"text": axis_title}},
        "showlegend": False,
    })


def figure_top_domains(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Horizontal bars: distinct messages per domain, the largest on top."""

    names = [row["domain"] for row in rows]
    values = [int(row.get("total_emails") or 0) for row in rows]
    hover = [
        f"<b>{html.escape(row['domain'])}</b><br>{int(row.get('total_emails') or 0)} messages<br>"
        f"roles: {row.get('total_from', 0)} From, {row.get('total_to', 0)} To, {row.get('total_cc', 0)} CC<br>"
        f"{row.get('addresses_count', '?')} addresses, {len(row.get('accounts') or [])} mailboxes<br>"
        f"{_short_date(row.get('first_contact_date'))} to {_short_date(row.get('latest_contact_date'))}"
        for row in rows
    ]
    return _message_bars(names, values, hover, PALETTE["primary"], "distinct messages (one mail in two mailboxes: once)")


def figure_top_contacts(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Horizontal bars: messages per address; automated addresses grey, in a trace of their own."""
    import plotly.graph_objects as go

    order = [row["email_address"] for row in rows]
    traces = []
    for automated, name, color in ((False, "person", PALETTE["secondary"]), (True, "automated", PALETTE["automated"])):
        chosen = [row for row in rows if bool(row.get("automated")) == automated]
        if not chosen and automated:
            continue
        traces.append(go.Bar(
            x=[int(row.get("total_count") or 0) for row in chosen], y=[row["email_address"] for row in chosen],
            orientation="h", name=name, marker={"color": color}, text=[int(row.get("total_count") or 0) for row in chosen],
            textposition="auto", hoverinfo="text",
            hovertext=[
                f"<b>{html.escape(row['email_address'])}</b>{' (automated)' if automated else ''}<br>"
                f"{int(row.get('total_count') or 0)} messages: {row.get('from_count', 0)} From, {row.get('to_count', 0)} To, "
                f"{row.get('cc_count', 0)} CC<br>{row.get('accounts_count', '?')} mailboxes<br>"
                f"{_short_date(row.get('first_contact_date'))} to {_short_date(row.get('latest_contact_date'))}"
                for row in chosen
            ],
        ))
    return _figure(traces, {
        "height": max(260, 34 * len(rows) + 70),
        "yaxis": {"categoryorder": "array", "categoryarray": order, "autorange": "reversed", "automargin": True},
        "xaxis": {"title": {"text": "distinct messages (all mailboxes)"}},
        "legend": LEGEND_ON_TOP,
        "margin": {"l": 10, "r": 20, "t": 30, "b": 40},
        "barmode": "overlay",
    })


def figure_people(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Horizontal bars: distinct messages per person with several addresses; the hover lists them."""

    names = [f"{row['canonical_address']} ({row.get('addresses_count', len(row.get('addresses') or []))})"
             for row in rows]
    values = [int(row.get("total_count") or 0) for row in rows]
    hover = [f"<b>{html.escape(row['canonical_address'])}</b><br>{int(row.get('total_count') or 0)} messages, "
             f"{row.get('accounts_count', '?')} mailboxes<br>"
             + "<br>".join(html.escape(address) for address in row.get("addresses") or [])
             for row in rows]
    return _message_bars(names, values, hover, PALETTE["secondary"], "distinct messages (two of their addresses: once)")


def people_table(rows: Sequence[dict[str, Any]]) -> str:
    """Each person with several addresses and why each is theirs, as an HTML table (escaped)."""
    cells = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(value))}</td>" for value in (
            row["canonical_address"], ", ".join(
                f"{entry.get('email_address')} ({entry.get('provider_rule') or entry.get('joined_by')})"
                for entry in row.get("explanation") or []),
            row.get("total_count"))) + "</tr>"
        for row in rows)
    return ('<table class="cooling"><tr><th>person</th><th>addresses (why)</th><th>messages</th></tr>'
            f"{cells}</table>")


def _months_between(first: str, last: str) -> list[str]:
    """Every month from ``first`` to ``last`` (``YYYY-MM`` prefixes), as ``YYYY-MM-01``."""
    year, month = int(first[:4]), int(first[5:7])
    end = (int(last[:4]), int(last[5:7]))
    months = []
    while (year, month) <= end:
        months.append(f"{year:04d}-{month:02d}-01")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


def timeline_series(rows: Sequence[dict[str, Any]], domains: Sequence[str]) -> dict[str, dict[str, int]]:
    """domain -> {month (YYYY-MM-01): messages}, the months without a document filled with 0."""
    by_domain: dict[str, dict[str, int]] = {}
    for row in rows:
        month = str(row["month"])[:7] + "-01"
        series = by_domain.setdefault(row["domain"], {})
        series[month] = series.get(month, 0) + int(row.get("messages") or 0)
    result = {}
    for domain in domains:
        series = by_domain.get(domain)
        if not series:
            continue
        months = _months_between(min(series), max(series))
        result[domain] = {month: series.get(month, 0) for month in months}
    return result


def month_tick_step(series: dict[str, dict[str, int]]) -> str:
    """A tick every month, quarter, half or year, so that a label never repeats a month."""
    months = {month for points in series.values() for month in points}
    span = len(_months_between(min(months), max(months))) if months else 1
    for step, limit in ((1, 14), (3, 40), (6, 80)):
        if span <= limit:
            return f"M{step}"
    return "M12"


def figure_timeline(series: dict[str, dict[str, int]]) -> dict[str, Any]:
    """One line per domain: distinct messages per month."""
    import plotly.graph_objects as go

    traces = [
        go.Scatter(x=list(points), y=list(points.values()), name=domain, mode="lines+markers",
                   line={"width": 2, "shape": "linear"}, marker={"size": 5},
                   hovertemplate=f"{html.escape(domain)}<br>%{{x|%b %Y}}: %{{y}} messages<extra></extra>")
        for domain, points in series.items()
    ]
    return _figure(traces, {
        "height": 380,
        "xaxis": {"type": "date", "tickformat": "%b %Y", "dtick": month_tick_step(series), "title": None},
        "yaxis": {"title": {"text": "distinct messages per month"}, "rangemode": "tozero"},
        "legend": LEGEND_ON_TOP,
        "margin": {"l": 10, "r": 20, "t": 30, "b": 40},
        "hovermode": "closest",
    })


def best_connected_table(domains: Sequence[dict[str, Any]]) -> dict[str, Any] | NoData:
    """From the domain documents' ``best_connected_accounts``: the cells of the heatmap."""
    ranked = [row for row in domains if row.get("best_connected_accounts")]
    if not ranked:
        return NoData("No ranking yet: the domain documents carry no best_connected_accounts.")
    cells = {
        row["domain"]: [
            {"account": entry["account"], "strength": entry.get("strength"), "total_count": entry.get("total_count")}
            for entry in row["best_connected_accounts"] if isinstance(entry, dict) and entry.get("account")
        ]
        for row in domains
    }
    return {"measure": "strength", "domains": [row["domain"] for row in domains], "cells": cells}


def best_connected_from_engagements(domains: Sequence[str], rows: Sequence[dict[str, Any]], per_domain: int = 5) -> dict[str, Any]:
    """Fallback: the accounts with the most messages with each domain (no strength yet)."""
    cells: dict[str, list[dict[str, Any]]] = {domain: [] for domain in domains}
    for row in sorted(rows, key=lambda r: (-(r.get("total_count") or 0), r["account"])):
        entries = cells.get(row["domain"])
        if entries is not None and len(entries) < per_domain:
            entries.append({"account": row["account"], "strength": None, "total_count": row.get("total_count")})
    return {"measure": "messages", "domains": list(domains), "cells": cells}


def figure_best_connected(table: dict[str, Any]) -> dict[str, Any]:
    """Heatmap: top domains (rows) x accounts (columns); colour = strength (or messages in the fallback)."""
    import plotly.graph_objects as go

    measure = table["measure"]
    domains = [domain for domain in table["domains"] if table["cells"].get(domain)]
    weight: dict[str, float] = {}
    for domain in domains:
        for rank, entry in enumerate(table["cells"][domain]):
            weight[entry["account"]] = weight.get(entry["account"], 0) + (5 - min(rank, 4))
    accounts = sorted(weight, key=lambda account: (-weight[account], account))
    z, text = [], []
    for domain in domains:
        entries = {entry["account"]: entry for entry in table["cells"][domain]}
        z_row, text_row = [], []
        for account in accounts:
            entry = entries.get(account)
            if entry is None:
                z_row.append(None)
                text_row.append("")
                continue
            value = entry["strength"] if measure == "strength" else entry["total_count"]
            z_row.append(value)
            text_row.append(f"{value}" if measure == "messages" else f"{value} · {entry.get('total_count', '?')} msg")
        z.append(z_row)
        text.append(text_row)
    title = "strength (0-100)" if measure == "strength" else "messages"
    heatmap = go.Heatmap(
        z=z, x=accounts, y=domains, text=text, texttemplate="%{text}", colorscale="Blues", hoverongaps=False,
        zmin=0, zmax=100 if measure == "strength" else None, colorbar={"title": {"text": title}},
        hovertemplate="%{y} · %{x}<br>" + ("strength %{z}" if measure == "strength" else "%{z} messages") + "<extra></extra>",
    )
    return _figure([heatmap], {
        "height": max(280, 40 * len(domains) + 110),
        "yaxis": {"autorange": "reversed", "automargin": True},
        "xaxis": {"side": "top", "automargin": True},
        "margin": {"l": 10, "r": 20, "t": 60, "b": 20},
    })


def strength_bins(buckets: Sequence[tuple[float, int]]) -> list[int]:
    """Counts per strength bin 0-9, 10-19, ..., 90-100 (a strength of 100 joins the last bin)."""
    counts = [0] * 10
    for key, count in buckets:
        counts[min(int(key // STRENGTH_BIN), 9) if key >= 0 else 0] += int(count)
    return counts


def whole_step(largest: int, ticks: int = 5) -> int:
    """A whole-number tick step giving about ``ticks`` ticks up to ``largest``."""
    return max(1, -(-int(largest) // ticks))


STRENGTH_LABELS = [f"{low}-{low + 9}" for low in range(0, 90, 10)] + ["90-100"]


def figure_strength(histogram: dict[str, Any]) -> dict[str, Any]:
    """Stacked bars: relationships per strength bin; automated addresses (always 0) apart."""
    import plotly.graph_objects as go

    people = strength_bins(histogram["people"])
    automated = strength_bins(histogram["automated"])
    traces = [go.Bar(x=STRENGTH_LABELS, y=people, name="people", marker={"color": PALETTE["primary"]},
                     hovertemplate="strength %{x}: %{y} relationships<extra>people</extra>")]
    if any(automated):
        traces.append(go.Bar(x=STRENGTH_LABELS, y=automated, name="automated (scored 0)", marker={"color": PALETTE["automated"]},
                             hovertemplate="strength %{x}: %{y} relationships<extra>automated</extra>"))
    return _figure(traces, {
        "height": 340, "barmode": "stack", "bargap": 0.08,
        "xaxis": {"title": {"text": "relationship strength (account x address)"}, "type": "category"},
        "yaxis": {"title": {"text": "relationships"}, "tickformat": "d", "dtick": whole_step(max(p + a for p, a in zip(people, automated)))},
        "legend": LEGEND_ON_TOP,
        "margin": {"l": 10, "r": 20, "t": 30, "b": 40},
    })


REASON_LABELS = {"pattern": "automated: name pattern", "header": "automated: bulk-mail headers",
                 "broadcast": "broadcast (never answered)"}
REASON_COLORS = {"pattern": "#9ca3af", "header": "#6b7280", "broadcast": "#d97706"}


def automated_slices(share: dict[str, Any]) -> list[tuple[str, str, dict[str, int]]]:
    """(label, colour, figures) per slice: people, then the automated by reason (those without a
    recorded reason, from before reasons were kept, as one "automated" slice)."""
    slices = [("people", PALETTE["secondary"], share["people"])]
    reasons = share.get("reasons") or {}
    rest = dict(share["automated"])
    for reason in AUTOMATED_REASONS:
        if reason in reasons:
            slices.append((REASON_LABELS[reason], REASON_COLORS[reason], reasons[reason]))
            rest = {key: rest[key] - reasons[reason][key] for key in rest}
    if rest["addresses"] or not reasons:
        slices.append(("automated", PALETTE["automated"], rest))
    return slices


def figure_automated(share: dict[str, Any]) -> dict[str, Any]:
    """Two donuts: the addresses that converse apart from the automated ones (by reason: a name
    pattern, bulk-mail headers, broadcasting), and the share of the messages they are on."""
    import plotly.graph_objects as go

    slices = automated_slices(share)
    labels = [label for label, _, _ in slices]
    colors = [color for _, color, _ in slices]
    traces = [
        go.Pie(labels=labels, values=[figures[key] for _, _, figures in slices], hole=0.55, sort=False,
               marker={"colors": colors}, domain={"x": [0.0, 0.46]} if key == "addresses" else {"x": [0.54, 1.0]},
               name=key, title={"text": title}, textinfo="percent", hovertemplate="%{label}: %{value} " + key + "<extra></extra>")
        for key, title in (("addresses", "addresses"), ("messages", "messages they are on"))
    ]
    return _figure(traces, {"height": 320, "legend": {"orientation": "h", "y": -0.05}, "margin": {"l": 10, "r": 10, "t": 20, "b": 20}})


COOLING_MIN_HEIGHT = 260  # pixels: a chart of one or two accounts stays readable
COOLING_COLOURS = {"strong": "#1d4ed8", "warm": "#f59e0b", "cooling": "#60a5fa", "cold": "#1e3a8a"}


def figure_cooling(cooling: dict[str, Any]) -> dict[str, Any]:
    """Per account, the relationships that went down a band this month, stacked by the band reached."""
    import plotly.graph_objects as go

    per_account = cooling["per_account"]
    accounts = sorted(per_account, key=lambda account: (-sum(per_account[account].values()), account))
    traces = [go.Bar(name=f"to {band}", orientation="h", y=accounts, x=[per_account[account].get(band, 0) for account in accounts],
                     marker_color=COOLING_COLOURS[band], hovertemplate="%{y}: %{x} to " + band + "<extra></extra>")
              for band in ("warm", "cooling", "cold") if any(band in bands for bands in per_account.values())]
    return _figure(traces, {
        "barmode": "stack", "legend": LEGEND_ON_TOP, "height": max(COOLING_MIN_HEIGHT, 120 + 26 * len(accounts)),
        "xaxis": {"title": {"text": "relationships down a band this month"}},
        "yaxis": {"categoryorder": "array", "categoryarray": accounts, "autorange": "reversed"},
    })


def cooling_table(cooling: dict[str, Any]) -> str:
    """The strongest relationships that went down a band this month, as an HTML table (escaped)."""
    cells = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(value))}</td>" for value in (
            row.get("account"), row.get("email_address"), f"{row.get('from_band')} -> {row.get('to_band')}",
            _short_date(row.get("scoring_date")), f"{row.get('strength_before')} -> {row.get('strength')}",
            _short_date(row.get("latest_engagement_date")))) + "</tr>"
        for row in cooling["rows"])
    shown = len(cooling["rows"])
    more = f" (the {shown} strongest before listed)" if cooling["total"] > shown else ""
    return (f'<p class="note">{cooling["total"]} crossings down a band in {html.escape(cooling["month"])}, the month of '
            f"the latest scoring date{more}.</p>"
            '<table class="cooling"><tr><th>account</th><th>address</th><th>band</th><th>on</th><th>strength</th>'
            f"<th>last mail</th></tr>{cells}</table>")


MINUTE_MS = 60_000
RUN_AXIS_PAD = dt.timedelta(minutes=5)  # room either side of runs that ran within minutes of each other


def run_date_axis(run_dates: Sequence[Any]) -> dict[str, Any]:
    """The run-date axis in minutes, hours or days as the runs' span needs, never milliseconds
    (plotly's automatic ticks on runs seconds apart read "12:21:38.500")."""
    moments = sorted(moment for moment in (_parse_moment(value) for value in run_dates) if moment is not None)
    axis: dict[str, Any] = {"type": "date", "title": {"text": "run date (UTC)"}}
    if not moments:
        return axis
    span = moments[-1] - moments[0]
    if span < dt.timedelta(hours=1):
        axis.update(tickformat="%H:%M", hoverformat="%Y-%m-%d %H:%M:%S",
                    dtick=(5 if span < dt.timedelta(minutes=20) else 15) * MINUTE_MS,
                    range=[(moments[0] - RUN_AXIS_PAD).isoformat(), (moments[-1] + RUN_AXIS_PAD).isoformat()])
    elif span < dt.timedelta(days=2):
        axis.update(tickformat="%H:%M", hoverformat="%Y-%m-%d %H:%M")
    else:
        axis.update(tickformat="%b %d", hoverformat="%Y-%m-%d %H:%M")
    return axis


def _parse_moment(value: Any) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def figure_runs(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per run (by run date): messages processed (scheduled and backfill apart) and late messages."""
    import plotly.graph_objects as go

    def hover(run: dict[str, Any]) -> str:
        return (f"{html.escape(str(run.get('run_id') or ''))}<br>window ({run.get('window_start') or 'beginning'}, "
                f"{run.get('window_end')}]<br>{run.get('emails_processed', 0)} messages, {run.get('late_messages', 0)} late"
                f"<br>{run.get('duration_seconds', '?')} s{' · backfill' if run.get('backfill') else ''}")

    traces = []
    for backfill, name, color in ((False, "messages processed", PALETTE["primary"]), (True, "messages (backfill)", PALETTE["backfill"])):
        chosen = [run for run in runs if bool(run.get("backfill")) == backfill]
        if chosen or not backfill:
            traces.append(go.Bar(x=[run.get("run_date") for run in chosen], y=[int(run.get("emails_processed") or 0) for run in chosen],
                                 name=name, marker={"color": color}, hovertext=[hover(run) for run in chosen], hoverinfo="text"))
    traces.append(go.Scatter(x=[run.get("run_date") for run in runs], y=[int(run.get("late_messages") or 0) for run in runs],
                             name="late messages", mode="lines+markers", line={"color": PALETTE["late"], "width": 2}, yaxis="y2",
                             hovertemplate="%{y} late messages<extra></extra>"))
    most_late = max([int(run.get("late_messages") or 0) for run in runs] + [0])
    late_step = max(1, -(-most_late // 4))  # whole numbers, about four ticks
    return _figure(traces, {
        "height": 340, "barmode": "group",
        "xaxis": run_date_axis([run.get("run_date") for run in runs]),
        "yaxis": {"title": {"text": "messages processed"}, "rangemode": "tozero"},
        "yaxis2": {"title": {"text": "late messages"}, "overlaying": "y", "side": "right", "showgrid": False,
                   "range": [0, late_step * 4.4], "dtick": late_step, "tickformat": "d"},
        "legend": LEGEND_ON_TOP,
        "margin": {"l": 10, "r": 20, "t": 30, "b": 40},
    })


# --------------------------------------------------------------------------------------------
# Panels and HTML


@dataclass
class Panel:
    key: str  # element ids: panel-<key>, chart-<key>
    title: str
    question: str
    figure: dict[str, Any] | None = None
    no_data: str | None = None
    note: str = ""  # extra HTML (already escaped)
    wide: bool = False


def _tiles(items: Sequence[tuple[str, str]]) -> str:
    return '<div class="tiles">' + "".join(
        f'<div class="tile"><div class="tile-value">{html.escape(value)}</div><div class="tile-label">{html.escape(label)}</div></div>'
        for label, value in items
    ) + "</div>"


def build_panels(data: ReportData) -> list[Panel]:
    """The report's panels, in reading order, from the collected data (pure)."""
    panels = []

    def panel(key: str, title: str, question: str, value: Any, make: Callable[[Any], dict[str, Any]], note: str = "", wide: bool = False) -> Panel:
        if isinstance(value, NoData):
            return Panel(key, title, question, no_data=value.reason, wide=wide)
        return Panel(key, title, question, figure=make(value), note=note, wide=wide)

    panels.append(panel("companies", "Top companies",
                        "Which outside companies do we exchange the most mail with? All of a company's domains "
                        "together (ect.enron.com is Enron), a mail counted once; free-mail providers are not companies.",
                        data.companies, figure_top_domains))
    panels.append(panel("companies-best-connected", "Who knows each top company best",
                        "Whom on the team should I ask about this company? Each cell: the account's strongest "
                        "relationship with anyone there.",
                        data.companies_best_connected, figure_best_connected, wide=True))
    panels.append(panel("domains", "Top domains", "Which outside domains do we exchange the most mail with?",
                        data.domains, figure_top_domains))
    panels.append(panel("contacts", "Top contacts", "Which outside people (and robots) are on the most messages? Automated addresses are grey.",
                        data.contacts, figure_top_contacts))
    panels.append(panel("people", "People with several addresses",
                        "Who writes to us from more than one address? Addresses joined by their provider's own rules "
                        "(Gmail ignores dots and +tags) or by the operator's alias list, a mail counted once.",
                        data.people, figure_people,
                        note=people_table(data.people) if isinstance(data.people, list) else ""))
    timeline_value: Any = data.timeline
    if not isinstance(timeline_value, NoData) and isinstance(data.domains, list):
        series = timeline_series(timeline_value, [row["domain"] for row in data.domains][:TIMELINE_DOMAINS])
        timeline_value = series or NoData("No data yet: no month of the top domains.")
    panels.append(panel("timeline", "Monthly timeline of the top domains",
                        "Is each relationship growing, steady or fading? Distinct messages per month, across mailboxes.",
                        timeline_value, figure_timeline, wide=True))
    note = ""
    if isinstance(data.best_connected, dict) and data.best_connected.get("measure") == "messages":
        note = '<p class="note">The domain documents carry no strength ranking yet: accounts ranked by their messages with the domain.</p>'
    panels.append(panel("best-connected", "Who knows each top domain best",
                        "Whom on the team should I ask about this organisation? Each cell: the account's strongest relationship there.",
                        data.best_connected, figure_best_connected, note=note, wide=True))
    strength_note = ""
    if isinstance(data.strength, dict):
        strength_note = f'<p class="note">{data.strength["relationships"]} relationships (account x address).</p>'
    panels.append(panel("strength", "Relationship strength",
                        "How many relationships are strong, and how many are weak or one-off? Strength is built on "
                        "conversation: messages the mailbox's owner and the address wrote each other, each weighed "
                        "by its audience; being CC'd on mail the mailbox merely received counts for nothing.",
                        data.strength, figure_strength, note=strength_note))
    panels.append(panel("automated", "Conversations and broadcasts",
                        "How much of the address book is people, and how much no-reply, lists, notifications and "
                        "broadcasters (many large mailings no mailbox ever answered)?",
                        data.automated, figure_automated))
    panels.append(panel("cooling", "Relationships cooling this month",
                        "Which relationships are fading, and whom should someone get back in touch with?",
                        data.cooling, figure_cooling,
                        note=cooling_table(data.cooling) if isinstance(data.cooling, dict) else "", wide=True))
    runs_note = ""
    if isinstance(data.runs, dict):
        runs = data.runs
        runs_note = _tiles([
            ("last window end (scheduled runs)", str(runs.get("last_window_end") or "none yet")),
            ("runs recorded", str(runs["total_runs"])),
            ("messages processed, all runs", str(runs["messages"])),
            ("late messages, all runs", str(runs["late_messages"])),
        ])
    panels.append(panel("runs", "Pipeline health",
                        "Is the pipeline running, how much does each run process, and how much mail arrives late?",
                        data.runs, lambda value: figure_runs(value["runs"]), note=runs_note, wide=True))
    return panels


CSS = """
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; font-family: %(font)s; background: #f3f4f6; color: #1f2937; }
header { background: #111827; color: #f9fafb; padding: 22px 32px; }
header h1 { margin: 0 0 4px; font-size: 22px; font-weight: 600; }
header p { margin: 0; color: #9ca3af; font-size: 13px; }
main { display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); gap: 18px; padding: 20px 32px 40px; }
.panel { background: #fff; border-radius: 10px; box-shadow: 0 1px 3px rgba(0,0,0,.08); padding: 16px 18px; min-width: 0; }
.panel.wide { grid-column: 1 / -1; }
.panel h2 { margin: 0 0 2px; font-size: 16px; font-weight: 600; }
.question { margin: 0 0 10px; color: #6b7280; font-size: 13px; }
.no-data { padding: 36px 16px; text-align: center; color: #6b7280; background: #f9fafb; border: 1px dashed #d1d5db; border-radius: 8px; font-size: 14px; }
.note { color: #6b7280; font-size: 12px; margin: 6px 0 0; }
.tiles { display: flex; flex-wrap: wrap; gap: 12px; margin: 4px 0 10px; }
.tile { flex: 1 1 160px; background: #f9fafb; border-radius: 8px; padding: 10px 14px; }
.tile-value { font-size: 18px; font-weight: 600; }
.tile-label { font-size: 12px; color: #6b7280; }
table.indices { border-collapse: collapse; font-size: 12px; color: #9ca3af; margin-top: 6px; }
table.indices td { padding: 0 14px 0 0; }
table.cooling { border-collapse: collapse; font-size: 12px; margin: 8px 0; width: 100%%; }
table.cooling th, table.cooling td { text-align: left; padding: 2px 12px 2px 0; border-bottom: 1px solid #e5e7eb; }
"""

RENDER_SCRIPT = """
(function () {
  var config = {displaylogo: false, responsive: true, modeBarButtonsToRemove: ['select2d', 'lasso2d']};
  document.querySelectorAll('script[type="application/json"][data-chart]').forEach(function (node) {
    var spec = JSON.parse(node.textContent);
    Plotly.newPlot(node.getAttribute('data-chart'), spec.data, spec.layout, config);
  });
})();
"""


def _json_for_script(value: Any) -> str:
    """JSON safe inside a <script> element (no "</script>", no HTML comment openers)."""
    return json.dumps(value, separators=(",", ":")).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _documents(count: int | None) -> str:
    if count is None:
        return "missing"
    return f"{count} document" if count == 1 else f"{count} documents"


def _panel_html(panel: Panel) -> str:
    parts = [f'<section class="panel{" wide" if panel.wide else ""}" id="panel-{panel.key}">',
             f"<h2>{html.escape(panel.title)}</h2>", f'<p class="question">{html.escape(panel.question)}</p>']
    if panel.figure is None:
        parts.append(f'<div class="no-data" data-no-data="{panel.key}">{html.escape(panel.no_data or "No data yet.")}</div>')
    else:
        parts.append(panel.note)
        parts.append(f'<div class="chart" id="chart-{panel.key}"></div>')
        parts.append(f'<script type="application/json" data-chart="chart-{panel.key}" id="figure-{panel.key}">'
                     f"{_json_for_script(panel.figure)}</script>")
    parts.append("</section>")
    return "\n".join(parts)


def render_html(data: ReportData, panels: Sequence[Panel] | None = None, plotly_js: str | None = None) -> str:
    """The whole report as one HTML document; plotly.js inlined (``plotly_js`` for tests)."""
    panels = build_panels(data) if panels is None else panels
    if plotly_js is None and any(panel.figure is not None for panel in panels):
        from plotly.offline import get_plotlyjs

        plotly_js = get_plotlyjs()
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{_documents(count)}</td></tr>"
        for name, count in data.indices.items()
    )
    script = f"<script>{plotly_js}</script>\n<script>{RENDER_SCRIPT}</script>" if plotly_js else ""
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>Mailforce engagements report</title>",
        f"<style>{CSS % {'font': FONT}}</style>",
        "</head><body>",
        "<header><h1>Mailforce engagements report</h1>",
        f"<p>Generated {html.escape(data.generated_at)} from the output indices of the mailforce_engagements DAG. "
        "Hover any chart for details; it works offline.</p>",
        f'<table class="indices">{rows}</table></header>',
        "<main>",
        *(_panel_html(panel) for panel in panels),
        "</main>",
        script,
        "</body></html>",
    ])


def build_report(es, settings: Settings, top: int = DEFAULT_TOP) -> str:
    """Query ``es`` and render the report (the plugin view serves this)."""
    return render_html(collect(es, settings, top=top))


def write_report(path: Path, document: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(document, encoding="utf-8")
    tmp.replace(path)
    return path.resolve()
