"""The quality gate: a retrained candidate replaces the served bundle only if it is not worse.

Both models are scored on the same held-out split of the merged data (base + all events),
full ranking, seen items masked. The served model does not know items added since it was
trained: they are dropped from its histories and it can never rank them, which is what it
would do in production; a history left empty ranks nothing (the service would refuse it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from model.recommender import Recommender

METRIC = "ndcg@10"


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    metric: str
    current: float
    candidate: float
    tolerance: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def quality_gate(
    current: dict[str, float], candidate: dict[str, float], tolerance: float, metric: str = METRIC
) -> GateDecision:
    """Pass when candidate[metric] ≥ current[metric] − tolerance."""
    old, new = float(current[metric]), float(candidate[metric])
    return GateDecision(new >= old - tolerance, metric, old, new, tolerance)


def served_model_ranker(
    rec: Recommender, n_known: int, beam_width: int, k: int = 20
) -> Callable[[list[np.ndarray]], np.ndarray]:
    """Rank with a model that knows catalog items 0..n_known−1 only (the catalog appends)."""

    def rank(histories: list[np.ndarray]) -> np.ndarray:
        known = [h[h < n_known] for h in histories]
        out = np.full((len(histories), k), -1, dtype=np.int64)
        rows = [b for b, h in enumerate(known) if len(h)]
        if rows:
            got = rec.recommend(
                [known[b] for b in rows], k=k, beam_width=beam_width, exclude_seen=True
            ).items
            out[rows, : got.shape[1]] = got
        return out

    return rank
