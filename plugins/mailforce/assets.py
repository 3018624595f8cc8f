"""Each output index as an Airflow Asset, so downstream DAGs can be scheduled on fresh engagements.

    @dag(schedule=[output_assets(load_settings())["domains"]])   # runs after every domain update

Lineage: the source index is the extraction's inlet (`source_asset`). Every task that writes
records an asset event with extras (index, documents written, run id). The mapped compile declares
an `AssetAlias` instead of the five assets and adds an event only for each index it actually wrote:
Airflow 3 records an event for every declared outlet of a successful task, so an instance that
wrote nothing would otherwise announce fresh data it did not produce.
"""

from __future__ import annotations

from airflow.sdk import Asset, AssetAlias

from mailforce.settings import Settings


COMPILED_ALIAS = "mailforce-compiled-outputs"


def source_asset(settings: Settings) -> Asset:
    """The mailbox index the DAG reads: the extraction's inlet."""
    return Asset(name=settings.source_index, uri=f"elasticsearch://{settings.conn_id}/{settings.source_index}",
                 group="mailforce")


def compiled_alias() -> AssetAlias:
    """The compile's outlet: events are added per written index (see the module docstring)."""
    return AssetAlias(name=COMPILED_ALIAS, group="mailforce")


def output_assets(settings: Settings) -> dict[str, Asset]:
    """Output name -> Asset; the URI names the connection id and the index."""

    def asset(index: str) -> Asset:
        return Asset(name=index, uri=f"elasticsearch://{settings.conn_id}/{index}", group="mailforce")

    return {
        "roles": asset(settings.roles_index),
        "engagements": asset(settings.engagements_index),
        "account_stats": asset(settings.account_stats_index),
        "domains": asset(settings.domains_index),
        "relationships": asset(settings.relationships_index),
        "contacts": asset(settings.contacts_index),
        "timeline": asset(settings.timeline_index),
        "runtime_stats": asset(settings.runtime_stats_index),
    }
