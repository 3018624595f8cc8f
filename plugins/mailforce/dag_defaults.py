"""What every Mailforce DAG shares: its owner, retries with backoff, a start date, one run at a time.

One run at a time because the runs of a DAG share state (the watermark, the erasure list).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum

DEFAULT_ARGS: dict[str, Any] = {
    "owner": "mailforce",
    "retries": 3,
    "retry_delay": timedelta(seconds=20),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=10),
    "execution_timeout": timedelta(hours=6),
}


def shared_dag_arguments() -> dict[str, Any]:
    """Keyword arguments of `@dag` that every Mailforce DAG takes as they are."""
    return {
        "start_date": pendulum.datetime(2024, 1, 1, tz="UTC"),
        "catchup": False,
        "max_active_runs": 1,
        "default_args": dict(DEFAULT_ARGS),
    }
