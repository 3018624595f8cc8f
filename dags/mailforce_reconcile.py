"""
### Mailforce reconciliation

Counts whatever mail the scheduled runs of `mailforce_engagements` missed (indexed later than any
allowed lateness, or by a harvester that stamps no arrival time), over all time up to the watermark.

**Stages**

1. `reconcile_window`: refuses an output index with a foreign mapping (one sentence naming the
   index, the field and the setting, before anything is written), takes the lease that keeps runs of the Mailforce DAGs apart (waiting while
   an hourly run or an erasure runs: the daily schedule meets the hourly one at midnight); then per
   account and UTC month, the distinct dated messages of the source against the records of
   `search-mailforce-ledger` (counts only), per day within the months that differ; where a day
   differs, the ids; the slices holding mail no run counted become this run's window.
2. the same stages as the main DAG (`plan_extraction_slices`, `extract_message_roles` ... `publish_stats`, wired once in
   `mailforce.dag_stages`), on that window: missing messages are counted exactly as a normal run
   counts them; what was already counted costs a lookup only. `announce_outputs` and
   `announce_changes` record the asset events of what it wrote, like the main DAG (late mail that
   moves a relationship into another strength band is a crossing of the reconciliation's run).

`publish_stats` gives the lease back. Its runtime-stats record has `reconciliation: true`, `late_messages` (what it found),
`late_accounts` and `late_days`; it never moves the watermark. See docs/LATE_MAIL.md.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import dag, get_current_context, task

from mailforce import dag_tasks
from mailforce.dag_defaults import shared_dag_arguments
from mailforce.dag_stages import count_window
from mailforce.settings import load_settings

DEPLOY_SETTINGS = load_settings(use_variable=False)  # parse time: environment only, no DB access
SCHEDULE = None if DEPLOY_SETTINGS.reconcile_schedule.strip().lower() in ("", "none", "null") \
    else DEPLOY_SETTINGS.reconcile_schedule


@dag(
    dag_id="mailforce_reconcile",
    dag_display_name="Mailforce reconciliation",
    description="Counts late mail the scheduled runs missed; reports it in the runtime stats.",
    doc_md=__doc__,
    schedule=SCHEDULE,
    tags=["mailforce", "elasticsearch", "reconciliation"],
    **shared_dag_arguments(),  # retries with backoff; one reconciliation at a time
)
def mailforce_reconcile():
    @task(task_display_name="Reconcile window")
    def reconcile_window() -> dict[str, Any]:
        """Counts per account and month, then day, against the ledger; ids only where they differ."""
        return dag_tasks.reconcile_window(get_current_context())

    count_window(reconcile_window())  # the main DAG's stages, on the reconciliation's window


mailforce_reconcile()
