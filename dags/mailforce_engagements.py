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
   erasure runs; README "Late mail"), creates missing output indices, and fixes the window: `(watermark, end]` after the last
   successful run's `window_end`, `[from_date, end]` with a `from_date`, `(the beginning, end]` on a
   fresh cluster. An account in `backfilled_accounts` / `exclude_accounts` the source index does not
   hold is a WARNING here and in the run summary (mistyped, or a mailbox not loaded yet).
2. `extract_message_roles`: reads the window's messages once (only the needed fields), unites copies
   of a message, and writes one `search-message-roles` document per message (the fact table).
3. `list_domains`: groups the domains the window touched into a bounded number of partitions,
   balanced by work; no more of them than finish sooner (one heavy domain: two, not eight).
4. `rescore_relationships` (beside the extraction): on the first run of a new day, rewrites the
   relationship strengths (and the rankings built on them) that time alone changed; on other runs
   it does nothing.
5. `compile_domain_partition` (mapped, one per partition): brings every document of its domains up
   to date (account engagements, relationships, contacts, the monthly timeline, the domain): adds
   the window's new messages to the stored documents, or recomputes a domain over all time when one
   of its window messages was already counted and changes a cross-mailbox figure (a late copy that
   changes none is added to its mailbox only), or when the task is a retry. Its log says which,
   and why; "unchanged" when it wrote nothing, and then it records no asset event.
6. `bulk_index_account_statistics`: per account seen, distinct addresses per role.
7. `publish_stats`: writes the runtime-stats record, which moves the watermark (not for backfills),
   and the **run summary**: one line (window, messages, accounts, domains, late mail, documents
   written, duration of the whole run including retries) in the XCom entry `run_summary` of this
   task and at the end of its log.

A failed partition can be cleared and retried alone; stats are published only when all succeeded.

**Params** (Trigger DAG w/ config): `from_date`, `to_date`, `backfilled_accounts`, `exclude_accounts`.
Backfills (`backfilled_accounts`) never move the watermark.

**Lineage**: the source index is the extraction's input asset; every write records an asset event
whose extras carry the index and the documents written.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import Param, dag, get_current_context, task

from mailforce import DAG_ID, dag_tasks
from mailforce.assets import compiled_alias, output_assets, source_asset
from mailforce.dag_defaults import shared_dag_arguments
from mailforce.settings import load_settings


def date_time_param(title: str, description: str) -> Param:
    # No JSON-schema `pattern`: Airflow would answer a bad value with the raw regular expression.
    # The first task checks the date and fails the run in one plain sentence. `format` only guides
    # the form's date picker (Airflow does not check it).
    return Param(None, type=["null", "string"], format="date-time", title=title, description=description)


def accounts_param(title: str, description: str) -> Param:
    return Param(None, type=["null", "array"], items={"type": "string", "minLength": 1},
                 title=title, description=description)


# The DAG documentation's stage 5, word for word: the task's own documentation says the same.
COMPILE_DOC = (
    "Bring every output document of one partition of domains up to date (account engagements, relationships, "
    "contacts, the monthly timeline, the domain): **add** the window's new messages to the stored documents, "
    "or **recompute** a domain over all time when one of its window messages was already counted before "
    "and changes a cross-mailbox figure (a late copy in another mailbox that changes none is added to that "
    "mailbox's figures only; always recompute when the task is a retry). Runs after `rescore_relationships`. The log says which path each "
    "domain took and why, and \"unchanged\" when nothing was written (then no asset event is recorded). "
    "Clear one mapped instance to retry just that partition."
)

DEPLOY_SETTINGS = load_settings(use_variable=False)  # parse time: environment only, no DB access
ASSETS = output_assets(DEPLOY_SETTINGS)
SOURCE = source_asset(DEPLOY_SETTINGS)


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

    @task(task_display_name="Extract message roles", inlets=[SOURCE], outlets=[ASSETS["roles"]], multiple_outputs=False)
    def extract_message_roles(window: dict[str, Any]) -> dict[str, Any]:
        """Read the window's messages once; write the roles fact table."""
        return dag_tasks.extract_message_roles(get_current_context(), window)

    @task(task_display_name="List domains")
    def list_domains(extraction: dict[str, Any]) -> list[dict[str, Any]]:
        """Touched domains -> partitions balanced by work."""
        return dag_tasks.list_domains(extraction)

    # A mapped task does not take its docstring as doc_md, so it is given here.
    @task(
        task_display_name="Compile domain partition",
        multiple_outputs=False,
        # An alias, not the five assets: an event is added per index actually written (none when
        # the partition was unchanged); Airflow records one for every declared asset outlet.
        outlets=[compiled_alias()],
        map_index_template="{{ partition_label }}",
        doc_md=COMPILE_DOC,
    )
    def compile_domain_partition(window: dict[str, Any], partition: dict[str, Any]) -> dict[str, Any]:
        context = get_current_context()
        context["partition_label"] = partition["label"]  # type: ignore[typeddict-unknown-key]
        return dag_tasks.compile_domain_partition(context, window, partition)

    @task(
        task_display_name="Rescore relationships",
        multiple_outputs=False,
        outlets=[ASSETS[kind] for kind in ("relationships", "contacts", "engagements", "domains")],
    )
    def rescore_relationships(window: dict[str, Any]) -> dict[str, Any]:
        """Once per new scoring date: rewrite the strengths and rankings that time alone changed,
        before new mail is added (adding is exact only on figures scored at the same date)."""
        return dag_tasks.rescore_relationships(window, get_current_context())

    # "none_failed": a window without mail maps no partition (skipped), yet its stats are published;
    # a failed partition still stops both.
    @task(
        task_display_name="Bulk index account statistics",
        trigger_rule="none_failed",
        outlets=[ASSETS["account_stats"]],
    )
    def bulk_index_account_statistics(extraction: dict[str, Any], compiled: list[dict[str, Any]]) -> int:
        """Per account seen in the window: distinct addresses per role."""
        return dag_tasks.index_account_statistics(extraction, get_current_context())

    # One XCom entry for the record (return_value) and one for the person: `run_summary`. A dict
    # return would otherwise be split into one XCom per key (multiple_outputs is inferred).
    @task(task_display_name="Publish stats", trigger_rule="none_failed", outlets=[ASSETS["runtime_stats"]],
          multiple_outputs=False)
    def publish_stats(
        window: dict[str, Any],
        extraction: dict[str, Any],
        compiled: list[dict[str, Any]],
        rescored: dict[str, Any],
        accounts_written: int,
    ) -> dict[str, Any]:
        """Write the runtime-stats record: the watermark moves only now."""
        return dag_tasks.publish_stats(get_current_context(), window, extraction, compiled, rescored, accounts_written)

    window = fetch_watermark()
    extraction = extract_message_roles(window)
    partitions = list_domains(extraction)
    rescored = rescore_relationships(window)
    compiled = compile_domain_partition.partial(window=window).expand(partition=partitions)
    rescored >> compiled
    accounts_written = bulk_index_account_statistics(extraction, compiled)
    publish_stats(window, extraction, compiled, rescored, accounts_written)


mailforce_engagements()
