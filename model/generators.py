"""Build a generator from its config: the lazy decoder serves; naive decoder-only and
encoder-decoder exist to be measured against it (benchmarks/generator.py)."""

from __future__ import annotations

from typing import Protocol

from torch import Tensor, nn

from model.config import GeneratorConfig


class Generator(Protocol):
    """What training, beam search and bundles need from a generator."""

    cfg: GeneratorConfig

    def encode_context(
        self, hist_codes: Tensor, hist_items: Tensor, hist_mask: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]: ...

    def step(self, ctx_k: Tensor, ctx_v: Tensor, ctx_bias: Tensor, tokens: Tensor) -> Tensor: ...

    def train_loss(self, batch: dict[str, Tensor], label_smoothing: float = 0.0) -> Tensor: ...


def build_generator(cfg: GeneratorConfig) -> nn.Module:
    from model.encoder_decoder import EncoderDecoder
    from model.lazy_decoder import LazyDecoder
    from model.naive_decoder import NaiveDecoder

    kinds: dict[str, type[nn.Module]] = {
        "lazy": LazyDecoder,
        "naive": NaiveDecoder,
        "encdec": EncoderDecoder,
    }
    return kinds[cfg.architecture](cfg)
