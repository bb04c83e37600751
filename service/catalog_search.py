"""Title search and lookup over the served catalog, for `GET /v1/items` (the demo page's search).

Vectorised in pyarrow's compute kernels rather than a Python loop over titles: a search runs
on the event loop, and catalogs of 10⁵–10⁶ items (Amazon categories) must stay well under a
millisecond per thousand titles.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from model.bundle import Catalog


class TitleIndex:
    """A catalog's titles, searchable by words, results ordered by training popularity."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.titles = pa.array(catalog.titles, type=pa.large_string())
        self.by_popularity = np.argsort(-np.asarray(catalog.popularity), kind="stable")  # (N,)

    def search(self, query: str, limit: int) -> tuple[np.ndarray, int]:
        """Indices of items whose title contains every word of `query` (case-insensitive),
        most popular first, at most `limit`; and how many matched."""
        match = np.ones(len(self.catalog), dtype=bool)
        for word in query.split():
            found = pc.match_substring(self.titles, word, ignore_case=True)
            match &= found.to_numpy(zero_copy_only=False)
        hits = self.by_popularity[match[self.by_popularity]]
        return hits[:limit], len(hits)

    def popular(self, limit: int) -> np.ndarray:
        return self.by_popularity[:limit]

    def lookup(self, item_ids: list[str]) -> np.ndarray:
        """Indices of the catalog items among `item_ids`, in their order (unknown ones left out)."""
        index = self.catalog.index
        return np.array([index[i] for i in item_ids if i in index], dtype=np.int64)
