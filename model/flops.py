"""Model FLOPs of one served request, counted analytically from the config and the beam schedule.

Serving efficiency is judged as model FLOP utilisation (ARCHITECTURE §3): achieved model FLOP/s
over the matmul peak. That needs the model's FLOPs per request without running it, for any
bundle, beam width and history length. This counts what the served (`cached`) decoding path
multiplies: per level, one new token per beam through every block, and the level's head; the
context K/V are a gather from a per-item table computed once per bundle (`ItemContext`), so
they cost nothing per request. A multiply-add is 2 FLOPs, as `torch.utils.flop_counter`
counts them; element-wise work (norms, softmax, top-k) is not counted, as there.
tests/model/test_flops.py checks the count against `FlopCounterMode` on a real decode.
"""

from __future__ import annotations

from dataclasses import dataclass

from model.config import GeneratorConfig


@dataclass(frozen=True)
class RequestFlops:
    """FLOPs of one request, by part; `total` is what a request costs."""

    blocks: int  # decoder blocks over every beam and level
    heads: int  # per-level output heads
    dense: int  # the dense item head's re-ranking (0 without one)

    @property
    def total(self) -> int:
        return self.blocks + self.heads + self.dense


def beams_per_level(widths: list[int], codebook_sizes: tuple[int, ...]) -> list[int]:
    """Beams that enter each level's step: 1 (BOS) at level 0, then as many as `beam_step`
    keeps, min(W_ℓ, beams_ℓ · min(W_ℓ, K_ℓ)) (its tensor shape, empty beams included)."""
    beams, entering = 1, []
    for width, K in zip(widths, codebook_sizes, strict=True):
        entering.append(beams)
        beams = min(width, beams * min(width, K))
    return entering


def block_flops(cfg: GeneratorConfig, beams: int, context: int, position: int) -> int:
    """One decoder block for `beams` new tokens at target `position` (0 = BOS), attending to
    `context` history items and to the `position` earlier target tokens (KV-cached)."""
    C, H, D, F = cfg.d_model, cfg.n_heads, cfg.head_dim, cfg.ffn_mult * cfg.d_model
    projections = 2 * beams * C * H * D * (1 + 1 + 3 + 1)  # q_cross, out_cross, qkv_self, out_self
    attention = 4 * beams * H * D * (context + position + 1)  # QKᵀ and AV, cross and self
    ffn = 2 * beams * C * 2 * F + 2 * beams * F * C  # SwiGLU gate_up and down
    return projections + attention + ffn


def request_flops(cfg: GeneratorConfig, widths: list[int], history: int) -> RequestFlops:
    """FLOPs of one request decoded with the per-level beam `widths` (`beam_schedule`) from a
    history of `history` items (capped at `cfg.max_history`, as the model reads it)."""
    if cfg.architecture != "lazy":
        raise ValueError(f"FLOPs are counted for the served lazy decoder, not {cfg.architecture!r}")
    T, C = min(history, cfg.max_history), cfg.d_model
    entering = beams_per_level(widths, cfg.codebook_sizes)
    query = 2 * cfg.n_kv_heads * cfg.head_dim * C if cfg.newest_query else 0  # once, at BOS
    blocks = query + sum(
        cfg.n_layers * block_flops(cfg, W, T, level) for level, W in enumerate(entering)
    )
    heads = sum(2 * W * C * K for W, K in zip(entering, cfg.codebook_sizes, strict=True))
    dense = 0
    if cfg.dense_weight > 0 and cfg.dense_alpha:  # the first level's BOS state → beam's items
        final = min(widths[-1], entering[-1] * min(widths[-1], cfg.codebook_sizes[-1]))
        dense = 2 * C * C + 2 * C * final
    return RequestFlops(blocks, heads, dense)
