"""Warm start: a grown generator keeps what the old one learned and only adds rows."""

from dataclasses import replace

import pytest
import torch

from model.warm_start import warm_start


def test_growing_the_catalog_keeps_every_weight_and_zeroes_new_item_rows(model):
    grown = warm_start(model, replace(model.cfg, n_items=model.cfg.n_items + 5))
    old, new = model.state_dict(), grown.state_dict()
    for name, tensor in old.items():
        if name == "context.item_emb.weight":
            assert torch.equal(new[name][: tensor.shape[0]], tensor)
            assert not new[name][tensor.shape[0] :].any()
        else:
            assert torch.equal(new[name], tensor), name


def test_known_histories_get_the_same_log_probabilities_after_growing(model, semantic_ids):
    grown = warm_start(model, replace(model.cfg, n_items=model.cfg.n_items + 3)).eval()
    items = torch.tensor([[3, 17, 42, 5]])
    codes = torch.from_numpy(semantic_ids.codes)[items]
    mask = torch.ones_like(items, dtype=torch.bool)
    tokens = codes[:, None, -1, :2]  # (B, W, t)
    with torch.no_grad():
        a = model.step(*model.encode_context(codes, items, mask), tokens)
        b = grown.step(*grown.encode_context(codes, items, mask), tokens)
    assert torch.allclose(a, b, atol=1e-6)


def test_a_refit_tokenizer_reinitializes_only_code_tables(model):
    torch.manual_seed(1)
    fresh = warm_start(model, model.cfg, keep_codes=False)
    old, new = model.state_dict(), fresh.state_dict()
    assert not torch.equal(new["tok_emb.weight"], old["tok_emb.weight"])
    assert not torch.equal(new["heads.0.weight"], old["heads.0.weight"])
    assert torch.equal(new["context.item_emb.weight"], old["context.item_emb.weight"])
    assert torch.equal(new["blocks.0.ffn.down.weight"], old["blocks.0.ffn.down.weight"])


def test_shrinking_or_resizing_frozen_codebooks_is_refused(model):
    with pytest.raises(ValueError, match="shrank"):
        warm_start(model, replace(model.cfg, n_items=model.cfg.n_items - 1))
    bigger = replace(model.cfg, codebook_sizes=(16, 8, 8, model.cfg.codebook_sizes[-1]))
    with pytest.raises(ValueError, match="frozen"):
        warm_start(model, bigger)
