"""The counting stages in their order, run in this process: the sequence the DAGs' tasks follow.

`mailforce.dag_stages.count_window` wires these stages as tasks, with these names, for both counting
DAGs (tests/test_dag.py checks the two orders agree); the tests' driver and the benchmark run them
here through `count_window_in_process`, calling the same stage functions with the same typed
summaries. A `step` hook sees every stage by name (the benchmark times them; the driver stops a run
half-way); extraction slices and partitions run one after another, partitions as first attempts.
"""

from __future__ import annotations

from datetime import date
from typing import Callable, TypeVar

from mailforce.core.dates import utc_now
from mailforce.core.extraction_slices import merge_extractions
from mailforce.core.kinds import CHANGES
from mailforce.core.run_stats import outputs_written, runtime_stats
from mailforce.core.summaries import FetchedWindow, RunStats
from mailforce.es.scoring import scoring_for
from mailforce.settings import Settings
from mailforce.stages.compile_domain_partition import compile_domain_partition
from mailforce.stages.compile_people import compile_people
from mailforce.stages.extract_message_roles import extract_message_roles
from mailforce.stages.identify_account_owners import identify_account_owners
from mailforce.stages.index_account_statistics import index_account_statistics
from mailforce.stages.list_domains import list_domains
from mailforce.stages.plan_extraction_slices import plan_extraction_slices
from mailforce.stages.publish_stats import publish_stats
from mailforce.stages.rescore_relationships import rescore_relationships

# The task ids of the counting stages, in the order they run (the extraction and the account
# statistics once per slice, the compile once per partition).
COUNTING_STAGES = ("plan_extraction_slices", "extract_message_roles", "identify_account_owners", "list_domains",
                   "rescore_relationships", "compile_domain_partition", "compile_people", "bulk_index_account_statistics",
                   "announce_outputs", "announce_changes", "publish_stats")

T = TypeVar("T")
Step = Callable[[str, Callable[[], T]], T]


def run_step(name: str, call: Callable[[], T]) -> T:
    """The plain step: run the stage."""
    return call()


def count_window_in_process(es, settings: Settings, fetched: FetchedWindow, run_id: str, *,
                            step: Step = run_step, slices: int | None = None) -> RunStats:
    """Every counting stage on a fixed window, in `COUNTING_STAGES` order; returns the published record.

    `slices` forces the number of extraction slices (else the window's size decides, as in the DAG)."""
    window = fetched.window
    planned = step("plan_extraction_slices", lambda: plan_extraction_slices(es, settings, window, slices=slices))
    extractions = [step("extract_message_roles", lambda extraction_slice=extraction_slice: extract_message_roles(
        es, settings, window, run_id, extraction_slice=extraction_slice)) for extraction_slice in planned]
    extraction = merge_extractions(extractions)
    owned = step("identify_account_owners", lambda: identify_account_owners(es, settings, extraction, run_id))
    partitions = step("list_domains", lambda: list_domains(owned, settings, es))
    rescored = step("rescore_relationships", lambda: rescore_relationships(es, settings, window.window_end))
    scoring = scoring_for(settings, date.fromisoformat(rescored.scoring_date))
    compiled = [step("compile_domain_partition", lambda partition=partition: compile_domain_partition(
        es, settings, partition, run_id, add_window=True, scoring=scoring)) for partition in partitions]
    people = step("compile_people", lambda: compile_people(es, settings))
    accounts_written = sum(step("bulk_index_account_statistics", lambda extraction_slice=extraction_slice: (
        index_account_statistics(es, settings, [account for account in extraction.accounts
                                                if extraction_slice.owns_account(account)]))) for extraction_slice in planned)
    step("announce_outputs", lambda: outputs_written(compiled, rescored))  # asset events exist only in Airflow
    step("announce_changes", lambda: outputs_written(compiled, rescored)[CHANGES.name])
    stats = runtime_stats(run_id, window, extraction, compiled, rescored, accounts_written, fetched.run_started,
                          utc_now(), people_written=people.people_written)
    step("publish_stats", lambda: publish_stats(es, settings, stats))
    return stats
