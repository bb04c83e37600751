"""Helpers for tests that need several bundle versions."""

from __future__ import annotations

import json
import shutil
from pathlib import Path


def copy_as_version(bundle: Path, folder: Path, version: str) -> Path:
    """A copy of `bundle` whose manifest says `version` (checksums stay valid: the manifest
    is not among the files it lists)."""
    shutil.copytree(bundle, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["version"] = version
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder
