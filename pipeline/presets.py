"""Named training recipes: generator size, tokenizer, optimisation and embedding, chosen together.

`demo` is what `make demo` trains (≤ 10 minutes on 2 cores); `best` is the recipe behind the
quality table (longer); `tiny` is for tests. benchmarks/quality.py measures them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
    return Preset(generator_small(), TrainConfig(epochs=12), note="about 5 minutes on 2 cores")


def preset_best() -> Preset:
    return Preset(
        generator_small(), TrainConfig(epochs=40, patience=6), note="about 15 minutes on 2 cores"
    )


def preset_tiny() -> Preset:
    return Preset(
        generator_tiny(),
        TrainConfig(epochs=4, batch_size=16, eval_beam=16),
        TokenizerConfig(codebook_size=8),
    )


PRESETS = {"demo": preset_demo, "best": preset_best, "tiny": preset_tiny}
