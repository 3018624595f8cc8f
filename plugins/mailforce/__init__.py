"""Mailforce engagements: settings at the top; core (pure), es (Elasticsearch I/O), stages, tools."""

DAG_ID = "mailforce_engagements"
