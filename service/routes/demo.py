"""GET /: the demo page, static HTML, JS and CSS shipped in the `service` package (no build
step, nothing loaded from elsewhere: it works offline). Not part of the API's schema."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).resolve().parent.parent / "static"
# The page loads only what the app serves; the browser refuses anything else.
POLICY = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)

router = APIRouter(include_in_schema=False)


@router.api_route("/", methods=["GET", "HEAD"])
async def page() -> FileResponse:
    return FileResponse(STATIC / "index.html", headers={"Content-Security-Policy": POLICY})


def mount_static(app: FastAPI) -> None:
    """The page's scripts and styles under /static (package data, see pyproject.toml)."""
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
