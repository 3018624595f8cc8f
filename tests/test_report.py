"""The analyst's report (python -m mailforce.tools.report): the right data in each chart, offline.

Hand-made output documents (the fields of SPEC §5) go into a fresh engine; the report is rendered
and its embedded figure JSON read back.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import helpers

from mailforce import report
from mailforce.tools import report as report_command

KEYWORD = {"type": "keyword"}
DATE = {"type": "date", "format": "strict_date_optional_time"}
INTEGER = {"type": "integer"}
BOOLEAN = {"type": "boolean"}

# Mappings as SPEC §5 describes the fields (the report never relies on more than these types).
MAPPINGS = {
    "domains": {"domain": KEYWORD, "total_emails": INTEGER, "total_from": INTEGER, "total_to": INTEGER, "total_cc": INTEGER,
                "addresses_count": INTEGER, "accounts": KEYWORD, "first_contact_date": DATE, "latest_contact_date": DATE,
                "best_connected_accounts": {"properties": {"account": KEYWORD, "strength": INTEGER, "total_count": INTEGER}}},
    "engagements": {"account": KEYWORD, "domain": KEYWORD, "total_count": INTEGER},
    "contacts": {"email_address": KEYWORD, "domain": KEYWORD, "from_count": INTEGER, "to_count": INTEGER, "cc_count": INTEGER,
                 "total_count": INTEGER, "accounts": KEYWORD, "accounts_count": INTEGER, "automated": BOOLEAN,
                 "first_contact_date": DATE, "latest_contact_date": DATE},
    "relationships": {"account": KEYWORD, "email_address": KEYWORD, "domain": KEYWORD, "total_count": INTEGER,
                      "strength": INTEGER, "automated": BOOLEAN},
    "timeline": {"scope": KEYWORD, "account": KEYWORD, "domain": KEYWORD, "month": DATE, "messages": INTEGER,
                 "from_count": INTEGER, "to_count": INTEGER, "cc_count": INTEGER},
    "organizations": {"organization": KEYWORD, "kind": KEYWORD, "domains": KEYWORD, "total_emails": INTEGER,
                      "total_from": INTEGER, "total_to": INTEGER, "total_cc": INTEGER, "addresses_count": INTEGER,
                      "accounts": KEYWORD, "first_contact_date": DATE, "latest_contact_date": DATE,
                      "best_connected_accounts": {"properties": {"account": KEYWORD, "strength": INTEGER,
                                                                 "total_count": INTEGER}}},
    "changes": {"account": KEYWORD, "email_address": KEYWORD, "scoring_date": DATE, "from_band": KEYWORD,
                "to_band": KEYWORD, "direction": KEYWORD, "cause": KEYWORD, "strength_before": INTEGER,
                "strength": INTEGER, "total_count": INTEGER, "latest_engagement_date": DATE},
    "runs": {"run_id": KEYWORD, "run_date": DATE, "window_start": DATE, "window_end": DATE, "emails_processed": INTEGER,
             "late_messages": INTEGER, "backfill": BOOLEAN, "duration_seconds": {"type": "float"}},
    "people": {"canonical_address": KEYWORD, "addresses": KEYWORD, "addresses_count": INTEGER, "total_count": INTEGER,
               "accounts_count": INTEGER, "explanation": {"type": "object", "enabled": False}},
}

DOMAINS = [  # (domain, total_emails, best_connected_accounts)
    ("acme.com", 120, [{"account": "kunai-jim", "strength": 81, "total_count": 90}, {"account": "kunai-ann", "strength": 40, "total_count": 35}]),
    ("beta.org", 75, [{"account": "kunai-ann", "strength": 66, "total_count": 70}]),
    ("gamma.net", 30, [{"account": "kunai-bob", "strength": 12, "total_count": 30}]),
]
ORGANIZATIONS = [  # (organization, kind, domains, total_emails, best_connected_accounts); gmail.com ranks no one
    ("gmail.com", "personal", ["gmail.com"], 500, None),
    ("acme.com", "company", ["acme.com", "mail.acme.com"], 130, [{"account": "kunai-jim", "strength": 85, "total_count": 95}]),
    ("beta.org", "company", ["beta.org"], 75, [{"account": "kunai-ann", "strength": 66, "total_count": 70}]),
]
CONTACTS = [  # (address, total_count, automated)
    ("jim@acme.com", 100, False),
    ("no-reply@beta.org", 60, True),
    ("ann@beta.org", 20, False),
]
STRENGTHS = [5, 15, 15, 47, 83, 100, 0]  # the last one automated
TIMELINE = [  # (domain, month, messages); acme.com skips 2001-03 (no document: 0 that month)
    ("acme.com", "2001-01-01T00:00:00Z", 50), ("acme.com", "2001-02-01T00:00:00Z", 40), ("acme.com", "2001-04-01T00:00:00Z", 30),
    ("beta.org", "2001-02-01T00:00:00Z", 75),
]
RUNS = [  # (run_id, run_date, window_end, emails_processed, late_messages, backfill)
    ("scheduled__2001-06-01", "2001-06-01T01:00:00Z", "2001-06-01T00:00:00Z", 200, 0, False),
    ("scheduled__2001-06-02", "2001-06-02T01:00:00Z", "2001-06-02T00:00:00Z", 25, 3, False),
    ("manual__backfill", "2001-06-02T05:00:00Z", "2001-06-03T00:00:00Z", 10, 0, True),
]


CHANGES = [  # (account, address, scoring_date, from_band, to_band, strength_before, strength)
    ("kunai-jim", "sue@acme.com", "2001-06-02T00:00:00Z", "cooling", "cold", 10, 9),
    ("kunai-jim", "bob@acme.com", "2001-06-01T00:00:00Z", "strong", "warm", 60, 59),
    ("kunai-ann", "ann@beta.org", "2001-06-02T00:00:00Z", "warm", "cooling", 30, 29),
    ("kunai-ann", "old@beta.org", "2001-05-30T00:00:00Z", "warm", "cooling", 30, 29),  # last month: not this month's
    ("kunai-ann", "new@beta.org", "2001-06-02T00:00:00Z", "none", "strong", None, 70),  # up: not cooling
]


# Two people with several addresses, and one with a single address (not shown: nothing joined).
PEOPLE = [("jdoe@gmail.com", ["j.doe@gmail.com", "jdoe@gmail.com"], 12), ("sue@acme.com", ["sue@acme.com"], 40),
          ("bo@gmail.com", ["b.o@gmail.com", "bo+x@gmail.com", "bo@gmail.com"], 3)]


def index_names(settings) -> dict[str, str]:
    return {
        "domains": settings.domains_index,
        "engagements": settings.engagements_index,
        "contacts": report.index_name(settings, "contacts_index"),
        "relationships": report.index_name(settings, "relationships_index"),
        "timeline": report.index_name(settings, "timeline_index"),
        "runs": settings.runtime_stats_index,
        "organizations": settings.organizations_index,
        "changes": report.index_name(settings, "changes_index"),
        "people": report.index_name(settings, "people_index"),
    }


def sample_documents() -> dict[str, list[dict[str, Any]]]:
    updated = {"updated_at": "2001-06-02T01:00:00Z"}
    return {
        "domains": [{"domain": name, "total_emails": total, "total_from": total, "total_to": total // 2, "total_cc": 1,
                     "addresses_count": 3, "accounts": sorted(entry["account"] for entry in best),
                     "first_contact_date": "2001-01-03T10:00:00Z", "latest_contact_date": "2001-04-20T10:00:00Z",
                     "best_connected_accounts": best, **updated} for name, total, best in DOMAINS],
        "engagements": [{"account": "kunai-jim", "domain": "acme.com", "total_count": 90, **updated}],
        "contacts": [{"email_address": address, "domain": address.split("@")[1], "total_count": total, "from_count": total,
                      "to_count": 0, "cc_count": 0, "accounts": ["kunai-jim"], "accounts_count": 1, "automated": automated,
                      "first_contact_date": "2001-01-03T10:00:00Z", "latest_contact_date": "2001-04-20T10:00:00Z", **updated}
                     for address, total, automated in CONTACTS],
        "relationships": [{"account": "kunai-jim", "email_address": f"person{n}@acme.com", "domain": "acme.com", "total_count": 1,
                           "strength": strength, "automated": n == len(STRENGTHS) - 1, **updated}
                          for n, strength in enumerate(STRENGTHS)],
        "timeline": [{"scope": "domain", "domain": domain, "month": month, "messages": messages, "from_count": messages,
                      "to_count": 0, "cc_count": 0, **updated} for domain, month, messages in TIMELINE]
                    # a per-account document: never part of the domain-wide timeline
                    + [{"scope": "account", "account": "kunai-jim", "domain": "acme.com", "month": "2001-03-01T00:00:00Z",
                        "messages": 999, "from_count": 0, "to_count": 0, "cc_count": 0, **updated}],
        "organizations": [{"organization": name, "kind": kind, "domains": domains, "total_emails": total,
                           "total_from": total, "total_to": 0, "total_cc": 0, "addresses_count": 2, "accounts": ["kunai-jim"],
                           "first_contact_date": "2001-01-03T10:00:00Z", "latest_contact_date": "2001-04-20T10:00:00Z",
                           **({"best_connected_accounts": best} if best else {}), **updated}
                          for name, kind, domains, total, best in ORGANIZATIONS],
        "runs": [{"run_id": run_id, "run_date": run_date, "window_start": None, "window_end": window_end,
                  "emails_processed": processed, "late_messages": late, "backfill": backfill, "duration_seconds": 4.5, **updated}
                 for run_id, run_date, window_end, processed, late, backfill in RUNS],
        "changes": [{"account": account, "email_address": address, "scoring_date": day, "from_band": before_band,
                     "to_band": band, "direction": "up" if before is None else "down", "cause": "time",
                     "strength_before": before, "strength": after, "total_count": 7,
                     "latest_engagement_date": "2001-01-09T10:00:00Z", **updated}
                    for account, address, day, before_band, band, before, after in CHANGES],
        "people": [{"canonical_address": canonical, "addresses": addresses, "addresses_count": len(addresses),
                    "total_count": total, "accounts_count": 1,
                    "explanation": [{"email_address": address, "joined_by": "provider" if address != canonical
                                     else "canonical", "provider_rule": "gmail" if address != canonical else None}
                                    for address in addresses], **updated}
                   for canonical, addresses, total in PEOPLE],
    }


def index_sample(es, settings) -> None:
    names = index_names(settings)
    for kind, documents in sample_documents().items():
        properties = dict(MAPPINGS[kind], updated_at=DATE)
        es.indices.create(index=names[kind], mappings={"dynamic": "strict", "properties": properties})
        helpers.bulk(es, ({"_index": names[kind], "_id": str(n), "_source": doc} for n, doc in enumerate(documents)), raise_on_error=True)
    es.indices.refresh(index=",".join(names.values()))


class _Scripts(HTMLParser):
    """Collects <script> and <link> tags: attributes and the text of each."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.figures: dict[str, Any] = {}
        self._current: str | None = None

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag in ("script", "link", "img", "iframe"):
            self.tags.append((tag, attributes))
        if tag == "script" and attributes.get("type") == "application/json":
            self._current = attributes.get("id")
            self.figures[self._current] = ""

    def handle_data(self, data):
        if self._current:
            self.figures[self._current] += data

    def handle_endtag(self, tag):
        if tag == "script" and self._current:
            self.figures[self._current] = json.loads(self.figures[self._current])
            self._current = None


def parse(document: str) -> _Scripts:
    parser = _Scripts()
    parser.feed(document)
    return parser


def write(es, settings, tmp_path: Path, monkeypatch, top: int = 10) -> tuple[Path, str]:
    """The command line itself, against the test engine."""
    monkeypatch.setattr(report_command, "load_settings", lambda: settings)
    monkeypatch.setattr(report_command, "client_for", lambda url, engine, conn_id: es.options())
    path = tmp_path / "out" / "report.html"
    assert report_command.main(["--output", str(path), "--top", str(top)]) == 0
    return path, path.read_text(encoding="utf-8")


def assert_offline(parsed: _Scripts) -> None:
    for tag, attributes in parsed.tags:
        for name in ("src", "href"):
            assert not attributes.get(name), f"<{tag} {name}={attributes.get(name)!r}>: the report must not load anything"


def test_the_report_draws_each_chart_from_the_output_indices(es, settings, tmp_path, monkeypatch, capsys):
    index_sample(es, settings)
    path, document = write(es, settings, tmp_path, monkeypatch)
    assert capsys.readouterr().out.strip() == str(path.resolve())
    parsed = parse(document)
    assert_offline(parsed)
    assert "no-data" not in re.sub(r"\.no-data", "", document.split("<main>")[1])
    figures = parsed.figures
    assert set(figures) == {f"figure-{key}" for key in ("companies", "companies-best-connected", "domains", "contacts",
                                                        "timeline", "best-connected", "strength", "automated", "runs",
                                                        "cooling", "people")}
    people = figures["figure-people"]["data"][0]  # only those with several addresses, most messages first
    assert (people["y"], people["x"]) == (["jdoe@gmail.com (2)", "bo@gmail.com (3)"], [12, 3])
    assert "b.o@gmail.com (gmail)" in document.split('id="panel-people"')[1].split("</section>")[0]

    companies = figures["figure-companies"]["data"]  # companies only: gmail.com, personal, is not ranked
    assert [(trace["y"], trace["x"]) for trace in companies] == [(["acme.com", "beta.org"], [130, 75])]
    known = figures["figure-companies-best-connected"]["data"][0]
    assert known["y"] == ["acme.com", "beta.org"]
    assert {(company, account): value for company, row in zip(known["y"], known["z"])
            for account, value in zip(known["x"], row) if value is not None} == {
        ("acme.com", "kunai-jim"): 85, ("beta.org", "kunai-ann"): 66}

    bars = figures["figure-domains"]["data"]
    assert [(trace["y"], trace["x"]) for trace in bars] == [(["acme.com", "beta.org", "gamma.net"], [120, 75, 30])]

    contacts = {trace["name"]: dict(zip(trace["y"], trace["x"])) for trace in figures["figure-contacts"]["data"]}
    assert contacts == {"person": {"jim@acme.com": 100, "ann@beta.org": 20}, "automated": {"no-reply@beta.org": 60}}
    assert figures["figure-contacts"]["layout"]["yaxis"]["categoryarray"] == ["jim@acme.com", "no-reply@beta.org", "ann@beta.org"]

    timeline = {trace["name"]: dict(zip(trace["x"], trace["y"])) for trace in figures["figure-timeline"]["data"]}
    assert timeline == {
        "acme.com": {"2001-01-01": 50, "2001-02-01": 40, "2001-03-01": 0, "2001-04-01": 30},  # the per-account 999 left out
        "beta.org": {"2001-02-01": 75},
    }

    heatmap = figures["figure-best-connected"]["data"][0]
    assert heatmap["y"] == ["acme.com", "beta.org", "gamma.net"]
    cells = {(domain, account): value for domain, row in zip(heatmap["y"], heatmap["z"]) for account, value in zip(heatmap["x"], row)
             if value is not None}
    assert cells == {("acme.com", "kunai-jim"): 81, ("acme.com", "kunai-ann"): 40, ("beta.org", "kunai-ann"): 66, ("gamma.net", "kunai-bob"): 12}

    strength = {trace["name"]: dict(zip(trace["x"], trace["y"])) for trace in figures["figure-strength"]["data"]}
    assert strength["people"] == {"0-9": 1, "10-19": 2, "20-29": 0, "30-39": 0, "40-49": 1, "50-59": 0, "60-69": 0,
                                  "70-79": 0, "80-89": 1, "90-100": 1}
    assert strength["automated (scored 0)"]["0-9"] == 1 and sum(strength["automated (scored 0)"].values()) == 1

    pies = {trace["name"]: dict(zip(trace["labels"], trace["values"])) for trace in figures["figure-automated"]["data"]}
    assert pies == {"addresses": {"people": 2, "automated": 1}, "messages": {"people": 120, "automated": 60}}

    runs = {trace["name"]: trace for trace in figures["figure-runs"]["data"]}
    assert runs["messages processed"]["y"] == [200, 25]
    assert runs["messages (backfill)"]["y"] == [10]
    assert runs["late messages"]["y"] == [0, 3, 0]
    health = document.split('id="panel-runs"')[1].split("</section>")[0]
    assert "2001-06-02T00:00:00" in health  # last window end of a scheduled run: the backfill's is not the watermark
    assert ">235<" in health and ">3<" in health and ">3</div><div class=\"tile-label\">runs" in health

    # relationships cooling this month (the month of the feed's latest scoring date): down a band, June only
    cooling = {trace["name"]: dict(zip(trace["y"], trace["x"])) for trace in figures["figure-cooling"]["data"]}
    assert cooling == {"to warm": {"kunai-jim": 1, "kunai-ann": 0}, "to cooling": {"kunai-jim": 0, "kunai-ann": 1},
                       "to cold": {"kunai-jim": 1, "kunai-ann": 0}}
    panel = document.split('id="panel-cooling"')[1].split("</section>")[0]
    assert "3 crossings down a band in 2001-06" in panel
    listed = re.findall(r"<tr><td>([^<]*)</td><td>([^<]*)</td><td>([^<]*)</td>", panel)
    assert listed == [("kunai-jim", "bob@acme.com", "strong -&gt; warm"), ("kunai-ann", "ann@beta.org", "warm -&gt; cooling"),
                      ("kunai-jim", "sue@acme.com", "cooling -&gt; cold")]  # strongest before first


def test_top_limits_the_domains_and_contacts(es, settings, tmp_path, monkeypatch):
    index_sample(es, settings)
    _, document = write(es, settings, tmp_path, monkeypatch, top=2)
    figures = parse(document).figures
    assert figures["figure-domains"]["data"][0]["y"] == ["acme.com", "beta.org"]
    assert sum(len(trace["y"]) for trace in figures["figure-contacts"]["data"]) == 2
    assert figures["figure-best-connected"]["data"][0]["y"] == ["acme.com", "beta.org"]


def test_an_empty_cluster_gives_no_data_panels(es, settings, tmp_path, monkeypatch):
    _, document = write(es, settings, tmp_path, monkeypatch)
    parsed = parse(document)
    assert parsed.figures == {}
    assert_offline(parsed)
    for key in ("companies", "companies-best-connected", "domains", "contacts", "timeline", "best-connected", "strength",
                "automated", "runs", "cooling", "people"):
        panel = document.split(f'id="panel-{key}"')[1].split("</section>")[0]
        assert f'data-no-data="{key}"' in panel and "No data yet" in panel, key
    assert "<script>" not in document  # nothing to draw: not even plotly.js


def test_missing_new_indices_and_fields_degrade_gracefully(es, settings, tmp_path, monkeypatch):
    """Domains without best_connected_accounts, no contacts/relationships/timeline indices yet."""
    es.indices.create(index=settings.domains_index, mappings={"properties": MAPPINGS["domains"]})
    es.indices.create(index=settings.engagements_index, mappings={"properties": MAPPINGS["engagements"]})
    es.index(index=settings.domains_index, id="1", document={"domain": "acme.com", "total_emails": 3})
    es.index(index=settings.engagements_index, id="1", document={"account": "kunai-jim", "domain": "acme.com", "total_count": 3})
    es.index(index=settings.engagements_index, id="2", document={"account": "kunai-ann", "domain": "acme.com", "total_count": 1})
    es.index(index=settings.runtime_stats_index, id="1", document={"run_date": "2001-06-01T00:00:00Z"})  # dynamic mapping, no counts
    _, document = write(es, settings, tmp_path, monkeypatch)
    figures = parse(document).figures
    assert figures["figure-domains"]["data"][0]["x"] == [3]
    heatmap = figures["figure-best-connected"]["data"][0]
    assert (heatmap["y"], heatmap["x"], heatmap["z"]) == (["acme.com"], ["kunai-jim", "kunai-ann"], [[3, 1]])
    assert "no strength ranking yet" in document
    for key, index in (("contacts", "search-contacts"), ("timeline", "search-engagement-timeline"), ("strength", "search-relationships")):
        panel = document.split(f'id="panel-{key}"')[1].split("</section>")[0]
        assert f"the index {index} does not exist" in panel, key
    assert figures["figure-runs"]["data"][0]["y"] == [0]


def test_pure_figure_builders_need_no_cluster():
    assert report.strength_bins([(0.0, 2), (90.0, 1), (100.0, 4)]) == [2, 0, 0, 0, 0, 0, 0, 0, 0, 5]


def test_broadcasters_show_apart_from_people_and_other_robots():
    share = {"people": {"addresses": 50, "messages": 400}, "automated": {"addresses": 7, "messages": 900},
             "reasons": {"pattern": {"addresses": 4, "messages": 100}, "broadcast": {"addresses": 3, "messages": 800}}}
    pies = {trace["name"]: dict(zip(trace["labels"], trace["values"]))
            for trace in report.figure_automated(share)["data"]}
    assert pies["addresses"] == {"people": 50, "automated: name pattern": 4, "broadcast (never answered)": 3}
    assert pies["messages"] == {"people": 400, "automated: name pattern": 100, "broadcast (never answered)": 800}
    assert report.timeline_series(
        [{"domain": "a.com", "month": "2000-11-01T00:00:00Z", "messages": 1}, {"domain": "a.com", "month": "2001-02-01T00:00:00Z", "messages": 2}],
        ["a.com", "b.com"],
    ) == {"a.com": {"2000-11-01": 1, "2000-12-01": 0, "2001-01-01": 0, "2001-02-01": 2}}
    figure = report.figure_top_domains([{"domain": "<x>.com", "total_emails": 1}])
    assert figure["data"][0]["y"] == ["<x>.com"]
    data = report.ReportData(generated_at="now", domains=[{"domain": "</script><b>.com", "total_emails": 1}])
    document = report.render_html(data, plotly_js="/* plotly */")
    assert "</script><b>" not in document  # names cannot close the figure's script element
    assert parse(document).figures["figure-domains"]["data"][0]["y"] == ["</script><b>.com"]


# --------------------------------------------------------------------------------------------
# The Airflow plugin view


def test_the_airflow_plugin_declares_the_page_and_its_navigation_link():
    from airflow import plugins_manager

    plugins, errors = plugins_manager._get_plugins()
    assert not {name: error for name, error in errors.items() if "mailforce" in name}, errors
    plugin = next(plugin for plugin in plugins if plugin.name == "mailforce_report")
    assert [(app["url_prefix"], app["name"]) for app in plugin.fastapi_apps] == [("/mailforce-report", "Mailforce report")]
    assert plugin.external_views == [{"name": "Mailforce report", "href": "/mailforce-report/", "url_route": "mailforce-report",
                                      "destination": "nav", "category": "browse"}]
    external_views, _ = plugins_manager._get_ui_plugins()
    assert any(view["url_route"] == "mailforce-report" for view in external_views)


def test_the_plugin_page_serves_the_report_to_signed_in_users(es, settings, monkeypatch):
    from fastapi.testclient import TestClient

    import mailforce_report_plugin as plugin

    index_sample(es, settings)
    monkeypatch.setattr(plugin, "_client", lambda _settings: es.options())
    monkeypatch.setattr("mailforce.settings.load_settings", lambda: settings)
    plugin._cache.clear()
    app = plugin.create_app()
    with TestClient(app) as client:
        assert client.get("/").status_code == 401  # no session token, no bearer token: Airflow's own check refuses
        app.dependency_overrides[app.state.auth_check] = lambda: None
        response = client.get("/?top=2")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    figures = parse(response.text).figures
    assert figures["figure-domains"]["data"][0]["y"] == ["acme.com", "beta.org"]
    plugin._cache.clear()


def test_the_report_command_answers_a_wrong_url_a_missing_connection_and_a_bad_top_in_words(closed_port, tmp_path,
                                                                                            capsys):
    output = tmp_path / "report.html"
    assert report_command.main(["--url", f"http://127.0.0.1:{closed_port}", "-o", str(output)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"report: cannot reach Elasticsearch at http://127.0.0.1:{closed_port}: Connection refused.",
        "Check the URL (--url http://host:9200) or the Airflow connection, and that the server runs.",
    ]
    assert report_command.main(["--conn-id", "no_such_conn", "-o", str(output)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "report: The conn_id `no_such_conn` isn't defined." and err[1].startswith("Pass --url")
    with pytest.raises(SystemExit) as exited:
        report_command.main(["--top", "many"])
    assert exited.value.code == 2
    assert capsys.readouterr().err.splitlines()[0] == (
        "python -m mailforce.tools.report: argument --top: --top must be a whole number, got 'many'")
    assert not output.exists()


def test_the_run_date_axis_is_in_minutes_hours_or_days_never_milliseconds():
    seconds_apart = report.run_date_axis(["2026-12-07T12:21:38Z", "2026-12-07T12:21:40Z"])
    assert (seconds_apart["tickformat"], seconds_apart["dtick"]) == ("%H:%M", 5 * 60_000)
    assert seconds_apart["range"] == ["2026-12-07T12:16:38+00:00", "2026-12-07T12:26:40+00:00"]
    assert report.run_date_axis(["2026-12-07T12:00:00Z", "2026-12-07T12:40:00Z"])["dtick"] == 15 * 60_000
    assert report.run_date_axis(["2026-12-07T00:00:00Z", "2026-12-07T18:00:00Z"])["tickformat"] == "%H:%M"
    assert report.run_date_axis(["2026-11-01T00:00:00Z", "2026-12-07T00:00:00Z"])["tickformat"] == "%b %d"
    assert report.run_date_axis([None]) == {"type": "date", "title": {"text": "run date (UTC)"}}
    assert report.figure_runs([{"run_date": "2026-12-07T12:21:38Z", "emails_processed": 3}])["layout"]["xaxis"][
        "tickformat"] == "%H:%M"


def test_every_titled_axis_makes_room_for_its_title(tmp_path):
    """A title is never cut off at the panel's edge: plotly grows the margin for it (automargin)."""
    runs = [{"run_date": "2026-12-07T12:21:38Z", "emails_processed": 3, "late_messages": 1}]
    figures = [report.figure_runs(runs),
               report.figure_top_domains([{"domain": "acme.com", "total_emails": 3}])]
    titled = [(name, axis) for figure in figures for name, axis in figure["layout"].items()
              if name.startswith(("xaxis", "yaxis")) and axis.get("title", {}).get("text")]
    assert {name for name, _ in titled} >= {"xaxis", "yaxis", "yaxis2"}
    assert all(axis.get("automargin") is True for _, axis in titled), titled
    # Short enough to fit over a half-width panel's plot (about 50 characters at 13 px).
    titles = re.findall(r'"title": \{"text": "([^"]*)"', Path(report.__file__).read_text(encoding="utf-8"))
    assert len(titles) >= 8 and all(len(title) <= 52 for title in titles), titles


def test_the_default_report_file_never_lands_untracked_in_the_repository(tmp_path):
    root = report_command.REPO_ROOT
    assert report_command.default_output(root) == root / "reports" / "mailforce-report.html"
    assert report_command.default_output(root / "docs") == root / "reports" / "mailforce-report.html"
    assert report_command.default_output(tmp_path) == tmp_path.resolve() / "mailforce-report.html"
    if (root / ".git").exists():
        import subprocess
        ignored = subprocess.run(["git", "check-ignore", "-q", "reports/mailforce-report.html"], cwd=root)
        assert ignored.returncode == 0, "reports/ must be git-ignored"
