"""
### Mailforce erasure

Removes addresses, domains and organisations from every output of `mailforce_engagements` (roles
entries, engagements, account statistics, domain and organisation totals, relationships, contacts,
timeline), recomputes the
figures they were part of, adds them to the suppression index every later run and reconciliation
honours, and writes an audit record. See docs/ERASURE.md.

**Form** (Trigger DAG w/ config): `addresses`, `people` (an address of each person: every address of
theirs is erased), `domains`, `organizations` (at least one value in all), `reason` and
`requested_by` (both required). Bad values fail the first task with a clear message, before any write.

**Stages** (`plugins/mailforce/stages/erase.py`)

1. `validate_request`: the settings loaded and the form checked and normalised like the pipeline
   normalises addresses; `resolve_people`: every known address of each person named;
2. `record_suppressions`: refuses an output index with a foreign mapping (one sentence naming the
   index, the field and the setting, before any write), takes the lease that keeps runs of the Mailforce DAGs apart (waiting while
   an hourly run or a reconciliation runs), then one suppression document per value (kind + value is the id);
3. `erase_message_roles`: roles documents rewritten without the erased (deleted when none is left),
   key dates of every copy of those messages recomputed;
4. `recompute_outputs`: every affected domain recomputed over all time; documents no longer produced deleted;
5. `recompute_account_statistics`: every affected account; `recompute_people`: the person documents it changed;
6. `audit`: who, when, why, what, and what was removed per output (counts). Logs carry counts only.
   Then it gives the lease back.

Every stage is idempotent: erasing twice changes nothing (the second audit record says 0 removed).
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import Param, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException

from mailforce.core.erasure import ErasedRoles, ErasureParamsError, ErasureRequest, RecomputedOutputs
from mailforce.core.summaries import PeopleResult
from mailforce import dag_tasks
from mailforce.dag_defaults import shared_dag_arguments
from mailforce.es.hook import MailforceElasticsearchHook
from mailforce.settings import load_settings
from mailforce.stages import erase as stages


def _client():
    settings = load_settings()
    return settings, MailforceElasticsearchHook(settings.conn_id)


@dag(
    dag_id="mailforce_erase",
    dag_display_name="Mailforce erasure",
    description="Erases addresses and domains from every output, suppresses them for later runs, audits it.",
    doc_md=__doc__,
    schedule=None,
    tags=["mailforce", "elasticsearch", "erasure"],
    params={
        "addresses": Param([], type="array", items={"type": "string", "minLength": 3},
                           title="Addresses to erase",
                           description="E-mail addresses, one per line (display names are fine: "
                                       "'Jane <jane@acme.com>' erases jane@acme.com)."),
        "people": Param([], type="array", items={"type": "string", "minLength": 3},
                        title="People to erase",
                        description="An address of each person, one per line: every address of theirs is erased "
                                    "(the provider rules and the alias list say which; see search-people)."),
        "domains": Param([], type="array", items={"type": "string", "minLength": 3},
                         title="Domains to erase",
                         description="Whole domains, one per line (acme.com erases every address @acme.com)."),
        "organizations": Param([], type="array", items={"type": "string", "minLength": 3},
                               title="Organisations to erase",
                               description="Whole organisations, one per line (enron.com erases every address of "
                                           "every host whose organisation is enron.com, ect.enron.com included, "
                                           "and of hosts seen later)."),
        "reason": Param("", type="string", minLength=1, title="Reason",
                        description="Why (e.g. the request's reference): kept in the audit record."),
        "requested_by": Param("", type="string", minLength=1, title="Requested by",
                              description="Who asks for the erasure: kept in the audit record."),
    },
    **shared_dag_arguments(),  # retries with backoff; one erasure at a time
)
def mailforce_erase():
    @task(task_display_name="Validate request", retries=0)
    def validate_request() -> dict[str, Any]:
        """Refuses bad values before any write (retrying cannot fix them)."""
        context = get_current_context()
        conf = getattr(context["dag_run"], "conf", None) or {}
        dag_tasks.settings_or_fail()  # a wrong setting fails here, naming it
        try:
            return stages.validate_request({**context["params"], **conf}).to_xcom()
        except ErasureParamsError as error:
            raise AirflowFailException(str(error)) from None

    @task(task_display_name="Resolve people")
    def resolve_people(request: dict[str, Any]) -> dict[str, Any]:
        """Every known address of each person named joins the erased addresses."""
        settings, hook = _client()
        with hook as es:
            return stages.resolve_people(es, settings, ErasureRequest.from_xcom(request)).to_xcom()

    @task(task_display_name="Record suppressions")
    def record_suppressions(request: dict[str, Any]) -> int:
        settings, hook = _client()
        with hook as es:
            dag_tasks.check_settings_or_fail(es, settings, arrival=False)  # a foreign output mapping: before any write
            dag_tasks.take_lease(es, settings, get_current_context())  # no other Mailforce run meanwhile
            return stages.record_suppressions(es, settings, ErasureRequest.from_xcom(request))

    @task(task_display_name="Erase message roles")
    def erase_message_roles(request: dict[str, Any], recorded: int) -> dict[str, Any]:
        settings, hook = _client()
        with hook as es:
            dag_tasks.renew_lease(es, settings, get_current_context())
            return stages.erase_message_roles(es, settings, ErasureRequest.from_xcom(request)).to_xcom()

    @task(task_display_name="Recompute outputs")
    def recompute_outputs(roles: dict[str, Any]) -> dict[str, Any]:
        settings, hook = _client()
        with hook as es:
            dag_tasks.renew_lease(es, settings, get_current_context())
            return stages.recompute_outputs(es, settings, ErasedRoles.from_xcom(roles).domains).to_xcom()

    @task(task_display_name="Recompute account statistics")
    def recompute_account_statistics(roles: dict[str, Any], outputs: dict[str, Any]) -> int:
        settings, hook = _client()
        with hook as es:
            dag_tasks.renew_lease(es, settings, get_current_context())
            return stages.recompute_account_statistics(es, settings, ErasedRoles.from_xcom(roles).accounts)

    @task(task_display_name="Recompute people")
    def recompute_people(request: dict[str, Any], changed: int) -> dict[str, Any]:
        settings, hook = _client()
        with hook as es:
            dag_tasks.renew_lease(es, settings, get_current_context())
            return stages.recompute_people(es, settings, ErasureRequest.from_xcom(request)).to_xcom()

    @task(task_display_name="Write audit record")
    def audit(request: dict[str, Any], roles: dict[str, Any], outputs: dict[str, Any], changed: int,
              people: dict[str, Any]) -> dict[str, Any]:
        settings, hook = _client()
        with hook as es:
            context = get_current_context()
            dag_tasks.renew_lease(es, settings, context)
            record = stages.audit(es, settings, ErasureRequest.from_xcom(request), ErasedRoles.from_xcom(roles),
                                  RecomputedOutputs.from_xcom(outputs), changed, people=PeopleResult.from_xcom(people))
            dag_tasks.give_back_lease(es, settings, context)
        return {"erasure_id": record["erasure_id"], "removed": record["removed"], "rewritten": record["rewritten"]}

    request = resolve_people(validate_request())
    recorded = record_suppressions(request)
    roles = erase_message_roles(request, recorded)
    outputs = recompute_outputs(roles)
    changed = recompute_account_statistics(roles, outputs)
    people = recompute_people(request, changed)
    audit(request, roles, outputs, changed, people)


mailforce_erase()
