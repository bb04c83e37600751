"""What the deploy tests check every manifest against: the real CLI and the real settings."""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Any
from unittest import mock

import typer.main

from pipeline.cli import app
from service.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"

# Variables the CLI reads itself (typer envvars), beyond the service's Settings.
CLI_ENV = {"GENREC_DATA_DIR", "GENREC_STORE", "GENREC_REDIS_URL", "GENREC_REDIS_PREFIX"}
OTHER_ENV = {"OMP_WAIT_POLICY", "OMP_NUM_THREADS", "PYTHONUNBUFFERED", "PATH"}


def known_env() -> set[str]:
    return {f"GENREC_{name.upper()}" for name in Settings.model_fields} | CLI_ENV | OTHER_ENV


def parse_genrec(argv: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Parse `genrec COMMAND …` as the console script would, with `env` as the whole
    environment; returns the command's parameters. Raises on an unknown command or option,
    a bad value, or a missing required one (typer's UsageError)."""
    assert argv[0] == "genrec" and len(argv) > 1, shlex.join(argv)
    group = typer.main.get_command(app)
    with mock.patch.dict(os.environ, env, clear=True):
        parent = group.make_context("genrec", [argv[1]], resilient_parsing=False)
        cmd = group.get_command(parent, argv[1])  # type: ignore[attr-defined]
        assert cmd is not None, f"unknown command {argv[1]}"
        return dict(cmd.make_context(argv[1], list(argv[2:]), parent=parent).params)
