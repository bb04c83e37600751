"""Fit semantic IDs for a catalog: quantize embeddings, make every ID unique, report quality."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from tokenizer.collisions import append_dedup_level, extend_unique
from tokenizer.config import TokenizerConfig, derive_codebook_shape
from tokenizer.metrics import codebook_report
from tokenizer.rq_kmeans import ResidualQuantizer, fit_rq_kmeans
from tokenizer.rq_vae import RQVAEQuantizer, fit_rq_vae


@dataclass
class SemanticIds:
    """Frozen codebooks plus the unique ID (N, L+1) of every catalog item."""

    config: TokenizerConfig
    codebook_size: int
    dedup_size: int
    quantizer: ResidualQuantizer | RQVAEQuantizer
    codes: np.ndarray
    report: dict[str, object] = field(default_factory=dict)

    @property
    def codebook_sizes(self) -> tuple[int, ...]:
        """Vocabulary per token position: K for each quantized level, then the dedup level."""
        return (self.codebook_size,) * self.quantizer.n_levels + (self.dedup_size,)

    def extend(self, x_new: np.ndarray) -> np.ndarray:
        """Unique IDs for new items from the frozen codebooks; existing IDs are untouched."""
        new_ids = extend_unique(self.codes, self.quantizer.encode(x_new), self.dedup_size)
        self.codes = np.concatenate([self.codes, new_ids])
        return new_ids

    def tensors(self) -> dict[str, np.ndarray]:
        """Arrays for the bundle (safetensors)."""
        return {**self.quantizer.tensors(), "codes": self.codes}

    @classmethod
    def from_tensors(
        cls, config: TokenizerConfig, meta: dict, tensors: dict[str, np.ndarray]
    ) -> SemanticIds:
        quantizer: ResidualQuantizer | RQVAEQuantizer
        if config.kind == "rq-vae":
            quantizer = RQVAEQuantizer.from_tensors(tensors)
        else:
            quantizer = ResidualQuantizer.from_tensors(tensors)
        return cls(
            config,
            int(meta["codebook_size"]),
            int(meta["dedup_size"]),
            quantizer,
            tensors["codes"].astype(np.int64),
            dict(meta.get("report", {})),
        )

    def meta(self) -> dict[str, object]:
        return {
            "codebook_size": self.codebook_size,
            "dedup_size": self.dedup_size,
            "codebook_sizes": list(self.codebook_sizes),
            "report": self.report,
        }


def fit_semantic_ids(x: np.ndarray, config: TokenizerConfig) -> SemanticIds:
    """Embeddings (N, D) → unique semantic IDs, with the codebook report filled in."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if config.codebook_size is None:
        levels, k = derive_codebook_shape(len(x), config.n_levels)
        config = replace(config, n_levels=levels)
    else:
        k = config.codebook_size
    quantizer: ResidualQuantizer | RQVAEQuantizer
    if config.kind == "rq-kmeans":
        quantizer, codes = fit_rq_kmeans(x, k, config)
    elif config.kind == "rq-vae":
        quantizer, codes = fit_rq_vae(x, k, config)
    else:
        raise ValueError(f"unknown tokenizer kind {config.kind!r}")
    x_hat = quantizer.decode(codes)
    dedup = config.dedup_size or default_dedup_size(codes, k)
    # Within a shared code, the item the code reconstructs best keeps index 0.
    unique = append_dedup_level(codes, dedup, order_key=((x - x_hat) ** 2).sum(1))
    report = codebook_report(x, x_hat, codes, unique, k)
    return SemanticIds(config, k, dedup, quantizer, unique, report)


def default_dedup_size(codes: np.ndarray, codebook_size: int) -> int:
    """Room for twice the largest collision group (new items land there too), at least K."""
    largest = int(np.unique(codes, axis=0, return_counts=True)[1].max())
    return max(codebook_size, 1 << (2 * largest - 1).bit_length())
