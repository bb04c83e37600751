"""The bundle: everything serving needs, in one checksummed directory (no pickle)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any, cast

import numpy as np
from safetensors.numpy import load_file as load_numpy
from safetensors.numpy import save_file as save_numpy
from safetensors.torch import load_model, save_model

from model.config import GeneratorConfig
from model.generators import build_generator
from model.lazy_decoder import LazyDecoder
from tokenizer.config import TokenizerConfig
from tokenizer.semantic_ids import SemanticIds

FORMAT = "genrec-bundle/1"
MANIFEST = "manifest.json"
# Files every bundle has; a manifest that leaves one unchecksummed is refused (it could not
# vouch for what would be loaded).
REQUIRED_FILES = frozenset(
    {
        "model.safetensors",
        "tokenizer.safetensors",
        "catalog.json",
        "popularity.safetensors",
        "histories.json",
    }
)


class BundleError(Exception):
    """A bundle is missing, incomplete, or fails its checksums."""


@dataclass
class Catalog:
    """Item index ↔ external item ID, with titles and training popularity."""

    item_ids: list[str]
    titles: list[str]
    popularity: np.ndarray

    def __post_init__(self) -> None:
        self.index = {item: i for i, item in enumerate(self.item_ids)}

    def __len__(self) -> int:
        return len(self.item_ids)


@dataclass
class Bundle:
    path: Path
    manifest: dict[str, Any]
    model: LazyDecoder
    semantic_ids: SemanticIds
    catalog: Catalog

    @property
    def version(self) -> str:
        return str(self.manifest["version"])

    @cached_property
    def histories(self) -> dict[str, list[str]]:
        """Each user's recent items (external IDs), read on first use: only the process that
        seeds the history store needs them, not every model worker (at 5·10⁵ users they are
        10⁷ Python strings). The file was verified with the rest when the bundle loaded."""
        return dict(json.loads((self.path / "histories.json").read_text()))


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def new_version() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=1, ensure_ascii=False))


def save_bundle(
    out: Path,
    *,
    model: LazyDecoder,
    semantic_ids: SemanticIds,
    catalog: Catalog,
    histories: dict[str, list[str]],
    manifest: dict[str, Any],
    extra_files: dict[str, bytes] | None = None,
) -> Path:
    """Write a bundle to `out` atomically: a sibling temp dir is renamed into place.

    `extra_files` (name → bytes, e.g. the events a retrain consumed) are checksummed like the rest.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        save_model(model, str(tmp / "model.safetensors"))  # tied tables are stored once
        save_numpy(semantic_ids.tensors(), str(tmp / "tokenizer.safetensors"))
        save_numpy(
            {"popularity": catalog.popularity.astype(np.int64)}, str(tmp / "popularity.safetensors")
        )
        _write_json(tmp / "catalog.json", {"item_ids": catalog.item_ids, "titles": catalog.titles})
        _write_json(tmp / "histories.json", histories)
        for name, data in (extra_files or {}).items():
            if name == MANIFEST or "/" in name:
                raise ValueError(f"bad extra bundle file name {name!r}")
            (tmp / name).write_bytes(data)
        files = {p.name: sha256(p) for p in sorted(tmp.iterdir())}
        full = {
            "format": FORMAT,
            "version": manifest.get("version") or new_version(),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            **manifest,
            "generator": model.cfg.to_dict(),
            "tokenizer": {"config": semantic_ids.config.to_dict(), **semantic_ids.meta()},
            "files": files,
        }
        _write_json(tmp / MANIFEST, full)
        os.chmod(tmp, 0o755)
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def read_manifest(path: Path, verify: bool = True) -> dict[str, Any]:
    """The manifest of the bundle at `path`; with `verify`, every file's sha256 is checked."""
    path = Path(path)
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise BundleError(f"{path}: no readable {MANIFEST} ({e})") from e
    if manifest.get("format") != FORMAT:
        raise BundleError(f"{path}: format {manifest.get('format')!r}, expected {FORMAT!r}")
    if verify:
        missing = sorted(REQUIRED_FILES - set(manifest.get("files", {})))
        if missing:
            raise BundleError(f"{path}: the manifest lists no checksum for {', '.join(missing)}")
        for name, digest in manifest["files"].items():
            file = path / name
            if not file.is_file() or sha256(file) != digest:
                raise BundleError(f"{path}: checksum mismatch for {name}")
    return manifest


def load_bundle(path: Path, verify: bool = True) -> Bundle:
    """Load and verify a bundle; refuses one whose checksums fail."""
    path = Path(path).resolve()
    manifest = read_manifest(path, verify)
    cfg = GeneratorConfig.from_dict(manifest["generator"])
    model = cast(LazyDecoder, build_generator(cfg))  # any architecture; serving uses the lazy one
    load_model(model, path / "model.safetensors")  # strict: every tensor, tied ones restored
    model.eval()
    tok = manifest["tokenizer"]
    semantic_ids = SemanticIds.from_tensors(
        TokenizerConfig.from_dict(tok["config"]),
        tok,
        load_numpy(str(path / "tokenizer.safetensors")),
    )
    cat = json.loads((path / "catalog.json").read_text())
    popularity = load_numpy(str(path / "popularity.safetensors"))["popularity"]
    catalog = Catalog(cat["item_ids"], cat["titles"], popularity)
    return Bundle(path, manifest, model, semantic_ids, catalog)
