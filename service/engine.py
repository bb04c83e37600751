"""Recommendation logic behind the HTTP layer: external IDs ↔ indices, batching, results."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from model.bundle import Bundle
from model.recommender import Recommender
from service.errors import BadInput


@dataclass(frozen=True)
class Query:
    """One request, validated: a non-empty history of catalog indices."""

    history: np.ndarray
    k: int
    widths: tuple[int, ...]
    exclude_seen: bool


@dataclass(frozen=True)
class Scored:
    item_id: str
    title: str
    score: float
    semantic_id: list[int]


class Engine:
    """A loaded bundle, ready to answer batches of queries (called from one worker thread)."""

    def __init__(self, bundle: Bundle, default_beam_width: int, max_beam_width: int) -> None:
        self.bundle = bundle
        self.catalog = bundle.catalog
        self.recommender = Recommender(bundle.model, bundle.semantic_ids.codes)
        self.default_beam_width, self.max_beam_width = default_beam_width, max_beam_width

    @property
    def version(self) -> str:
        return self.bundle.version

    def indices(self, item_ids: list[str], strict: bool) -> np.ndarray:
        """Catalog indices of `item_ids`; unknown ones are an error if `strict`, else skipped."""
        index = self.catalog.index
        unknown = [i for i in item_ids if i not in index]
        if unknown and strict:
            raise BadInput(
                f"{len(unknown)} unknown item(s) in history, e.g. {unknown[:5]}",
                unknown_items=unknown[:20],
            )
        return np.array([index[i] for i in item_ids if i in index], dtype=np.int64)

    def query(
        self, history: np.ndarray, k: int, beam_width: int | None, exclude_seen: bool
    ) -> Query:
        width = min(beam_width or self.default_beam_width, self.max_beam_width)
        if len(history) == 0:
            raise BadInput(
                "the history has no items this model knows; pass a history of catalog items"
            )
        if exclude_seen and len(np.unique(history)) + k > len(self.catalog):
            raise BadInput(
                f"k={k} exceeds the {len(self.catalog)} catalog items not in the history"
            )
        return Query(history, k, tuple(self.recommender.widths(max(width, k), k)), exclude_seen)

    def run(self, queries: list[Query]) -> list[list[Scored]]:
        """Decode a batch; queries with the same widths and exclusion share one beam search."""
        out: list[list[Scored]] = [[] for _ in queries]
        groups: dict[tuple[tuple[int, ...], bool], list[int]] = {}
        for i, q in enumerate(queries):
            groups.setdefault((q.widths, q.exclude_seen), []).append(i)
        for (widths, exclude), members in groups.items():
            histories = [queries[i].history for i in members]
            state = self.recommender.search(histories, list(widths), histories if exclude else None)
            items, scores, codes = state.nodes.numpy(), state.scores.numpy(), state.tokens.numpy()
            for row, i in enumerate(members):
                out[i] = self._results(items[row], scores[row], codes[row], queries[i].k)
        return out

    def _results(
        self, items: np.ndarray, scores: np.ndarray, codes: np.ndarray, k: int
    ) -> list[Scored]:
        keep = np.flatnonzero(items >= 0)[:k]
        return [
            Scored(
                self.catalog.item_ids[items[j]],
                self.catalog.titles[items[j]],
                float(scores[j]),
                codes[j].tolist(),
            )
            for j in keep
        ]


Job = tuple[Engine, Query]


def run_jobs(jobs: list[Job]) -> list[list[Scored]]:
    """Run a mixed batch; jobs made against different bundles (during a reload) run apart."""
    out: list[list[Scored]] = [[] for _ in jobs]
    by_engine: dict[int, list[int]] = {}
    for i, (engine, _) in enumerate(jobs):
        by_engine.setdefault(id(engine), []).append(i)
    for members in by_engine.values():
        engine = jobs[members[0]][0]
        for i, res in zip(members, engine.run([jobs[i][1] for i in members]), strict=True):
            out[i] = res
    return out
