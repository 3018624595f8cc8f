"""The Kibana saved objects (kibana/mailforce-dashboard.ndjson), checked by parsing: references
consistent, every field a panel uses exists in the product's own mapping of its index
(`mailforce.es.indices.index_mappings`), one time field per data view as docs/KIBANA.md documents, the
panels issues 10 and 12 ask for. The file is what kibana/build_dashboard.py renders."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any, Callable

import pytest

from mailforce.es.indices import index_mappings
from mailforce.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]
NDJSON = ROOT / "kibana" / "mailforce-dashboard.ndjson"
KIBANA_PAGE = ROOT / "docs" / "KIBANA.md"

# The documented choice: the date of the activity each document describes.
TIME_FIELDS = {
    "search-relationships": "latest_engagement_date",
    "search-contacts": "latest_contact_date",
    "search-engagement-timeline": "month",
    "search-domains-engagements": "latest_contact_date",
    "search-organizations": "latest_contact_date",
    "search-runtime-stats": "window_end",
    "search-message-roles": "date",
    "search-accounts_statistics_simple": None,  # no activity date: the time picker leaves it alone
    "search-relationship-changes": "scoring_date",
}
RECORDS = "___records___"  # Lens's document count


def flat_fields(properties: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Mapping properties -> {dotted field: type}; objects recurse, disabled objects are not searchable."""
    fields: dict[str, str] = {}
    for name, spec in properties.items():
        if "properties" in spec:
            fields.update(flat_fields(spec["properties"], f"{prefix}{name}."))
        elif spec.get("enabled", True) is not False:
            fields[f"{prefix}{name}"] = spec.get("type", "object")
    return fields


MAPPINGS = {index: flat_fields(properties) for index, properties in index_mappings(load_settings(environ={}, use_variable=False)).items()}


def load_objects(lines: list[str] | None = None) -> list[dict]:
    return [json.loads(line) for line in (lines if lines is not None else NDJSON.read_text().splitlines()) if line.strip()]


def check(objects: list[dict]) -> list[str]:
    problems: list[str] = []
    for number, obj in enumerate(objects, 1):
        missing = [key for key in ("id", "type", "attributes") if not obj.get(key)]
        if missing:
            problems.append(f"object {number} has no {missing}")
    objects = [obj for obj in objects if obj.get("id") and obj.get("type") and obj.get("attributes")]
    present = {(obj["type"], obj["id"]) for obj in objects}
    if len(present) != len(objects):
        problems.append("two objects share a type and id")
    views = {obj["id"]: obj["attributes"] for obj in objects if obj["type"] == "index-pattern"}
    by_index = {attributes.get("title"): view_id for view_id, attributes in views.items()}
    for index, time_field in TIME_FIELDS.items():
        if index not in by_index:
            problems.append(f"no data view for {index}")
            continue
        attributes = views[by_index[index]]
        if attributes.get("timeFieldName") != time_field:
            problems.append(f"{index}: time field {attributes.get('timeFieldName')!r}, documented {time_field!r}")
        if time_field and MAPPINGS.get(index, {}).get(time_field) != "date":
            problems.append(f"{index}: time field {time_field!r} is not a date in the product's mapping")
    for view_id, attributes in views.items():
        if attributes.get("title") not in MAPPINGS:
            problems.append(f"{view_id}: {attributes.get('title')!r} is not an output index")
    used: set[tuple[str, str, str]] = set()
    for obj in objects:
        refs = obj.get("references") or []
        for ref in refs:
            if (ref.get("type"), ref.get("id")) not in present:
                problems.append(f"{obj['id']}: reference {ref.get('name')} -> {ref.get('type')}:{ref.get('id')} is not in the file")
        ref_names = {ref.get("name"): ref for ref in refs}
        if obj["type"] == "lens":
            state = obj["attributes"].get("state", {})
            layers = state.get("datasourceStates", {}).get("formBased", {}).get("layers", {})
            if not layers:
                problems.append(f"{obj['id']}: a Lens object without layers")
            accessors = json.dumps(state.get("visualization", {}))
            for layer_id, layer in layers.items():
                ref = ref_names.get(f"indexpattern-datasource-layer-{layer_id}")
                if not ref or ref.get("id") not in views:
                    problems.append(f"{obj['id']}: layer {layer_id} has no data view reference")
                    continue
                index = views[ref["id"]].get("title")
                fields = MAPPINGS.get(index, {})
                columns = layer.get("columns", {})
                if list(layer.get("columnOrder", [])) != list(columns) and set(layer.get("columnOrder", [])) != set(columns):
                    problems.append(f"{obj['id']}: layer {layer_id} columnOrder does not match its columns")
                for column_id, column in columns.items():
                    field = column.get("sourceField")
                    if field != RECORDS and field not in fields:
                        problems.append(f"{obj['id']}: field {field!r} is not in the mapping of {index}")
                    if f'"{column_id}"' not in accessors:
                        problems.append(f"{obj['id']}: column {column_id} is not shown by the visualization")
                    order = (column.get("params") or {}).get("orderBy", {})
                    if order.get("type") == "column" and order.get("columnId") not in columns:
                        problems.append(f"{obj['id']}: {column_id} is ordered by a missing column")
                    used.add((index, column.get("operationType"), field))
        if obj["type"] == "dashboard":
            try:
                panels = json.loads(obj["attributes"].get("panelsJSON", "[]"))
            except ValueError:
                problems.append(f"{obj['id']}: panelsJSON is not JSON")
                panels = []
            if not panels:
                problems.append(f"{obj['id']}: the dashboard has no panels")
            for panel in panels:
                if f"{panel.get('panelIndex')}:{panel.get('panelRefName')}" not in ref_names:
                    problems.append(f"{obj['id']}: panel {panel.get('panelIndex')} has no reference")
            lenses = {obj["id"] for obj in objects if obj["type"] == "lens"}
            shown = {ref["id"] for ref in refs if ref.get("type") == "lens"}
            if lenses - shown:
                problems.append(f"{obj['id']}: lens objects not on the dashboard: {sorted(lenses - shown)}")
    if not any(obj["type"] == "dashboard" for obj in objects):
        problems.append("no dashboard object")
    wanted = [
        ("search-relationships", "max", "strength"),  # top relationships by strength
        ("search-organizations", "sum", "total_emails"),  # top companies (issue 23)
        ("search-relationships", "terms", "organization"),  # who knows each company best
        ("search-contacts", "max", "accounts_count"),  # contacts by accounts
        ("search-engagement-timeline", "date_histogram", "month"),  # domain timeline by month
        ("search-engagement-timeline", "terms", "domain"),
        ("search-runtime-stats", "max", "window_end"),  # pipeline health: last window end
        ("search-runtime-stats", "sum", "late_messages"),
        ("search-runtime-stats", "sum", "documents_written.relationships"),
        ("search-runtime-stats", "max", "duration_seconds"),
        ("search-domains-engagements", "sum", "total_emails"),
        ("search-relationship-changes", "terms", "account"),  # relationships gone cold per account
        ("search-relationship-changes", "date_histogram", "scoring_date"),  # band crossings over time
        ("search-runtime-stats", "sum", "documents_written.relationship_changes"),
    ]
    for item in wanted:
        if item not in used:
            problems.append(f"no visualization uses {item[1]} of {item[2]} on {item[0]}")
    return problems


def test_saved_objects_are_consistent_with_the_products_mappings():
    assert check(load_objects()) == []


def test_the_file_is_what_the_builder_renders():
    spec = importlib.util.spec_from_file_location("build_dashboard", ROOT / "kibana" / "build_dashboard.py")
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    assert NDJSON.read_text() == builder.render(), "run: python kibana/build_dashboard.py"


def test_the_kibana_page_documents_each_data_views_time_field():
    section = KIBANA_PAGE.read_text().split("## One time field per data view", 1)[1].split("\n## ", 1)[0]
    for index, time_field in TIME_FIELDS.items():
        row = next((line for line in section.splitlines() if f"`{index}`" in line), "")
        assert row, f"docs/KIBANA.md has no time-field row for {index}"
        assert (f"`{time_field}`" if time_field else "none") in row, row


def _mutations() -> dict[str, Callable[[list[dict]], list[dict]]]:
    def first_lens_column(objs):
        lens = next(obj for obj in objs if obj["type"] == "lens")
        layer = next(iter(lens["attributes"]["state"]["datasourceStates"]["formBased"]["layers"].values()))
        return next(iter(layer["columns"].values()))

    def dangling(objs):
        objs[-1]["references"][0]["id"] = "no-such-object"
        return objs

    def no_id(objs):
        objs[0].pop("id")
        return objs

    def wrong_field(objs):
        first_lens_column(objs)["sourceField"] = "no_such_field"
        return objs

    def other_time_field(objs):
        next(obj for obj in objs if obj["attributes"].get("title") == "search-runtime-stats")["attributes"]["timeFieldName"] = "run_date"
        return objs

    def no_health_panel(objs):
        return [obj for obj in objs if not obj["id"].startswith("mailforce-lens-pipeline")]

    return {
        "no dashboard": lambda objs: [obj for obj in objs if obj["type"] != "dashboard"],
        "dangling reference": dangling,
        "object without id": no_id,
        "unknown field": wrong_field,
        "missing data view": lambda objs: [o for o in objs if o["attributes"].get("title") != "search-contacts"],
        "another time field": other_time_field,
        "no pipeline health": no_health_panel,
    }


@pytest.mark.parametrize("case", sorted(_mutations()))
def test_the_check_catches_broken_saved_objects(case):
    assert check(_mutations()[case](load_objects())) != []


def test_the_check_catches_an_unparseable_line():
    with pytest.raises(ValueError):
        load_objects(NDJSON.read_text().splitlines() + ["{not json"])
