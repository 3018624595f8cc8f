"""Mailforce Engagements: relationship intelligence from a mailbox index, as an Airflow 3 DAG."""
