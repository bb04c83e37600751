"""Bundles round-trip exactly and refuse tampering."""

import json

import numpy as np
import pytest

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
