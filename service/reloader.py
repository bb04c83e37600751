"""Hot reload: serve the bundle GENREC_BUNDLE points at now, without failing a request.

A request takes the engine once, when it starts (`EngineDep`), and its batch job carries
that engine, so requests admitted before a swap finish on the old bundle (the batcher runs
jobs of different engines apart) while later ones use the new; nothing is cancelled or
retried. The new bundle is read, verified and prepared off the event loop, its user
histories are seeded once per version, and only then is `app.state.engine` replaced — one
assignment. A bundle that fails to load is refused and the old one keeps serving.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model.bundle import Bundle, BundleError, load_bundle, read_manifest
from service.engine import Engine
from service.errors import ServiceError
from service.store import HistoryStore

log = logging.getLogger(__name__)


class ReloadFailed(ServiceError):
    status, title = 409, "Reload failed"


@dataclass(frozen=True)
class ReloadResult:
    reloaded: bool
    model_version: str
    previous_version: str


class Reloader:
    """Swaps `state.engine` for the bundle at `bundle_path` when its version changes."""

    def __init__(
        self,
        state: Any,
        bundle_path: Path,
        make_engine: Callable[[Bundle], Engine],
        store: HistoryStore | None = None,
    ) -> None:
        self.state, self.bundle_path, self.make_engine, self.store = (
            state,
            Path(bundle_path),
            make_engine,
            store,
        )
        self.lock = asyncio.Lock()
        self.task: asyncio.Task[None] | None = None
        self._refused: str | None = None  # a version that failed to load; polling skips it

    def _target_version(self) -> str:
        try:
            return str(read_manifest(self.bundle_path, verify=False)["version"])
        except (BundleError, KeyError) as e:
            raise ReloadFailed(f"cannot read the bundle at {self.bundle_path}: {e}") from e

    async def reload(self, force: bool = False) -> ReloadResult:
        """Load the bundle if its version differs from the served one (always with `force`)."""
        async with self.lock:
            old: Engine = self.state.engine
            version = self._target_version()
            if version == old.version and not force:
                return ReloadResult(False, old.version, old.version)
            try:
                engine = await asyncio.to_thread(
                    lambda: self.make_engine(load_bundle(self.bundle_path))
                )
            except Exception as e:
                self._refused = version
                log.warning("reload_refused version=%s error=%s", version, e)
                raise ReloadFailed(
                    f"the bundle at {self.bundle_path} was refused ({e}); "
                    f"still serving {old.version}"
                ) from e
            if self.store is not None:
                try:
                    await self.store.seed(engine.bundle.histories, engine.version)
                except Exception:
                    log.warning("seed_histories_failed version=%s", engine.version, exc_info=True)
            self.state.engine = engine
            self._refused = None
            log.info(
                "bundle_reloaded version=%s previous=%s items=%d path=%s",
                engine.version,
                old.version,
                len(engine.catalog),
                engine.bundle.path,
            )
            return ReloadResult(True, engine.version, old.version)

    def start_polling(self, interval_s: float) -> None:
        self.task = asyncio.get_running_loop().create_task(
            self._poll(interval_s), name="genrec-reload-poll"
        )

    async def _poll(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                if self._target_version() != self._refused:
                    await self.reload()
            except ReloadFailed:
                pass  # logged; the old bundle keeps serving and polling goes on
            except Exception:
                log.exception("reload_poll_failed")

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
