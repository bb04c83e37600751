"""The scale benchmark's synthetic log has the structure it claims: exact sizes, Zipf
popularity, predictable next items, embeddings that cluster by topic."""

import numpy as np
import pytest

from benchmarks.synthetic_log import synthetic_log


@pytest.fixture(scope="module")
def log():
    return synthetic_log(5_000, 100_000, seed=3)


def test_sizes_are_exact_and_users_are_contiguous_runs(log):
    assert len(log) == 100_000 and len(log.embeddings) == log.n_items == 5_000
    assert log.items.min() >= 0 and log.items.max() < 5_000
    assert (np.diff(log.users) >= 0).all() and log.users[-1] == log.n_users - 1
    assert np.bincount(log.users).min() >= 3
    same = log.users[1:] == log.users[:-1]
    assert (np.diff(log.timestamps)[same] > 0).all()


def test_popularity_is_heavy_tailed(log):
    counts = np.sort(np.bincount(log.items, minlength=log.n_items))[::-1]
    assert counts[:50].sum() > 0.1 * len(log)  # the top 1% of items: over 10% of events


def test_next_item_is_the_walks_successor_unless_the_user_jumps(log):
    same = log.users[1:] == log.users[:-1]
    follows = (log.items[1:] == log.successor(log.items[:-1]))[same].mean()
    assert 0.77 < follows < 0.83  # jump = 0.2


def test_same_topic_items_are_closer_than_others(log):
    x, topics = log.embeddings, log.topics
    a, b = np.arange(0, 4_000, 7), np.arange(1, 4_001, 7)  # mostly same-topic neighbours
    same = topics[a] == topics[b]
    sim = (x[a] * x[b]).sum(1)
    rng = np.random.default_rng(0)
    c = rng.permutation(len(x))[: len(a)]
    assert sim[same].mean() > (x[a] * x[c]).sum(1).mean() + 0.3


def test_the_same_seed_gives_the_same_log():
    a, b = synthetic_log(1_000, 10_000, seed=1), synthetic_log(1_000, 10_000, seed=1)
    assert (a.items == b.items).all() and (a.embeddings == b.embeddings).all()
