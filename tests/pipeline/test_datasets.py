"""Loading interactions and items from CSV or Parquet files."""

import pandas as pd
import pytest

from pipeline.datasets import load_files


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_files_load_into_canonical_frames(tmp_path, suffix):
    inter = pd.DataFrame(
        {"user_id": [1, 1], "item_id": [7, 8], "timestamp": [100, 200], "rating": [5, 3]}
    )
    items = pd.DataFrame({"item_id": [7, 8], "title": ["Seven", "Eight"]})
    paths = []
    for name, df in (("inter", inter), ("items", items)):
        p = tmp_path / f"{name}{suffix}"
        df.to_csv(p, index=False) if suffix == ".csv" else df.to_parquet(p)
        paths.append(p)
    ds = load_files(*paths)
    assert ds.interactions.columns.tolist() == ["user_id", "item_id", "timestamp"]
    assert ds.interactions["item_id"].tolist() == ["7", "8"]
    assert ds.interactions["timestamp"].dtype == "int64"
    assert ds.items.set_index("item_id")["title"].to_dict() == {"7": "Seven", "8": "Eight"}


def test_missing_columns_are_named(tmp_path):
    p = tmp_path / "bad.csv"
    pd.DataFrame({"user": [1], "item_id": [2]}).to_csv(p, index=False)
    with pytest.raises(ValueError, match="timestamp"):
        load_files(p)


def test_items_default_to_the_interacted_ids(tmp_path):
    p = tmp_path / "inter.csv"
    pd.DataFrame({"user_id": ["u"], "item_id": ["x"], "timestamp": [1]}).to_csv(p, index=False)
    assert load_files(p).items["title"].tolist() == ["x"]
