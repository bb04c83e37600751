"""ASGI middleware at the edge: bodies over a byte limit get 413 before the app reads them
(uvicorn and Starlette set no limit), request bodies must be JSON, and recommendations the
batcher would shed get 503 before any parsing (`LoadShedder`).

`curl -d '{…}'` labels its body `application/x-www-form-urlencoded`; every endpoint here takes
JSON only, so that label (or none) is read as JSON and any other media type gets 415.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import Overloaded, error_response, problem

JSON = b"application/json"
READ_AS_JSON = {b"", b"application/x-www-form-urlencoded"}


def _media_type(value: bytes) -> bytes:
    return value.split(b";", 1)[0].strip().lower()


class RequestGuard:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in {"GET", "HEAD", "OPTIONS", "DELETE"}:
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        if declared is not None and not declared.isdigit():
            await problem(400, "Invalid request", "Content-Length is not a number")(
                scope, receive, send
            )
            return
        if declared is not None and int(declared) > self.max_bytes:
            await self._too_large(scope, receive, send)
            return
        media = _media_type(headers.get(b"content-type", b""))
        if media in READ_AS_JSON:
            scope = {
                **scope,
                "headers": [(k, v) for k, v in scope["headers"] if k != b"content-type"]
                + [(b"content-type", JSON)],
            }
        elif media != JSON and not media.endswith(b"+json"):
            await problem(
                415,
                "Unsupported media type",
                f"send JSON (application/json), not {media.decode(errors='replace')}",
            )(scope, receive, send)
            return
        # Read the body here (bounded), then replay it: a streamed body cannot sneak past.
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._too_large(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body, replayed = b"".join(chunks), False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        await problem(413, "Payload too large", f"the body exceeds {self.max_bytes} bytes")(
            scope, receive, send
        )


class LoadShedder:
    """`POST /v1/recommend` gets 503 (Retry-After) at once when the batcher would not admit
    it: under overload the event loop is the bottleneck, and a request shed here costs a
    fraction of one shed after body parsing, validation and routing. It counts the requests
    it lets through until they are answered (`batcher.admitted_request`): the batcher admits against
    that count (time reading Redis or waiting for a busy event loop is pending work too) and
    knows how many requests are still on their way to its queue.
    A shed is counted in `genrec_overloaded_requests_total`, not in the latency histogram."""

    def __init__(self, app: ASGIApp, paths: frozenset[str] = frozenset({"/v1/recommend"})) -> None:
        self.app, self.paths = app, paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in self.paths:
            state = scope["app"].state
            batcher = getattr(state, "batcher", None)
            if batcher is not None:
                try:
                    batcher.check_admission()
                except Overloaded as e:
                    state.metrics.overloaded.inc()
                    await error_response(e)(scope, receive, send)
                    return
                with batcher.admitted_request():
                    await self.app(scope, receive, send)
                return
        await self.app(scope, receive, send)
