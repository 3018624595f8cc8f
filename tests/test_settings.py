"""Settings: one place, documented defaults, wrong values reported by name."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from mailforce.settings import Settings, SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_are_the_seed_index_names():
    settings = load_settings(environ={}, use_variable=False)
    assert settings == Settings()
    assert settings.output_indices == (
        "search-message-roles", "search-accounts-engagements", "search-accounts_statistics_simple",
        "search-domains-engagements", "search-relationships", "search-contacts", "search-engagement-timeline",
        "search-runtime-stats", "search-relationship-changes", "search-organizations",
        "search-people",
    )
    assert settings.relationships_index == "search-relationships"
    assert settings.contacts_index == "search-contacts"
    assert settings.timeline_index == "search-engagement-timeline"


def test_environment_overrides_the_variable(monkeypatch):
    monkeypatch.setenv("AIRFLOW_VAR_MAILFORCE_SETTINGS", json.dumps({"max_partitions": 3, "internal_domains": ["KunaiCo.com"]}))
    settings = load_settings(environ={"MAILFORCE_MAX_PARTITIONS": "5", "MAILFORCE_ALLOWED_DOMAINS": "acme.com, beta.org"})
    assert settings.max_partitions == 5
    assert settings.internal_domains == ("kunaico.com",)
    assert settings.allowed_domains == ("acme.com", "beta.org")
    assert not settings.domain_in_scope("kunaico.com") and settings.domain_in_scope("acme.com")
    assert not settings.domain_in_scope("gamma.net")


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"MAILFORCE_MAX_PARTITIONS": "many"}, "'max_partitions' must be a whole number"),
        ({"MAILFORCE_MAX_PARTITIONS": "0"}, "'max_partitions' must be a whole number >= 1"),
        ({"MAILFORCE_SCAN_PAGE_SIZE": "-5"}, "'scan_page_size'"),
        ({"MAILFORCE_ROLES_INDEX": "Search-Roles"}, "lower-case"),
        ({"MAILFORCE_DOMAINS_INDEX": "search-message-roles"}, "different indices"),
        ({"MAILFORCE_INTERNAL_DOMAINS": "localhost"}, "'internal_domains'"),
        ({"MAILFORCE_MAX_PARTITONS": "4"}, "unknown setting in environment: MAILFORCE_MAX_PARTITONS"),
    ],
)
def test_wrong_values_are_reported_by_name(environ, message):
    with pytest.raises(SettingsError, match=message):
        load_settings(environ=environ, use_variable=False)


def test_domain_settings_are_normalised_like_addresses_and_non_domains_are_refused():
    """The rule of an address's domain (SPEC section 3): case and surrounding spaces normalised, anything
    else refused by name, `@acme.com` and `jim@acme.com` included (with the domain to write instead)."""
    settings = load_settings(environ={"MAILFORCE_INTERNAL_DOMAINS": " KunaiCo.COM ,kunaico.com"}, use_variable=False)
    assert settings.internal_domains == ("kunaico.com",)
    assert Settings(allowed_domains=("Acme.COM ",)).allowed_domains == ("acme.com",)
    for value in ("@acme.com", "jim@acme.com", "localhost", "acme..com", "acme.com.", ".com", "ac me.com"):
        with pytest.raises(SettingsError, match=f"setting 'allowed_domains': {re.escape(repr(value))} is not a domain"):
            Settings(allowed_domains=(value,))
    with pytest.raises(SettingsError, match=r"write it without '@': 'acme.com'\); fix MAILFORCE_INTERNAL_DOMAINS"):
        load_settings(environ={"MAILFORCE_INTERNAL_DOMAINS": "@acme.com"}, use_variable=False)


def test_a_variable_that_is_not_json_is_reported(monkeypatch):
    monkeypatch.setenv("AIRFLOW_VAR_MAILFORCE_SETTINGS", "{max_partitions: 3")
    with pytest.raises(SettingsError, match="Variable 'mailforce_settings' is not valid JSON"):
        load_settings(environ={})


def test_every_setting_is_documented_in_the_configuration_page():
    table = (ROOT / "docs" / "CONFIGURATION.md").read_text().split("\n## Settings\n", 1)[1]
    for name in Settings.__dataclass_fields__:
        assert f"| `{name}`" in table or f", `{name}` |" in table, name


def test_no_credential_is_committed():
    """The old script's repository held a live-looking cloud key."""
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    patterns = [
        re.compile(r"AKIA[0-9A-Z]{16}"),
        re.compile(r"-----BEGIN (RSA |EC |OPENSSH )?PRIVATE KEY-----"),
        re.compile(r"(?i)aws_secret_access_key\s*[=:]\s*\S{20,}"),
    ]
    offenders = []
    for name in files:
        path = ROOT / name
        if path.is_file() and path.stat().st_size < 2_000_000:
            text = path.read_text(errors="ignore")
            offenders += [f"{name}: {pattern.pattern}" for pattern in patterns if pattern.search(text)]
    assert files and offenders == []
    assert ".env" not in files
