"""Bundles round-trip exactly and refuse tampering."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model.bundle import BundleError, Catalog, load_bundle, save_bundle
from model.recommender import Recommender


@pytest.fixture
def bundle_dir(tmp_path, model, semantic_ids):
    catalog = Catalog(
        [f"i{i}" for i in range(120)], [f"Item {i}" for i in range(120)], np.arange(120)
    )
    return save_bundle(
        tmp_path / "b",
        model=model,
        semantic_ids=semantic_ids,
        catalog=catalog,
        histories={"u1": ["i1", "i2"]},
        manifest={"data": {"dataset": "synthetic"}},
    )


def test_round_trip_keeps_ids_and_scores(bundle_dir, recommender, semantic_ids, histories):
    bundle = load_bundle(bundle_dir)
    assert (bundle.semantic_ids.codes == semantic_ids.codes).all()
    assert bundle.catalog.item_ids[5] == "i5" and bundle.histories == {"u1": ["i1", "i2"]}
    again = Recommender(bundle.model, bundle.semantic_ids.codes)
    a = recommender.recommend(histories, k=10, beam_width=32)
    b = again.recommend(histories, k=10, beam_width=32)
    assert (a.items == b.items).all()
    assert np.allclose(a.scores, b.scores, atol=1e-6)


def test_histories_are_read_only_by_the_process_that_uses_them(bundle_dir):
    """A model worker loads bundles but never seeds histories: it must not hold them."""
    bundle = load_bundle(bundle_dir)
    assert "histories" not in vars(bundle)
    assert bundle.histories == {"u1": ["i1", "i2"]}
    assert "histories" in vars(bundle)


def test_manifest_lists_a_checksum_for_every_file(bundle_dir):
    manifest = json.loads((bundle_dir / "manifest.json").read_text())
    files = {p.name for p in bundle_dir.iterdir()} - {"manifest.json"}
    assert set(manifest["files"]) == files
    assert manifest["generator"]["codebook_sizes"] == list(
        load_bundle(bundle_dir).model.cfg.codebook_sizes
    )


def test_a_tampered_bundle_is_refused(bundle_dir):
    with (bundle_dir / "catalog.json").open("a") as f:
        f.write(" ")
    with pytest.raises(BundleError, match="checksum"):
        load_bundle(bundle_dir)


def test_saving_over_a_bundle_replaces_it_whole(bundle_dir, model, semantic_ids):
    catalog = Catalog([f"j{i}" for i in range(120)], [""] * 120, np.zeros(120, dtype=np.int64))
    save_bundle(
        bundle_dir,
        model=model,
        semantic_ids=semantic_ids,
        catalog=catalog,
        histories={},
        manifest={"data": {}},
    )
    assert load_bundle(bundle_dir).catalog.item_ids[0] == "j0"
    assert not list(bundle_dir.parent.glob(".b.*"))


def test_a_tied_dense_head_round_trips_with_one_stored_table(tmp_path, semantic_ids):
    """The dense head may score against the context's item-ID table; the bundle stores that
    shared table once and restores both names to one tensor."""
    from dataclasses import replace

    import torch

    from model.config import generator_tiny
    from model.lazy_decoder import LazyDecoder

    cfg = replace(generator_tiny(), dense_weight=1.0, dense_tied=True)
    model = LazyDecoder(cfg.for_catalog(semantic_ids.codebook_sizes, 120))
    path = save_bundle(
        tmp_path / "b",
        model=model,
        semantic_ids=semantic_ids,
        catalog=Catalog([f"i{i}" for i in range(120)], [""] * 120, np.arange(120)),
        histories={},
        manifest={"data": {"dataset": "synthetic"}},
    )
    loaded = load_bundle(path).model
    assert loaded.dense is not None
    assert loaded.dense.item_out.weight is loaded.context.items.item_emb.weight
    assert torch.equal(loaded.dense.item_out.weight, model.context.items.item_emb.weight)


@pytest.fixture(scope="module")
def saved(tmp_path_factory, model, semantic_ids):
    catalog = Catalog([f"i{i}" for i in range(120)], [""] * 120, np.arange(120))
    path = save_bundle(
        tmp_path_factory.mktemp("b") / "b",
        model=model,
        semantic_ids=semantic_ids,
        catalog=catalog,
        histories={},
        manifest={"data": {}},
    )
    return load_bundle(path)


@settings(max_examples=40, deadline=None)
@given(
    history=st.lists(st.integers(0, 119), min_size=1, max_size=40, unique=True),
    k=st.integers(1, 20),
    width=st.integers(1, 64),
)
def test_a_bundle_round_trips_to_identical_ids_and_scores(
    saved, recommender, semantic_ids, history, k, width
):
    """Saved and loaded: the same codes, and bit-identical items and scores for any query."""
    assert np.array_equal(saved.semantic_ids.codes, semantic_ids.codes)
    again = Recommender(saved.model, saved.semantic_ids.codes)
    a = recommender.recommend([np.array(history)], k=k, beam_width=width)
    b = again.recommend([np.array(history)], k=k, beam_width=width)
    assert np.array_equal(a.items, b.items) and np.array_equal(a.scores, b.scores)
    assert np.array_equal(a.codes, b.codes)
