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


def retitled(bundle: Path, folder: Path, version: str, prefix: str) -> Path:
    """A copy of `bundle` as `version` whose item titles start with `prefix` (checksum
    updated): a response's titles tell which bundle answered it."""
    from model.bundle import sha256

    copy_as_version(bundle, folder, version)
    catalog = json.loads((folder / "catalog.json").read_text())
    catalog["titles"] = [f"{prefix}{t}" for t in catalog["titles"]]
    (folder / "catalog.json").write_text(json.dumps(catalog))
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"]["catalog.json"] = sha256(folder / "catalog.json")
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder
