"""docker-compose.yml, checked statically (no Docker engine on the build machines)."""

from __future__ import annotations

import importlib
import os
import re
import tomllib

import yaml

from app.config import ENV_VARS
from labkit.broker import EXTERNAL_BROKER_ENV
from tests.conftest import REPO

COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
SECRETS = {"FLOWER_BASIC_AUTH", "JUPYTER_TOKEN", "REDIS_PASSWORD"}
REDIS_URL = re.compile(r"redis://:\$\{REDIS_PASSWORD:\?[^}]+\}@redis:6379/\d+")


def test_every_service_is_there():
    assert {"redis", "worker", "beat", "flower", "jupyter"} <= set(SERVICES)


def test_python_services_run_the_one_app_through_the_repo_scripts():
    for name in ("worker", "beat", "flower", "jupyter"):
        command = SERVICES[name]["command"]
        script = command[0]
        if script.startswith("./"):
            path = REPO / script[2:]
            assert path.exists() and os.access(path, os.X_OK), f"{name}: {script} missing"
            assert "-A app.celery_app" in path.read_text()
        elif "-A" in command:
            module = command[command.index("-A") + 1]
            assert module == "app.celery_app"
            assert importlib.import_module(module).app.main == "celery_lab"
    assert SERVICES["worker"]["command"][0] == "./run_worker.sh"
    assert SERVICES["beat"]["command"][0] == "./run_beat.sh"


def test_environment_names_are_the_ones_app_reads():
    for name, service in SERVICES.items():
        if name == "redis":
            continue
        names = set(service["environment"])
        assert set(ENV_VARS) <= names, f"{name} lacks {set(ENV_VARS) - names}"
        assert names <= set(ENV_VARS) | SECRETS | {EXTERNAL_BROKER_ENV}, f"{name}: {names}"
        for var in ("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND"):
            assert REDIS_URL.fullmatch(service["environment"][var]), f"{name}.{var}"


def test_no_credential_is_committed():
    for name, service in SERVICES.items():
        for var, value in (service.get("environment") or {}).items():
            if var in SECRETS:
                assert re.fullmatch(re.escape("${" + var) + r":\?[^}]+\}", value), f"{name}.{var} = {value!r}"
    assert SERVICES["flower"]["environment"]["FLOWER_BASIC_AUTH"]


def test_the_image_installs_an_extra_the_project_declares():
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    dockerfile = SERVICES["worker"]["build"]["dockerfile_inline"]
    wanted = re.findall(r"-e '\.\[(\w+)\]'", dockerfile)
    assert wanted and all(extra in extras for extra in wanted)


def test_labs_in_the_jupyter_service_use_their_own_redis_db():
    env = SERVICES["jupyter"]["environment"]
    assert env[EXTERNAL_BROKER_ENV] != env["CELERY_BROKER_URL"]  # labs never steal the worker's tasks


def ports_open_to_the_network(compose: dict) -> list[str]:
    """Published ports Docker would bind on every interface (no host IP, or not loopback)."""
    bad = []
    for name, service in compose["services"].items():
        for port in service.get("ports") or []:
            if isinstance(port, dict):
                host_ip = port.get("host_ip", "")
            else:
                parts = str(port).split(":")
                host_ip = parts[0] if len(parts) == 3 else ""
            if host_ip not in ("127.0.0.1", "::1"):
                bad.append(f"{name}: {port}")
    return bad


def redis_without_password(compose: dict) -> list[str]:
    """Why the redis service would accept clients without a password, if it would."""
    redis = compose["services"]["redis"]
    command = " ".join(redis.get("command") or [])
    problems = []
    if '--requirepass "$$REDIS_PASSWORD"' not in command:
        problems.append(f"command does not require $REDIS_PASSWORD: {command!r}")
    value = (redis.get("environment") or {}).get("REDIS_PASSWORD", "")
    if not re.fullmatch(r"\$\{REDIS_PASSWORD:\?[^}]+\}", value):
        problems.append(f"REDIS_PASSWORD is not required from the environment: {value!r}")
    return problems


def test_every_published_port_is_on_loopback():
    assert ports_open_to_the_network(COMPOSE) == []
    assert ports_open_to_the_network({"services": {"r": {"ports": ["6379:6379"]}}}) == ["r: 6379:6379"]
    assert ports_open_to_the_network({"services": {"r": {"ports": ["0.0.0.0:1:1"]}}})
    assert ports_open_to_the_network({"services": {"r": {"ports": [{"target": 1, "published": 1}]}}})


def test_redis_requires_a_password_taken_from_the_environment():
    assert redis_without_password(COMPOSE) == []
    assert SERVICES["redis"]["healthcheck"]["test"][0] == "CMD-SHELL"
    assert "REDISCLI_AUTH" in SERVICES["redis"]["healthcheck"]["test"][1]
    open_redis = {"services": {"redis": {"command": ["redis-server", "--save", ""]}}}
    assert len(redis_without_password(open_redis)) == 2
    fixed = {"services": {"redis": {"command": SERVICES["redis"]["command"],
                                    "environment": {"REDIS_PASSWORD": "hunter2"}}}}
    assert redis_without_password(fixed) != []      # a committed password is no requirement


def test_every_url_in_compose_carries_the_password():
    for name, service in SERVICES.items():
        for var, value in (service.get("environment") or {}).items():
            if str(value).startswith("redis://"):
                assert REDIS_URL.fullmatch(value), f"{name}.{var} = {value!r}"
