"""
### Mailforce history load

Loads a long history (a first run over years of mail) in resumable chunks, one ordinary run of
`mailforce_engagements` per calendar period that holds mail.

**Stages**

1. `plan_history_chunks`: from the watermark (the first message on a fresh cluster) up to `until`
   (default: this run's logical end), the ends of the weeks, months, quarters or years (`chunk`)
   that hold mail, as the `to_date` of one run each.
2. `load_history_chunk` (mapped, one per chunk, one at a time, labelled with its `to_date`): triggers
   `mailforce_engagements` with that `to_date` and waits for it. Each chunk is a normal run: its
   window starts at the watermark and its large extraction is itself split into slices (mapped
   tasks on every worker). The watermark moves only when a chunk's run publishes, so it never
   passes a chunk that is not done.

**Resume**: a failed chunk is retried alone (its instance's retries, or clear it); if a later chunk
ran meanwhile, that one already covered the failed chunk's months (its window starts at the
watermark). Triggering this DAG again plans from the watermark: whatever is done is not loaded again.
Progress: the Grid view of this DAG (one instance per chunk) and the runs of `mailforce_engagements`.
Pause the hourly schedule of `mailforce_engagements` during the load, or its next run takes the rest
of the history in one window (docs/RUNS.md, "Loading a history").
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import Param, dag, get_current_context, task

from mailforce import DAG_ID, dag_tasks
from mailforce.core.history import CHUNKS
from mailforce.dag_defaults import shared_dag_arguments


@dag(
    dag_id="mailforce_history",
    dag_display_name="Mailforce history load",
    description="Loads a long history in resumable chunks: one mailforce_engagements run per period.",
    doc_md=__doc__,
    schedule=None,
    tags=["mailforce", "elasticsearch", "history"],
    params={
        "until": Param(None, type=["null", "string"], format="date-time", title="Until",
                       description="Load up to this moment (inclusive); empty: this run's logical end."),
        "chunk": Param("month", enum=list(CHUNKS), title="Chunk",
                       description="One run of mailforce_engagements per this period that holds mail."),
    },
    **shared_dag_arguments(),
)
def mailforce_history():
    @task(task_display_name="Plan history chunks")
    def plan_history_chunks() -> list[dict[str, Any]]:
        """The chunks still to load after the watermark: one `to_date` each."""
        return dag_tasks.plan_history_chunks(get_current_context())

    TriggerDagRunOperator.partial(
        task_id="load_history_chunk",
        task_display_name="Load history chunk",
        trigger_dag_id=DAG_ID,
        wait_for_completion=True,
        poke_interval=30,
        allowed_states=["success"],
        failed_states=["failed"],
        max_active_tis_per_dag=1,  # one chunk at a time, in order: each starts at the watermark
        execution_timeout=timedelta(days=2),
        map_index_template="to_date {{ task.conf['to_date'] }}",
        doc_md="Triggers one mailforce_engagements run up to this chunk's end and waits for it.",
    ).expand(conf=plan_history_chunks())


mailforce_history()
