"""
### Mailforce Engagements

Turns the mailbox index (one document per message per account) into relationship intelligence:
per account and outside address when the relationship started, when it was last active and how many
messages went which way (From / To / CC); per domain the same rolled up; per message which address
held which role; and a runtime-stats record per run that doubles as the incremental watermark.

**Stages**

1. `fetch_watermark`: validates the params (a wrong one fails the run at once, in one sentence),
   refuses a setting that cannot work (an `arrival_field` the source does not map as a date, an
   output index with a foreign mapping, a malformed domain) in one sentence naming the setting and
   the fix, before anything is written, takes the lease that keeps runs of the Mailforce DAGs apart (waiting while a reconciliation or an
   erasure runs; docs/LATE_MAIL.md), creates missing output indices, and fixes the window: `(watermark, end]` after the last
   successful run's `window_end`, `[from_date, end]` with a `from_date`, `(the beginning, end]` on a
   fresh cluster. An account in `backfilled_accounts` / `exclude_accounts` the source index does not
   hold is a WARNING here and in the run summary (mistyped, or a mailbox not loaded yet).
2. `plan_extraction_slices`, then `extract_message_roles` (mapped, one per slice): counts the
   window's source documents and splits a large window into slices of message ids (every copy of a
   message in one slice; one slice for an hourly run, at most `max_extraction_slices`); each slice
   reads its messages once (only the needed fields), unites copies of a message, and writes one
   `search-message-roles` document per message (the fact table). A failed slice is retried alone.
3. `list_domains`: groups the domains the window touched into a bounded number of partitions,
   balanced by work; no more of them than finish sooner (one heavy domain: two, not eight).
4. `rescore_relationships` (beside the extraction): on the first run of a new day, rewrites the
   relationship strengths (and the rankings built on them) that time alone changed; on other runs
   it does nothing.
5. `compile_domain_partition` (mapped, one per partition): brings every document of its domains up
   to date (account engagements, relationships, contacts, the monthly timeline, the domain): adds
   the window's new messages to the stored documents, or recomputes a domain over all time when one
   of its window messages was already counted and changes a cross-mailbox figure (a late copy that
   changes none is added to its mailbox only), or when the task is a retry. It scores at the date
   `rescore_relationships` fixed for the run. Its log says which, and why; "unchanged" when it
   wrote nothing (then `announce_outputs` records no asset event for it).
6. `bulk_index_account_statistics` (mapped like the extraction, one per slice, each writing an
   account range): per account seen, distinct addresses per role. Beside it, `compile_people` (once,
   after every partition): the `search-people` documents of the addresses written since the last
   successful run (a person's addresses may lie in several partitions), recomputed whole.
7. `announce_outputs`: one asset event per output index the compile and the rescoring wrote, with
   the documents written in its extras; skipped when they wrote nothing, so no downstream DAG wakes.
   Recorded once per run, not by the mapped instances (docs/TROUBLESHOOTING.md says why).
   `announce_changes` does the same for the change feed (`search-relationship-changes`: one document
   per relationship crossing a strength band, which the compile and the rescoring record), only when
   the run recorded a crossing; the example DAG `mailforce_cold_digest` is scheduled on it.
8. `publish_stats`: writes the runtime-stats record, which moves the watermark (not for backfills),
   gives the lease back, and writes the **run summary**: one line (window, messages, accounts,
   domains, late mail, documents written, duration of the whole run including retries) in the XCom
   entry `run_summary` of this task and at the end of its log.

A failed partition can be cleared and retried alone; stats are published only when all succeeded.

**Params** (Trigger DAG w/ config): `from_date`, `to_date`, `backfilled_accounts`, `exclude_accounts`.
Backfills (`backfilled_accounts`) never move the watermark.

**Lineage**: the source index is the extraction's input asset; every output index is an asset of
group `mailforce`, and `announce_outputs` records one asset event per output index the run wrote,
whose extras carry the index and the documents written.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import Param, dag, get_current_context, task

from mailforce import DAG_ID, dag_tasks
from mailforce.dag_defaults import shared_dag_arguments
from mailforce.dag_stages import count_window
from mailforce.settings import load_settings


def date_time_param(title: str, description: str) -> Param:
    # No JSON-schema `pattern`: Airflow would answer a bad value with the raw regular expression.
    # The first task checks the date and fails the run in one plain sentence. `format` only guides
    # the form's date picker (Airflow does not check it).
    return Param(None, type=["null", "string"], format="date-time", title=title, description=description)


def accounts_param(title: str, description: str) -> Param:
    return Param(None, type=["null", "array"], items={"type": "string", "minLength": 1},
                 title=title, description=description)


DEPLOY_SETTINGS = load_settings(use_variable=False)  # parse time: environment only, no DB access


@dag(
    dag_id=DAG_ID,
    dag_display_name="Mailforce engagements",
    description="Mailbox index -> account, domain and message engagement indices, incrementally.",
    doc_md=__doc__,
    schedule=DEPLOY_SETTINGS.schedule,
    tags=["mailforce", "elasticsearch", "engagements"],
    **shared_dag_arguments(),  # retries with backoff; one run at a time: runs share one watermark
    params={
        "from_date": date_time_param(
            "From date",
            "Process messages dated from this moment (inclusive) instead of the watermark. "
            "ISO-8601, e.g. 2001-05-14T00:00:00Z.",
        ),
        "to_date": date_time_param(
            "To date",
            "Process messages dated up to this moment (inclusive) instead of the run's logical end; "
            "never later than it. ISO-8601, e.g. 2001-12-31T23:59:59Z.",
        ),
        "backfilled_accounts": accounts_param(
            "Backfilled accounts",
            "Only these accounts, from 'From date' or from their very first message; one account id "
            "per line, e.g. kunai-jim. Such a run does not move the watermark.",
        ),
        "exclude_accounts": accounts_param(
            "Excluded accounts",
            "Never these accounts in this run; one account id per line, e.g. kunai-bot.",
        ),
    },
)
def mailforce_engagements():
    @task(task_display_name="Fetch watermark", multiple_outputs=False)
    def fetch_watermark() -> dict[str, Any]:
        """Validate params and settings, take the runs' lease, create missing indices, fix the window once."""
        return dag_tasks.fetch_watermark(get_current_context())

    count_window(fetch_watermark())  # extract -> list -> compile (mapped) -> statistics -> publish


mailforce_engagements()
