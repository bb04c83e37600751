"""Warm start: a generator for a grown catalog (or new codebooks) that begins from a trained one."""

from __future__ import annotations

import torch

from model.config import GeneratorConfig
from model.lazy_decoder import LazyDecoder

# Tensors indexed by semantic-ID codes: their rows mean nothing once the codebooks are refit.
CODE_INDEXED = ("context.code_emb.", "tok_emb.", "heads.")
ITEM_TABLE = "context.item_emb.weight"


def warm_start(old: LazyDecoder, cfg: GeneratorConfig, *, keep_codes: bool = True) -> LazyDecoder:
    """A LazyDecoder with `cfg` whose weights come from `old` wherever they still mean the same.

    - The item-id table grows to `cfg.n_items`: known items keep their rows (the catalog only
      appends), new items start at zero, so at first they are represented by their codes alone.
    - `keep_codes=False` (a refit tokenizer) leaves the code-indexed tables freshly initialized.
    - Every other tensor must keep its shape; a mismatch is an error, not a silent skip.
    """
    if cfg.n_items < old.cfg.n_items:
        raise ValueError(f"the catalog shrank from {old.cfg.n_items} to {cfg.n_items} items")
    if keep_codes and tuple(cfg.codebook_sizes) != tuple(old.cfg.codebook_sizes):
        raise ValueError("frozen codebooks must keep their sizes; use keep_codes=False")
    new = LazyDecoder(cfg)
    state = new.state_dict()
    with torch.no_grad():
        for name, tensor in old.state_dict().items():
            if name not in state or (not keep_codes and name.startswith(CODE_INDEXED)):
                continue
            target = state[name]
            if name == ITEM_TABLE:
                target.zero_()
                target[: tensor.shape[0]] = tensor  # (N_old, C) of (N, C)
            elif tensor.shape == target.shape:
                target.copy_(tensor)
            else:
                raise ValueError(f"{name}: shape {tuple(tensor.shape)} → {tuple(target.shape)}")
    new.load_state_dict(state)
    return new
