"""Leave-one-out by time, per user, with training-only popularity."""

import numpy as np
import pandas as pd

from pipeline.datasets import Dataset
from pipeline.split import build_sequences, every_position, leave_one_out


def tiny_dataset():
    inter = pd.DataFrame(
        {
            "user_id": ["a", "a", "a", "a", "b", "b", "b", "c", "c"],
            "item_id": ["3", "1", "2", "4", "2", "1", "5", "1", "2"],
            "timestamp": [30, 10, 20, 40, 5, 5, 9, 1, 2],
        }
    )
    items = pd.DataFrame({"item_id": ["1", "2", "3", "4", "5"], "title": list("ABCDE")})
    return Dataset(inter, items, {"dataset": "tiny"})


def test_sequences_are_in_time_order_with_ties_in_file_order():
    seqs = build_sequences(tiny_dataset())
    ids = np.asarray(seqs.item_ids)
    assert seqs.user_ids == ["a", "b", "c"]
    assert ids[seqs.history(0)].tolist() == ["1", "2", "3", "4"]
    assert ids[seqs.history(1)].tolist() == ["2", "1", "5"]  # "2" and "1" tie at t=5


def test_last_item_is_test_second_to_last_is_valid_earlier_prefixes_train():
    split = leave_one_out(build_sequences(tiny_dataset()))
    items = split.sequences.items
    ids = np.asarray(split.sequences.item_ids)
    assert ids[split.test.targets].tolist() == ["4", "5"]  # users a and b; c has only 2 items
    assert ids[split.valid.targets].tolist() == ["3", "1"]
    assert [
        ids[items[s:e]].tolist() for s, e in zip(split.test.starts, split.test.ends, strict=False)
    ] == [["1", "2", "3"], ["2", "1"]]
    # training targets: a → "2" (after "1"); c trains on all it has → "2" after "1"
    assert ids[split.train.targets].tolist() == ["2", "2"]
    assert split.train.users.tolist() == [0, 2]


def test_popularity_counts_training_positions_only():
    split = leave_one_out(build_sequences(tiny_dataset()))
    pop = dict(zip(split.sequences.item_ids, split.popularity().tolist(), strict=False))
    assert pop == {"1": 2, "2": 3, "3": 0, "4": 0, "5": 0}


def test_every_position_trains_through_the_newest_item_and_holds_nothing_out():
    seqs = build_sequences(tiny_dataset())
    split = every_position(seqs)
    ids = np.asarray(seqs.item_ids)
    assert len(split.valid) == len(split.test) == 0 and split.held_out == 0
    # every item after each user's first is a target, the newest included
    assert sorted(ids[split.train.targets].tolist()) == sorted(["2", "3", "4", "1", "5", "2"])
    assert (split.train_end() == seqs.lengths).all()


def test_users_are_numbered_in_sorted_id_order():
    """String order ("10" < "9"), as sorting every event's user ID gives it; each user's
    events follow its number."""
    rng = np.random.default_rng(0)
    users = [str(u) for u in rng.integers(0, 300, size=2000)] + ["9", "10", "U1", "u1"]
    inter = pd.DataFrame(
        {"user_id": users, "item_id": ["1"] * len(users), "timestamp": range(len(users))}
    )
    seqs = build_sequences(Dataset(inter, pd.DataFrame({"item_id": ["1"]}), {}))
    assert seqs.user_ids == sorted(set(users))
    counts = pd.Series(users).value_counts()
    assert seqs.lengths.tolist() == [counts[u] for u in seqs.user_ids]
