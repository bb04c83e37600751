"""Recommendation logic behind the HTTP layer: external IDs ↔ indices, batching, results."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from model.beam_search import beam_schedule
from model.bundle import Bundle
from model.decoding import Decoding, Runner
from model.precision import inference_dtype
from model.recommender import Recommender
from service.catalog_search import TitleIndex
from service.errors import BadInput
from service.settings import Settings

log = logging.getLogger(__name__)

REFERENCE_K = 10  # the k of a default request (RecommendRequest.k's default)


@dataclass(frozen=True)
class Query:
    """One request, validated: a non-empty history of catalog indices and the width it asks
    for (None: the server's default); the server may lower it under load."""

    history: np.ndarray
    k: int
    beam_width: int | None
    exclude_seen: bool


@dataclass(frozen=True)
class Scored:
    item_id: str
    title: str
    score: float
    semantic_id: list[int]


@dataclass(frozen=True)
class Result:
    items: list[Scored]
    widths: tuple[int, ...]  # beam width used at each level


def width_groups(finals: list[int], spread: float = 2.0) -> list[list[int]]:
    """Indices of queries grouped so that a group's widest final width is at most `spread`
    times its narrowest: one beam search per group, little padding, few groups."""
    order = sorted(range(len(finals)), key=finals.__getitem__)
    groups: list[list[int]] = []
    for i in order:
        if groups and finals[i] <= spread * finals[groups[-1][0]]:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


class Engine:
    """A loaded bundle, ready to answer batches of queries (called from one worker thread).

    The model side (`recommender`) is built on first use, or by `warm()`: a process that only
    maps IDs and forwards batches to a model process (`service.model_process`) never builds it.
    """

    def __init__(
        self,
        bundle: Bundle,
        default_beam_width: int,
        max_beam_width: int,
        decoding: Decoding = Decoding.cached,
        make_runner: Callable[[], Runner] | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.bundle = bundle
        self.catalog = bundle.catalog
        self.default_beam_width, self.max_beam_width = default_beam_width, max_beam_width
        self.decoding, self.make_runner, self.dtype = decoding, make_runner, dtype

    @cached_property
    def recommender(self) -> Recommender:
        runner = self.make_runner() if self.make_runner else None
        codes = self.bundle.semantic_ids.codes
        return Recommender(
            self.bundle.model, codes, decoding=self.decoding, runner=runner, dtype=self.dtype
        )

    def warm(self) -> Engine:
        """Build the model side and decode one query now (off the event loop): the first
        decode pays one-off costs (kernel selection, allocator growth) that would otherwise
        land in a request, and past a model process's deadline."""
        n = len(self.catalog)
        self.run([Query(np.arange(min(n - 1, 5)), 1, None, True)], self.default_beam_width)
        return self

    @cached_property
    def titles(self) -> TitleIndex:
        """Title search over the catalog (`GET /v1/items`), built on first use."""
        return TitleIndex(self.catalog)

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
        if len(history) == 0:
            raise BadInput(
                "the history has no items this model knows; pass a history of catalog items"
            )
        n = len(self.catalog)
        if exclude_seen and len(history) + k > n and len(np.unique(history)) + k > n:
            raise BadInput(f"k={k} exceeds the {n} catalog items not in the history")
        return Query(history, k, beam_width, exclude_seen)

    @cached_property
    def _reference_work(self) -> int:
        return self._work(self.default_beam_width, REFERENCE_K)

    def _work(self, final_width: int, k: int) -> int:
        """Beams decoded over all levels: the per-level schedule's sum."""
        cfg = self.bundle.model.cfg
        return sum(beam_schedule(final_width, cfg.n_levels, cfg.codebook_sizes, k))

    def cost(self, q: Query) -> float:
        """What a query costs relative to a default one (default width, k=10), in beam work
        summed over the levels (k bounds every level's width from below); never below 1: a
        narrow beam still pays the per-request overhead (README: the narrowest beam serves
        only ~1.4× what beam 64 does). Admission and the beam controller count this."""
        want = min(q.beam_width or self.default_beam_width, self.max_beam_width)
        return max(1.0, self._work(max(q.k, want), q.k) / self._reference_work)

    def final_width(self, q: Query, server_width: int) -> int:
        """The query's own width (or the default), capped, scaled down as the server's width
        is below its default (load), and never below k."""
        want = min(q.beam_width or self.default_beam_width, self.max_beam_width)
        scaled = want * min(1.0, server_width / self.default_beam_width)
        return max(q.k, round(scaled))

    def run(self, queries: list[Query], server_width: int) -> list[Result]:
        """Decode a batch; queries of similar width share one beam search (each keeps its own)."""
        out: list[Result] = [Result([], ()) for _ in queries]
        finals = [self.final_width(q, server_width) for q in queries]
        for members in width_groups(finals):
            group = [queries[i] for i in members]
            schedules = [self.recommender.widths(finals[i], queries[i].k) for i in members]
            histories = [q.history for q in group]
            exclude = [q.history if q.exclude_seen else q.history[:0] for q in group]
            any_exclusion = any(q.exclude_seen for q in group)
            state = self.recommender.search(
                histories, torch.tensor(schedules), exclude if any_exclusion else None
            )
            items, scores, codes = state.nodes.numpy(), state.scores.numpy(), state.tokens.numpy()
            for row, i in enumerate(members):
                hits = self._results(items[row], scores[row], codes[row], queries[i].k)
                out[i] = Result(hits, tuple(schedules[row]))
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


def build_engine(bundle: Bundle, settings: Settings) -> Engine:
    """The engine the settings ask for: decoding path, backend (ONNX graphs from the bundle
    when it carries them, else exported now, which takes seconds) and precision (ONNX
    Runtime runs the float32 graphs). The model side is built lazily (see `Engine`)."""

    def onnx_runner() -> Runner:
        from model.onnx_export import bundle_onnx, export_onnx
        from model.onnx_runtime import OnnxRunner

        graphs = bundle_onnx(bundle)
        if graphs is None:
            log.warning("onnx_export_at_load bundle=%s (run `genrec export-onnx`)", bundle.path)
            graphs = export_onnx(bundle.model)
        return OnnxRunner(graphs, bundle.model.cfg.n_levels, settings.torch_threads or 1)

    onnx = settings.backend == "onnx"
    return Engine(
        bundle,
        settings.default_beam_width,
        settings.max_beam_width,
        settings.decoding,
        onnx_runner if onnx else None,
        torch.float32 if onnx else inference_dtype(settings.precision),
    )


Job = tuple[Engine, Query]
RunFn = Callable[[Engine, list[Query], int], list[Result]]


def run_jobs(jobs: list[Job], server_width: int, run: RunFn | None = None) -> list[Result]:
    """Run a mixed batch; jobs made against different bundles (during a reload) run apart,
    each group by `run(engine, queries, width)` (default: `engine.run` in this thread)."""
    out: list[Result] = [Result([], ()) for _ in jobs]
    by_engine: dict[int, list[int]] = {}
    for i, (engine, _) in enumerate(jobs):
        by_engine.setdefault(id(engine), []).append(i)
    for members in by_engine.values():
        engine = jobs[members[0]][0]
        queries = [jobs[i][1] for i in members]
        results = run(engine, queries, server_width) if run else engine.run(queries, server_width)
        for i, res in zip(members, results, strict=True):
            out[i] = res
    return out
