"""Settings that cannot work against the cluster as it is, decided before anything is written (pure).

`mailforce.es.preflight` reads what the cluster holds (the source's field capabilities, the existing
output indices' mappings) and hands it here; the decisions are plain comparisons:

- **The arrival field** (setting `arrival_field`) must be mapped as a date (`date` or `date_nanos`)
  by the source index. Unmapped in every index behind the source name (a harvester index with
  `dynamic: false` keeps the field in `_source` only), or mapped as anything else in any of them, it
  cannot work: a range query on it selects nothing (every document would silently fall back to its
  `date`, with no lateness re-read) or compares strings. A source name covering several indices
  (an alias, a pattern, a comma-separated list) where the field is a date in some and unmapped in
  others is accepted, with a warning naming the others: the usual case is older indices created
  before the harvester stamped the field, which receive no new mail; their documents fall back to
  their `date`, and the reconciliation counts any late mail among them.
- **An output index that already exists** must be writable with the product's mapping: a field the
  product writes mapped as another type (at any depth of an object field) is a foreign mapping; so
  is an index with `dynamic: strict` that maps fields the product does not write while lacking the
  product's own (another tool's schema: the product would have to graft its fields onto it). An
  index lacking some of the product's fields and mapping nothing else (an output of an earlier version, or
  one created by hand) is not foreign: the fields are added. The previous data model's `nested`
  fields are not foreign either: the run that covers the whole source rebuilds them.

Each problem is an `UnusableSetting` carrying its payload (setting, index, field, found, expected,
fix) as attributes, and reads as one sentence that names the setting and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

DATE_TYPES = frozenset({"date", "date_nanos"})
UNMAPPED = "unmapped"  # field capabilities' name for "this index does not map the field"


class UnusableSetting(ValueError):
    """A setting that cannot work with the cluster as it is; retrying cannot fix it.

    `setting`: the setting's name; `index`: the index concerned; `field`: the field; `found`: what the
    index holds; `expected`: what the product needs; `fix`: what to do, in words.
    """

    def __init__(self, message: str, *, setting: str, index: str, field: str, found: str, expected: str,
                 fix: str) -> None:
        super().__init__(message)
        self.setting = setting
        self.index = index
        self.field = field
        self.found = found
        self.expected = expected
        self.fix = fix


class ArrivalFieldUnusable(UnusableSetting):
    """The source index does not map the arrival field as a date."""


class ForeignMapping(UnusableSetting):
    """An output index exists with a mapping the product cannot write."""


# -- the arrival field -------------------------------------------------------------------------------


def arrival_types_by_index(field: str, capabilities: Mapping[str, Any]) -> dict[str, str]:
    """Concrete index -> the field's type there (`unmapped` when it does not map it), from a field
    capabilities answer asked with `include_unmapped=true` (a type without `indices` covers all)."""
    indices = list(capabilities.get("indices") or [])
    types: dict[str, str] = {index: UNMAPPED for index in indices}
    for type_name, entry in (capabilities.get("fields") or {}).get(field, {}).items():
        for index in entry.get("indices") or indices:
            types[index] = str(entry.get("type") or type_name)
    return types


def check_arrival_field(field: str, source: str, types_by_index: Mapping[str, str]) -> list[str]:
    """The indices behind `source` that do not map `field` (a warning); raises ArrivalFieldUnusable
    when it is a date in none of them, or mapped as another type in any. An empty `field` is off."""
    if not field or not types_by_index:  # off, or a missing source (reported by its own check)
        return []
    other = {index: kind for index, kind in sorted(types_by_index.items()) if kind not in DATE_TYPES | {UNMAPPED}}
    unmapped = sorted(index for index, kind in types_by_index.items() if kind == UNMAPPED)
    where = f"the source index {source!r}" if set(types_by_index) == {source} else f"source {source!r}"
    if other:
        index, kind = next(iter(other.items()))
        in_index = "" if index == source else f" in {index}"
        fix = ("set 'arrival_field' (MAILFORCE_ARRIVAL_FIELD) to a field the source maps as a date, or clear it to "
               "window on date with 'allowed_lateness' (a field's type changes only by reindexing)")
        raise ArrivalFieldUnusable(
            f"setting 'arrival_field' names {field!r}, which {where} maps as {kind}{in_index}, not as a date: {fix}",
            setting="arrival_field", index=index, field=field, found=kind, expected="date", fix=fix)
    if len(unmapped) == len(types_by_index):
        index = unmapped[0] if len(unmapped) == 1 else source
        fix = (f"map it as a date in the source (PUT {index}/_mapping with "
               f'{{"properties": {{"{field}": {{"type": "date"}}}}}}) or clear \'arrival_field\' '
               f"(MAILFORCE_ARRIVAL_FIELD) to window on date with 'allowed_lateness'")
        raise ArrivalFieldUnusable(
            f"setting 'arrival_field' names {field!r}, which {where} does not map (a dynamic: false index keeps it "
            f"in _source only, so no window can select on it): {fix}",
            setting="arrival_field", index=index, field=field, found=UNMAPPED, expected="date", fix=fix)
    return unmapped


# -- output mappings ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldConflict:
    """A field the product writes, mapped otherwise: `field` is dotted (`documents_written.contacts`)."""

    field: str
    found: str
    expected: str


@dataclass(frozen=True)
class MappingComparison:
    """An existing mapping against the product's properties for that index."""

    outdated: tuple[str, ...]  # the previous data model's `nested` shape: rebuilt by a full run
    missing: tuple[str, ...]  # top-level fields to add (absent, or an object lacking sub-fields)
    conflicts: tuple[FieldConflict, ...]  # another type: the index is not the product's to write
    foreign_fields: tuple[str, ...]  # top-level fields the product does not write
    strict: bool  # `dynamic: strict`

    @property
    def foreign(self) -> bool:
        """Not writable by the product: a conflicting type, or another tool's strict schema."""
        return bool(self.conflicts) or (self.strict and bool(self.missing) and bool(self.foreign_fields))


def _type(spec: Mapping[str, Any]) -> str:
    return str(spec.get("type", "object"))


def _is_migratable(existing: Mapping[str, Any], spec: Mapping[str, Any]) -> bool:
    """The previous data model's shape: `nested` where this version has an object or a stored list."""
    return _type(existing) == "nested" and _type(spec) == "object"


def _missing_subfields(existing: Mapping[str, Any], spec: Mapping[str, Any]) -> bool:
    """An object field whose declared sub-fields are not all mapped yet (e.g. a new documents_written kind)."""
    if _type(existing) != "object" or _type(spec) != "object":
        return False
    have, want = existing.get("properties", {}), spec.get("properties", {})
    return any(sub not in have or _missing_subfields(have[sub], want[sub]) for sub in want)


def _conflicts(existing: Mapping[str, Any], properties: Mapping[str, Any], prefix: str = "") -> list[FieldConflict]:
    """Fields mapped with another type than the product's, at any depth of object fields."""
    found: list[FieldConflict] = []
    for field, spec in properties.items():
        if field not in existing:
            continue
        have, want = _type(existing[field]), _type(spec)
        if have != want:
            if not _is_migratable(existing[field], spec):
                found.append(FieldConflict(prefix + field, have, want))
        elif want == "object":
            found += _conflicts(existing[field].get("properties", {}), spec.get("properties", {}), f"{prefix}{field}.")
    return found


def compare_mapping(mapping: Mapping[str, Any], properties: Mapping[str, Any]) -> MappingComparison:
    """One index's existing mapping (the `mappings` of a get-mapping answer) against the product's."""
    existing = mapping.get("properties", {}) or {}
    return MappingComparison(
        outdated=tuple(sorted(field for field, spec in properties.items()
                              if field in existing and _is_migratable(existing[field], spec))),
        missing=tuple(sorted(field for field, spec in properties.items()
                             if field not in existing or _missing_subfields(existing[field], spec))),
        conflicts=tuple(_conflicts(existing, properties)),
        foreign_fields=tuple(sorted(field for field in existing if field not in properties)),
        strict=str(mapping.get("dynamic", "")).lower() == "strict",
    )


def foreign_mapping_error(index: str, setting: str, comparison: MappingComparison,
                          properties: Mapping[str, Any]) -> ForeignMapping | None:
    """The one-sentence refusal of an output index the product cannot write, or None when it can."""
    if not comparison.foreign:
        return None
    fix = (f"set {setting!r} (MAILFORCE_{setting.upper()}) to another index name, which mailforce creates with its "
           f"own mapping, or delete {index} if nothing else uses it")
    if comparison.conflicts:
        conflict = comparison.conflicts[0]
        more = f" (and {len(comparison.conflicts) - 1} more fields)" if len(comparison.conflicts) > 1 else ""
        return ForeignMapping(
            f"output index {index} (setting {setting!r}) maps {conflict.field!r} as {conflict.found}, but mailforce "
            f"writes it as {conflict.expected}{more}: {fix}",
            setting=setting, index=index, field=conflict.field, found=conflict.found, expected=conflict.expected,
            fix=fix)
    field = comparison.missing[0]
    foreign = ", ".join(comparison.foreign_fields[:3]) + (", ..." if len(comparison.foreign_fields) > 3 else "")
    return ForeignMapping(
        f"output index {index} (setting {setting!r}) has a dynamic: strict mapping of fields mailforce does not "
        f"write ({foreign}) and lacks fields it writes (e.g. {field!r}): {fix}",
        setting=setting, index=index, field=field, found="not mapped (dynamic: strict)",
        expected=_type(properties[field]), fix=fix)

