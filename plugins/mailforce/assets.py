"""Each output index as an Airflow Asset, so downstream DAGs can be scheduled on fresh engagements.

    @dag(schedule=[output_assets(load_settings())["domains"]])   # runs after every domain update

Every asset is declared here, once, in group `mailforce`, and every one is a declared inlet or outlet
of a task, so the dag-processor registers all of them (none is created on the fly).

Lineage: the source index is the extraction's inlet (`source_asset`). Every task that writes records
an asset event with extras (index, documents written, run id). The compiled outputs (`COMPILED_KIND_NAMES`:
written by the mapped compile and by the daily rescoring) are announced by one task per run,
`announce_outputs`, never by the mapped instances themselves, and not through an `AssetAlias`:

- Airflow 3 records asset-alias events when it stores the task's success, and the first events of an
  alias insert its asset links; mapped instances finishing together race on that insert
  (`UniqueViolation` on `asset_alias_asset`, seen on PostgreSQL about one first run in eight): the
  instance is failed after its code finished, without retries, with a clean log. A task that runs once
  per run, under the run's lease, cannot race with another such task.
- With declared outlets Airflow records an event for each of them whenever the task succeeds, so
  `announce_outputs` is skipped when the run wrote none of the compiled outputs: an unchanged run
  wakes no downstream DAG. Each event's extras say how many documents of that index the run wrote
  (possibly 0 when another compiled output changed).
- The change feed has a task of its own, `announce_changes`, for the same reason: its event means "a
  relationship crossed a strength band" (extras: crossings recorded, the scoring date), so
  it is recorded only when the run recorded a crossing, not whenever any output changed.
"""

from __future__ import annotations

from airflow.sdk import Asset

from mailforce.core.kinds import CHANGES, COMPILED_KIND_NAMES, OUTPUT_KINDS
from mailforce.settings import Settings


def source_asset(settings: Settings) -> Asset:
    """The mailbox index the DAG reads: the extraction's inlet."""
    return Asset(name=settings.source_index, uri=f"elasticsearch://{settings.conn_id}/{settings.source_index}",
                 group="mailforce")


def output_assets(settings: Settings) -> dict[str, Asset]:
    """Output name -> Asset; the URI names the connection id and the index."""

    def asset(index: str) -> Asset:
        return Asset(name=index, uri=f"elasticsearch://{settings.conn_id}/{index}", group="mailforce")

    return {kind.name: asset(kind.index(settings)) for kind in OUTPUT_KINDS}


def compiled_assets(settings: Settings) -> list[Asset]:
    """The outlets of `announce_outputs`: the outputs the compile and the rescoring write."""
    assets = output_assets(settings)
    return [assets[kind] for kind in COMPILED_KIND_NAMES]


def changes_asset(settings: Settings) -> Asset:
    """The change feed (`search-relationship-changes`): the outlet of `announce_changes`, which records
    an event only when the run recorded a crossing; the example digest DAG is scheduled on it."""
    return output_assets(settings)[CHANGES.name]
