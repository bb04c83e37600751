"""RQ-KMeans (OneRec): level ℓ clusters the residuals left by level ℓ−1, optionally balanced."""

from __future__ import annotations

from dataclasses import dataclass

import faiss
import numpy as np

from tokenizer.config import TokenizerConfig


@dataclass
class ResidualQuantizer:
    """Frozen codebooks, one (K, D) matrix per level; encodes by greedy residual search."""

    codebooks: list[np.ndarray]

    @property
    def n_levels(self) -> int:
        return len(self.codebooks)

    def encode(self, x: np.ndarray) -> np.ndarray:
        """Nearest centroid level by level (no capacity limit): codes (N, L)."""
        residual = np.asarray(x, dtype=np.float32).copy()
        codes = np.empty((len(residual), self.n_levels), dtype=np.int64)
        for level, centroids in enumerate(self.codebooks):
            codes[:, level] = squared_distances(residual, centroids).argmin(axis=1)
            residual -= centroids[codes[:, level]]
        return codes

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Sum of the chosen centroids: reconstruction (N, D)."""
        return sum(cb[codes[:, level]] for level, cb in enumerate(self.codebooks))  # type: ignore[return-value]

    def tensors(self) -> dict[str, np.ndarray]:
        return {f"codebook.{i}": cb for i, cb in enumerate(self.codebooks)}

    @classmethod
    def from_tensors(cls, tensors: dict[str, np.ndarray]) -> ResidualQuantizer:
        n_levels = sum(1 for name in tensors if name.startswith("codebook."))
        return cls([tensors[f"codebook.{i}"] for i in range(n_levels)])


def squared_distances(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """(N, K) squared Euclidean distances, vectorised, in place: one (N, K) array, not the
    three temporaries of writing it as one expression (1 GB each at 10⁶ items × 256 codes)."""
    d = x @ centroids.T  # (N, K)
    d *= -2.0
    d += (x * x).sum(1, keepdims=True)
    d += (centroids * centroids).sum(1)[None]
    return d


def balanced_assign(dist: np.ndarray, capacity: int) -> np.ndarray:
    """Capacity-constrained assignment: each cluster takes at most `capacity` points.

    Rounds of proposals: every unassigned point proposes to its nearest open cluster,
    each cluster accepts its closest proposers up to its remaining room. Each round
    fills a cluster or places every proposer, so there are at most K + 1 rounds.
    """
    N, K = dist.shape
    if capacity * K < N:
        raise ValueError(f"capacity {capacity} x {K} clusters cannot hold {N} points")
    assign = np.full(N, -1, dtype=np.int64)
    room = np.full(K, capacity, dtype=np.int64)
    pending = np.arange(N)
    while len(pending):
        d = dist[pending]  # (P, K), a copy (integer indexing)
        d[:, room == 0] = np.inf
        best = d.argmin(axis=1)  # (P,)
        best_d = d[np.arange(len(pending)), best]
        order = np.lexsort((best_d, best))  # by cluster, then distance
        sorted_best = best[order]
        starts = np.searchsorted(sorted_best, sorted_best, side="left")
        rank = np.arange(len(order)) - starts  # position within its cluster's proposers
        accepted = order[rank < room[sorted_best]]
        assign[pending[accepted]] = best[accepted]
        room -= np.bincount(best[accepted], minlength=K)
        pending = np.setdiff1d(pending, pending[accepted], assume_unique=True)
    return assign


def _cluster_level(
    residual: np.ndarray, k: int, config: TokenizerConfig, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """k-means (faiss) on one level's residuals, then balanced refinement: (centroids, assign)."""
    n, d = residual.shape
    km = faiss.Kmeans(
        d,
        k,
        niter=config.kmeans_iters,
        seed=seed,
        verbose=False,
        min_points_per_centroid=1,
        max_points_per_centroid=max(256, n // k + 1),
    )
    km.train(residual)
    assert km.centroids is not None
    centroids = km.centroids.copy()
    if not config.balanced:
        return centroids, squared_distances(residual, centroids).argmin(axis=1)
    capacity = -(-n // k)  # ceil(N / K)
    for _ in range(config.balance_iters):
        assign = balanced_assign(squared_distances(residual, centroids), capacity)
        counts = np.bincount(assign, minlength=k)
        sums = np.zeros_like(centroids)
        np.add.at(sums, assign, residual)
        filled = counts > 0
        centroids[filled] = sums[filled] / counts[filled, None]
    return centroids, balanced_assign(squared_distances(residual, centroids), capacity)


def fit_rq_kmeans(
    x: np.ndarray, codebook_size: int, config: TokenizerConfig
) -> tuple[ResidualQuantizer, np.ndarray]:
    """Fit `config.n_levels` codebooks on embeddings x (N, D): (quantizer, codes (N, L))."""
    residual = np.ascontiguousarray(x, dtype=np.float32).copy()
    n = len(residual)
    if n < codebook_size:
        raise ValueError(
            f"{n} items cannot fill a codebook of {codebook_size}; lower codebook_size"
        )
    codebooks, codes = [], np.empty((n, config.n_levels), dtype=np.int64)
    for level in range(config.n_levels):
        centroids, assign = _cluster_level(residual, codebook_size, config, config.seed + level)
        codebooks.append(centroids)
        codes[:, level] = assign
        residual -= centroids[assign]
    return ResidualQuantizer(codebooks), codes
