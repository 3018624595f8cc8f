"""
### Mailforce digest: relationships that went cold (an example)

An example of a DAG downstream of the change feed: scheduled on the asset of
`search-relationship-changes`, it runs whenever a Mailforce run recorded a crossing of a strength
band (`announce_changes`), and writes per account the relationships that went **cold** on that
run's scoring date (a relationship that existed before and crossed into the cold band; one created
cold is not news): to its task log, and, when the setting `digest_webhook_conn_id` names an HTTP
connection, as JSON to that webhook (Slack's incoming webhooks, or a CRM). The webhook's URL and
secret stay in the Airflow connection; the log never shows them.

Copy this file and `plugins/mailforce/digest.py` to send something else (warm relationships, a
weekly summary) anywhere else. Bands and the feed: docs/SEMANTICS.md and docs/OUTPUTS.md.
"""

from __future__ import annotations

from airflow.sdk import dag, get_current_context, task

from mailforce import dag_tasks
from mailforce.assets import changes_asset
from mailforce.dag_defaults import shared_dag_arguments
from mailforce.settings import load_settings

DEPLOY_SETTINGS = load_settings(use_variable=False)  # parse time: environment only, no DB access


@dag(
    dag_id="mailforce_cold_digest",
    dag_display_name="Mailforce digest: relationships gone cold",
    description="Example: per account, the relationships that went cold, on every change-feed event.",
    doc_md=__doc__,
    schedule=[changes_asset(DEPLOY_SETTINGS)],
    tags=["mailforce", "elasticsearch", "example"],
    **shared_dag_arguments(),
)
def mailforce_cold_digest():
    @task(task_display_name="Digest of relationships gone cold")
    def cold_digest() -> dict[str, int]:
        """Per account, the relationships that went cold on the triggering events' scoring dates."""
        return dag_tasks.cold_digest(get_current_context())

    cold_digest()


mailforce_cold_digest()
