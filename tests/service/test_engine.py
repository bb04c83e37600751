"""The engine: each query keeps its own width inside a shared batch, the server's width lowers
(never raises) what a query asked for, and every decoding path answers the same."""

import numpy as np
import pytest

from model.bundle import load_bundle
from model.decoding import Decoding
from service.engine import Engine, width_groups


@pytest.fixture(scope="module")
def bundle(tiny_bundle):
    return load_bundle(tiny_bundle)


@pytest.fixture(scope="module")
def engine(bundle):
    return Engine(bundle, default_beam_width=32, max_beam_width=64)


def queries(engine, widths):
    rng = np.random.default_rng(0)
    return [
        engine.query(rng.choice(len(engine.catalog), size=12, replace=False), 5, w, True)
        for w in widths
    ]


def test_the_server_width_scales_down_what_queries_ask_for(engine):
    default, asks_less, asks_more, asks_too_much = queries(engine, [None, 16, 64, 1000])
    assert [engine.final_width(q, 32) for q in (default, asks_less, asks_more)] == [32, 16, 64]
    assert engine.final_width(asks_too_much, 32) == 64  # max_beam_width
    assert [engine.final_width(q, 16) for q in (default, asks_less, asks_more)] == [16, 8, 32]
    assert engine.final_width(asks_less, 8) == 5  # never below k


def test_width_groups_bound_the_padding():
    assert width_groups([64, 8, 16, 64, 12, 128]) == [[1, 4, 2], [0, 3, 5]]
    assert width_groups([32, 32, 32]) == [[0, 1, 2]]


def test_each_query_in_a_mixed_batch_gets_its_own_width_and_result(engine):
    batch = queries(engine, [None, 8, 64, 16])
    together = engine.run(batch, server_width=32)
    for q, res in zip(batch, together, strict=True):
        alone = engine.run([q], server_width=32)[0]
        assert res.widths == alone.widths
        assert res.widths[-1] == engine.final_width(q, 32)
        assert [s.item_id for s in res.items] == [s.item_id for s in alone.items]
        assert np.allclose([s.score for s in res.items], [s.score for s in alone.items], atol=1e-4)


@pytest.mark.parametrize("decoding", [Decoding.naive, Decoding.shared])
def test_every_decoding_path_answers_the_same(bundle, engine, decoding):
    other = Engine(bundle, 32, 64, decoding=decoding)
    batch = queries(engine, [None, 8, 16])
    for a, b in zip(engine.run(batch, 32), other.run(batch, 32), strict=True):
        assert [s.item_id for s in a.items] == [s.item_id for s in b.items]
