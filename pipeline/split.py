"""Per-user chronological sequences and the leave-one-out split (last → test, second-to-last → valid)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from pipeline.datasets import Dataset


@dataclass
class Sequences:
    """Every user's items in time order, ragged: user u owns items[offsets[u]:offsets[u+1]].

    Ties in time keep the order of the input file (a stable sort).
    """

    user_ids: list[str]
    item_ids: list[str]
    offsets: np.ndarray
    items: np.ndarray

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def history(self, u: int) -> np.ndarray:
        return self.items[self.offsets[u] : self.offsets[u + 1]]


@dataclass
class Examples:
    """Prediction targets: history is items[starts[i]:ends[i]] of the flat array, target items[ends[i]]."""

    users: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    targets: np.ndarray

    def __len__(self) -> int:
        return len(self.targets)

    def subset(self, idx: np.ndarray) -> Examples:
        return Examples(self.users[idx], self.starts[idx], self.ends[idx], self.targets[idx])


@dataclass
class Split:
    """Training targets and the held-out ones. `held_out` is how many trailing positions of each
    user (with ≥ 3 items) no training target reaches: 2 for leave-one-out (validation, test),
    0 for `every_position` (a final pass through the newest events, nothing held out)."""

    sequences: Sequences
    train: Examples
    valid: Examples
    test: Examples
    held_out: int = 2

    def popularity(self) -> np.ndarray:
        """Interaction counts per item over the training part only (no leakage)."""
        last_train = self.train_end()
        pos = np.arange(len(self.sequences.items)) - np.repeat(
            self.sequences.offsets[:-1], self.sequences.lengths
        )
        keep = pos < np.repeat(last_train, self.sequences.lengths)
        return np.bincount(self.sequences.items[keep], minlength=self.sequences.n_items)

    def train_end(self) -> np.ndarray:
        """Per user, the number of leading items that belong to training (n − held_out, or n
        if < 3)."""
        n = self.sequences.lengths
        return np.where(n >= 3, n - self.held_out, n)


def catalog_ids(dataset: Dataset) -> list[str]:
    """Catalog order: the items file first, then items only seen in interactions (sorted)."""
    known = list(dict.fromkeys(dataset.items["item_id"].tolist()))
    seen = set(known)
    extra = sorted(set(dataset.interactions["item_id"].unique()) - seen)
    return known + extra


def build_sequences(dataset: Dataset, item_ids: list[str] | None = None) -> Sequences:
    """Group interactions by user in time order; item indices follow `item_ids` (catalog order)."""
    item_ids = item_ids if item_ids is not None else catalog_ids(dataset)
    inter = dataset.interactions
    index = pd.Index(item_ids)
    item_idx = index.get_indexer(inter["item_id"])
    if (item_idx < 0).any():
        unknown = inter["item_id"][item_idx < 0].unique()[:5].tolist()
        raise ValueError(f"interactions name items outside the catalog, e.g. {unknown}")
    # Sorted user IDs and each event's index among them, as np.unique gives them, but by
    # hashing: np.unique sorts all N strings (1.5 s of 5 s at 10⁶ events), this only the users.
    user_idx, users = pd.factorize(inter["user_id"], sort=True)
    order = np.lexsort((np.arange(len(inter)), inter["timestamp"].to_numpy(), user_idx))
    counts = np.bincount(user_idx, minlength=len(users))
    offsets = np.concatenate([[0], np.cumsum(counts)])
    return Sequences(
        [str(u) for u in users], list(item_ids), offsets, item_idx[order].astype(np.int64)
    )


def leave_one_out(seqs: Sequences) -> Split:
    """Users with ≥ 3 items give one validation and one test target; every earlier position
    (from the second item on) is a training target. Shorter users only train."""
    n = seqs.lengths
    start = seqs.offsets[:-1]
    evaluable = np.flatnonzero(n >= 3)
    valid = _examples(seqs, evaluable, start[evaluable], start[evaluable] + n[evaluable] - 2)
    test = _examples(seqs, evaluable, start[evaluable], start[evaluable] + n[evaluable] - 1)
    return Split(seqs, _training_targets(seqs, held_out=2), valid, test, held_out=2)


def every_position(seqs: Sequences) -> Split:
    """Every position from each user's second item on is a training target, the newest
    included; nothing is held out (what a model trains on once it has been judged)."""
    none = np.empty(0, dtype=np.int64)
    empty = Examples(none, none, none, none)
    return Split(seqs, _training_targets(seqs, held_out=0), empty, empty, held_out=0)


def _training_targets(seqs: Sequences, held_out: int) -> Examples:
    """Positions 1 … n − held_out − 1 of each user (all of them for users with < 3 items)."""
    n = seqs.lengths
    start = seqs.offsets[:-1]
    n_train = np.where(n >= 3, n - held_out, n)
    per_user = np.maximum(n_train - 1, 0)
    users = np.repeat(np.arange(len(n)), per_user)
    pos = np.arange(per_user.sum()) - np.repeat(np.cumsum(per_user) - per_user, per_user) + 1
    return _examples(seqs, users, start[users], start[users] + pos)


def _examples(seqs: Sequences, users: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> Examples:
    return Examples(users, starts, ends, seqs.items[ends])


def training_matrix(split: Split) -> sp.csr_matrix:
    """Binary users × items matrix of the training positions only (no validation/test leak)."""
    seqs = split.sequences
    lengths = seqs.lengths
    pos = np.arange(len(seqs.items)) - np.repeat(seqs.offsets[:-1], lengths)
    keep = pos < np.repeat(split.train_end(), lengths)
    users = np.repeat(np.arange(len(seqs.user_ids)), lengths)[keep]
    x = sp.csr_matrix(
        (np.ones(int(keep.sum()), dtype=np.float64), (users, seqs.items[keep])),
        shape=(len(seqs.user_ids), seqs.n_items),
    )
    x.data[:] = 1.0  # binary even if an item repeats
    return x
