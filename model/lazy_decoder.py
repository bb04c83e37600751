"""The lazy decoder-only generator (OneRec-V2): static context K/V shared by every layer."""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from model.config import GeneratorConfig
from model.layers import DenseHead, ItemEmbedding, LevelHeads, SwiGLU, TargetEmbedding, init_weights


class ContextProcessor(nn.Module):
    """History items → static keys/values (B, Hkv, T, D), computed once per request.

    Each item is the sum of its per-level code embeddings and its item-id embedding. Order
    enters as a learned recency bias on the attention logits (one per KV head and distance,
    1 = most recent), not as a position embedding: an item's K/V then do not depend on where
    it stands, so training shares one context between every target of a sequence. There is
    no attention among history items: that is the lazy part.
    """

    def __init__(self, cfg: GeneratorConfig) -> None:
        super().__init__()
        C, D = cfg.d_model, cfg.head_dim
        self.n_kv_heads, self.head_dim, self.max_history = cfg.n_kv_heads, D, cfg.max_history
        self.items = ItemEmbedding(cfg)
        self.recency = nn.Parameter(torch.zeros(cfg.n_kv_heads, cfg.max_history))
        self.norm = nn.RMSNorm(C)
        self.drop = nn.Dropout(cfg.dropout)
        self.to_kv = nn.Linear(C, 2 * cfg.n_kv_heads * D, bias=False)
        self.k_norm = nn.RMSNorm(D)

    def forward(self, hist_codes: Tensor, hist_items: Tensor) -> tuple[Tensor, Tensor]:
        B, T, _L = hist_codes.shape
        x = self.drop(self.norm(self.items(hist_codes, hist_items)))  # (B, T, C)
        kv = self.to_kv(x).view(B, T, 2, self.n_kv_heads, self.head_dim)
        ctx_k = self.k_norm(kv[:, :, 0]).transpose(1, 2)  # (B, Hkv, T, D)
        ctx_v = kv[:, :, 1].transpose(1, 2)  # (B, Hkv, T, D)
        return ctx_k, ctx_v

    def bias(self, distance: Tensor, valid: Tensor) -> Tensor:
        """distance, valid (B, W, T) → additive attention bias (B, Hkv, W, T), −inf where invalid.

        A key is visible when valid and 1 ≤ distance ≤ max_history (distance 1: the newest item).
        """
        visible = valid & (distance >= 1) & (distance <= self.max_history)
        idx = (distance - 1).clamp(0, self.max_history - 1)  # (B, W, T)
        bias = self.recency[:, idx].permute(1, 0, 2, 3)  # (B, Hkv, W, T)
        return bias.masked_fill(~visible[:, None], float("-inf"))

    def window_bias(self, mask: Tensor) -> Tensor:
        """For left-padded windows (B, T), newest last: the bias (B, Hkv, 1, T)."""
        T = mask.shape[1]
        distance = torch.arange(T, 0, -1, device=mask.device).expand_as(mask)  # (B, T)
        return self.bias(distance[:, None], mask[:, None])


class DecoderBlock(nn.Module):
    """Pre-norm: cross-attention to the static context → causal self-attention → FFN."""

    def __init__(self, cfg: GeneratorConfig) -> None:
        super().__init__()
        C, H, D = cfg.d_model, cfg.n_heads, cfg.head_dim
        self.n_heads, self.n_kv_heads, self.head_dim = H, cfg.n_kv_heads, D
        self.dropout = cfg.dropout
        self.norm_cross, self.norm_self, self.norm_ffn = nn.RMSNorm(C), nn.RMSNorm(C), nn.RMSNorm(C)
        self.q_cross = nn.Linear(C, H * D, bias=False)
        self.q_norm = nn.RMSNorm(D)
        self.out_cross = nn.Linear(H * D, C, bias=False)
        self.qkv_self = nn.Linear(C, 3 * H * D, bias=False)
        self.out_self = nn.Linear(H * D, C, bias=False)
        self.ffn = SwiGLU(C, cfg.ffn_mult * C)
        self.drop = nn.Dropout(cfg.dropout)

    def cross_attention(self, x: Tensor, ctx_k: Tensor, ctx_v: Tensor, ctx_bias: Tensor) -> Tensor:
        """All beams' tokens of a request query that request's context in one call.

        Beams and query heads fold into the query axis of their KV head, so the context
        K/V (B, Hkv, T, D) is read as is: no per-beam or per-head copies. `ctx_bias` is
        (B, Hkv, 1, T), shared by every beam, or (B, Hkv, W, T), one per target in training.
        """
        B, W, S, _ = x.shape
        Hkv, G, D = self.n_kv_heads, self.n_heads // self.n_kv_heads, self.head_dim
        q = self.q_norm(self.q_cross(x).view(B, W * S, Hkv, G, D))
        q = q.permute(0, 2, 3, 1, 4).reshape(B, Hkv, G * W * S, D)
        if ctx_bias.shape[2] > 1:  # per-target bias: lay it out like the folded queries
            T = ctx_bias.shape[-1]
            ctx_bias = (
                ctx_bias[:, :, None, :, None]
                .expand(B, Hkv, G, W, S, T)
                .reshape(B, Hkv, G * W * S, T)
            )
        p = self.dropout if self.training else 0.0
        a = F.scaled_dot_product_attention(q, ctx_k, ctx_v, attn_mask=ctx_bias, dropout_p=p)
        a = a.view(B, Hkv, G, W * S, D).permute(0, 3, 1, 2, 4)  # (B, W*S, Hkv, G, D)
        return self.out_cross(a.reshape(B, W, S, Hkv * G * D))

    def self_attention(self, x: Tensor) -> Tensor:
        B, W, S, _ = x.shape
        H, D = self.n_heads, self.head_dim
        qkv = self.qkv_self(x).view(B * W, S, 3, H, D).transpose(1, 3)  # (BW, H, 3, S, D)
        q, k, v = qkv.unbind(2)  # each (BW, H, S, D)
        p = self.dropout if self.training else 0.0
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=p)
        return self.out_self(a.transpose(1, 2).reshape(B, W, S, H * D))

    def forward(self, x: Tensor, ctx_k: Tensor, ctx_v: Tensor, ctx_bias: Tensor) -> Tensor:
        x = x + self.drop(self.cross_attention(self.norm_cross(x), ctx_k, ctx_v, ctx_bias))
        x = x + self.drop(self.self_attention(self.norm_self(x)))
        return x + self.drop(self.ffn(self.norm_ffn(x)))

    def cached_self_attention(self, x: Tensor, past: Tensor | None) -> tuple[Tensor, Tensor]:
        """One new token per beam, x (B, W, 1, C), attends to itself and to the keys/values
        of the earlier positions, past (2, B*W, H, t, D) → output and the extended (2, B*W, H, t+1, D).
        """
        B, W, _, _ = x.shape
        H, D = self.n_heads, self.head_dim
        qkv = self.qkv_self(x).view(B * W, 1, 3, H, D).transpose(1, 3)  # (BW, H, 3, 1, D)
        q, k, v = qkv.unbind(2)  # each (BW, H, 1, D)
        kv = torch.stack([k, v])  # (2, BW, H, 1, D)
        if past is not None:
            kv = torch.cat([past, kv], dim=3)  # (2, BW, H, t+1, D)
        a = F.scaled_dot_product_attention(q, kv[0], kv[1])  # the newest token sees all: causal
        return self.out_self(a.transpose(1, 2).reshape(B, W, 1, H * D)), kv

    def extend(
        self, x: Tensor, ctx_k: Tensor, ctx_v: Tensor, ctx_bias: Tensor, past: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        """`forward` for the newest position only, x (B, W, 1, C), given the self-attention
        cache of the earlier ones (see `cached_self_attention`) → (x, extended cache)."""
        x = x + self.drop(self.cross_attention(self.norm_cross(x), ctx_k, ctx_v, ctx_bias))
        a, kv = self.cached_self_attention(self.norm_self(x), past)
        x = x + self.drop(a)
        return x + self.drop(self.ffn(self.norm_ffn(x))), kv


class LazyDecoder(nn.Module):
    """Reads a history, writes the next item's semantic ID one level at a time.

    Target tokens are `[BOS, s_0, …, s_{L-2}]`; position ℓ predicts level ℓ through
    its own head. The caches are explicit: `encode_context` returns the static
    context K/V, `step` takes them back, so batching and export stay simple.
    """

    def __init__(self, cfg: GeneratorConfig) -> None:
        super().__init__()
        if cfg.n_levels < 1:
            raise ValueError("GeneratorConfig.codebook_sizes is empty: call for_catalog() first")
        self.cfg = cfg
        self.context = ContextProcessor(cfg)
        self.targets = TargetEmbedding(cfg)
        self.blocks = nn.ModuleList(DecoderBlock(cfg) for _ in range(cfg.n_layers))
        self.heads = LevelHeads(cfg)
        tied = self.context.items.item_emb if cfg.dense_tied else None
        self.dense = DenseHead(cfg, tied) if cfg.dense_weight > 0 else None
        self.newest_query = (
            nn.Linear(cfg.n_kv_heads * cfg.head_dim, cfg.d_model, bias=False)
            if cfg.newest_query
            else None
        )
        self.apply(init_weights)
        nn.init.normal_(self.targets.bos, std=0.02)

    def first_token(self, x: Tensor, newest_v: Tensor) -> Tensor:
        """Add the query of the newest history item to the BOS position of x (B, W, S, C);
        newest_v (B, Hkv, D) for a request, or (B, W, Hkv, D) per target in training."""
        if self.newest_query is None:
            return x
        q = self.newest_query(newest_v.flatten(-2))  # (B, C) or (B, W, C)
        q = q[:, None] if q.dim() == 2 else q  # (B, 1 or W, C)
        return torch.cat([x[:, :, :1] + q[:, :, None], x[:, :, 1:]], dim=2)

    def encode_context(
        self, hist_codes: Tensor, hist_items: Tensor, hist_mask: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Left-padded windows, newest last: hist_codes (B, T, L), hist_items and hist_mask (B, T)
        → ctx_k, ctx_v (B, Hkv, T, D) and ctx_bias (B, Hkv, 1, T)."""
        ctx_k, ctx_v = self.context(hist_codes, hist_items)
        return ctx_k, ctx_v, self.context.window_bias(hist_mask)

    def decode(
        self,
        ctx_k: Tensor,
        ctx_v: Tensor,
        ctx_bias: Tensor,
        tokens: Tensor,
        newest_v: Tensor | None = None,
    ) -> Tensor:
        """tokens (B, W, t) chosen codes → hidden states (B, W, t+1, C) of [BOS, tokens].

        The newest history item is the last key of left-padded windows (`newest_v` overrides
        it per target in training, where one context serves targets at several positions)."""
        x = self.first_token(
            self.targets(tokens), ctx_v[:, :, -1] if newest_v is None else newest_v
        )
        for block in self.blocks:
            x = block(x, ctx_k, ctx_v, ctx_bias)
        return x

    def step(self, ctx_k: Tensor, ctx_v: Tensor, ctx_bias: Tensor, tokens: Tensor) -> Tensor:
        """Log-probabilities (B, W, K_t) of the next level's code after `tokens` (B, W, t)."""
        h = self.decode(ctx_k, ctx_v, ctx_bias, tokens)[:, :, -1]  # (B, W, C)
        return self.heads.log_probs(h, tokens.shape[-1])

    def extend(
        self, ctx_k: Tensor, ctx_v: Tensor, ctx_bias: Tensor, cache: Tensor | None, last: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """`step` with a self-attention KV cache: only the newest token of each beam is computed.

        cache (n_layers, 2, B*W, H, t, D) holds the target positions before it (None at the
        first level, where the newest token is BOS); last (B, W) is the code chosen at level
        t-1 (ignored at the first level). Returns log_probs (B, W, K_t), the cache with
        position t appended, and the newest position's hidden state (B, W, C): at the first
        level that is `bos_state`, which the dense head re-ranks with, so it is not decoded
        twice. Beams reorder their cache rows between levels (the caller's job).
        """
        t = 0 if cache is None else cache.shape[4]
        x = self.targets.at(last, t)  # (B, W, 1, C)
        if t == 0:
            x = self.first_token(x, ctx_v[:, :, -1])
        kvs = []
        for i, block in enumerate(cast(list[DecoderBlock], self.blocks)):
            x, kv = block.extend(x, ctx_k, ctx_v, ctx_bias, None if cache is None else cache[i])
            kvs.append(kv)
        h = x[:, :, 0]  # (B, W, C)
        return self.heads.log_probs(h, t), torch.stack(kvs), h

    def forward(
        self,
        hist_codes: Tensor,
        hist_items: Tensor,
        ctx_bias: Tensor,
        target_codes: Tensor,
        newest: Tensor | None = None,
    ) -> Tensor:
        """Teacher-forced hidden states (B, W, L, C) for W targets that share one context.

        hist_* (B, T[, L]) is the shared context; ctx_bias (B, Hkv, W, T) says which keys each
        target sees; target_codes (B, W, L); newest (B, W) the key index of each target's newest
        history item (default: the last key, as in a left-padded window).
        """
        ctx_k, ctx_v = self.context(hist_codes, hist_items)
        newest_v = None
        if newest is not None:  # (B, W) key index of each target's newest item
            B, Hkv, _, D = ctx_v.shape
            idx = newest[:, None, :, None].expand(B, Hkv, newest.shape[1], D)
            newest_v = ctx_v.gather(2, idx).transpose(1, 2)  # (B, W, Hkv, D)
        return self.decode(ctx_k, ctx_v, ctx_bias, target_codes[..., :-1], newest_v)

    def train_loss(self, batch: dict[str, Tensor], label_smoothing: float = 0.0) -> Tensor:
        """Mean cross-entropy over levels for a batch of runs (see `pipeline.train.make_batch`)."""
        bias = self.context.bias(batch["distance"], batch["valid"])
        newest = (batch["distance"] == 1).int().argmax(-1)  # (B, W) each target's newest key
        h = self(batch["hist_codes"], batch["hist_items"], bias, batch["target_codes"], newest)
        loss = self.heads.loss(h, batch["target_codes"], batch["target_mask"], label_smoothing)
        if self.dense is None:
            return loss
        keep = batch["target_mask"]
        dense = F.cross_entropy(self.dense.logits(h[:, :, 0][keep]), batch["target_items"][keep])
        return loss + self.cfg.dense_weight * dense

    def bos_state(self, ctx_k: Tensor, ctx_v: Tensor, ctx_bias: Tensor) -> Tensor:
        """The decoder's hidden state at BOS (B, C): what the dense head reads."""
        B = ctx_k.shape[0]
        return self.decode(ctx_k, ctx_v, ctx_bias, torch.zeros(B, 1, 0, dtype=torch.long))[:, 0, 0]

    def dense_log_probs(self, ctx_k: Tensor, ctx_v: Tensor, ctx_bias: Tensor) -> Tensor:
        """Dense scores of every item (B, N) from the BOS state (only with a dense head): the
        reference for `dense_scores`, O(N·C) per request."""
        assert self.dense is not None
        h0 = self.bos_state(ctx_k, ctx_v, ctx_bias)
        return F.log_softmax(self.dense.logits(h0).float(), dim=-1)

    def dense_scores(self, bos: Tensor, items: Tensor) -> Tensor:
        """Dense logits (B, W) of the given items (B, W) only, from the BOS state (B, C)
        (`bos_state`, or the first level of `extend`): what re-ranking a beam needs.

        O(W·C) per request where `dense_log_probs` is O(N·C) (at 10⁶ items it reads the whole
        item table for every batch). The logits are not normalised over the catalog, which is
        the O(N·C) part: within a request they differ from `dense_log_probs` by one constant,
        so they order a request's candidates the same way.
        """
        assert self.dense is not None
        return self.dense.item_logits(bos, items).float()
