"""The Airflow hook: the Elasticsearch client of an Airflow Connection (`mailforce.es.client` builds it).

Apart from `mailforce.es.client` so that what needs no Connection (the command-line tools, the tests'
clients) does not import Airflow.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk.bases.hook import BaseHook

from mailforce.es.client import DEFAULT_CONN_ID, DEFAULT_PORT, ClientOptions, build_client, describe_options, \
    options_from_connection

log = logging.getLogger(__name__)


class MailforceElasticsearchHook(BaseHook):
    """An Airflow hook: builds the client once from an Airflow Connection and its extras.

    Used as a context manager it closes the client on exit::

        with MailforceElasticsearchHook(settings.conn_id) as es:
            es.count(index=...)
    """

    conn_name_attr = "elasticsearch_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = "elasticsearch"
    hook_name = "Mailforce Elasticsearch"

    def __init__(self, elasticsearch_conn_id: str = DEFAULT_CONN_ID, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.elasticsearch_conn_id = elasticsearch_conn_id
        self._client: Any = None

    def get_options(self) -> ClientOptions:
        return options_from_connection(self.get_connection(self.elasticsearch_conn_id))

    def get_conn(self):
        """The client (built on first use, then the same one)."""
        if self._client is None:
            options = self.get_options()
            log.info("Elasticsearch connection %r: %s", self.elasticsearch_conn_id, describe_options(options))
            # One line per HTTP request drowns the stage's own progress lines in task logs.
            logging.getLogger("elastic_transport.transport").setLevel(logging.WARNING)
            self._client = build_client(options)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self):
        return self.get_conn()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def test_connection(self) -> tuple[bool, str]:
        """What `airflow connections test` and the Connection form's Test button report."""
        try:
            info = self.get_conn().info()
        except Exception as error:  # the cause is the answer, not a crash
            return False, f"{type(error).__name__}: {error}"
        return True, f"connected to {info.get('version', {}).get('number', 'an unknown version')}"

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return {
            "hidden_fields": [],
            "relabeling": {"schema": "Scheme (http or https)"},
            "placeholders": {
                "host": "localhost or https://my-cluster.example:9243",
                "port": str(DEFAULT_PORT),
                "extra": '{"api_key": "...", "verify_certs": true, "ca_certs": "/path/ca.pem"}',
            },
        }
