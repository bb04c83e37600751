"""deploy/compose.yaml: api + Redis (AOF) + one-shot jobs, every reference resolves."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.manifests import DEPLOY, known_env, parse_genrec

COMPOSE = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]


def volume_sources(service: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(source, target, read_only) of every short-syntax volume."""
    out = []
    for v in service.get("volumes", []):
        source, target, *mode = v.split(":")
        out.append((source, target, mode == ["ro"]))
    return out


def test_services_are_api_redis_and_one_shot_jobs():
    assert set(SERVICES) == {"redis", "api", "train", "retrain"}
    for job in ("train", "retrain"):
        assert SERVICES[job]["restart"] == "no" and SERVICES[job]["profiles"] == ["jobs"]


def redis_argv() -> list[str]:
    """redis-server's arguments (the command runs it through `sh -c` to read its secret)."""
    cmd = SERVICES["redis"]["command"]
    assert cmd[:2] == ["sh", "-c"]
    argv = shlex.split(cmd[2].replace("$$", "$"))
    assert argv[:2] == ["exec", "redis-server"]
    return argv


def test_redis_persists_every_write():
    cmd = redis_argv()
    assert cmd[cmd.index("--appendonly") + 1] == "yes"
    assert cmd[cmd.index("--appendfsync") + 1] == "always"
    assert ("redis-data", "/data", False) in volume_sources(SERVICES["redis"])
    assert "healthcheck" in SERVICES["redis"]


def test_named_volumes_are_declared_and_bind_mounts_point_inside_the_repo():
    declared = set(COMPOSE["volumes"])
    for service in SERVICES.values():
        for source, _, _ in volume_sources(service):
            if source.startswith((".", "/")):
                assert (DEPLOY / source).resolve().parent.is_dir(), source
            else:
                assert source in declared, source


def test_the_api_reads_bundles_read_only_and_the_jobs_write_them():
    assert ("bundles", "/bundles", True) in volume_sources(SERVICES["api"])
    for job in ("train", "retrain"):
        assert ("bundles", "/bundles", False) in volume_sources(SERVICES[job])


def test_build_context_and_dependencies_exist():
    for name, service in SERVICES.items():
        if "build" in service:
            context = DEPLOY / service["build"]["context"]
            assert (context / service["build"]["dockerfile"]).is_file(), name
        for dep in service.get("depends_on", {}):
            assert dep in SERVICES, (name, dep)
    host = SERVICES["api"]["environment"]["GENREC_REDIS_URL"].split("//")[1].split(":")[0]
    assert host in SERVICES


@pytest.mark.parametrize("name", ["api", "train", "retrain"])
def test_commands_parse_with_the_real_cli_and_env(name):
    service = SERVICES[name]
    env = {k: str(v) for k, v in service["environment"].items()}
    assert set(env) <= known_env(), set(env) - known_env()
    params = parse_genrec(service["command"], env)
    if name == "api":
        assert f"127.0.0.1:{params['port']}:{params['port']}" in service["ports"]
        assert env["GENREC_BUNDLE"] == "/bundles/current"
    else:
        assert Path(params["store"]) == Path("/bundles")


def test_keys_and_the_redis_password_come_from_secrets_not_the_environment():
    secrets = COMPOSE["secrets"]
    api = SERVICES["api"]
    assert {"GENREC_API_KEY", "GENREC_READ_API_KEY", "GENREC_REDIS_PASSWORD"} <= set(api["secrets"])
    assert SERVICES["retrain"]["secrets"] == ["GENREC_REDIS_PASSWORD"]
    for name in api["secrets"]:
        source = DEPLOY / secrets[name]["file"]
        assert source.parent == DEPLOY / "secrets"  # git-ignored, documented there
        assert name.startswith("GENREC_") and name.removeprefix("GENREC_").lower() in (
            known_env_fields()
        )
    for service in SERVICES.values():
        env = service.get("environment", {})
        assert not {"GENREC_API_KEY", "GENREC_READ_API_KEY", "GENREC_REDIS_PASSWORD"} & set(env)
        assert "@" not in env.get("GENREC_REDIS_URL", "")
    ignored = (DEPLOY / "secrets" / ".gitignore").read_text().split()
    assert ignored[0] == "*"


def test_redis_needs_the_password_and_never_evicts():
    cmd = redis_argv()
    assert cmd[cmd.index("--requirepass") + 1] == "$(cat /run/secrets/GENREC_REDIS_PASSWORD)"
    assert cmd[cmd.index("--maxmemory-policy") + 1] == "noeviction"
    assert "GENREC_REDIS_PASSWORD" in SERVICES["redis"]["secrets"]
    assert "REDISCLI_AUTH" in " ".join(SERVICES["redis"]["healthcheck"]["test"])
    assert "ports" not in SERVICES["redis"]


def test_nothing_is_published_on_all_interfaces():
    for name, service in SERVICES.items():
        for port in service.get("ports", []):
            host_ip = str(port).split(":")[0]
            assert host_ip == "127.0.0.1", (name, port)


def known_env_fields() -> set[str]:
    from service.settings import Settings

    return set(Settings.model_fields)
