"""Settings that cannot work, found before a run writes anything: the reads, read-only.

What is decided is pure (`mailforce.core.setting_checks`); here are the requests it needs, each within
the role docs/CONFIGURATION.md lists: the arrival field through field capabilities (`read` on the source), the existing
output indices' mappings through get-mapping (`view_index_metadata` on the outputs). A problem
raises `UnusableSetting` (`ArrivalFieldUnusable`, `ForeignMapping`), which names the setting and the fix.
"""

from __future__ import annotations

import logging
from urllib.parse import quote

from elasticsearch import NotFoundError

from mailforce.core.setting_checks import arrival_types_by_index, check_arrival_field
from mailforce.es.indices import check_output_mappings
from mailforce.settings import Settings

log = logging.getLogger(__name__)


def check_arrival(es, settings: Settings) -> list[str]:
    """The source indices that do not map the arrival field (logged as a WARNING); raises
    ArrivalFieldUnusable when no index of the source maps it as a date, or one maps it otherwise."""
    field = settings.arrival_field
    if not field:
        return []
    # `fields` as a query parameter: the 9.x client's field_caps() sends it in the body, which
    # OpenSearch 2.x (and the embedded engine) do not read.
    try:
        capabilities = es.perform_request(
            "GET", f"/{quote(settings.source_index, safe=',*')}/_field_caps",
            params={"fields": field, "include_unmapped": "true"}, headers={"accept": "application/json"})
    except NotFoundError:  # a missing source: `prepare_indices` reports it in its own words
        return []
    body = getattr(capabilities, "body", capabilities)
    unmapped = check_arrival_field(field, settings.source_index, arrival_types_by_index(field, body))
    if unmapped:
        log.warning(
            "Setting 'arrival_field': %r is a date in part of source %r but not mapped in %s: their documents are "
            "windowed on their date alone, without the lateness re-read (the reconciliation counts their late mail); "
            "map the field as a date there to window them on arrival too", field, settings.source_index, unmapped)
    return unmapped


def check_settings(es, settings: Settings, *, arrival: bool = True) -> None:
    """Every check a run's first task makes before it writes anything (the lease included): the
    arrival field (`arrival=False` where no window uses it), then the existing output mappings."""
    if arrival:
        check_arrival(es, settings)
    check_output_mappings(es, settings)
