"""The analytic FLOP count of a request matches what torch counts on a real decode."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from model.config import generator_tiny
from model.flops import request_flops
from model.lazy_decoder import LazyDecoder
from model.recommender import Recommender

SIZES = (16, 16, 8)
N = 600


def counted(rec: Recommender, history: np.ndarray, widths: list[int]) -> int:
    """FLOPs torch counts for one served decode. SDPA's math kernel runs attention as matmuls
    the counter sees (its fused CPU kernel is not counted at all)."""
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        rec.search([history], widths, [history])
    return counter.get_total_flops()


@pytest.mark.parametrize("newest_query", [False, True])
@pytest.mark.parametrize("dense", [False, True])
@pytest.mark.parametrize(("history_len", "beam"), [(50, 64), (70, 32), (5, 16)])
def test_analytic_flops_match_flop_counter_on_a_real_decode(dense, history_len, beam, newest_query):
    torch.manual_seed(0)
    cfg = replace(generator_tiny(), newest_query=newest_query)
    if dense:
        cfg = replace(cfg, dense_weight=1.0, dense_alpha=0.5)
    cfg = replace(cfg, max_history=60).for_catalog(SIZES, N)
    i = np.arange(N)
    codes = np.stack([i // (16 * 8) % 16, i // 8 % 16, i % 8], axis=1)
    rec = Recommender(LazyDecoder(cfg), codes)
    history = np.random.default_rng(0).choice(N, history_len, replace=False)
    widths = rec.widths(beam, 10)
    analytic = request_flops(cfg, widths, history_len)
    # they agree exactly today; the tolerance leaves room for how torch counts, not for a term
    assert analytic.total == pytest.approx(counted(rec, history, widths), rel=1e-3)
    assert (analytic.dense > 0) == dense


def test_flops_grow_with_beam_and_history():
    cfg = generator_tiny().for_catalog(SIZES, N)
    base = request_flops(cfg, [16, 64, 64], 50).total
    assert request_flops(cfg, [16, 128, 128], 50).total > 1.5 * base
    assert request_flops(cfg, [16, 64, 64], 10).total < base
    assert request_flops(cfg, [16, 64, 64], 500).total == base  # the model reads ≤ max_history
