"""
### Mailforce people: the alias list

Joins addresses into one person (or takes an entry away), or accepts suggested aliases, for every
output of `mailforce_engagements`: the contacts and relationships of every address whose person
changes get its new `person_id`, and the `search-people` documents of both sides are recomputed.
Each change writes an audit record. See docs/SEMANTICS.md ("People") and docs/OPERATING.md.

**Form** (Trigger DAG w/ config): `add` (`address=same-person address`, one per line), `remove`
(addresses whose entry goes), `accept_suggestions` (ids listed by `python -m mailforce.tools.people
suggestions`), `reason` and `requested_by` (both required). Bad values fail the first task, before any write.

**Stages** (`plugins/mailforce/stages/change_aliases.py`): `validate_change`, then `apply_alias_change`
(takes the lease that keeps Mailforce runs apart, writes the entries, relabels, recomputes the people,
writes the audit record, gives the lease back). Applying the same change twice changes nothing more.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import Param, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException

from mailforce import dag_tasks
from mailforce.core.people import AliasChange, AliasChangeError
from mailforce.dag_defaults import shared_dag_arguments
from mailforce.es.hook import MailforceElasticsearchHook
from mailforce.settings import load_settings
from mailforce.stages import change_aliases as stages


@dag(
    dag_id="mailforce_people",
    dag_display_name="Mailforce people (alias list)",
    description="Joins addresses into one person, or accepts suggested aliases; relabels, recomputes, audits.",
    doc_md=__doc__,
    schedule=None,
    tags=["mailforce", "elasticsearch", "people"],
    params={
        "add": Param([], type="array", items={"type": "string", "minLength": 3}, title="Join addresses",
                     description="One per line: 'jim@gmail.com=jim.smith@acme.com' (the first is the same person "
                                 "as the second)."),
        "remove": Param([], type="array", items={"type": "string", "minLength": 3}, title="Remove entries",
                        description="Addresses whose alias entry goes, one per line."),
        "accept_suggestions": Param([], type="array", items={"type": "string"}, title="Accept suggestions",
                                    description="Suggestion ids, one per line (python -m mailforce.tools.people "
                                                "suggestions lists them)."),
        "reason": Param("", type="string", minLength=1, title="Reason", description="Why: kept in the audit record."),
        "requested_by": Param("", type="string", minLength=1, title="Requested by",
                              description="Who asks: kept in the audit record."),
    },
    **shared_dag_arguments(),
)
def mailforce_people():
    @task(task_display_name="Validate change", retries=0)
    def validate_change() -> dict[str, Any]:
        """Refuses bad values before any write (retrying cannot fix them)."""
        context = get_current_context()
        conf = getattr(context["dag_run"], "conf", None) or {}
        dag_tasks.settings_or_fail()
        try:
            return stages.validate_change({**context["params"], **conf}).to_xcom()
        except AliasChangeError as error:
            raise AirflowFailException(str(error)) from None

    @task(task_display_name="Apply alias change")
    def apply_alias_change(change: dict[str, Any]) -> dict[str, Any]:
        settings = load_settings()
        context = get_current_context()
        with MailforceElasticsearchHook(settings.conn_id) as es:
            dag_tasks.check_settings_or_fail(es, settings, arrival=False)
            dag_tasks.take_lease(es, settings, context)
            try:
                record = stages.apply_alias_change(es, settings, AliasChange.from_xcom(change))
            except AliasChangeError as error:
                raise AirflowFailException(str(error)) from None
            finally:
                dag_tasks.give_back_lease(es, settings, context)
        return {key: record[key] for key in ("change_id", "addresses_relabelled", "people_written", "people_deleted")}

    apply_alias_change(validate_change())


mailforce_people()
