"""The bundle store: immutable versioned bundles and a `current` symlink switched atomically.

    ROOT/versions/<version>/   one verified bundle per version (the manifest's `version`)
    ROOT/current -> versions/<version>   what the service serves (GENREC_BUNDLE=ROOT/current)
    ROOT/rejected/<version>/   candidates that failed the retraining quality gate
    ROOT/staging/              bundles being written (a crash leaves only garbage here)

A bundle enters `versions/` by one rename and becomes current by one rename of a fresh
symlink over `current` (rename(2) is atomic on POSIX), so a reader sees the old or the new
bundle, never a mix. The link is relative, so the store can be mounted anywhere.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from model.bundle import BundleError, read_manifest

log = logging.getLogger(__name__)


class StoreBusy(Exception):
    """Another process holds the store's lock (a retrain or publish is running)."""


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BundleStore:
    """Versions under ROOT/versions, the served one behind ROOT/current."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).absolute()
        self.versions_dir = self.root / "versions"
        self.rejected_dir = self.root / "rejected"
        self.staging_dir = self.root / "staging"
        self.current = self.root / "current"

    def path(self, version: str) -> Path:
        return self.versions_dir / version

    def versions(self) -> list[str]:
        """Published versions, oldest first (version names are UTC timestamps)."""
        if not self.versions_dir.is_dir():
            return []
        return sorted(p.name for p in self.versions_dir.iterdir() if not p.name.startswith("."))

    def current_version(self) -> str | None:
        """The version `current` points at, or None for an empty store."""
        try:
            return Path(os.readlink(self.current)).name
        except FileNotFoundError:
            return None
        except OSError as e:  # `current` is a directory, not a link: not made by this store
            raise BundleError(f"{self.current} is not a symlink made by the bundle store") from e

    def staging(self) -> Path:
        """A fresh directory to write a bundle into before publishing it (same filesystem)."""
        self.staging_dir.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(dir=self.staging_dir)) / "bundle"

    def add(self, bundle: Path, *, move: bool = False) -> str:
        """Verify a bundle and place it at versions/<version>; returns the version.

        Adding a version that is already there is a no-op (reruns are safe); the copy goes
        through a temp dir and a rename, so `versions/` never holds a partial bundle.
        """
        manifest = read_manifest(bundle, verify=True)
        version = str(manifest["version"])
        target = self.path(version)
        if target.exists():
            read_manifest(target, verify=True)
            if move:
                shutil.rmtree(bundle, ignore_errors=True)
            return version
        self.versions_dir.mkdir(parents=True, exist_ok=True)
        if move:
            Path(bundle).rename(target)
        else:
            tmp = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=self.versions_dir))
            try:
                shutil.copytree(bundle, tmp, dirs_exist_ok=True)
                tmp.rename(target)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        for f in target.iterdir():  # readable by the service's user; checksums are unaffected
            f.chmod(0o644)
        target.chmod(0o755)
        _fsync_dir(self.versions_dir)
        return version

    def switch(self, version: str) -> Path:
        """Point `current` at a verified version, atomically; returns the version's path."""
        read_manifest(self.path(version), verify=True)
        link = self.root / f".current.{os.getpid()}"
        link.unlink(missing_ok=True)
        os.symlink(Path("versions") / version, link)
        os.replace(link, self.current)
        _fsync_dir(self.root)
        log.info("publish current=%s store=%s", version, self.root)
        return self.path(version)

    def publish(self, bundle: Path, *, move: bool = False) -> str:
        """Add a bundle and make it current."""
        version = self.add(bundle, move=move)
        self.switch(version)
        return version

    def reject(self, bundle: Path) -> Path:
        """Keep a candidate that failed the quality gate, for inspection; never served."""
        manifest = read_manifest(bundle, verify=False)
        self.rejected_dir.mkdir(parents=True, exist_ok=True)
        target = self.rejected_dir / str(manifest["version"])
        shutil.rmtree(target, ignore_errors=True)
        Path(bundle).rename(target)
        return target

    def prune(self, keep: int) -> list[str]:
        """Delete all but the newest `keep` versions (and rejected candidates); never `current`.

        Also clears what crashed writers left: staging dirs and temp copies.
        """
        current = self.current_version()
        removed = []
        for folder in (self.versions_dir, self.rejected_dir):
            if not folder.is_dir():
                continue
            names = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
            for name in names[: max(0, len(names) - keep)]:
                if folder == self.versions_dir and name == current:
                    continue
                shutil.rmtree(folder / name, ignore_errors=True)
                removed.append(name)
            for tmp in folder.glob(".*"):
                shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(self.staging_dir, ignore_errors=True)
        if removed:
            log.info("prune removed=%s", ",".join(removed))
        return removed

    @contextmanager
    def lock(self) -> Iterator[None]:
        """One writer at a time (a retrain or a publish); raises StoreBusy if one is running."""
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / ".lock").open("w") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as e:
                raise StoreBusy(f"{self.root} is locked by another retrain or publish") from e
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)
