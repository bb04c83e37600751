"""`genrec data import`: downloaded datasets in their native formats → the tables train reads.

Every file here is written in the test, in the layout and encoding of the real download: the
MovieLens zips' folder names, `::`-separated Latin-1 `.dat` files, quoted UTF-8 CSVs, Amazon
JSON lines gzipped or not, and the 2014 metadata's Python literals.
"""

from __future__ import annotations

import gzip
import json
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from pipeline.datasets import DataError, load_files
from pipeline.importers import default_name, import_path, write_tables
from pipeline.split import build_sequences, leave_one_out

# (user, item, timestamp): three users with ≥ 3 items each, so the split has test targets.
RATINGS = [
    (1, 10, 978300760),
    (1, 20, 978300761),
    (1, 30, 978300762),
    (1, 40, 978300763),
    (2, 20, 978300800),
    (2, 10, 978300700),
    (2, 40, 978300900),
    (3, 30, 978301000),
    (3, 40, 978301001),
    (3, 10, 978301002),
]
TITLES = {
    10: "Misérables, Les (1995)",  # Latin-1 in ml-1m, UTF-8 in the CSV releases
    20: 'Shawshank Redemption, The "Rita" (1994)',
    30: "Amélie (Fabuleux destin d'Amélie Poulain, Le) (2001)",
    40: "Toy Story (1995)",
}


def dat_zip(path: Path, folder: str, encoding: str, rating: str = "5") -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{folder}/README", "MovieLens")
        zf.writestr(
            f"{folder}/ratings.dat",
            "".join(f"{u}::{i}::{rating}::{t}\n" for u, i, t in RATINGS),
        )
        movies = "".join(f"{i}::{title}::Drama|Comedy\n" for i, title in TITLES.items())
        zf.writestr(f"{folder}/movies.dat", movies.encode(encoding))
    return path


def csv_zip(
    path: Path,
    folder: str,
    ratings_header: str = "userId,movieId,rating,timestamp",
    movies_encoding: str = "utf-8",
) -> Path:
    ratings = pd.DataFrame(RATINGS, columns=["userId", "movieId", "timestamp"])
    ratings.insert(2, "rating", 4.5)
    movies = pd.DataFrame(
        {"movieId": list(TITLES), "title": list(TITLES.values()), "genres": "Drama|Comedy"}
    )
    body = ratings.to_csv(index=False, header=False)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{folder}/ratings.csv", f"{ratings_header}\n{body}")
        zf.writestr(f"{folder}/movies.csv", movies.to_csv(index=False).encode(movies_encoding))
        zf.writestr(f"{folder}/tags.csv", "userId,movieId,tag,timestamp\n")
    return path


def check_bundle_ready(imported, tmp_path: Path) -> pd.DataFrame:
    """Written, read back by `load_files` (what `genrec train --interactions --items` does)
    and split: returns the items table as read back."""
    inter, items = write_tables(imported.dataset, tmp_path / "out")
    ds = load_files(inter, items)
    assert ds.interactions["timestamp"].dtype == "int64"
    split = leave_one_out(build_sequences(ds))
    assert len(split.test) == 3 and len(split.train) > 0
    return ds.items.set_index("item_id")


@pytest.mark.parametrize(
    ("folder", "encoding", "rating"), [("ml-1m", "latin-1", "5"), ("ml-10M100K", "utf-8", "3.5")]
)
def test_movielens_dat_zips(tmp_path, folder, encoding, rating):
    imported = import_path(dat_zip(tmp_path / f"{folder}.zip", folder, encoding, rating))
    assert imported.format == "movielens-dat"
    inter = imported.dataset.interactions
    assert inter.values.tolist() == [[str(u), str(i), t] for u, i, t in RATINGS]
    items = check_bundle_ready(imported, tmp_path)
    assert items.loc["10", "title"] == TITLES[10]  # é read right in either encoding
    assert items.loc["20", "title"] == TITLES[20]  # quotes kept as they are
    assert items.loc["10", "genres"] == "Drama|Comedy"


@pytest.mark.parametrize("folder", ["ml-20m", "ml-25m", "ml-32m"])
def test_movielens_csv_zips(tmp_path, folder):
    imported = import_path(csv_zip(tmp_path / f"{folder}.zip", folder))
    assert imported.format == "movielens-csv"
    assert imported.dataset.interactions["timestamp"].tolist() == [t for *_, t in RATINGS]
    items = check_bundle_ready(imported, tmp_path)
    assert items["title"].to_dict() == {str(i): t for i, t in TITLES.items()}


def test_an_extracted_movielens_folder_and_its_ratings_file(tmp_path):
    with zipfile.ZipFile(dat_zip(tmp_path / "ml-1m.zip", "ml-1m", "latin-1")) as zf:
        zf.extractall(tmp_path / "x")
    for path in (tmp_path / "x" / "ml-1m", tmp_path / "x" / "ml-1m" / "ratings.dat"):
        assert len(import_path(path).dataset.interactions) == len(RATINGS)


def amazon_reviews(release: str) -> list[dict]:
    if release == "2023":
        return [
            {
                "rating": 5.0,
                "title": "Great",
                "text": "…",
                "asin": f"B{i}x",
                "parent_asin": f"B{i}",
                "user_id": f"A{u}",
                "timestamp": t * 1000 + 123,
                "verified_purchase": True,
            }
            for u, i, t in RATINGS
        ]
    return [
        {
            "reviewerID": f"A{u}",
            "asin": f"B{i}",
            "reviewerName": "Ann",
            "helpful": [0, 0],
            "reviewText": "Nice, really",
            "overall": 5.0,
            "summary": "ok",
            "unixReviewTime": t,
            "reviewTime": "01 1, 2001",
            **({"style": {"Size:": " 8 oz"}, "vote": "2"} if release == "2018" else {}),
        }
        for u, i, t in RATINGS
    ]


def write_lines(path: Path, lines: list[str], gzipped: bool) -> Path:
    data = "".join(f"{line}\n" for line in lines).encode("utf-8")
    path.write_bytes(gzip.compress(data) if gzipped else data)
    return path


@pytest.mark.parametrize(
    ("release", "gzipped", "reviews", "meta"),
    [
        ("2014", True, "reviews_Beauty_5.json.gz", "meta_Beauty.json.gz"),
        ("2018", False, "Luxury_Beauty_5.json", "meta_Luxury_Beauty.json"),
        ("2023", False, "All_Beauty.jsonl", "meta_All_Beauty.jsonl"),
    ],
)
def test_amazon_reviews_with_metadata(tmp_path, release, gzipped, reviews, meta):
    reviews_path = write_lines(
        tmp_path / reviews, [json.dumps(r) for r in amazon_reviews(release)], gzipped
    )
    key = "parent_asin" if release == "2023" else "asin"
    records = [{key: f"B{i}", "title": f"  {t}  ", "price": 9.5} for i, t in TITLES.items()]
    records.append({key: "Bnot-reviewed", "title": "Unrelated"})
    # the 2014 metadata is one Python dict literal per line (single quotes), not JSON
    lines = [repr(r) if release == "2014" else json.dumps(r) for r in records]
    meta_path = write_lines(tmp_path / meta, lines, gzipped)
    imported = import_path(reviews_path, meta_path)
    assert imported.format == f"amazon-{'2023' if release == '2023' else '2014/2018'}"
    inter = imported.dataset.interactions
    assert inter["user_id"].tolist() == [f"A{u}" for u, _, _ in RATINGS]
    assert inter["timestamp"].tolist() == [t for *_, t in RATINGS]  # 2023's ms → seconds
    items = check_bundle_ready(imported, tmp_path)
    assert items["title"].to_dict() == {f"B{i}": t for i, t in TITLES.items()}


def test_amazon_reviews_without_metadata_take_their_ids_as_titles(tmp_path):
    path = write_lines(tmp_path / "r.json", [json.dumps(r) for r in amazon_reviews("2018")], False)
    items = import_path(path).dataset.items
    assert (items["title"] == items["item_id"]).all()


def test_default_names():
    assert default_name(Path("ml-1m.zip")) == "ml-1m"
    assert default_name(Path("/d/reviews_Beauty_5.json.gz")) == "reviews_Beauty_5"
    assert default_name(Path("All_Beauty.jsonl")) == "All_Beauty"


# --- what users get wrong: one clear line each ---------------------------------------------


def bad_inputs(tmp: Path) -> dict[str, tuple[Path, str]]:
    """name → (path given to the importer, what its message must say)."""
    truncated = tmp / "ml-1m.zip"
    truncated.write_bytes(dat_zip(tmp / "full.zip", "ml-1m", "latin-1").read_bytes()[:150])
    empty_member = tmp / "ml-25m.zip"
    with zipfile.ZipFile(empty_member, "w") as zf:
        zf.writestr("ml-25m/ratings.csv", "")
    latin_reviews = tmp / "latin1.json"
    latin_reviews.write_bytes(
        '{"reviewerID": "A", "asin": "B", "unixReviewTime": 1, "summary": "é"}\n'.encode("latin-1")
    )
    text = tmp / "notes.txt"
    text.write_text("user item time\n1 2 3\n")
    fields = tmp / "other.jsonl"
    fields.write_text(json.dumps({"user": "A", "item": "B"}) + "\n")
    (tmp / "empty.json").write_bytes(b"")
    (tmp / "nozip").mkdir()
    (tmp / "nozip" / "readme.txt").write_text("x")
    return {
        "missing path": (tmp / "nope.zip", "no such file"),
        "truncated zip": (truncated, "not a valid zip"),
        "wrong columns": (
            csv_zip(tmp / "ml-20m.zip", "ml-20m", ratings_header="user,item,rating,time"),
            "missing column(s) userId, movieId, timestamp",
        ),
        "wrong encoding (MovieLens CSV)": (
            csv_zip(tmp / "ml-32m.zip", "ml-32m", movies_encoding="latin-1"),
            "not UTF-8",
        ),
        "wrong encoding (Amazon)": (latin_reviews, "not UTF-8"),
        "empty file": (tmp / "empty.json", "is empty"),
        "empty member": (empty_member, "is empty"),
        "not JSON lines": (text, "not JSON"),
        "wrong JSON fields": (fields, "expected Amazon reviews with reviewerID"),
        "folder without ratings": (tmp / "nozip", "no ratings.dat or ratings.csv"),
    }


def test_unusable_inputs_raise_one_line_that_says_what_to_do(tmp_path):
    for name, (path, says) in bad_inputs(tmp_path).items():
        with pytest.raises(DataError) as e:
            import_path(path)
        message = str(e.value)
        assert says in message and "\n" not in message, (name, message)


def test_interaction_files_for_train_get_one_line_errors(tmp_path):
    latin = tmp_path / "latin.csv"
    latin.write_bytes("user_id,item_id,timestamp\nA,é,1\n".encode("latin-1"))
    floats = tmp_path / "floats.csv"
    floats.write_text("user_id,item_id,timestamp\nA,B,yesterday\n")
    header_only = tmp_path / "header.csv"
    header_only.write_text("user_id,item_id,timestamp\n")
    (tmp_path / "empty.csv").write_text("")
    cases = {
        tmp_path / "nope.csv": "no such file",
        latin: "not UTF-8",
        floats: "timestamp must be an integer",
        header_only: "no rows",
        tmp_path / "empty.csv": "is empty",
    }
    for path, says in cases.items():
        with pytest.raises(DataError, match=says):
            load_files(path)
