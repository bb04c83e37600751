"""Codebook quality: reconstruction error, per-level utilization, collision rate."""

from __future__ import annotations

import numpy as np

from tokenizer.collisions import collision_rate


def reconstruction_error(x: np.ndarray, x_hat: np.ndarray) -> float:
    """Relative squared error Σ‖x − x̂‖² / Σ‖x‖² over the catalog (0 is perfect)."""
    return float(((x - x_hat) ** 2).sum() / max(float((x**2).sum()), 1e-12))


def utilization(codes: np.ndarray, codebook_size: int) -> list[float]:
    """Per level, the fraction of the codebook's entries that some item uses."""
    return [len(np.unique(codes[:, level])) / codebook_size for level in range(codes.shape[1])]


def codebook_report(
    x: np.ndarray,
    x_hat: np.ndarray,
    codes: np.ndarray,
    unique_codes: np.ndarray,
    codebook_size: int,
) -> dict[str, object]:
    """All tokenizer metrics in one JSON-ready dict."""
    return {
        "n_items": len(x),
        "reconstruction_error": reconstruction_error(x, x_hat),
        "utilization": utilization(codes, codebook_size),
        "collision_rate": collision_rate(codes),
        "collision_rate_resolved": collision_rate(unique_codes),
        "max_items_per_code": int(np.unique(codes, axis=0, return_counts=True)[1].max()),
    }
