"""RQ-KMeans codes, unique IDs and the codebook report."""

import numpy as np
import pytest

from tests.synthetic import clustered_embeddings
from tokenizer.collisions import append_dedup_level, collision_rate, extend_unique
from tokenizer.config import TokenizerConfig, derive_codebook_shape, derive_codebook_size
from tokenizer.rq_kmeans import balanced_assign
from tokenizer.semantic_ids import fit_semantic_ids


@pytest.mark.parametrize("balanced", [True, False])
@pytest.mark.parametrize("k", [8, 16])
def test_every_item_gets_a_unique_id(balanced, k):
    x = clustered_embeddings(300)
    sid = fit_semantic_ids(x, TokenizerConfig(codebook_size=k, balanced=balanced))
    assert sid.codes.shape == (300, 4)
    assert len(np.unique(sid.codes, axis=0)) == 300
    assert sid.report["collision_rate_resolved"] == 0.0
    for level, size in enumerate(sid.codebook_sizes):
        assert sid.codes[:, level].min() >= 0 and sid.codes[:, level].max() < size


def test_balanced_assignment_respects_capacity_and_prefers_near_clusters():
    rng = np.random.default_rng(0)
    dist = rng.random((100, 7))
    assign = balanced_assign(dist, capacity=15)
    assert (np.bincount(assign, minlength=7) <= 15).all()
    assert (assign >= 0).all()
    # with room for everyone, each point takes its nearest cluster
    assert (balanced_assign(dist, capacity=100) == dist.argmin(1)).all()


def test_balanced_codes_use_the_codebook_evenly():
    x = clustered_embeddings(256, clusters=3)  # skewed: plain k-means would crowd codes
    sid = fit_semantic_ids(x, TokenizerConfig(codebook_size=16, balanced=True))
    counts = np.bincount(sid.codes[:, 0], minlength=16)
    assert counts.max() <= 16  # capacity ceil(256 / 16)
    assert sid.report["utilization"][0] == 1.0


def test_report_measures_reconstruction_and_collisions():
    x = clustered_embeddings(200)
    sid = fit_semantic_ids(x, TokenizerConfig(codebook_size=8))
    report = sid.report
    assert 0.0 < report["reconstruction_error"] < 1.0
    assert report["collision_rate"] == collision_rate(sid.codes[:, :3])
    assert len(report["utilization"]) == 3


def test_dedup_level_numbers_collisions_from_zero():
    codes = np.array([[1, 2], [1, 2], [0, 0], [1, 2]])
    unique = append_dedup_level(codes, dedup_size=4)
    assert unique[:, 2].tolist() == [0, 1, 0, 2]
    with pytest.raises(ValueError, match="share one code"):
        append_dedup_level(codes, dedup_size=2)


def test_new_items_get_fresh_ids_and_old_ids_never_change():
    x = clustered_embeddings(200)
    sid = fit_semantic_ids(x, TokenizerConfig(codebook_size=8))
    before = sid.codes.copy()
    new = sid.extend(x[:20] + 1e-3)  # near-duplicates of existing items: certain collisions
    assert (sid.codes[:200] == before).all()
    assert new.shape == (20, 4)
    assert len(np.unique(sid.codes, axis=0)) == 220


def test_extend_unique_continues_after_existing_indices():
    existing = np.array([[1, 1, 0], [1, 1, 1], [2, 2, 0]])
    new = extend_unique(existing, np.array([[1, 1], [3, 3], [1, 1]]), dedup_size=8)
    assert new.tolist() == [[1, 1, 2], [3, 3, 0], [1, 1, 3]]


def test_codebook_size_grows_with_the_catalog():
    assert derive_codebook_size(1682, 3) == 32
    assert derive_codebook_size(10, 3) == 8
    assert derive_codebook_size(10**9, 3) == 256


def test_levels_are_added_once_the_codebook_size_would_pass_256():
    """3 × 256 holds 1.7·10⁷ IDs: a catalog near that size gets a fourth level instead of
    ever more collisions (and an ever longer disambiguation level)."""
    assert derive_codebook_shape(1682, 3) == (3, 32)
    assert derive_codebook_shape(10**6, 3) == (3, 256)
    assert derive_codebook_shape(10**7, 3) == (4, 128)
    assert derive_codebook_shape(10**10, 3) == (5, 256)


def test_fit_uses_the_derived_levels(monkeypatch):
    import tokenizer.config

    monkeypatch.setattr(tokenizer.config, "MAX_CODEBOOK_SIZE", 8)  # 2,000 items: 5 levels of 8
    sid = fit_semantic_ids(clustered_embeddings(2000), TokenizerConfig(kmeans_iters=2))
    assert sid.codebook_size == 8 and sid.quantizer.n_levels == sid.config.n_levels == 5
    assert sid.codes.shape == (2000, 6) and len(np.unique(sid.codes, axis=0)) == 2000


def test_rq_vae_ids_are_unique_and_survive_a_save_load_round_trip():
    from tokenizer.semantic_ids import SemanticIds

    x = clustered_embeddings(200)
    sid = fit_semantic_ids(x, TokenizerConfig(kind="rq-vae", codebook_size=8, rqvae_steps=200))
    assert len(np.unique(sid.codes, axis=0)) == 200
    assert 0.0 < sid.report["reconstruction_error"] < 1.0
    again = SemanticIds.from_tensors(sid.config, sid.meta(), sid.tensors())
    assert (again.quantizer.encode(x) == sid.quantizer.encode(x)).all()
    new = again.extend(x[:5] + 1e-3)
    assert len(np.unique(again.codes, axis=0)) == 205 and new.shape == (5, 4)
