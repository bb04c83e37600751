"""Typed service errors and the one handler that turns every error into a JSON problem (RFC 9457)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

PROBLEM = "application/problem+json"


class ServiceError(Exception):
    status = 500
    title = "Internal error"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail, self.extra = detail, extra


class BadInput(ServiceError):
    status, title = 422, "Invalid request"


class NotFound(ServiceError):
    status, title = 404, "Not found"


class Unauthorized(ServiceError):
    status, title = 401, "Unauthorized"


class Forbidden(ServiceError):
    """A feature switched off by configuration: retrying will not help (unlike a 503)."""

    status, title = 403, "Forbidden"


class Unavailable(ServiceError):
    """Retry later: every 503 carries `Retry-After` (seconds), so clients back off."""

    status, title = 503, "Service unavailable"
    retry_after_s = 1


class PayloadTooLarge(ServiceError):
    status, title = 413, "Payload too large"


class Overloaded(Unavailable):
    """Too many requests are waiting for the model: shed at once rather than time out."""

    title = "Overloaded"


class BacklogFull(Unavailable):
    """The event stream holds as many unconsumed events as it may: writes are refused (not
    trimmed) until a retrain publishes a bundle that consumed them."""

    title = "Event backlog full"
    retry_after_s = 60


def problem(status: int, title: str, detail: str, **extra: Any) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    return [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in exc.errors()
    ]


def error_response(exc: ServiceError) -> JSONResponse:
    response = problem(exc.status, exc.title, exc.detail, **exc.extra)
    if isinstance(exc, Unavailable):
        response.headers["Retry-After"] = str(exc.retry_after_s)
    return response


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def _service(_: Request, exc: ServiceError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _validation_errors(exc)
        malformed = any(e["type"] == "json_invalid" for e in errors)
        detail = (
            "the body is not valid JSON" if malformed else "the request does not match the schema"
        )
        return problem(400 if malformed else 422, "Invalid request", detail, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem(exc.status_code, str(exc.detail), str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled path=%s", request.url.path)
        return problem(500, "Internal error", "an unexpected error occurred; it has been logged")
