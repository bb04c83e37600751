"""Generator hyper-parameters: a frozen dataclass plus named-size builders. Imports nothing heavy."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal


@dataclass(frozen=True)
class GeneratorConfig:
    """Shape of the lazy decoder-only generator.

    `codebook_sizes` (one vocabulary per semantic-ID level) and `n_items` (item-id
    embeddings in the context; 0 turns them off) come from the tokenizer and catalog;
    the named sizes below leave them empty and training fills them in.
    """

    architecture: Literal["lazy", "naive", "encdec"] = "lazy"
    d_model: int = 128
    n_layers: int = 2
    n_heads: int = 4
    n_kv_heads: int = 2
    ffn_mult: int = 4
    max_history: int = 50
    dropout: float = 0.1
    item_embeddings: bool = True
    # The first decoder token is BOS plus a projection of the newest history item's context
    # values, so the first cross-attention already asks "what follows this item" (as SASRec's
    # last position does); with a constant BOS only the second layer's query depends on the user.
    newest_query: bool = False
    dense_weight: float = (
        0.0  # > 0 adds a dense item head (LIGER-style), trained with this loss weight
    )
    dense_tied: bool = False  # the dense head scores against the context's item-ID embeddings
    dense_alpha: float = (
        0.0  # weight of the dense score when re-ranking the beam; tuned on validation
    )
    codebook_sizes: tuple[int, ...] = field(default_factory=tuple)
    n_items: int = 0

    @property
    def n_levels(self) -> int:
        return len(self.codebook_sizes)

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    def __post_init__(self) -> None:
        if self.d_model % self.n_heads or self.n_heads % self.n_kv_heads:
            raise ValueError("d_model must divide by n_heads, and n_heads by n_kv_heads")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["codebook_sizes"] = list(self.codebook_sizes)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GeneratorConfig:
        return cls(**{**d, "codebook_sizes": tuple(d.get("codebook_sizes", ()))})

    def for_catalog(self, codebook_sizes: tuple[int, ...], n_items: int) -> GeneratorConfig:
        return replace(self, codebook_sizes=tuple(codebook_sizes), n_items=n_items)


def generator(
    d_model: int, n_layers: int, n_heads: int, n_kv_heads: int, **overrides: Any
) -> GeneratorConfig:
    """The one parameterised builder behind the named sizes."""
    return GeneratorConfig(
        d_model=d_model, n_layers=n_layers, n_heads=n_heads, n_kv_heads=n_kv_heads, **overrides
    )


def generator_tiny() -> GeneratorConfig:
    """For tests: trains in seconds on synthetic data."""
    return generator(32, 1, 2, 1, dropout=0.0)


def generator_small() -> GeneratorConfig:
    """The ml-100k default."""
    return generator(128, 2, 4, 2)


def generator_base() -> GeneratorConfig:
    return generator(256, 4, 8, 2)
