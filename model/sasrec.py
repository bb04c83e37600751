"""SASRec (Kang & McAuley, 2018): the dense sequential baseline genrec is measured against."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from model.layers import padding_bias


@dataclass(frozen=True)
class SASRecConfig:
    """The usual reference size: 2 layers, hidden 64 (RecBole's defaults for ml-100k)."""

    n_items: int = 0
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 2
    ffn_mult: int = 4
    max_history: int = 50
    dropout: float = 0.5
    attn_dropout: float = 0.5

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class SASRecBlock(nn.Module):
    """Post-norm as in the paper and RecBole: causal self-attention → FFN, each with dropout
    on its output, a residual and a LayerNorm (no dropout inside the FFN, as RecBole)."""

    def __init__(self, cfg: SASRecConfig) -> None:
        super().__init__()
        C = cfg.d_model
        self.n_heads, self.attn_dropout = cfg.n_heads, cfg.attn_dropout
        self.qkv = nn.Linear(C, 3 * C)
        self.out = nn.Linear(C, C)
        self.norm1, self.norm2 = nn.LayerNorm(C, eps=1e-12), nn.LayerNorm(C, eps=1e-12)
        self.ffn = nn.Sequential(
            nn.Linear(C, cfg.ffn_mult * C), nn.GELU(), nn.Linear(cfg.ffn_mult * C, C)
        )
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: Tensor, bias: Tensor) -> Tensor:
        """x (B, T, C); bias (B, 1, T, T) additive, every row with at least one visible key."""
        B, T, C = x.shape
        H = self.n_heads
        q, k, v = self.qkv(x).view(B, T, 3, H, C // H).permute(2, 0, 3, 1, 4)  # each (B, H, T, D)
        p = self.attn_dropout if self.training else 0.0
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=p)  # (B, H, T, D)
        x = self.norm1(x + self.drop(self.out(a.transpose(1, 2).reshape(B, T, C))))
        return self.norm2(x + self.drop(self.ffn(x)))


class SASRec(nn.Module):
    """Item embeddings + positions → causal transformer → dot product with every item.

    Histories are left-padded (B, T), newest last; item index 0 is real, padding is `n_items`.
    """

    def __init__(self, cfg: SASRecConfig) -> None:
        super().__init__()
        self.cfg = cfg
        C = cfg.d_model
        self.item_emb = nn.Embedding(cfg.n_items + 1, C, padding_idx=cfg.n_items)
        self.pos_emb = nn.Embedding(cfg.max_history, C)
        self.norm = nn.LayerNorm(C, eps=1e-12)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(SASRecBlock(cfg) for _ in range(cfg.n_layers))
        self.apply(self._init)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, nn.Linear | nn.Embedding):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def hidden(self, items: Tensor, mask: Tensor) -> Tensor:
        """items, mask (B, T) → hidden state at every position (B, T, C)."""
        T = items.shape[1]
        x = self.item_emb(items.masked_fill(~mask, self.cfg.n_items))
        x = self.drop(
            self.norm(x + self.pos_emb.weight[self.cfg.max_history - T :])
        )  # newest at the last position
        # Padding keys are hidden and a padding query sees only itself: no row is all −inf
        # (whose softmax is NaN, which then spreads to real positions in the next layer).
        bias = padding_bias(mask, causal=True)  # (B, 1, T, T)
        for block in self.blocks:
            x = block(x, bias)
        return x

    def scores(self, items: Tensor, mask: Tensor) -> Tensor:
        """Scores of every catalog item after each history (B, N)."""
        h = self.hidden(items, mask)[:, -1]  # (B, C)
        return h @ self.item_emb.weight[:-1].T

    def loss(self, items: Tensor, mask: Tensor, targets: Tensor, target_mask: Tensor) -> Tensor:
        """Cross-entropy over all items at every position with a target (B, T)."""
        h = self.hidden(items, mask)[target_mask]  # (M, C)
        logits = h @ self.item_emb.weight[:-1].T  # (M, N)
        return F.cross_entropy(logits, targets[target_mask])
