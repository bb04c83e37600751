"""Datasets people download, read in their native formats into genrec's two tables.

    genrec data import ~/Downloads/ml-1m.zip            # → data/ml-1m/{interactions,items}.parquet
    genrec data import reviews_Beauty_5.json.gz --metadata meta_Beauty.json.gz

- MovieLens 1M / 10M: a zip (or its extracted folder) with `ratings.dat` and `movies.dat`,
  `::`-separated; the 1M titles are Latin-1, so a `.dat` that is not UTF-8 is read as Latin-1.
- MovieLens 20M / 25M / 32M (and ml-latest): `ratings.csv` and `movies.csv`, UTF-8, headers
  `userId,movieId,rating,timestamp` and `movieId,title,genres`.
- Amazon reviews, 5-core JSON lines, gzipped or not: the 2014 and 2018 releases
  (`reviewerID`, `asin`, `unixReviewTime`) and the 2023 one (`user_id`, `parent_asin`,
  `timestamp` in milliseconds, stored here in seconds like every other source). Titles come
  from the optional metadata file (`asin`/`parent_asin` and `title`; the 2014 metadata is
  Python literals rather than JSON, read with `ast.literal_eval`, never `eval`).

Every rating counts as an interaction (implicit feedback, as for the built-in ml-100k). The
tables are what `genrec train --interactions --items` reads (`pipeline.datasets.load_files`).
Files that cannot be used raise `DataError` with one line saying what is wrong and what to do.
"""

from __future__ import annotations

import ast
import csv
import gzip
import io
import json
import logging
import re
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pandas as pd

from pipeline.datasets import DataError, Dataset, canonical_interactions, canonical_items

log = logging.getLogger(__name__)

GZIP_MAGIC = b"\x1f\x8b"
DAT_RATINGS = ["user_id", "item_id", "rating", "timestamp"]
DAT_MOVIES = ["item_id", "title", "genres"]
CSV_RATINGS = {"userId": "user_id", "movieId": "item_id", "timestamp": "timestamp"}
CSV_MOVIES = {"movieId": "item_id", "title": "title", "genres": "genres"}
# Amazon review fields per release: user, item, time, time unit divisor (→ seconds).
AMAZON_FIELDS = {
    "2014/2018": ("reviewerID", "asin", "unixReviewTime", 1),
    "2023": ("user_id", "parent_asin", "timestamp", 1000),
}


@dataclass
class Imported:
    """A dataset read from a downloaded file, and which format it was."""

    dataset: Dataset
    format: str


def default_name(path: Path) -> str:
    """`ml-1m.zip` → ml-1m, `reviews_Beauty_5.json.gz` → reviews_Beauty_5."""
    return re.sub(r"(\.(zip|gz|json|jsonl|ndjson))+$", "", Path(path).name) or "imported"


def import_path(path: Path, metadata: Path | None = None) -> Imported:
    """Read a MovieLens zip/folder or an Amazon reviews file (format from its contents)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder; give the path of the file you downloaded")
    if metadata is not None and not Path(metadata).is_file():
        raise DataError(f"{metadata}: no such metadata file")
    if path.is_dir() or zipfile.is_zipfile(path) or path.name in {"ratings.dat", "ratings.csv"}:
        if metadata is not None:
            raise DataError("--metadata is for Amazon reviews; MovieLens titles come from its zip")
        return _movielens(_Files.open(path))
    if path.stat().st_size == 0:
        raise DataError(f"{path} is empty (0 bytes); download it again")
    if path.suffix == ".zip":
        raise DataError(f"{path}: not a valid zip archive (a partial download?); download it again")
    return _amazon(path, metadata)


def write_tables(dataset: Dataset, out: Path) -> tuple[Path, Path]:
    """interactions.parquet and items.parquet in `out`, the inputs of `genrec train`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = out / "interactions.parquet", out / "items.parquet"
    for frame, path in zip((dataset.interactions, dataset.items), paths, strict=True):
        part = path.with_name(path.name + ".part")
        frame.to_parquet(part, index=False)
        part.replace(path)
    return paths


# --- MovieLens -----------------------------------------------------------------------------


class _Files:
    """The files of a MovieLens release, zipped or extracted, found by base name."""

    def __init__(self, where: Path, names: list[str], open_: Callable[[str], IO[bytes]]) -> None:
        self.where, self.names, self._open = where, names, open_

    @classmethod
    def open(cls, path: Path) -> _Files:
        if path.is_file() and path.name in {"ratings.dat", "ratings.csv"}:
            path = path.parent
        if path.is_dir():
            names = [str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()]
            return cls(path, names, lambda n: (path / n).open("rb"))
        try:
            zf = zipfile.ZipFile(path)
            names = zf.namelist()
        except (zipfile.BadZipFile, OSError) as e:
            raise DataError(f"{path}: not a readable zip ({e}); download it again") from None
        return cls(path, names, zf.open)

    def find(self, base: str) -> str | None:
        """The shallowest member called `base` (e.g. ml-1m/ratings.dat), or None."""
        hits = sorted((n for n in self.names if Path(n).name == base), key=lambda n: n.count("/"))
        return hits[0] if hits else None

    @contextmanager
    def stream(self, name: str) -> Iterator[IO[bytes]]:
        """The member's bytes as a stream; read errors (a corrupt zip) become `DataError`."""
        try:
            with self._open(name) as f:
                yield f
        except (zipfile.BadZipFile, OSError, EOFError) as e:  # zlib errors are BadZipFile
            raise DataError(f"{self.where}: cannot read {name} ({e}); download it again") from None

    def read(self, name: str) -> bytes:
        with self.stream(name) as f:
            data = f.read()
        if not data.strip():
            raise DataError(f"{self.where}: {name} is empty; download the dataset again")
        return data


def _movielens(files: _Files) -> Imported:
    if (ratings := files.find("ratings.dat")) is not None:
        inter = _read_dat(files, ratings, DAT_RATINGS, "UserID::MovieID::Rating::Timestamp")
        movies = files.find("movies.dat")
        items = _read_dat(files, movies, DAT_MOVIES, "MovieID::Title::Genres") if movies else None
        fmt = "movielens-dat"
    elif (ratings := files.find("ratings.csv")) is not None:
        inter = _read_ml_csv(files, ratings, CSV_RATINGS)
        movies = files.find("movies.csv")
        items = _read_ml_csv(files, movies, CSV_MOVIES) if movies else None
        fmt = "movielens-csv"
    else:
        raise DataError(
            f"{files.where}: no ratings.dat or ratings.csv inside; expected a MovieLens zip "
            "(ml-1m, ml-10m, ml-20m, ml-25m, ml-32m) as downloaded from GroupLens"
        )
    if items is None:
        log.warning("import no movies file next to %s: titles are the item IDs", ratings)
        items = pd.DataFrame({"item_id": inter["item_id"].unique()})
    inter = inter[["user_id", "item_id", "timestamp"]]
    spec = {"source": str(files.where), "format": fmt}
    return Imported(
        Dataset(canonical_interactions(inter, ratings), canonical_items(items), spec), fmt
    )


def _decode(data: bytes, name: str) -> str:
    """UTF-8, else Latin-1: ml-1m's movies.dat is Latin-1 (every byte is a Latin-1 character)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        log.info("import %s is not UTF-8: read as Latin-1", name)
        return data.decode("latin-1")


def _read_dat(files: _Files, name: str, columns: list[str], layout: str) -> pd.DataFrame:
    """A `::`-separated MovieLens .dat file (pandas' C parser takes one-character separators,
    so `::` becomes a tab first; MovieLens fields hold no tabs)."""
    text = _decode(files.read(name), name).replace("::", "\t")
    try:
        df = pd.read_csv(
            io.StringIO(text),
            sep="\t",
            header=None,
            dtype=str,
            keep_default_na=False,
            quoting=csv.QUOTE_NONE,
        )
    except pd.errors.ParserError as e:
        raise DataError(f"{name}: rows are not {layout} ({str(e).strip()})") from None
    if df.shape[1] != len(columns):
        raise DataError(
            f"{name}: {df.shape[1]} field(s) per row, expected {len(columns)} ({layout}); "
            "is this a MovieLens 1M/10M file?"
        )
    df.columns = columns
    return df


def _read_ml_csv(files: _Files, name: str, columns: dict[str, str]) -> pd.DataFrame:
    """A MovieLens CSV, streamed (ml-32m's ratings.csv is 877 MB) and checked to be UTF-8."""
    with files.stream(name) as f:
        first = f.readline().decode("utf-8", errors="replace").strip()
    if not first:
        raise DataError(f"{files.where}: {name} is empty; download the dataset again")
    header = first.split(",")
    missing = [c for c in columns if c not in header]
    if missing:
        raise DataError(
            f"{name}: missing column(s) {', '.join(missing)} (header: {','.join(header)[:200]}); "
            f"expected MovieLens 20M/25M/32M columns {','.join(columns)}"
        )
    try:
        with files.stream(name) as f:
            df = pd.read_csv(
                f, usecols=list(columns), dtype=str, keep_default_na=False, encoding="utf-8"
            )
    except UnicodeDecodeError as e:
        raise DataError(
            f"{name}: not UTF-8 (byte {e.object[e.start]:#x}); MovieLens CSV files are UTF-8: "
            "download the zip again, or convert the file with iconv -t utf-8"
        ) from None
    except pd.errors.ParserError as e:
        raise DataError(f"{name}: not a readable CSV ({str(e).strip()})") from None
    if df.empty:
        raise DataError(f"{name} has a header but no rows; download the dataset again")
    return df.rename(columns=columns)


# --- Amazon reviews ------------------------------------------------------------------------


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of a JSON-lines file, gzipped or not (told by its magic bytes)."""
    with Path(path).open("rb") as f:
        gzipped = f.read(2) == GZIP_MAGIC
    try:
        with (
            gzip.open(path, "rt", encoding="utf-8")
            if gzipped
            else Path(path).open(encoding="utf-8") as text
        ):
            for n, line in enumerate(text, 1):
                if line.strip():
                    yield n, line
    except UnicodeDecodeError as e:
        raise DataError(
            f"{path}: not UTF-8 text (byte {e.object[e.start]:#x}); Amazon review files are "
            "UTF-8 JSON lines: download it again"
        ) from None
    except (OSError, EOFError) as e:  # a truncated or corrupt gzip stream
        raise DataError(f"{path}: cannot be read ({e}); download it again") from None


def _record(path: Path, n: int, line: str, literals: bool = False) -> dict[str, Any]:
    try:
        rec = json.loads(line)
    except json.JSONDecodeError as e:
        rec = None
        if literals:  # the 2014 metadata: one Python dict literal per line
            with suppress(ValueError, SyntaxError, RecursionError, MemoryError):
                rec = ast.literal_eval(line)
        if rec is None:
            raise DataError(
                f"{path} line {n}: not JSON ({e.msg}); expected Amazon reviews as JSON lines "
                "(one review object per line), or a MovieLens zip"
            ) from None
    if not isinstance(rec, dict):
        raise DataError(f"{path} line {n}: a JSON {type(rec).__name__}, not a review object")
    return rec


def _amazon(path: Path, metadata: Path | None) -> Imported:
    users: list[str] = []
    items: list[str] = []
    times: list[int] = []
    release = None
    for n, line in _lines(path):
        rec = _record(path, n, line)
        if release is None:
            release = next(
                (r for r, f in AMAZON_FIELDS.items() if all(k in rec for k in f[:3])), None
            )
            if release is None:
                raise DataError(
                    f"{path} line {n}: fields {', '.join(sorted(rec))[:200]}; expected Amazon "
                    "reviews with reviewerID, asin, unixReviewTime (2014/2018) or user_id, "
                    "parent_asin, timestamp (2023)"
                )
        user_key, item_key, time_key, per_second = AMAZON_FIELDS[release]
        try:
            users.append(str(rec[user_key]))
            items.append(str(rec[item_key]))
            times.append(int(rec[time_key]) // per_second)
        except (KeyError, TypeError, ValueError):
            raise DataError(
                f"{path} line {n}: needs {user_key}, {item_key} and an integer {time_key}"
            ) from None
    if release is None:
        raise DataError(f"{path} holds no reviews (only blank lines); download it again")
    inter = pd.DataFrame({"user_id": users, "item_id": items, "timestamp": times})
    titles = _amazon_titles(metadata, set(items)) if metadata else {}
    item_ids = inter["item_id"].unique()
    table = pd.DataFrame({"item_id": item_ids, "title": [titles.get(i) or i for i in item_ids]})
    fmt = f"amazon-{release}"
    spec = {"source": str(path), "format": fmt, **({"metadata": str(metadata)} if metadata else {})}
    return Imported(Dataset(canonical_interactions(inter, path), canonical_items(table), spec), fmt)


def _amazon_titles(metadata: Path, wanted: set[str]) -> dict[str, str]:
    """item → title from a metadata file, for the reviewed items only (the files are large)."""
    titles: dict[str, str] = {}
    for n, line in _lines(metadata):
        rec = _record(metadata, n, line, literals=True)
        item = rec.get("parent_asin") or rec.get("asin")
        if item is None:
            raise DataError(
                f"{metadata} line {n}: no asin or parent_asin; expected the Amazon metadata "
                "file that belongs to the reviews"
            )
        if item in wanted and isinstance(rec.get("title"), str):
            titles[str(item)] = " ".join(rec["title"].split())
    if not titles:
        log.warning("import %s named none of the reviewed items: titles are the item IDs", metadata)
    return titles
