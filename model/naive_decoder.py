"""A naive decoder-only generator: history and target tokens in one causal stack (for comparison).

Every layer keeps its own K/V of the history, and every beam carries a copy of them: the
costs the lazy decoder removes. Used by benchmarks/generator.py; serving uses the lazy one.
"""

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


class NaiveDecoder(nn.Module):
    def __init__(self, cfg: GeneratorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.history = PositionalHistory(cfg)
        self.targets = TargetEmbedding(cfg)
        self.blocks = nn.ModuleList(SelfAttentionBlock(cfg) for _ in range(cfg.n_layers))
        self.heads = LevelHeads(cfg)
        self.apply(init_weights)

    def encode_context(
        self, hist_codes: Tensor, hist_items: Tensor, hist_mask: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """History through the causal stack → per-layer K/V (B, layers, H, T, D) and a padding bias."""
        x = self.history(hist_codes, hist_items)
        bias = padding_bias(hist_mask, causal=True)
        ks, vs = [], []
        for block in self.blocks:
            x, k, v = block(x, bias)
            ks.append(k)
            vs.append(v)
        ctx_bias = torch.zeros(hist_mask.shape).masked_fill(~hist_mask, float("-inf"))[
            :, None, None, :
        ]
        return torch.stack(ks, 1), torch.stack(vs, 1), ctx_bias  # bias (B, 1, 1, T)

    def step(self, ctx_k: Tensor, ctx_v: Tensor, ctx_bias: Tensor, tokens: Tensor) -> Tensor:
        """Each beam runs its target tokens against its own copy of the history K/V."""
        B, W, t = tokens.shape
        T = ctx_k.shape[3]
        x = self.targets(tokens).view(B * W, t + 1, -1)  # (BW, S, C)
        causal = torch.zeros(t + 1, t + 1).masked_fill(
            torch.ones(t + 1, t + 1, dtype=torch.bool).triu(1), float("-inf")
        )
        bias = torch.cat(
            [ctx_bias.expand(B, 1, t + 1, T), causal.expand(B, 1, t + 1, t + 1)], dim=-1
        )
        bias = bias.repeat_interleave(W, dim=0)  # (BW, 1, S, T+S)
        for layer, block in enumerate(self.blocks):
            past_k = ctx_k[:, layer].repeat_interleave(W, dim=0)  # (BW, H, T, D): copies per beam
            past_v = ctx_v[:, layer].repeat_interleave(W, dim=0)
            x, _, _ = block(x, bias, past_k, past_v)
        return self.heads.log_probs(x[:, -1].view(B, W, -1), t)

    def train_loss(self, batch: dict[str, Tensor], label_smoothing: float = 0.0) -> Tensor:
        """One target per context (train with chunk_size=1): [history; BOS, s_0, …] in one stack."""
        if batch["target_codes"].shape[1] != 1:
            raise ValueError("NaiveDecoder trains on one target per context (chunk_size=1)")
        mask = batch["valid"][:, 0]  # (B, T) left-padded
        targets = batch["target_codes"]  # (B, 1, L)
        x = torch.cat(
            [
                self.history(batch["hist_codes"], batch["hist_items"]),
                self.targets(targets[..., :-1])[:, 0],
            ],
            dim=1,
        )  # (B, T+L, C)
        full = torch.cat(
            [mask, torch.ones(mask.shape[0], targets.shape[-1], dtype=torch.bool)], dim=1
        )
        bias = padding_bias(full, causal=True)
        for block in self.blocks:
            x, _, _ = block(x, bias)
        h = x[:, mask.shape[1] :][:, None]  # (B, 1, L, C)
        return self.heads.loss(h, targets, batch["target_mask"], label_smoothing)
