"""Each output index as an Airflow Asset, so downstream DAGs can be scheduled on fresh engagements.

    @dag(schedule=[output_assets(load_settings())["domains"]])   # runs after every domain update
"""

from __future__ import annotations

from airflow.sdk import Asset

from mailforce.settings import Settings


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
