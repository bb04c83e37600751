"""GET /v1/items: the catalog by title search, by ID, or most popular first (no user data)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from service.deps import EngineDep
from service.schemas import CatalogItem, ItemsQuery, ItemsResponse

router = APIRouter(prefix="/v1", tags=["items"])


@router.get("/items", response_model=ItemsResponse)
async def items(query: Annotated[ItemsQuery, Query()], engine: EngineDep) -> ItemsResponse:
    """`q`: titles containing every word, most popular first (`?q=star+wars&limit=5`);
    `id`: these items, in the order given, unknown ones left out (`?id=50&id=172`);
    neither: the most popular items. Titles and IDs are the served bundle's."""
    titles = engine.titles
    if query.q is not None:
        found, total = titles.search(query.q, query.limit)
    elif query.id is not None:
        found = titles.lookup(query.id)
        total = len(found)
    else:
        found, total = titles.popular(query.limit), len(engine.catalog)
    catalog = engine.catalog
    return ItemsResponse(
        items=[
            CatalogItem(
                item_id=catalog.item_ids[i],
                title=catalog.titles[i],
                popularity=int(catalog.popularity[i]),
            )
            for i in found
        ],
        total=total,
        model_version=engine.version,
    )
