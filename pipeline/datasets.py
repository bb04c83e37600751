"""Datasets in one canonical shape: interactions (user_id, item_id, timestamp) and items (item_id, title, …)."""

from __future__ import annotations

import logging
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

log = logging.getLogger(__name__)

RECBOLE_WHEEL = "recbole==1.2.1"
BUILTIN = {"ml-100k": ("recbole/dataset_example/ml-100k/", ("ml-100k.inter", "ml-100k.item"))}


@dataclass
class Dataset:
    """Canonical frames; string IDs, integer timestamps. `spec` says how to load it again."""

    interactions: pd.DataFrame
    items: pd.DataFrame
    spec: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.spec.get("dataset") or Path(self.spec.get("interactions", "custom")).stem)


def fetch_builtin(name: str, data_dir: Path) -> Path:
    """Download `name` into data_dir/name (a no-op when present); returns that folder.

    MovieLens-100k comes from the recbole 1.2.1 wheel's example data: the wheel is
    downloaded with pip (never installed) and only the two data files are extracted.
    """
    if name not in BUILTIN:
        raise ValueError(f"unknown dataset {name!r}; built in: {sorted(BUILTIN)}")
    prefix, files = BUILTIN[name]
    target = Path(data_dir) / name
    if all((target / f).is_file() for f in files):
        return target
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        log.info("fetch dataset=%s from=%s", name, RECBOLE_WHEEL)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--quiet",
                RECBOLE_WHEEL,
                "-d",
                tmp,
            ],
            check=True,
        )
        wheel = next(Path(tmp).glob("recbole-*.whl"))
        with zipfile.ZipFile(wheel) as zf:
            for f in files:
                part = target / f"{f}.part"
                part.write_bytes(zf.read(prefix + f))
                part.rename(target / f)
    return target


def _read_atomic(path: Path) -> pd.DataFrame:
    """A RecBole atomic file (tab-separated, `name:type` headers) with every column as text."""
    df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    return df.rename(columns=lambda c: c.split(":")[0])


def load_builtin(name: str, data_dir: Path) -> Dataset:
    folder = fetch_builtin(name, data_dir)
    inter = _read_atomic(folder / f"{name}.inter")
    items = _read_atomic(folder / f"{name}.item").rename(
        columns={"movie_title": "title", "class": "genres"}
    )
    return Dataset(_canonical(inter), _canonical_items(items), {"dataset": name})


def _read_table(path: Path) -> pd.DataFrame:
    path = Path(path)
    if path.suffix in {".parquet", ".pq"}:
        return pd.read_parquet(path).astype(str)
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def load_files(interactions: Path, items: Path | None = None) -> Dataset:
    """CSV or Parquet: interactions with `user_id,item_id,timestamp`; items with `item_id[,title,…]`."""
    inter = _read_table(interactions)
    missing = {"user_id", "item_id", "timestamp"} - set(inter.columns)
    if missing:
        raise ValueError(f"{interactions}: missing columns {sorted(missing)}")
    item_df = _read_table(items) if items else pd.DataFrame({"item_id": inter["item_id"].unique()})
    if "item_id" not in item_df.columns:
        raise ValueError(f"{items}: missing column item_id")
    spec = {"interactions": str(Path(interactions).resolve())}
    if items:
        spec["items"] = str(Path(items).resolve())
    return Dataset(_canonical(inter), _canonical_items(item_df), spec)


def load_dataset(spec: dict[str, Any], data_dir: Path) -> Dataset:
    """Load again from a spec stored in a bundle manifest."""
    if spec.get("dataset"):
        return load_builtin(spec["dataset"], data_dir)
    return load_files(
        Path(spec["interactions"]), Path(spec["items"]) if spec.get("items") else None
    )


def _canonical(inter: pd.DataFrame) -> pd.DataFrame:
    out = inter[["user_id", "item_id", "timestamp"]].copy()
    out["timestamp"] = pd.to_numeric(out["timestamp"], errors="raise").astype("int64")
    return out.reset_index(drop=True)


def _canonical_items(items: pd.DataFrame) -> pd.DataFrame:
    out = items.drop_duplicates("item_id").reset_index(drop=True)
    if "title" not in out.columns:
        out["title"] = out["item_id"]
    return out
