"""Output indices: creating what is missing before anything is written, checking what exists.

Each index's mapping is declared with its kind (`mailforce.core.kinds`). Every output index is created with an explicit, strict mapping before the first write: a field that
is not declared is refused rather than guessed by dynamic mapping.
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

from mailforce.core.kinds import OUTPUT_KINDS  # each kind's mapping is declared with the kind
from mailforce.core.run_stats import MODEL_VERSION
from mailforce.core.setting_checks import compare_mapping, foreign_mapping_error
from mailforce.settings import Settings

log = logging.getLogger(__name__)


def index_mappings(settings: Settings) -> dict[str, dict[str, Any]]:
    """Index name -> its mapping, for every output index (the ledger has its own, `mailforce.es.ledger`)."""
    return {kind.index(settings): dict(kind.properties) for kind in OUTPUT_KINDS}


class MigrationRequired(RuntimeError):
    """The output indices were written by an earlier data model and this run may not rebuild them."""


# Indices a previous version created and this one no longer uses: reported, never deleted.
UNUSED_INDICES = ("search-mailforce-partials",)


def ensure_output_indices(es, settings: Settings, *, allow_rebuild: bool = True) -> list[str]:
    """Create each missing output index with its explicit mapping; returns the ones created.

    An existing index whose mapping lacks a field we write gets the field added. An index written by
    the previous data model (a `nested` field where this version stores an object or a stored list)
    is migrated: every derived output index (all but the runtime stats) is deleted and created again
    with this version's mapping, and since the watermark only reads runtime-stats records of
    `MODEL_VERSION`, this run starts from the beginning and recomputes everything from the source.
    `allow_rebuild=False` (backfills, reprocessing from a date, reconciliations: runs that do not
    cover the whole source) raises `MigrationRequired` instead, before anything is touched. A foreign
    mapping (a field of another type, or another tool's strict schema) raises `ForeignMapping`, before
    anything is touched: the index is not ours to rebuild.
    """
    mappings = index_mappings(settings)
    stored = stored_mappings(es, list(mappings))
    existing = {name: properties for name, properties in mappings.items() if name in stored}
    checked = {name: _check_mapping(settings, name, stored[name], properties) for name, properties in existing.items()}
    outdated = [name for name, (old_fields, _) in checked.items() if old_fields]
    rebuilt: list[str] = []
    if outdated:
        if not allow_rebuild:
            raise MigrationRequired(
                f"indices {outdated} were written by an earlier version of mailforce (data model < {MODEL_VERSION}); "
                "the next normal run (scheduled, or triggered without from_date/backfill) rebuilds them from the "
                "source. Run one first: a backfill, a reprocessing from a date or a reconciliation cannot rebuild "
                "them (see docs/UPGRADING.md)"
            )
        rebuilt = _rebuild(es, settings, outdated, existing)
        _report_unused(es)  # only when upgrading: a normal run never looks outside its indices
    for name, (_, missing) in checked.items():
        if missing and name not in rebuilt:
            es.indices.put_mapping(index=name, properties={field: mappings[name][field] for field in missing})
            log.info("Added fields %s to the mapping of %s", missing, name)
    created = []
    for name, properties in mappings.items():
        if name in existing and name not in rebuilt:
            continue  # checked above, missing fields added
        if create_index(es, settings, name, properties):
            created.append(name)
    return created


def create_index(es, settings: Settings, name: str, properties: dict[str, Any], *, shards: int | None = None) -> bool:
    """Create `name` with an explicit, strict mapping; False when another task created it first.

    `shards` defaults to the `index_shards` setting (small indices pass 1)."""
    body = {
        "settings": {"number_of_shards": shards or settings.index_shards, "number_of_replicas": settings.index_replicas},
        "mappings": {"dynamic": "strict", "properties": properties},
    }
    try:
        es.indices.create(index=name, **body)
        log.info("Created index %s with an explicit mapping", name)
        return True
    except Exception as error:  # another task created it first: fine if it is there now
        if not es.indices.exists(index=name):
            raise
        log.info("Index %s appeared meanwhile (%s)", name, type(error).__name__)
        return False


def _rebuild(es, settings: Settings, outdated: list[str], existing: dict[str, Any]) -> list[str]:
    """Delete every derived output index (the runtime stats and the source never); returns them.

    The outdated ones are deleted last: a run that dies half-way still finds one of them, and the
    next run rebuilds again.
    """
    derived = [name for name in existing if name != settings.runtime_stats_index]
    ledger = settings.ledger_index  # derived too; written only by this version, but made consistent
    order = [name for name in derived if name not in outdated] + [name for name in outdated if name in derived]
    if es.indices.exists(index=ledger):
        order.insert(0, ledger)
    log.warning(
        "Upgrading to data model %d: indices %s were written by an earlier version; deleting %s and creating "
        "them again; this run reads the whole source from the beginning (runtime-stats history kept)",
        MODEL_VERSION, outdated, order,
    )
    for name in order:
        es.indices.delete(index=name)
    return [name for name in order if name != ledger]


def _report_unused(es) -> None:
    for name in UNUSED_INDICES:
        try:
            if es.indices.exists(index=name):
                log.info("Index %s is left from an earlier version and is no longer used; delete it when "
                         "convenient (mailforce never deletes it)", name)
        except Exception:  # a role without access to it (403): nothing to report
            pass


def stored_mappings(es, names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """name -> {concrete index: its mapping answer} for each of `names` that exists: one request for
    all of them (two requests per run instead of one existence check and one mapping read per output
    index). A name that is an alias answers under its indices' names; when the answer holds an index
    no name matches, the names it did not answer for are asked one by one."""
    answer = es.indices.get_mapping(index=",".join(names), ignore_unavailable=True, allow_no_indices=True).body
    found = {name: {name: answer[name]} for name in names if name in answer}
    if set(answer) - set(names):  # some name is an alias (or resolves to other indices)
        for name in names:
            if name not in found and es.indices.exists(index=name):
                found[name] = es.indices.get_mapping(index=name).body
    return found


def _check_mapping(settings: Settings, name: str, stored: dict[str, Any],
                   properties: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(fields in the previous data model's shape, to be migrated; fields to add) of the index or
    alias `name`, whose `stored` mappings (`stored_mappings`) are compared. Changes nothing.

    Raises ForeignMapping (`mailforce.core.setting_checks`) when the index is not the product's to write."""
    outdated: list[str] = []
    to_add: list[str] = []
    for concrete, index_body in stored.items():
        comparison = compare_mapping(index_body.get("mappings", {}), properties)
        error = foreign_mapping_error(concrete, settings.index_setting(name), comparison, properties)
        if error is not None:
            raise error
        outdated += [field for field in comparison.outdated if field not in outdated]
        to_add += [field for field in comparison.missing if field not in to_add]
    return outdated, to_add


def check_output_mappings(es, settings: Settings) -> list[str]:
    """Every existing output index checked against the product's mapping, changing nothing; returns
    the ones that exist. Raises ForeignMapping, naming the index, the field and the setting."""
    mappings = index_mappings(settings)
    stored = stored_mappings(es, list(mappings))
    for name, properties in mappings.items():
        if name in stored:
            _check_mapping(settings, name, stored[name], properties)
    return [name for name in mappings if name in stored]


class SourceIndexMissing(RuntimeError):
    """The configured source index does not exist: a typo must not look like a quiet mailbox."""


def prepare_indices(es, settings: Settings, *, allow_rebuild: bool = True) -> list[str]:
    """Check the source exists, and create missing output indices before anything is written.

    A run over a missing source would record an empty window and move the watermark past mail that
    appears there later, so it fails instead.
    """
    if not es.indices.exists(index=settings.source_index):
        raise SourceIndexMissing(
            f"source index {settings.source_index!r} does not exist; check the setting 'source_index' "
            "(MAILFORCE_SOURCE_INDEX) or load mail first"
        )
    return ensure_output_indices(es, settings, allow_rebuild=allow_rebuild)
