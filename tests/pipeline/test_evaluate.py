"""Ranking metrics and the popularity baseline."""

import math

import numpy as np
import pytest

from pipeline.evaluate import popularity_ranker, rank_of, ranking_metrics


def test_metrics_from_known_ranks():
    m = ranking_metrics(np.array([0, 3, 12, -1]))
    assert m["recall@5"] == 0.5 and m["recall@20"] == 0.75
    assert m["ndcg@5"] == pytest.approx((1 + 1 / math.log2(5)) / 4)
    assert m["ndcg@20"] == pytest.approx((1 + 1 / math.log2(5) + 1 / math.log2(14)) / 4)


def test_rank_of_finds_targets():
    ranked = np.array([[4, 2, 9], [1, 2, 3]])
    assert rank_of(np.array([9, 7]), ranked).tolist() == [2, -1]


def test_popularity_skips_seen_items():
    rank = popularity_ranker(np.array([5, 9, 1, 7]), k=2)
    assert rank([np.array([1]), np.array([3, 0])]).tolist() == [[3, 0], [1, 2]]
