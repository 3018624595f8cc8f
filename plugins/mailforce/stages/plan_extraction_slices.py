"""Stage 2a: the window's extraction -> slices of message ids, their number following its size.

A count of the window's source documents first (cheap); one slice per `min_slice_documents`, at most
`max_extraction_slices`: an hourly run is one slice and reads nothing more. A larger window samples
message ids (and their accounts) once, one page, and cuts the id space at the sample's quantiles
(`mailforce.core.extraction_slices`, which says why slicing by message id is exact); the account
statistics are split among the same slices by account ranges.
"""

from __future__ import annotations

import logging

from mailforce.core.extraction_slices import WHOLE_WINDOW, ExtractionSlice, plan_slices, slice_count
from mailforce.core.window import Window
from mailforce.core.wording import describe_window, plural
from mailforce.es.reads import count_window_documents, sample_message_ids
from mailforce.settings import Settings

log = logging.getLogger(__name__)

SAMPLE_SIZE = 10_000  # message ids sampled for the boundaries (one search page, within max_result_window)


def plan_extraction_slices(es, settings: Settings, window: Window, *, slices: int | None = None) -> list[ExtractionSlice]:
    """The extraction slices of this window; `slices` forces their number (tests, the benchmark)."""
    if slices is None:
        documents = count_window_documents(es, settings.source_index, window)
        wanted = slice_count(documents, settings.max_extraction_slices, settings.min_slice_documents)
    else:
        documents, wanted = -1, max(1, slices)
    if wanted == 1:
        planned = [WHOLE_WINDOW]
    else:
        message_ids, accounts = sample_message_ids(es, settings.source_index, window, SAMPLE_SIZE)
        planned = plan_slices(message_ids, wanted, accounts)
    size = "" if documents < 0 else f" ({plural(documents, 'source document')})"
    log.info("Window %s%s: extraction in %s%s", describe_window(window), size, plural(len(planned), "slice"),
             "" if len(planned) == 1 else ": " + "; ".join(item.label for item in planned))
    return planned
