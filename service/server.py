"""uvicorn with a drain: on SIGTERM, /readyz answers 503 while the server keeps serving for
`drain_s`, then uvicorn shuts down gracefully (stops accepting, lets in-flight requests
finish, runs the lifespan's shutdown).

An orchestrator sends SIGTERM and, at about the same time, stops routing to the pod; the
two race, so a server that stopped accepting at once would refuse requests still on their
way. Draining first answers them, and `/readyz` going 503 tells every load balancer that
polls it to stop sending. SIGINT (Ctrl-C) and a second SIGTERM skip the drain.
"""

from __future__ import annotations

import logging
import signal
import time
from types import FrameType

import uvicorn
from fastapi import FastAPI

log = logging.getLogger(__name__)


class DrainingServer(uvicorn.Server):
    """A uvicorn server whose first SIGTERM starts a drain of `drain_s` seconds."""

    def __init__(self, config: uvicorn.Config, app: FastAPI, drain_s: float) -> None:
        super().__init__(config)
        self.app, self.drain_s = app, drain_s
        self.drain_until: float | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig == signal.SIGTERM and self.drain_s > 0 and self.drain_until is None:
            self.app.state.draining = True
            self.drain_until = time.monotonic() + self.drain_s
            log.info("drain_started seconds=%s", self.drain_s)
            return
        super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        if self.drain_until is not None and time.monotonic() >= self.drain_until:
            self.drain_until = float("inf")  # once
            super().handle_exit(signal.SIGTERM, None)
        return await super().on_tick(counter)


def serve(app: FastAPI, host: str, port: int, drain_s: float) -> None:
    """Run `app` until a signal stops it (see the module docstring)."""
    config = uvicorn.Config(app, host=host, port=port, log_level="info")
    DrainingServer(config, app, drain_s).run()
