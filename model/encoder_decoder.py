"""A TIGER-style encoder-decoder generator (for comparison): a bidirectional encoder over the
history, and a decoder whose every layer projects its own cross-attention K/V from it."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from model.config import GeneratorConfig
from model.layers import (
    LevelHeads,
    PositionalHistory,
    SelfAttentionBlock,
    TargetEmbedding,
    init_weights,
    padding_bias,
)
from model.lazy_decoder import DecoderBlock


class EncoderDecoder(nn.Module):
    def __init__(self, cfg: GeneratorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        C, Hkv, D = cfg.d_model, cfg.n_kv_heads, cfg.head_dim
        self.history = PositionalHistory(cfg)
        self.encoder = nn.ModuleList(SelfAttentionBlock(cfg) for _ in range(cfg.n_layers))
        self.enc_norm = nn.RMSNorm(C)
        self.to_kv = nn.ModuleList(
            nn.Linear(C, 2 * Hkv * D, bias=False) for _ in range(cfg.n_layers)
        )
        self.targets = TargetEmbedding(cfg)
        self.blocks = nn.ModuleList(DecoderBlock(cfg) for _ in range(cfg.n_layers))
        self.heads = LevelHeads(cfg)
        self.apply(init_weights)

    def encode_context(
        self, hist_codes: Tensor, hist_items: Tensor, hist_mask: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Encoder output → per-layer cross K/V (B, layers, Hkv, T, D) and a padding bias (B, 1, 1, T)."""
        B, T = hist_items.shape
        x = self.history(hist_codes, hist_items)
        bias = padding_bias(hist_mask, causal=False)
        for block in self.encoder:
            x, _, _ = block(x, bias)
        x = self.enc_norm(x)
        Hkv, D = self.cfg.n_kv_heads, self.cfg.head_dim
        kv = torch.stack(
            [proj(x).view(B, T, 2, Hkv, D) for proj in self.to_kv], 1
        )  # (B, layers, T, 2, Hkv, D)
        ctx_k = kv[:, :, :, 0].transpose(2, 3)  # (B, layers, Hkv, T, D)
        ctx_v = kv[:, :, :, 1].transpose(2, 3)
        ctx_bias = torch.zeros(B, T).masked_fill(~hist_mask, float("-inf"))[:, None, None, :]
        return ctx_k, ctx_v, ctx_bias

    def decode(self, ctx_k: Tensor, ctx_v: Tensor, ctx_bias: Tensor, tokens: Tensor) -> Tensor:
        x = self.targets(tokens)
        for layer, block in enumerate(self.blocks):
            x = block(x, ctx_k[:, layer], ctx_v[:, layer], ctx_bias)
        return x

    def step(self, ctx_k: Tensor, ctx_v: Tensor, ctx_bias: Tensor, tokens: Tensor) -> Tensor:
        h = self.decode(ctx_k, ctx_v, ctx_bias, tokens)[:, :, -1]
        return self.heads.log_probs(h, tokens.shape[-1])

    def train_loss(self, batch: dict[str, Tensor], label_smoothing: float = 0.0) -> Tensor:
        """One target per context (train with chunk_size=1): the encoder sees the whole window."""
        if batch["target_codes"].shape[1] != 1:
            raise ValueError("EncoderDecoder trains on one target per context (chunk_size=1)")
        ctx = self.encode_context(batch["hist_codes"], batch["hist_items"], batch["valid"][:, 0])
        h = self.decode(*ctx, batch["target_codes"][..., :-1])
        return self.heads.loss(h, batch["target_codes"], batch["target_mask"], label_smoothing)
