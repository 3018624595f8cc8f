"""Rebuilds kibana/mailforce-dashboard.ndjson: `python kibana/build_dashboard.py` (no dependencies).

Data views on the flat output indices, each with ONE time field chosen on purpose: the date of the
activity the document describes, so one time picker means "active in this period" on every panel
(docs/KIBANA.md). Account statistics have no activity date: no time field, the
picker leaves them alone. tests/test_kibana.py checks the file against the product's mappings.
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUTPUT = HERE / "mailforce-dashboard.ndjson"

# data view id -> (index, time field or None, name)
DATA_VIEWS = {
    "mailforce-dv-relationships": ("search-relationships", "latest_engagement_date", "Mailforce: relationships"),
    "mailforce-dv-contacts": ("search-contacts", "latest_contact_date", "Mailforce: contacts"),
    "mailforce-dv-timeline": ("search-engagement-timeline", "month", "Mailforce: engagement timeline"),
    "mailforce-dv-domains": ("search-domains-engagements", "latest_contact_date", "Mailforce: domains"),
    "mailforce-dv-organizations": ("search-organizations", "latest_contact_date", "Mailforce: organisations"),
    "mailforce-dv-runtime-stats": ("search-runtime-stats", "window_end", "Mailforce: pipeline runs"),
    "mailforce-dv-message-roles": ("search-message-roles", "date", "Mailforce: message roles"),
    "mailforce-dv-accounts": ("search-accounts_statistics_simple", None, "Mailforce: account statistics"),
    "mailforce-dv-changes": ("search-relationship-changes", "scoring_date", "Mailforce: relationship changes"),
}


def data_view(view_id: str) -> dict:
    index, time_field, name = DATA_VIEWS[view_id]
    attributes = {"title": index, "name": name, "fields": "[]", "fieldFormatMap": "{}", "runtimeFieldMap": "{}",
                  "typeMeta": "{}"}
    if time_field:
        attributes["timeFieldName"] = time_field
    return {"id": view_id, "type": "index-pattern", "attributes": attributes, "references": [], "managed": False,
            "coreMigrationVersion": "8.8.0", "typeMigrationVersion": "8.0.0"}


def terms(field: str, label: str, order_by: str, size: int = 20) -> dict:
    return {"label": label, "customLabel": True, "dataType": "string", "operationType": "terms", "sourceField": field,
            "isBucketed": True, "scale": "ordinal",
            "params": {"size": size, "otherBucket": False, "missingBucket": False, "parentFormat": {"id": "terms"},
                       "orderBy": {"type": "column", "columnId": order_by}, "orderDirection": "desc"}}


def metric(operation: str, field: str, label: str, data_type: str = "number") -> dict:
    column = {"label": label, "customLabel": True, "dataType": data_type, "operationType": operation,
              "sourceField": field, "isBucketed": False, "scale": "ratio", "params": {"emptyAsNull": True}}
    if data_type == "date":
        column["params"] = {}
    return column


def histogram(field: str, label: str, interval: str = "auto") -> dict:
    return {"label": label, "customLabel": True, "dataType": "date", "operationType": "date_histogram",
            "sourceField": field, "isBucketed": True, "scale": "interval",
            "params": {"interval": interval, "includeEmptyRows": True, "dropPartials": False}}


def lens(lens_id: str, title: str, description: str, view_id: str, columns: dict, visualization_type: str,
         visualization: dict, query: str = "") -> dict:
    layer = {"columns": columns, "columnOrder": list(columns), "incompleteColumns": {}}
    return {
        "id": lens_id, "type": "lens",
        "attributes": {
            "title": title, "description": description, "visualizationType": visualization_type,
            "state": {"datasourceStates": {"formBased": {"layers": {"main": layer}}},
                      "visualization": visualization, "query": {"query": query, "language": "kuery"},
                      "filters": [], "internalReferences": [], "adHocDataViews": {}},
        },
        "references": [{"type": "index-pattern", "id": view_id, "name": "indexpattern-datasource-layer-main"}],
        "managed": False, "coreMigrationVersion": "8.8.0", "typeMigrationVersion": "8.9.0",
    }


def bars(x: str, accessors: list[str], series: str = "bar_horizontal", split: str | None = None) -> dict:
    layer = {"layerId": "main", "layerType": "data", "seriesType": series, "xAccessor": x, "accessors": accessors}
    if split:
        layer["splitAccessor"] = split
    return {"legend": {"isVisible": True, "position": "right"}, "valueLabels": "hide", "fittingFunction": "None",
            "preferredSeriesType": series, "layers": [layer],
            "axisTitlesVisibilitySettings": {"x": True, "yLeft": True, "yRight": True}}


def table(columns: list[str]) -> dict:
    return {"layerId": "main", "layerType": "data", "columns": [{"columnId": column} for column in columns]}


def objects() -> list[dict]:
    found = [data_view(view_id) for view_id in DATA_VIEWS]
    panels = [
        lens("mailforce-lens-top-companies", "Top companies by emails",
             "The 20 outside companies with the most distinct messages, all of a company's domains together "
             "(search-organizations; free-mail providers such as gmail.com are personal, not companies).",
             "mailforce-dv-organizations",
             {"organization": terms("organization", "Company", "emails"),
              "emails": metric("sum", "total_emails", "Emails")},
             "lnsXY", bars("organization", ["emails"]), query="kind : \"company\""),
        lens("mailforce-lens-company-best-connected", "Who knows each company best",
             "Per top company, the accounts with the strongest relationship with anyone there (strength from "
             "search-relationships; personal providers and automated addresses left out).",
             "mailforce-dv-relationships",
             {"organization": terms("organization", "Company", "strength", 10),
              "account": terms("account", "Account", "strength", 3),
              "strength": metric("max", "strength", "Strongest relationship")},
             "lnsDatatable", table(["organization", "account", "strength"]),
             query="organization_kind : \"company\" and not automated : true"),
        lens("mailforce-lens-top-relationships", "Top relationships by strength",
             "The 20 strongest (account, outside address) relationships, automated addresses left out; "
             "strength from search-relationships.", "mailforce-dv-relationships",
             {"address": terms("email_address", "Outside address", "strength"),
              "strength": metric("max", "strength", "Strength")},
             "lnsXY", bars("address", ["strength"]), query="not automated : true"),
        lens("mailforce-lens-top-contacts", "Contacts known by the most accounts",
             "The 20 outside addresses that the most team mailboxes have exchanged mail with (accounts_count).",
             "mailforce-dv-contacts",
             {"address": terms("email_address", "Contact", "accounts"),
              "accounts": metric("max", "accounts_count", "Accounts")},
             "lnsXY", bars("address", ["accounts"]), query="not automated : true"),
        lens("mailforce-lens-domain-timeline", "Domain timeline by month",
             "Messages per month with the 8 busiest outside domains (search-engagement-timeline, scope domain).",
             "mailforce-dv-timeline",
             {"month": histogram("month", "Month", "M"),
              "domain": terms("domain", "Domain", "messages", 8),
              "messages": metric("sum", "messages", "Messages")},
             "lnsXY", bars("month", ["messages"], "bar_stacked", split="domain"), query="scope : \"domain\""),
        lens("mailforce-lens-top-domains", "Top domains by emails",
             "The 20 outside domains with the most distinct messages (total_emails).", "mailforce-dv-domains",
             {"domain": terms("domain", "Domain", "emails"), "emails": metric("sum", "total_emails", "Emails")},
             "lnsXY", bars("domain", ["emails"])),
        lens("mailforce-lens-contact-timeline", "Domains by latest contact",
             "How many domains were last active in each period, and when they were first contacted.",
             "mailforce-dv-domains",
             {"latest_date": histogram("latest_contact_date", "Latest contact"),
              "latest_count": metric("count", "___records___", "Domains last active"),
              "first_date": metric("min", "first_contact_date", "Earliest first contact", "date")},
             "lnsDatatable", table(["latest_date", "latest_count", "first_date"])),
        lens("mailforce-lens-pipeline-last-window", "Pipeline health: last window end",
             "The end of the latest successful run's window: the watermark. A stale value means runs fail or "
             "are paused (runtime stats record successful runs only; look at the Airflow UI).",
             "mailforce-dv-runtime-stats",
             {"last_window_end": metric("max", "window_end", "Last window end", "date")},
             "lnsMetric", {"layerId": "main", "layerType": "data", "metricAccessor": "last_window_end"}),
        lens("mailforce-lens-pipeline-runs", "Pipeline health: runs",
             "Per successful run (by window end): messages, late mail, documents written and duration. "
             "Failures publish no record: a gap in window ends is a failed or paused period.",
             "mailforce-dv-runtime-stats",
             {"window_end": histogram("window_end", "Window end"),
              "runs": metric("count", "___records___", "Runs"),
              "messages": metric("sum", "emails_processed", "Messages"),
              "late": metric("sum", "late_messages", "Late messages"),
              "roles": metric("sum", "documents_written.message_roles", "Roles documents written"),
              "relationships": metric("sum", "documents_written.relationships", "Relationships written"),
              "contacts": metric("sum", "documents_written.contacts", "Contacts written"),
              "timeline": metric("sum", "documents_written.engagement_timeline", "Timeline documents written"),
              "domains": metric("sum", "documents_written.domains_engagements", "Domain documents written"),
              "changes": metric("sum", "documents_written.relationship_changes", "Band crossings recorded"),
              "duration": metric("max", "duration_seconds", "Longest duration (s)")},
             "lnsDatatable", table(["window_end", "runs", "messages", "late", "roles", "relationships", "contacts",
                                     "timeline", "domains", "changes", "duration"])),
        lens("mailforce-lens-pipeline-late", "Pipeline health: late mail and duration",
             "Late messages counted and the longest run duration, per window-end period.",
             "mailforce-dv-runtime-stats",
             {"window_end": histogram("window_end", "Window end"),
              "late": metric("sum", "late_messages", "Late messages"),
              "duration": metric("max", "duration_seconds", "Longest duration (s)")},
             "lnsXY", bars("window_end", ["late", "duration"], "bar")),
        lens("mailforce-lens-account-counts", "Distinct addresses per account and role",
             "Per mailbox, distinct outside addresses in From / To / CC (not filtered by the time picker).",
             "mailforce-dv-accounts",
             {"account": terms("account", "Account", "from", 50),
              "from": metric("sum", "emails_from_count", "From"),
              "to": metric("sum", "emails_to_count", "To"),
              "cc": metric("sum", "emails_cc_count", "CC")},
             "lnsXY", bars("account", ["from", "to", "cc"], "bar_stacked")),
        lens("mailforce-lens-messages-over-time", "Messages per account over time",
             "Distinct messages per account and period (search-message-roles, by message date).",
             "mailforce-dv-message-roles",
             {"date": histogram("date", "Date"),
              "account": terms("account", "Account", "messages", 10),
              "messages": metric("count", "___records___", "Messages")},
             "lnsXY", bars("date", ["messages"], "bar_stacked", split="account")),
        lens("mailforce-lens-gone-cold", "Relationships gone cold per account",
             "Per mailbox, the relationships that crossed into the cold band in the period (the change feed, "
             "search-relationship-changes, went_cold: a relationship that existed before).",
             "mailforce-dv-changes",
             {"account": terms("account", "Account", "relationships", 20),
              "relationships": metric("count", "___records___", "Relationships gone cold")},
             "lnsXY", bars("account", ["relationships"]), query="went_cold : true"),
        lens("mailforce-lens-band-crossings", "Band crossings by scoring date",
             "Relationships crossing a strength band per period, by the band they reached (new relationships "
             "left out): cold and cooling growing means relationships are fading.",
             "mailforce-dv-changes",
             {"scoring_date": histogram("scoring_date", "Scoring date"),
              "to_band": terms("to_band", "Band reached", "crossings", 4),
              "crossings": metric("count", "___records___", "Crossings")},
             "lnsXY", bars("scoring_date", ["crossings"], "bar_stacked", split="to_band"),
             query="not from_band : \"none\""),
    ]
    layout = []
    for number, panel in enumerate(panels):
        wide = panel["id"] == "mailforce-lens-pipeline-runs"
        layout.append((panel["id"], {"x": 0 if wide or number % 2 == 0 else 24, "y": 15 * (number // 2),
                                     "w": 48 if wide else 24, "h": 15}))
    panels_json = [{"version": "8.9.0", "type": "lens", "gridData": {**grid, "i": f"p{number}"},
                    "panelIndex": f"p{number}", "embeddableConfig": {"enhancements": {}},
                    "panelRefName": f"panel_p{number}"} for number, (_, grid) in enumerate(layout, 1)]
    dashboard = {
        "id": "mailforce-dashboard", "type": "dashboard",
        "attributes": {
            "title": "Mailforce engagements",
            "description": "Relationship intelligence from the Mailforce Engagements DAG: strongest relationships, "
                           "contacts, domains by month, relationships crossing strength bands, and pipeline "
                           "health. The time picker filters each panel on the date of the activity it shows "
                           "(see docs/KIBANA.md in the Mailforce repository).",
            "panelsJSON": json.dumps(panels_json, separators=(",", ":")),
            "optionsJSON": json.dumps({"useMargins": True, "syncColors": False, "syncCursor": True,
                                       "syncTooltips": False, "hidePanelTitles": False}, separators=(",", ":")),
            "timeRestore": True, "timeFrom": "now-30y", "timeTo": "now",
            "refreshInterval": {"pause": True, "value": 60000},
            "kibanaSavedObjectMeta": {"searchSourceJSON": json.dumps({"query": {"query": "", "language": "kuery"},
                                                                      "filter": []}, separators=(",", ":"))},
            "version": 1,
        },
        "references": [{"name": f"p{number}:panel_p{number}", "type": "lens", "id": lens_id}
                       for number, (lens_id, _) in enumerate(layout, 1)],
        "managed": False, "coreMigrationVersion": "8.8.0", "typeMigrationVersion": "8.9.0",
    }
    return found + panels + [dashboard]


def render() -> str:
    return "".join(json.dumps(obj, separators=(",", ":")) + "\n" for obj in objects())


if __name__ == "__main__":
    OUTPUT.write_text(render())
    print(f"wrote {OUTPUT}")
