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
    return Dataset(canonical_interactions(inter), canonical_items(items), {"dataset": name})


class DataError(ValueError):
    """Input data that cannot be used: the message says what is wrong and how to fix it, in one
    line (the CLI prints it instead of a traceback)."""


def _read_table(path: Path) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file; give the path of a CSV or Parquet table")
    try:
        if path.suffix in {".parquet", ".pq"}:
            df = pd.read_parquet(path).astype(str)
        else:
            df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    except pd.errors.EmptyDataError:
        raise DataError(f"{path} is empty; it needs a header line and one row per record") from None
    except UnicodeDecodeError as e:
        raise DataError(
            f"{path}: not UTF-8 text (byte {e.object[e.start]:#x}); "
            f"convert it, e.g. iconv -f latin1 -t utf-8 {path.name} > utf8-{path.name}"
        ) from None
    except (pd.errors.ParserError, ValueError, OSError) as e:
        kind = "Parquet" if path.suffix in {".parquet", ".pq"} else "CSV"
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"{path}: not a readable {kind} table ({first})") from None
    if df.empty:
        raise DataError(f"{path} has a header but no rows")
    return df


def _require(df: pd.DataFrame, path: Path | None, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {', '.join(missing)} (found: {', '.join(map(str, df.columns))}); "
            f"{what} need the columns {','.join(columns)}: rename them, or read MovieLens and "
            "Amazon files with `genrec data import`"
        )


def load_files(interactions: Path, items: Path | None = None) -> Dataset:
    """CSV or Parquet: interactions with `user_id,item_id,timestamp`; items with `item_id[,title,…]`.
    Unusable files raise `DataError` with a one-line reason."""
    inter = _read_table(interactions)
    _require(inter, interactions, ["user_id", "item_id", "timestamp"], "interactions")
    item_df = _read_table(items) if items else pd.DataFrame({"item_id": inter["item_id"].unique()})
    _require(item_df, items, ["item_id"], "items")
    spec = {"interactions": str(Path(interactions).resolve())}
    if items:
        spec["items"] = str(Path(items).resolve())
    return Dataset(canonical_interactions(inter, interactions), canonical_items(item_df), spec)


def load_dataset(spec: dict[str, Any], data_dir: Path) -> Dataset:
    """Load again from a spec stored in a bundle manifest."""
    if spec.get("dataset"):
        return load_builtin(spec["dataset"], data_dir)
    return load_files(
        Path(spec["interactions"]), Path(spec["items"]) if spec.get("items") else None
    )


def canonical_interactions(
    inter: pd.DataFrame, source: Path | str = "interactions"
) -> pd.DataFrame:
    out = inter[["user_id", "item_id", "timestamp"]].copy()
    ts = pd.to_numeric(out["timestamp"], errors="coerce")
    bad = ts.isna() | (ts != ts.round())
    if bad.any():
        row = int(bad.to_numpy().nonzero()[0][0])
        raise DataError(
            f"{source}: timestamp must be an integer (Unix seconds); row {row + 1} has "
            f"{out['timestamp'].iloc[row]!r}"
        )
    out["timestamp"] = ts.astype("int64")
    return out.reset_index(drop=True)


def canonical_items(items: pd.DataFrame) -> pd.DataFrame:
    out = items.drop_duplicates("item_id").reset_index(drop=True)
    if "title" not in out.columns:
        out["title"] = out["item_id"]
    return out
