"""Named training recipes: generator size, tokenizer, optimisation and embedding, chosen together.

`demo` is what `make demo` trains (≤ 10 minutes on 2 cores) and what benchmarks/quality.py
measures; `tiny` is for tests. A recipe joins this list only with a benchmark row behind it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from model.config import GeneratorConfig, generator_small, generator_tiny
from pipeline.train import TrainConfig
from tokenizer.config import TokenizerConfig


@dataclass(frozen=True)
class Preset:
    generator: GeneratorConfig
    train: TrainConfig
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    embedding: str = "collab"
    note: str = ""


def preset_demo() -> Preset:
    """What `genrec train` and `make demo` use: the lazy decoder plus a dense item head that
    re-ranks the beam's items (LIGER-style; its weight fitted on validation). Chosen over the
    same recipe without the head (`v1` in benchmarks/recipes.py) on validation NDCG@10:
    benchmarks/results/recipes.md."""
    return Preset(
        replace(generator_small(), dense_weight=1.0),
        TrainConfig(epochs=12),
        note="about 9 minutes on 2 cores",
    )


def preset_tiny() -> Preset:
    return Preset(
        generator_tiny(),
        TrainConfig(epochs=4, batch_size=16, eval_beam=16),
        TokenizerConfig(codebook_size=8),
    )


PRESETS = {"demo": preset_demo, "tiny": preset_tiny}
