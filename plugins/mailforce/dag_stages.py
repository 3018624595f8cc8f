"""The stages that count a window, wired once for both DAGs that count mail.

`mailforce_engagements` fixes its window from the watermark (`fetch_watermark`), the reconciliation
from what the outputs miss (`reconcile_window`); from there both run the same tasks, with the same
ids, lineage and documentation:

    plan_extraction_slices -> extract_message_roles (mapped, one per slice of message ids)
      -> identify_account_owners -> list_domains -> compile_domain_partition (mapped, one per partition)
    rescore_relationships ---------------------------^        |-> compile_people -----------------------------------------v
                                                              |-> bulk_index_account_statistics (mapped, one per slice) -> publish_stats
                                                              |-> announce_outputs ---------------------------------------^
                                                              |-> announce_changes ---------------------------------------^

The extraction's slices (`mailforce.core.extraction_slices`: one for an hourly run, more for a large
window) are merged by every task that reads the extraction (`dag_tasks.merged_extraction`); the
account statistics are mapped over the same slices, each writing the accounts of its account range.

The rescoring's result (its scoring date) is an input of every compile instance: the date travels as
data, not as an ordering edge. `publish_stats` gives the lease back, after every other task. The same
stages run in process, in the same order, through `mailforce.sequence` (the tests' driver, the benchmark).
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import TriggerRule, get_current_context, task

from mailforce import dag_tasks
from mailforce.assets import changes_asset, compiled_assets, output_assets, source_asset
from mailforce.settings import load_settings

DEPLOY_SETTINGS = load_settings(use_variable=False)  # parse time: environment only, no DB access
ASSETS = output_assets(DEPLOY_SETTINGS)

# The engagements DAG's documentation of the compile stage, word for word (tests/test_dag.py).
COMPILE_DOC = (
    "Bring every output document of one partition of domains up to date (account engagements, relationships, "
    "contacts, the monthly timeline, the domain): **add** the window's new messages to the stored documents, "
    "or **recompute** a domain over all time when one of its window messages was already counted before "
    "and changes a cross-mailbox figure (a late copy in another mailbox that changes none is added to that "
    "mailbox's figures only; always recompute when the task is a retry). Scores at the date "
    "`rescore_relationships` fixed for the run. The log says which path each "
    "domain took and why, and \"unchanged\" when nothing was written (then `announce_outputs` records no "
    "asset event for it). Clear one mapped instance to retry just that partition."
)


@task(task_display_name="Plan extraction slices")
def plan_extraction_slices(window: dict[str, Any]) -> list[dict[str, Any]]:
    """Count the window's source documents; one extraction slice (a range of message ids) per
    `min_slice_documents`, at most `max_extraction_slices`: an hourly run is one slice."""
    return dag_tasks.plan_extraction_slices(get_current_context(), window)


EXTRACT_DOC = (
    "Read one slice of the window's messages once (a range of message ids, so every copy of a message, in "
    "every mailbox, is in one slice; one slice for a small window) and write the roles fact table and the "
    "ledger. Clear one mapped instance to retry just that slice."
)


# Mapped: the outlet is recorded by each slice (a declared asset, not an alias: no race).
@task(task_display_name="Extract message roles", inlets=[source_asset(DEPLOY_SETTINGS)],
      outlets=[ASSETS["roles"]], multiple_outputs=False, map_index_template="{{ slice_label }}", doc_md=EXTRACT_DOC)
def extract_message_roles(window: dict[str, Any], extraction_slice: dict[str, Any]) -> dict[str, Any]:
    context = get_current_context()
    context["slice_label"] = extraction_slice.get("label", "")  # type: ignore[typeddict-unknown-key]
    return dag_tasks.extract_message_roles(context, window, extraction_slice)


@task(task_display_name="Identify account owners", multiple_outputs=False)
def identify_account_owners(extraction: list[dict[str, Any]]) -> dict[str, Any]:
    """The slices' summaries merged; each mailbox's own addresses (setting, or inferred from its mail, with
    the evidence); the domains of accounts whose owners changed join the partitions, to be recomputed."""
    return dag_tasks.identify_account_owners(get_current_context(), extraction)


@task(task_display_name="List domains")
def list_domains(extraction: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The slices' summaries merged; touched domains -> partitions balanced by work."""
    return dag_tasks.list_domains(extraction)


@task(task_display_name="Rescore relationships", multiple_outputs=False)
def rescore_relationships(window: dict[str, Any]) -> dict[str, Any]:
    """Once per new scoring date: rewrite the strengths and rankings that time alone changed,
    before new mail is added (adding is exact only on figures scored at the same date)."""
    return dag_tasks.rescore_relationships(window, get_current_context())


# A mapped task does not take its docstring as doc_md, so it is given here. No outlets: a mapped
# instance records no asset event (`mailforce.assets` says why); `announce_outputs` does, once.
@task(task_display_name="Compile domain partition", multiple_outputs=False,
      map_index_template="{{ partition_label }}", doc_md=COMPILE_DOC)
def compile_domain_partition(window: dict[str, Any], rescored: dict[str, Any],
                             partition: dict[str, Any]) -> dict[str, Any]:
    context = get_current_context()
    context["partition_label"] = partition["label"]  # type: ignore[typeddict-unknown-key]
    return dag_tasks.compile_domain_partition(context, window, partition, rescored)


# "none_failed": a window without mail maps no partition, yet a failed run's writes may await their people.
@task(task_display_name="Compile people", trigger_rule=TriggerRule.NONE_FAILED, multiple_outputs=False)
def compile_people(compiled: list[dict[str, Any]]) -> dict[str, Any]:
    """Once every partition is written: the person documents of every address written since the last
    successful run (a person's addresses may lie in several partitions), recomputed whole."""
    return dag_tasks.compile_people(get_current_context())


ACCOUNT_STATISTICS_DOC = (
    "Per account seen in the window: distinct addresses per role, summed from its engagement documents. "
    "Mapped like the extraction, one instance per slice (an hourly run: one); each writes the accounts of "
    "its account range. Clear one instance to retry just that range."
)


# "none_failed": a window without mail maps no partition (skipped), yet its stats are published;
# a failed partition still stops both.
@task(task_display_name="Bulk index account statistics", trigger_rule=TriggerRule.NONE_FAILED,
      outlets=[ASSETS["account_stats"]], map_index_template="{{ accounts_label }}", doc_md=ACCOUNT_STATISTICS_DOC)
def bulk_index_account_statistics(extraction: list[dict[str, Any]], compiled: list[dict[str, Any]],
                                  extraction_slice: dict[str, Any]) -> int:
    context = get_current_context()
    context["accounts_label"] = extraction_slice.get("accounts_label", "")  # type: ignore[typeddict-unknown-key]
    return dag_tasks.index_account_statistics(extraction, context, extraction_slice)


@task(task_display_name="Announce outputs", trigger_rule=TriggerRule.NONE_FAILED,
      outlets=compiled_assets(DEPLOY_SETTINGS), multiple_outputs=False)
def announce_outputs(compiled: list[dict[str, Any]], rescored: dict[str, Any]) -> dict[str, int]:
    """One asset event per output index the run's compile and rescoring wrote, recorded once per run;
    skipped (no event) when they wrote nothing."""
    return dag_tasks.announce_outputs(get_current_context(), compiled, rescored)


@task(task_display_name="Announce changes", trigger_rule=TriggerRule.NONE_FAILED,
      outlets=[changes_asset(DEPLOY_SETTINGS)], multiple_outputs=False)
def announce_changes(compiled: list[dict[str, Any]], rescored: dict[str, Any]) -> int:
    """The change feed's asset event (crossings recorded, scoring date), once per run; skipped (no
    event) when no relationship crossed a strength band, so the digest DAG wakes only for a crossing."""
    return dag_tasks.announce_changes(get_current_context(), compiled, rescored)


# One XCom entry for the record (return_value) and one for the person: `run_summary`. A dict
# return would otherwise be split into one XCom per key (multiple_outputs is inferred).
@task(task_display_name="Publish stats", trigger_rule=TriggerRule.NONE_FAILED, outlets=[ASSETS["runtime_stats"]],
      multiple_outputs=False)
def publish_stats(window: dict[str, Any], extraction: list[dict[str, Any]], compiled: list[dict[str, Any]],
                  rescored: dict[str, Any], accounts_written: list[int], people: dict[str, Any]) -> dict[str, Any]:
    """Write the runtime-stats record (the watermark moves only now) and give the lease back."""
    return dag_tasks.publish_stats(get_current_context(), window, extraction, compiled, rescored, accounts_written,
                                   people)


def count_window(window) -> None:
    """Add the counting stages to the DAG being defined, downstream of the task that fixed `window`."""
    slices = plan_extraction_slices(window)
    extraction = extract_message_roles.partial(window=window).expand(extraction_slice=slices)
    partitions = list_domains(identify_account_owners(extraction))
    rescored = rescore_relationships(window)
    compiled = compile_domain_partition.partial(window=window, rescored=rescored).expand(partition=partitions)
    accounts_written = bulk_index_account_statistics.partial(extraction=extraction, compiled=compiled).expand(
        extraction_slice=slices)
    people = compile_people(compiled)
    announced = announce_outputs(compiled, rescored)
    changes = announce_changes(compiled, rescored)
    published = publish_stats(window, extraction, compiled, rescored, accounts_written, people)
    [announced, changes] >> published  # the lease, given back by publish_stats, covers every task of the run
