"""Warm start: a generator for a grown catalog (or new codebooks) that begins from a trained one."""

from __future__ import annotations

import torch

from model.config import GeneratorConfig
from model.lazy_decoder import LazyDecoder

# Modules indexed by semantic-ID codes (any dotted component of a tensor's name): their rows
# mean nothing once the codebooks are refit.
CODE_INDEXED = {"code_emb", "tok_emb", "heads"}


def is_code_indexed(name: str) -> bool:
    return not CODE_INDEXED.isdisjoint(name.split("."))


def warm_start(old: LazyDecoder, cfg: GeneratorConfig, *, keep_codes: bool = True) -> LazyDecoder:
    """A LazyDecoder with `cfg` whose weights come from `old` wherever they still mean the same.

    - Tables indexed by item (first dimension `n_items`: the context's item-id embeddings, an
      item output head) grow to `cfg.n_items`: known items keep their rows (the catalog only
      appends) and new items start at zero, so at first they are represented by their codes.
    - `keep_codes=False` (a refit tokenizer) leaves the code-indexed tables freshly initialized.
    - Every other tensor must keep its shape; a mismatch is an error, not a silent skip.
    """
    n_old, n_new = old.cfg.n_items, cfg.n_items
    if n_new < n_old:
        raise ValueError(f"the catalog shrank from {n_old} to {n_new} items")
    if keep_codes and tuple(cfg.codebook_sizes) != tuple(old.cfg.codebook_sizes):
        raise ValueError("frozen codebooks must keep their sizes; use keep_codes=False")
    new = LazyDecoder(cfg)
    state = new.state_dict()
    with torch.no_grad():
        for name, tensor in old.state_dict().items():
            if name not in state or (not keep_codes and is_code_indexed(name)):
                continue
            target = state[name]
            if tensor.shape == target.shape:
                target.copy_(tensor)
            elif (
                tensor.shape[0] == n_old
                and target.shape[0] == n_new
                and tensor.shape[1:] == target.shape[1:]
            ):
                target.zero_()
                target[:n_old] = tensor  # (N_old, …) of (N, …)
            else:
                raise ValueError(f"{name}: shape {tuple(tensor.shape)} → {tuple(target.shape)}")
    new.load_state_dict(state)
    return new
