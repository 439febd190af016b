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
SECRETS = {"FLOWER_BASIC_AUTH", "JUPYTER_TOKEN"}


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
            assert service["environment"][var].startswith("redis://redis:6379/")


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
