"""New items are folded into the frozen codebooks' space beside the items they co-occur with."""

import numpy as np
import pandas as pd

from pipeline.datasets import Dataset
from pipeline.fold_in import fold_in
from pipeline.gate import quality_gate
from pipeline.split import build_sequences, leave_one_out


def test_a_new_item_lands_beside_the_items_its_users_consumed():
    # items a, b cluster at +x, c, d at +y; users who take "new" also take a and b
    rows = [(f"u{u}", item, t) for u in range(6) for t, item in enumerate(["a", "b", "new"])]
    rows += [(f"v{u}", item, t) for u in range(6) for t, item in enumerate(["c", "d", "c2"])]
    rows = [(u, i, t) for u, i, t in rows] + [(f"u{u}", "x", 9) for u in range(6)]
    ids = ["a", "b", "c", "d", "c2", "x", "new"]
    items = pd.DataFrame({"item_id": ids, "title": ids})
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    # the last two items of each user are held out; "new" must be in training: move it first
    inter.loc[inter["item_id"] == "new", "timestamp"] = -1
    split = leave_one_out(build_sequences(Dataset(inter, items), ids))
    known = np.array([[1, 0], [1, 0.1], [0, 1], [0.1, 1], [0, 1], [0.7, 0.7]], dtype=np.float32)
    x = fold_in(split, known, np.array([6]))
    assert x.shape == (1, 2) and x[0, 0] > 0.9 and abs(np.linalg.norm(x) - 1) < 0.05


def test_an_item_without_co_occurrence_gets_the_catalog_centroid():
    rows = [("u", "a", 0), ("u", "b", 1), ("u", "c", 2), ("w", "new", 0)]
    ids = ["a", "b", "c", "new"]
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    split = leave_one_out(build_sequences(Dataset(inter, pd.DataFrame({"item_id": ids}))))
    known = np.array([[1, 0], [0, 1], [1, 1]], dtype=np.float32)
    x = fold_in(split, known, np.array([3]))
    assert np.allclose(x[0] / np.linalg.norm(x[0]), known.mean(0) / np.linalg.norm(known.mean(0)))


def test_the_gate_allows_a_drop_within_the_tolerance_only():
    assert quality_gate({"ndcg@10": 0.10}, {"ndcg@10": 0.096}, 0.005).passed
    assert not quality_gate({"ndcg@10": 0.10}, {"ndcg@10": 0.094}, 0.005).passed
    assert quality_gate({"ndcg@10": 0.10}, {"ndcg@10": 0.12}, 0.0).passed
