"""The Dockerfile: multi-stage, the CI install command, non-root, health-checked, lean final stage."""

from __future__ import annotations

import json
import re
import tomllib

from service.app import create_app
from tests.deploy.manifests import ROOT, known_env, parse_genrec

DOCKERFILE = (ROOT / "Dockerfile").read_text()


def stages() -> list[list[str]]:
    """Instructions per stage, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    lines = [ln.strip() for ln in joined.splitlines() if ln.strip() and not ln.startswith("#")]
    out: list[list[str]] = []
    for ln in lines:
        if ln.upper().startswith("FROM "):
            out.append([])
        if out:
            out[-1].append(ln)
    return out


def instructions(stage: list[str], name: str) -> list[str]:
    return [ln[len(name) + 1 :] for ln in stage if ln.upper().startswith(name + " ")]


def test_it_is_multi_stage_and_installs_with_the_command_ci_runs():
    build, final = stages()[0], stages()[-1]
    assert len(stages()) >= 2
    assert any(r.startswith("make install ") for r in instructions(build, "RUN"))
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^test: install$", makefile, re.M)  # CI: .ci/run → make test → install
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    assert any("--from=build /opt/venv" in c for c in instructions(final, "COPY"))


def test_the_image_gets_exactly_the_shipped_packages_and_pinned_cpu_torch():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    copied = {c.split()[0] for c in instructions(stages()[0], "COPY")}
    shipped = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    assert {p for p in shipped if "." not in p} <= copied
    assert "torch==2.13.0" in pyproject["project"]["dependencies"]
    assert "torch==2.13.0" in (ROOT / "Makefile").read_text()
    assert "download.pytorch.org/whl/cpu" in DOCKERFILE


def test_the_final_stage_runs_as_non_root_without_build_tools():
    final = stages()[-1]
    users = instructions(final, "USER")
    assert users and users[-1] not in {"root", "0"}
    for run in instructions(final, "RUN"):
        assert "apt-get install" not in run and "pip install" not in run and "make " not in run


def test_healthcheck_and_default_command_hit_real_routes_and_commands():
    final = stages()[-1]
    (health,) = instructions(final, "HEALTHCHECK")
    assert "/healthz" in health and "/healthz" in create_app().openapi()["paths"]
    (cmd,) = instructions(final, "CMD")
    env = {}
    for e in instructions(final, "ENV"):
        env |= dict(re.findall(r"(\w+)=(\S+)", e))
    assert set(env) <= known_env()
    assert env["GENREC_BUNDLE"] == "/bundles/current" and env["GENREC_STORE"] == "/bundles"
    parse_genrec(json.loads(cmd), env)


def test_dockerignore_keeps_secrets_caches_and_data_out_of_the_context():
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", "data", "tests", "**/__pycache__"} <= ignored
