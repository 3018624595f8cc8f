"""The local stack (docker-compose.yaml, Dockerfile, .env.example, the Kibana saved objects), checked
by parsing: no Docker engine is needed.

Each rule is a function returning a list of problems (empty when the files are right). The tests
assert that the real files have none, and ``test_rule_catches_*`` feed each rule a broken copy to
show it can fail.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Iterator

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
ENV_EXAMPLE = ROOT / ".env.example"
REQUIREMENTS = ROOT / "requirements.txt"

REQUIRED_SERVICES = {
    "postgres", "redis", "es01", "kibana", "kibana-dashboards", "airflow-init", "airflow-apiserver",
    "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer", "demo-mail",
}
ONE_SHOT = {"setup", "kibana-setup", "kibana-dashboards", "airflow-init", "demo-mail"}
AIRFLOW_COMPONENTS = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
}
WORKER_COUNT = 2
ALLOWED_EXTRAS = {"api_key", "verify_certs", "ca_certs", "request_timeout", "max_retries", "engine", "scheme"}
CONN_ENV = "AIRFLOW_CONN_ELASTICSEARCH_DEFAULT"
CONDITIONS = {"service_healthy", "service_completed_successfully"}
# Upstreams whose releases are MAJOR.MINOR (PostgreSQL since 10): two parts are an exact version.
TWO_PART_VERSIONS = {"postgres"}

# Names of settings that hold secrets (environment keys and .env variables alike).
SECRET_NAME = re.compile(r"(PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|FERNET|ENCRYPTION_?KEY|_AUTH$)", re.I)
REQUIRED_REF = re.compile(r"^\$\{[A-Za-z_]\w*:\?[^}]+\}$")
ANY_REF = re.compile(r"^\$\{[A-Za-z_]\w*(:?[-?+][^}]*)?\}$")
# A compose interpolation: `$$` is a literal dollar (the container's shell expands it), anything
# else with a `$` is read from .env by compose.
INTERPOLATION = re.compile(r"\$\$|\$\{([A-Za-z_]\w*)(:?[-?+])?|\$([A-Za-z_]\w*)")

# ----------------------------------------------------------------------------- loading


def load_compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())  # resolves anchors and `<<` merges




def env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, sep, value = line.partition("=")
            assert sep, f".env.example: not NAME=value: {line!r}"
            values[name.strip()] = value.strip()
    return values


def airflow_pin() -> str:
    for line in REQUIREMENTS.read_text().splitlines():
        match = re.match(r"^\s*apache-airflow\s*==\s*([\w.]+)\s*(#.*)?$", line)
        if match:
            return match.group(1)
    raise AssertionError("requirements.txt does not pin apache-airflow==X")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()




# ----------------------------------------------------------------------------- helpers


def services(compose: dict) -> dict[str, dict]:
    return compose.get("services") or {}


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return {str(key): value for key, value in env.items()}


def command_text(service: dict) -> str:
    command = service.get("command") or ""
    return " ".join(command) if isinstance(command, list) else str(command)


def airflow_image(compose: dict) -> str:
    return (compose.get("x-airflow-common") or {}).get("image", "")


def airflow_services(compose: dict) -> dict[str, dict]:
    image = airflow_image(compose)
    return {name: svc for name, svc in services(compose).items() if image and svc.get("image") == image}


def is_one_shot(name: str, service: dict) -> bool:
    return name in ONE_SHOT


def strings(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every string value in the document (keys excluded), with where it is."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from strings(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from strings(value, f"{path}[{index}]")
    elif isinstance(node, str):
        yield path, node


def image_tag(image: str) -> str | None:
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else None


def depends_on(service: dict) -> dict[str, dict]:
    """depends_on as a mapping; the short list form maps each service to no condition."""
    deps = service.get("depends_on") or {}
    return {name: {} for name in deps} if isinstance(deps, list) else deps


# ----------------------------------------------------------------------------- rules: compose


def check_services(compose: dict) -> list[str]:
    problems = []
    svcs = services(compose)
    for name in sorted(REQUIRED_SERVICES - set(svcs)):
        problems.append(f"service {name!r} is missing")
    workers = 0
    for name, svc in svcs.items():
        if re.search(r"\bcelery\s+worker\b", command_text(svc)):
            replicas = (svc.get("deploy") or {}).get("replicas", 1)
            workers += int(replicas)
    if workers != WORKER_COUNT:
        problems.append(f"Celery workers total {workers}, expected {WORKER_COUNT}")
    for name, expected in AIRFLOW_COMPONENTS.items():
        if name in svcs and command_text(svcs[name]).strip() != expected:
            problems.append(f"{name} must run {expected!r}, runs {command_text(svcs[name])!r}")
    demo = svcs.get("demo-mail", {})
    if "demo" not in (demo.get("profiles") or []):
        problems.append("demo-mail must be under profiles: [demo]")
    if not re.search(r"python -m mailforce\.tools\.loader /opt/airflow/sample/mail --conn-id elasticsearch_default", command_text(demo)):
        problems.append("demo-mail must run the loader on /opt/airflow/sample/mail with --conn-id elasticsearch_default")
    if "/opt/airflow/plugins" not in str(environment(demo).get("PYTHONPATH", "")):
        problems.append("demo-mail needs /opt/airflow/plugins on PYTHONPATH")
    profiled = {name for name, svc in svcs.items() if svc.get("profiles")}
    for name, svc in svcs.items():
        if not svc.get("profiles"):
            for target in set(depends_on(svc)) & profiled:
                problems.append(f"{name} (always on) depends on {target}, which only runs in a profile")
    return problems


def check_images(compose: dict) -> list[str]:
    problems = []
    for name, svc in services(compose).items():
        image = svc.get("image")
        if not image:
            problems.append(f"{name}: no image")
            continue
        if "$" in image:
            problems.append(f"{name}: image {image!r} is not fixed in the file")
        if "@sha256:" in image:
            continue
        tag = image_tag(image)
        repository = image.split("@", 1)[0].rsplit(":", 1)[0].rsplit("/", 1)[-1]
        exact = r"^\d+\.\d+(-[\w.]+)?$" if repository in TWO_PART_VERSIONS else r"^\d+\.\d+\.\d+(-[\w.]+)?$"
        if tag is None:
            problems.append(f"{name}: image {image!r} has no tag")
        elif tag == "latest" or not re.match(exact, tag):
            problems.append(f"{name}: image {image!r} is not pinned to an exact version")
    majors = {"postgres": ("postgres", "16"), "redis": ("redis", "7"), "es01": ("elasticsearch", "9"), "kibana": ("kibana", "9")}
    for name, (repo, major) in majors.items():
        image = services(compose).get(name, {}).get("image", "")
        tag = image_tag(image) or ""
        if repo not in image or tag.split(".")[0] != major:
            problems.append(f"{name}: expected {repo} {major}.x, got {image!r}")
    es = image_tag(services(compose).get("es01", {}).get("image", ""))
    for name, svc in services(compose).items():
        image = svc.get("image", "")
        if "docker.elastic.co" in image and image_tag(image) != es:
            problems.append(f"{name}: Elastic image {image!r} is not at the es01 version {es}")
    return problems


def check_airflow_version(compose: dict, dockerfile: str, pin: str) -> list[str]:
    problems = []
    image = airflow_image(compose)
    if image_tag(image) != pin:
        problems.append(f"the Airflow image {image!r} is not tagged with the pinned Airflow {pin}")
    build = (compose.get("x-airflow-common") or {}).get("build")
    if not build:
        problems.append("x-airflow-common does not build the image from the Dockerfile")
    froms = re.findall(r"^\s*FROM\s+(\S+)", dockerfile, re.M | re.I)
    if froms != [f"apache/airflow:{pin}"] and not (len(froms) == 1 and froms[0].startswith(f"apache/airflow:{pin}-")):
        problems.append(f"Dockerfile must be FROM apache/airflow:{pin}, found {froms}")
    if not re.search(r"pip install[^\n]*--no-cache-dir[^\n]*apache-airflow==\$\{AIRFLOW_VERSION\}[^\n]*-r /requirements\.txt", dockerfile):
        problems.append("Dockerfile must pip install requirements.txt together with apache-airflow==${AIRFLOW_VERSION}")
    if not re.search(r"^\s*COPY\s+requirements\.txt\s+/requirements\.txt", dockerfile, re.M):
        problems.append("Dockerfile must copy requirements.txt to /requirements.txt")
    return problems


def check_healthchecks(compose: dict) -> list[str]:
    problems = []
    for name, svc in services(compose).items():
        restart = str(svc.get("restart", "no"))
        if is_one_shot(name, svc):
            if restart not in ("no", "on-failure") and not restart.startswith("on-failure:"):
                problems.append(f"{name} is a one-shot job but restarts {restart!r}")
            continue
        check = svc.get("healthcheck") or {}
        test = check.get("test")
        if not test or check.get("disable") or test in ("NONE", ["NONE"]):
            problems.append(f"{name} runs continuously but has no healthcheck")
        if restart not in ("always", "unless-stopped"):
            problems.append(f"{name} runs continuously but its restart policy is {restart!r}")
    return problems


def check_depends_on(compose: dict) -> list[str]:
    problems = []
    svcs = services(compose)
    for name, svc in svcs.items():
        deps = svc.get("depends_on")
        if deps is None:
            continue
        if not isinstance(deps, dict):
            problems.append(f"{name}: depends_on must map each service to a condition")
            continue
        for target, spec in deps.items():
            condition = (spec or {}).get("condition")
            if target not in svcs:
                problems.append(f"{name} depends on unknown service {target!r}")
            elif condition not in CONDITIONS:
                problems.append(f"{name} -> {target}: condition {condition!r}, expected one of {sorted(CONDITIONS)}")
            elif condition == "service_healthy" and not svcs[target].get("healthcheck"):
                problems.append(f"{name} waits for {target} to be healthy, but {target} has no healthcheck")
            elif condition == "service_completed_successfully" and not is_one_shot(target, svcs[target]):
                problems.append(f"{name} waits for {target} to complete, but {target} runs continuously")
    for name, svc in airflow_services(compose).items():
        deps = depends_on(svc)
        for store in ("postgres", "redis"):
            if (deps.get(store) or {}).get("condition") != "service_healthy":
                problems.append(f"{name} must wait for {store} to be healthy")
        if name != "airflow-init" and (deps.get("airflow-init") or {}).get("condition") != "service_completed_successfully":
            problems.append(f"{name} must wait for airflow-init to complete")
    for name in ("airflow-worker", "demo-mail", "kibana"):
        if name in svcs and (depends_on(svcs[name]).get("es01") or {}).get("condition") != "service_healthy":
            problems.append(f"{name} must wait for es01 to be healthy")
    if (depends_on(svcs.get("es01", {})).get("setup") or {}).get("condition") != "service_completed_successfully":
        problems.append("es01 must wait for the certificates of the setup service")
    return problems


def check_airflow_environment(compose: dict) -> list[str]:
    problems = []
    common = (compose.get("x-airflow-common") or {}).get("environment") or {}
    expected = {
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "false",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": "http://airflow-apiserver:8080/execution/",
    }
    for key, value in expected.items():
        if str(common.get(key)) != value:
            problems.append(f"x-airflow-common: {key} is {common.get(key)!r}, expected {value!r}")
    for key in ("AIRFLOW__CORE__PARALLELISM", "AIRFLOW__API__SECRET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CELERY__BROKER_URL", "AIRFLOW__CORE__FERNET_KEY",
                "MAILFORCE_INTERNAL_DOMAINS", CONN_ENV):
        if not common.get(key):
            problems.append(f"x-airflow-common: {key} is not set")
    for key in ("AIRFLOW__API__SECRET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET"):
        if key in common and not REQUIRED_REF.match(str(common[key])):
            problems.append(f"x-airflow-common: {key} must come from .env as ${{VAR:?message}}")
    problems += check_connection_json(common.get(CONN_ENV))
    problems += check_mailforce_settings(common)
    members = airflow_services(compose)
    if set(members) < {"airflow-init", *AIRFLOW_COMPONENTS, "demo-mail"}:
        problems.append(f"not every Airflow service uses the common image: {sorted(members)}")
    for name, svc in services(compose).items():
        if name.startswith("airflow-") and name not in members:
            problems.append(f"{name} does not use the x-airflow-common image")
    for name, svc in members.items():
        env = environment(svc)
        for key, value in common.items():
            if env.get(key) != value and not (name == "demo-mail" and key == CONN_ENV):
                problems.append(f"{name}: {key} differs from x-airflow-common")
    # The demo loader writes the source index, which the DAG's least-privilege user may only read:
    # its connection (same conn id) is the elastic superuser's, otherwise the same.
    demo = services(compose).get("demo-mail")
    if demo is not None:
        raw = environment(demo).get(CONN_ENV)
        problems += [f"demo-mail: {problem}" for problem in check_connection_json(raw)]
        if raw and json.loads(raw).get("login") != "elastic":
            problems.append("demo-mail: the loader must connect as elastic (it creates and writes the source index)")
    return problems


def check_connection_json(raw: Any) -> list[str]:
    if not raw:
        return [f"{CONN_ENV} is missing"]
    try:
        conn = json.loads(raw)
    except (TypeError, ValueError) as error:
        return [f"{CONN_ENV} is not valid JSON: {error}"]
    problems = []
    if conn.get("conn_type") != "elasticsearch":
        problems.append(f"{CONN_ENV}: conn_type must be elasticsearch")
    if conn.get("host") != "es01" or conn.get("schema") != "https":
        problems.append(f"{CONN_ENV}: must point at https://es01")
    if not ANY_REF.match(str(conn.get("password", ""))):
        problems.append(f"{CONN_ENV}: the password must be a ${{VAR}} reference, not a literal")
    extra = conn.get("extra") or {}
    if isinstance(extra, str):
        extra = json.loads(extra)
    unknown = set(extra) - ALLOWED_EXTRAS
    if unknown:
        problems.append(f"{CONN_ENV}: extras {sorted(unknown)} are not accepted by connection.py")
    if extra.get("verify_certs") is not True or extra.get("ca_certs") != "/opt/airflow/certs/ca/ca.crt":
        problems.append(f"{CONN_ENV}: TLS must be verified against /opt/airflow/certs/ca/ca.crt")
    # The project's own reader must accept it as is.
    try:
        from mailforce.es.client import options_from_connection

        fake = SimpleNamespace(
            host=conn.get("host"), port=conn.get("port"), schema=conn.get("schema"), login=conn.get("login"),
            password=conn.get("password"), extra_dejson=extra,
        )
        options = options_from_connection(fake)
        if options.url != "https://es01:9200":
            problems.append(f"{CONN_ENV}: connection.py reads it as {options.url}")
    except ValueError as error:
        problems.append(f"{CONN_ENV}: connection.py refuses it: {error}")
    return problems


def check_mailforce_settings(env: dict) -> list[str]:
    """MAILFORCE_* names are settings, and their defaults (``${X:-default}``) are valid values."""
    from dataclasses import fields

    from mailforce.settings import Settings, SettingsError, settings_from_mapping

    known = {f.name for f in fields(Settings)}
    problems, values = [], {}
    for key, value in env.items():
        if not key.startswith("MAILFORCE_"):
            continue
        name = key[len("MAILFORCE_"):].lower()
        if name not in known:
            problems.append(f"{key} is not a Mailforce setting")
            continue
        match = re.fullmatch(r"\$\{[A-Za-z_]\w*:-([^}]*)\}", str(value))
        values[name] = match.group(1) if match else value
    if not problems:
        try:
            settings_from_mapping(values)
        except SettingsError as error:
            problems.append(f"MAILFORCE_* defaults are not valid settings: {error}")
    return problems


def check_volumes(compose: dict) -> list[str]:
    problems = []
    wanted = {"./dags": "/opt/airflow/dags", "./plugins": "/opt/airflow/plugins", "./sample": "/opt/airflow/sample"}
    for name, svc in airflow_services(compose).items():
        mounts = {}
        for volume in svc.get("volumes") or []:
            if isinstance(volume, str):
                parts = volume.split(":")
                mounts[parts[0]] = (parts[1] if len(parts) > 1 else "", "ro" in parts[2:])
            else:
                mounts[volume.get("source")] = (volume.get("target"), bool(volume.get("read_only")))
        for source, target in wanted.items():
            if mounts.get(source) != (target, True):
                problems.append(f"{name}: {source} must be mounted read-only at {target}")
    declared = set(compose.get("volumes") or {})
    for name, svc in services(compose).items():
        for volume in svc.get("volumes") or []:
            source = volume.split(":")[0] if isinstance(volume, str) else volume.get("source")
            if source and not source.startswith((".", "/", "~")) and source not in declared:
                problems.append(f"{name}: volume {source!r} is not declared under volumes:")
    for name, target in (("es01", "/usr/share/elasticsearch/data"), ("postgres", "/var/lib/postgresql/data")):
        targets = [v.split(":")[1] for v in services(compose).get(name, {}).get("volumes") or [] if isinstance(v, str)]
        if target not in targets:
            problems.append(f"{name}: no named volume for {target}")
    return problems


def check_literal_secrets(compose: dict) -> list[str]:
    problems = []
    ref = r"(\$\{[A-Za-z_]\w*(:?[-?+][^}]*)?\}|\$\$\{?[A-Za-z_]\w*\}?)"
    patterns = [
        (re.compile(r"://[^/\s:@'\"]*:([^@\s/]+)@"), "URL credentials"),
        (re.compile(r'"password"\s*:\s*"([^"]*)"'), "JSON password"),
        (re.compile(r"""(?:^|\s)(?:-u|--user)\s+["']?[^:\s"']+:([^"'\s]+)"""), "curl credentials"),
        (re.compile(r"""--requirepass\s+["']?([^"'\s]+)"""), "Redis password"),
        (re.compile(r"""(?i)\b\w*(?:password|secret|token)\w*=([^\s"'$][^\s"']*)"""), "assignment"),
    ]
    for path, text in strings(compose):
        for pattern, what in patterns:
            for match in pattern.finditer(text):
                value = match.group(1)
                if not re.fullmatch(ref, value) and value != "%s":
                    problems.append(f"{path}: literal secret in {what}: {value[:3]}...")
    for name, svc in services(compose).items():
        for key, value in environment(svc).items():
            if SECRET_NAME.search(key) and not key.upper().endswith(("_FILE", "_PATH")):
                if not REQUIRED_REF.match(str(value)):
                    problems.append(f"{name}: {key} must come from .env as ${{VAR:?message}}, not {str(value)[:3]}...")
    return problems


def check_env_example(compose: dict, example: dict[str, str]) -> list[str]:
    problems = []
    used: dict[str, set[str]] = {}
    for path, text in strings(compose):
        for match in INTERPOLATION.finditer(text):
            if match.group(0) == "$$":
                continue
            name = match.group(1) or match.group(3)
            used.setdefault(name, set()).add(match.group(2) or "")
    for name in sorted(set(used) - set(example)):
        problems.append(f"${name} is read from .env by docker-compose.yaml but not defined in .env.example (a shell variable needs $$)")
    for name, operators in sorted(used.items()):
        if SECRET_NAME.search(name) and operators != {":?"}:
            problems.append(f"secret ${{{name}}} must always be referenced as ${{{name}:?message}}")
    for name, value in example.items():
        if SECRET_NAME.search(name) and "change-me" not in value:
            problems.append(f".env.example: {name} must hold an obvious change-me placeholder")
    return problems


def check_elastic(compose: dict) -> list[str]:
    problems = []
    svcs = services(compose)
    es = svcs.get("es01", {})
    env = environment(es)
    for key, value in {"xpack.security.enabled": "true", "xpack.security.http.ssl.enabled": "true"}.items():
        if str(env.get(key)).lower() != value:
            problems.append(f"es01: {key} must be true")
    if not REQUIRED_REF.match(str(env.get("ELASTIC_PASSWORD", ""))):
        problems.append("es01: ELASTIC_PASSWORD must come from .env")
    test = " ".join(es.get("healthcheck", {}).get("test") or [])
    if not all(part in test for part in ("--cacert", "https://localhost:9200", "elastic:")):
        problems.append("es01: the healthcheck must call https://localhost:9200 as elastic, verifying the CA")
    if not es.get("mem_limit") and not (es.get("deploy") or {}).get("resources", {}).get("limits", {}).get("memory"):
        problems.append("es01: no memory limit")
    setup = command_text(svcs.get("setup", {}))
    if "elasticsearch-certutil ca" not in setup or "elasticsearch-certutil cert" not in setup:
        problems.append("setup must create the CA and certificates with elasticsearch-certutil")
    if "kibana_system/_password" not in command_text(svcs.get("kibana-setup", {})):
        problems.append("kibana-setup must set the kibana_system password")
    stamping = command_text(svcs.get("kibana-setup", {}))
    for part in ("_ingest/pipeline/", "{{_ingest.timestamp}}", "index.default_pipeline", "indexed_at"):
        if part not in stamping:
            problems.append(f"kibana-setup must install the indexed_at ingest pipeline as the source index's "
                            f"default pipeline ({part} missing)")
    kenv = environment(svcs.get("kibana", {}))
    if kenv.get("ELASTICSEARCH_USERNAME") != "kibana_system" or not REQUIRED_REF.match(str(kenv.get("ELASTICSEARCH_PASSWORD", ""))):
        problems.append("kibana must connect as kibana_system with a password from .env")
    ports = [str(p) for p in svcs.get("kibana", {}).get("ports") or []]
    if not any(p.endswith(":5601") for p in ports):
        problems.append("kibana must publish port 5601")
    dash = svcs.get("kibana-dashboards", {})
    text = command_text(dash) + " " + " ".join(dash.get("entrypoint") or [])
    for part in ("/api/saved_objects/_import", "overwrite=true", "kbn-xsrf", "mailforce-dashboard.ndjson"):
        if part not in text:
            problems.append(f"kibana-dashboards must import through the saved objects API ({part} missing)")
    if not any(str(v).startswith("./kibana:") for v in dash.get("volumes") or []):
        problems.append("kibana-dashboards must mount ./kibana")
    if (depends_on(dash).get("kibana") or {}).get("condition") != "service_healthy":
        problems.append("kibana-dashboards must wait for kibana to be healthy")
    return problems


# The Kibana saved objects are checked by tests/test_kibana.py, against the product's mappings.


# ----------------------------------------------------------------------------- the real files


def test_required_services_and_workers(compose):
    assert check_services(compose) == []


def test_images_pinned(compose):
    assert check_images(compose) == []


def test_airflow_image_matches_requirements_pin(compose):
    assert check_airflow_version(compose, DOCKERFILE.read_text(), airflow_pin()) == []


def test_long_running_services_have_healthchecks(compose):
    assert check_healthchecks(compose) == []


def test_depends_on_use_conditions(compose):
    assert check_depends_on(compose) == []


def test_airflow_services_share_common_environment(compose):
    assert check_airflow_environment(compose) == []


def test_volumes_mounted(compose):
    assert check_volumes(compose) == []


def test_no_literal_secrets(compose):
    assert check_literal_secrets(compose) == []


def test_env_example_defines_every_variable(compose):
    assert check_env_example(compose, env_example()) == []


def test_elasticsearch_and_kibana(compose):
    assert check_elastic(compose) == []


def test_dot_env_is_git_ignored():
    result = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=ROOT)
    assert result.returncode == 0, ".env must be ignored by git"
    tracked = subprocess.run(["git", "ls-files", "--", ".env"], cwd=ROOT, capture_output=True, text=True)
    assert tracked.stdout.strip() == "", ".env must not be tracked"


# ----------------------------------------------------------------------------- each rule can fail


def _mutated(mutate: Callable[[dict], None]) -> dict:
    broken = copy.deepcopy(load_compose())
    mutate(broken)
    return broken


def _svc(name: str) -> Callable[[dict], dict]:
    return lambda c: c["services"][name]


def _set_env(service: str, key: str, value: str) -> Callable[[dict], None]:
    def mutate(c: dict) -> None:
        c["services"][service]["environment"] = dict(c["services"][service]["environment"], **{key: value})

    return mutate


def _conn(change: Callable[[dict], None]) -> Callable[[dict], None]:
    def mutate(c: dict) -> None:
        conn = json.loads(c["x-airflow-common"]["environment"][CONN_ENV])
        change(conn)
        c["x-airflow-common"]["environment"] = dict(c["x-airflow-common"]["environment"], **{CONN_ENV: json.dumps(conn)})

    return mutate


COMPOSE_MUTATIONS = {
    "missing scheduler": (check_services, lambda c: c["services"].pop("airflow-scheduler")),
    "one worker": (check_services, lambda c: c["services"]["airflow-worker"]["deploy"].update(replicas=1)),
    "demo without profile": (check_services, lambda c: c["services"]["demo-mail"].pop("profiles")),
    "latest tag": (check_images, lambda c: _svc("es01")(c).update(image="docker.elastic.co/elasticsearch/elasticsearch:latest")),
    "no tag": (check_images, lambda c: _svc("redis")(c).update(image="redis")),
    "major-only tag": (check_images, lambda c: _svc("postgres")(c).update(image="postgres:16")),
    "minor-only tag": (check_images, lambda c: _svc("redis")(c).update(image="redis:7.4")),
    "kibana version drift": (check_images, lambda c: _svc("kibana")(c).update(image="docker.elastic.co/kibana/kibana:9.0.0")),
    "no healthcheck": (check_healthchecks, lambda c: _svc("kibana")(c).pop("healthcheck")),
    "one-shot restarting": (check_healthchecks, lambda c: _svc("airflow-init")(c).update(restart="always")),
    "depends_on list": (check_depends_on, lambda c: _svc("kibana")(c).update(depends_on=["es01"])),
    "service_started": (check_depends_on, lambda c: _svc("airflow-scheduler")(c)["depends_on"].update(postgres={"condition": "service_started"})),
    "executor": (check_airflow_environment, _set_env("airflow-triggerer", "AIRFLOW__CORE__EXECUTOR", "LocalExecutor")),
    "connection extra": (check_airflow_environment, _conn(lambda conn: conn["extra"].update(use_ssl=True))),
    "connection literal password": (check_airflow_environment, _conn(lambda conn: conn.update(password="hunter2hunter2"))),
    "connection not JSON": (check_airflow_environment, lambda c: c["x-airflow-common"]["environment"].update({CONN_ENV: "{not json"})),
    "unknown setting": (check_airflow_environment, lambda c: c["x-airflow-common"]["environment"].update(MAILFORCE_NOPE="1")),
    "no dags mount": (check_volumes, lambda c: _svc("airflow-worker")(c).update(volumes=["./plugins:/opt/airflow/plugins:ro"])),
    "literal env secret": (check_literal_secrets, _set_env("postgres", "POSTGRES_PASSWORD", "hunter2hunter2")),
    "literal URL secret": (check_literal_secrets, _set_env("airflow-worker", "AIRFLOW__CELERY__BROKER_URL", "redis://:hunter2@redis:6379/0")),
    "literal curl secret": (check_literal_secrets, lambda c: _svc("kibana-dashboards")(c).update(command=["curl -u elastic:hunter2 http://kibana:5601"])),
    "undefined variable": (lambda c: check_env_example(c, env_example()), _set_env("redis", "EXTRA", "${NOT_IN_ENV_EXAMPLE:-x}")),
    "unescaped shell variable": (lambda c: check_env_example(c, env_example()), lambda c: _svc("setup")(c).update(command=["echo $HOSTNAME"])),
    "optional secret": (lambda c: check_env_example(c, env_example()), _set_env("redis", "REDIS_PASSWORD", "${REDIS_PASSWORD:-redis}")),
    "security off": (check_elastic, _set_env("es01", "xpack.security.enabled", "false")),
    "no import": (check_elastic, lambda c: _svc("kibana-dashboards")(c).update(command=["echo skipped"])),
}


@pytest.mark.parametrize("case", sorted(COMPOSE_MUTATIONS))
def test_rule_catches_broken_compose(case):
    rule, mutate = COMPOSE_MUTATIONS[case]
    assert rule(load_compose()) == [], "the rule must pass on the real file first"
    assert rule(_mutated(mutate)) != [], f"{case}: the broken copy was not caught"


def test_rule_catches_airflow_version_drift():
    compose, dockerfile = load_compose(), DOCKERFILE.read_text()
    assert check_airflow_version(compose, dockerfile, "9.9.9") != []
    assert check_airflow_version(compose, dockerfile.replace('"apache-airflow==${AIRFLOW_VERSION}" ', ""), airflow_pin()) != []


def test_rule_catches_placeholder_looking_real():
    example = dict(env_example(), ELASTIC_PASSWORD="Xk2p9QwLm4")
    assert check_env_example(load_compose(), example) != []


def test_the_dag_connects_as_the_least_privilege_user_whose_role_is_the_documented_one(compose):
    """The Airflow connection's user is `mailforce_airflow`, not `elastic`; kibana-setup creates its
    role with exactly the privileges docs/CONFIGURATION.md lists; the workers wait for it."""
    import re as _re

    env = compose["x-airflow-common"]["environment"]
    conn = json.loads(env[CONN_ENV])
    assert conn["login"] == "mailforce_airflow" and "MAILFORCE_ES_PASSWORD" in conn["password"]
    command = command_text(compose["services"]["kibana-setup"])
    assert "/_security/role/mailforce_airflow" in command and "/_security/user/mailforce_airflow" in command
    role_text = _re.search(r"role='(.*?)'\n", command, _re.S).group(1)
    role = json.loads(role_text.replace("'\"$$MAILFORCE_SOURCE_INDEX\"'", "search-shinobi-email"))
    configuration = (ROOT / "docs" / "CONFIGURATION.md").read_text()
    expected = json.loads(_re.search(r"<!-- mailforce-role -->\s*```json\n(.*?)```", configuration, _re.S).group(1))
    assert role == expected
    deps = compose["services"]["airflow-worker"]["depends_on"]
    assert deps["kibana-setup"]["condition"] == "service_completed_successfully"
