"""Building blocks every generator shares: item and target-token embeddings, FFN, per-level heads."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from model.config import GeneratorConfig


def init_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, std=0.02)


def level_offsets(sizes: tuple[int, ...]) -> Tensor:
    """Start of each level's codes in one shared embedding table."""
    return torch.tensor([0, *sizes[:-1]], dtype=torch.long).cumsum(0)


class ItemEmbedding(nn.Module):
    """A history item = sum of its per-level code embeddings (+ its item-id embedding)."""

    code_offsets: Tensor

    def __init__(self, cfg: GeneratorConfig) -> None:
        super().__init__()
        C = cfg.d_model
        self.register_buffer("code_offsets", level_offsets(cfg.codebook_sizes), persistent=False)
        self.code_emb = nn.Embedding(sum(cfg.codebook_sizes), C)
        self.item_emb = nn.Embedding(cfg.n_items, C) if cfg.item_embeddings else None

    def forward(self, hist_codes: Tensor, hist_items: Tensor) -> Tensor:
        """hist_codes (B, T, L), hist_items (B, T) → (B, T, C)."""
        x = self.code_emb(hist_codes + self.code_offsets).sum(2)
        return x if self.item_emb is None else x + self.item_emb(hist_items)


class PositionalHistory(nn.Module):
    """Item embeddings plus a recency position (newest = 0), for stacks that attend over the
    history themselves (naive decoder-only, encoder-decoder); the lazy decoder uses a bias."""

    def __init__(self, cfg: GeneratorConfig) -> None:
        super().__init__()
        self.items = ItemEmbedding(cfg)
        self.pos_emb = nn.Embedding(cfg.max_history, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, hist_codes: Tensor, hist_items: Tensor) -> Tensor:
        T = hist_items.shape[1]
        positions = torch.arange(T - 1, -1, -1, device=hist_items.device)  # (T,)
        return self.drop(self.items(hist_codes, hist_items) + self.pos_emb(positions))


class TargetEmbedding(nn.Module):
    """Decoder input `[BOS, s_0, …, s_{t-1}]`: code embeddings plus a level embedding."""

    tok_offsets: Tensor

    def __init__(self, cfg: GeneratorConfig) -> None:
        super().__init__()
        C = cfg.d_model
        self.register_buffer("tok_offsets", level_offsets(cfg.codebook_sizes), persistent=False)
        self.bos = nn.Parameter(torch.zeros(C))
        self.tok_emb = nn.Embedding(sum(cfg.codebook_sizes), C)
        self.level_emb = nn.Embedding(cfg.n_levels, C)

    def forward(self, tokens: Tensor) -> Tensor:
        """tokens (B, W, t) → (B, W, t+1, C)."""
        B, W, t = tokens.shape
        x = self.tok_emb(tokens + self.tok_offsets[:t])  # (B, W, t, C)
        x = torch.cat([self.bos.expand(B, W, 1, -1), x], dim=2)  # (B, W, t+1, C)
        return x + self.level_emb.weight[: t + 1]

    def at(self, last: Tensor, t: int) -> Tensor:
        """Position t alone (for a KV-cached decoder): BOS at t = 0, else the code chosen at
        level t−1; last (B, W) → (B, W, 1, C)."""
        B, W = last.shape
        if t == 0:
            x = self.bos.expand(B, W, 1, -1)
        else:
            x = self.tok_emb(last + self.tok_offsets[t - 1])[:, :, None]
        return x + self.level_emb.weight[t]


class SwiGLU(nn.Module):
    def __init__(self, C: int, hidden: int) -> None:
        super().__init__()
        self.gate_up = nn.Linear(C, 2 * hidden, bias=False)
        self.down = nn.Linear(hidden, C, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.down(F.silu(gate) * up)


class LevelHeads(nn.Module):
    """One output head per semantic-ID level, after a final norm."""

    def __init__(self, cfg: GeneratorConfig) -> None:
        super().__init__()
        self.norm = nn.RMSNorm(cfg.d_model)
        self.heads = nn.ModuleList(
            nn.Linear(cfg.d_model, k, bias=False) for k in cfg.codebook_sizes
        )

    def log_probs(self, h: Tensor, level: int) -> Tensor:
        """h (B, W, C) at the last position → log-probabilities (B, W, K_level)."""
        return F.log_softmax(self.heads[level](self.norm(h)).float(), dim=-1)

    def logits(self, h: Tensor) -> list[Tensor]:
        """Teacher-forced h (B, W, L, C) → one (B, W, K_ℓ) tensor per level."""
        h = self.norm(h)
        return [head(h[:, :, level]) for level, head in enumerate(self.heads)]

    def loss(
        self, h: Tensor, target_codes: Tensor, target_mask: Tensor, label_smoothing: float = 0.0
    ) -> Tensor:
        """Mean cross-entropy over levels and real targets; target_codes (B, W, L), target_mask (B, W)."""
        keep = target_mask.reshape(-1)
        losses = [
            F.cross_entropy(
                lg.reshape(-1, lg.shape[-1])[keep],
                target_codes[..., level].reshape(-1)[keep],
                label_smoothing=label_smoothing,
            )
            for level, lg in enumerate(self.logits(h))
        ]
        return torch.stack(losses).mean()


class DenseHead(nn.Module):
    """Scores every catalog item from the decoder's BOS state: a dense retrieval head trained
    beside the generator (LIGER) whose scores re-rank the generated candidates."""

    def __init__(self, cfg: GeneratorConfig, tied: nn.Embedding | None = None) -> None:
        """`tied`: score items against the context's item-ID embeddings (as SASRec ties its
        input and output tables) instead of a table of the head's own."""
        super().__init__()
        self.norm = nn.RMSNorm(cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.item_out = tied if tied is not None else nn.Embedding(cfg.n_items, cfg.d_model)

    def logits(self, h: Tensor) -> Tensor:
        """h (..., C) → (..., N)."""
        return self.proj(self.norm(h)) @ self.item_out.weight.T

    def item_logits(self, h: Tensor, items: Tensor) -> Tensor:
        """h (B, C), items (B, W) → the logits of those items only (B, W): W rows of the item
        table instead of all N, so a re-rank costs O(W·C) per request, not O(N·C)."""
        rows = self.item_out(items)  # (B, W, C)
        return (rows @ self.proj(self.norm(h))[:, :, None])[..., 0]


class SelfAttentionBlock(nn.Module):
    """Pre-norm self-attention → FFN over (N, S, C), with an explicit K/V cache of earlier tokens.

    The bias decides the pattern: causal for a decoder-only stack, padding-only for an encoder.
    """

    def __init__(self, cfg: GeneratorConfig) -> None:
        super().__init__()
        C, H, D = cfg.d_model, cfg.n_heads, cfg.head_dim
        self.n_heads, self.head_dim, self.dropout = H, D, cfg.dropout
        self.norm_attn, self.norm_ffn = nn.RMSNorm(C), nn.RMSNorm(C)
        self.qkv = nn.Linear(C, 3 * H * D, bias=False)
        self.out = nn.Linear(H * D, C, bias=False)
        self.ffn = SwiGLU(C, cfg.ffn_mult * C)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(
        self, x: Tensor, bias: Tensor, past_k: Tensor | None = None, past_v: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """x (N, S, C); bias (N, 1, S, P+S) over [past; x]; past_k/v (N, H, P, D) → x, k, v of x."""
        N, S, _ = x.shape
        qkv = self.qkv(self.norm_attn(x)).view(N, S, 3, self.n_heads, self.head_dim).transpose(1, 3)
        q, k, v = qkv.unbind(2)  # each (N, H, S, D)
        keys = k if past_k is None else torch.cat([past_k, k], dim=2)  # (N, H, P+S, D)
        values = v if past_v is None else torch.cat([past_v, v], dim=2)
        p = self.dropout if self.training else 0.0
        a = F.scaled_dot_product_attention(q, keys, values, attn_mask=bias, dropout_p=p)
        x = x + self.drop(self.out(a.transpose(1, 2).reshape(N, S, -1)))
        return x + self.drop(self.ffn(self.norm_ffn(x))), k, v


def padding_bias(mask: Tensor, causal: bool) -> Tensor:
    """Left-padded mask (B, T) → bias (B, 1, T, T): padding keys hidden (a padding query sees
    itself, so no row is empty), and with `causal`, future keys hidden too."""
    T = mask.shape[1]
    visible = mask[:, None, None, :] | torch.eye(T, dtype=torch.bool, device=mask.device)
    if causal:
        visible = visible & torch.ones(T, T, dtype=torch.bool, device=mask.device).tril()
    return torch.zeros(visible.shape).masked_fill(~visible, float("-inf"))
