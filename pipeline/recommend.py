"""Recommendations from a bundle without a server: `genrec recommend --bundle DIR --user 196`.

The same path as `POST /v1/recommend`, minus HTTP, Redis and the batcher: the service's
`Engine` built from the same settings (decoding path, precision, beam widths), the same
history rules (a user's stored history is their last `max_history` items, unknown items
skipped; an explicit history must name catalog items) and the same response model, decoded
at the width an idle server uses. A user's history is the one the bundle carries, which is
what a server seeds its store with; events posted to a running server are not seen here.
"""

from __future__ import annotations

from pathlib import Path

import torch

from model.bundle import load_bundle
from service.engine import build_engine
from service.errors import BadInput, NotFound
from service.schemas import RecommendResponse
from service.settings import Settings


def recommend_offline(
    bundle_dir: Path,
    settings: Settings,
    *,
    user_id: str | None = None,
    history: list[str] | None = None,
    k: int = 10,
    beam_width: int | None = None,
    exclude_seen: bool = True,
) -> RecommendResponse:
    """Top-k items for a user of the bundle or an explicit history (oldest first).

    Raises `NotFound` for a user the bundle has no history of and `BadInput` for unknown items,
    as the API answers 404 and 422.
    """
    if (user_id is None) == (history is None):
        raise BadInput("give a user or a history, not both")
    torch.set_num_threads(settings.torch_threads or 1)  # as a model worker runs
    engine = build_engine(load_bundle(bundle_dir), settings)
    if history is not None:
        indices = engine.indices(history, strict=True)
    else:
        assert user_id is not None
        stored = engine.bundle.histories.get(user_id, [])[-settings.max_history :]
        if not stored:
            raise NotFound(
                f"the bundle has no history for user {user_id!r} "
                f"({len(engine.bundle.histories):,} users); pass --history ITEM,ITEM,…"
            )
        indices = engine.indices(stored, strict=False)
    query = engine.query(indices, k, beam_width, exclude_seen)
    [result] = engine.run([query], settings.default_beam_width)  # an idle server's width
    return RecommendResponse.of(user_id, result, engine.version, len(indices))
