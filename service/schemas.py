"""Request and response models: strict types, no extra fields, every string and list bounded."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

if TYPE_CHECKING:
    from service.engine import Result

ID_PATTERN = r"^[A-Za-z0-9_.:@/+\-]+$"
MAX_K = 100
MAX_HISTORY_IN_REQUEST = 200
MAX_EVENTS = 1000

Identifier = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=ID_PATTERN)]


class Strict(BaseModel):
    """JSON is checked as sent: `"5"`, `5.0` or `true` are not an int, unknown fields are errors."""

    model_config = ConfigDict(strict=True, extra="forbid")


class RecommendRequest(Strict):
    user_id: Identifier | None = Field(None, description="Read this user's history from the store.")
    history: list[Identifier] | None = Field(
        None,
        min_length=1,
        max_length=MAX_HISTORY_IN_REQUEST,
        description="Explicit history, oldest first; used instead of the stored one.",
    )
    k: int = Field(10, ge=1, le=MAX_K)
    beam_width: int | None = Field(
        None, ge=1, le=1024, description="Upper bound on the final beam width."
    )
    exclude_seen: bool = Field(True, description="Never return items in the history.")

    @model_validator(mode="after")
    def _needs_a_history(self) -> RecommendRequest:
        if self.user_id is None and self.history is None:
            raise ValueError("give user_id, history, or both")
        return self


class RecommendedItem(BaseModel):
    item_id: str
    title: str
    score: float = Field(
        description="The item's semantic-ID log-probability under the model, plus the dense "
        "head's re-ranking term when the bundle has one (the default recipe does)."
    )
    semantic_id: list[int]


class RecommendResponse(BaseModel):
    user_id: str | None
    items: list[RecommendedItem]
    model_version: str
    beam_width: int = Field(description="Final beam width used.")
    beam_widths: list[int] = Field(description="Width used at each semantic-ID level.")
    history_length: int

    @classmethod
    def of(
        cls, user_id: str | None, result: Result, model_version: str, history_length: int
    ) -> RecommendResponse:
        """The answer for one decoded query: the API's and `genrec recommend`'s, built alike."""
        return cls(
            user_id=user_id,
            items=[
                RecommendedItem(
                    item_id=r.item_id, title=r.title, score=r.score, semantic_id=r.semantic_id
                )
                for r in result.items
            ],
            model_version=model_version,
            beam_width=result.widths[-1],
            beam_widths=list(result.widths),
            history_length=history_length,
        )


class Event(Strict):
    user_id: Identifier
    item_id: Identifier
    timestamp: int | None = Field(None, ge=0, le=2**53, description="Unix seconds; default now.")


class EventsRequest(Strict):
    events: list[Event] = Field(min_length=1, max_length=MAX_EVENTS)


class EventsResponse(BaseModel):
    accepted: int
    unknown_items: int = Field(
        description="Events naming items outside the current catalog (kept for retraining)."
    )


class HistoryResponse(BaseModel):
    user_id: str
    items: list[str]


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    status: str
    model_version: str | None
    redis: bool


class ReloadResponse(BaseModel):
    reloaded: bool = Field(description="False when the bundle's version is already served.")
    model_version: str = Field(description="The version served from now on.")
    previous_version: str


MAX_QUERY_CHARS = 100
MAX_ITEMS_PAGE = 50
MAX_LOOKUP_IDS = 100


def _digits(value: object) -> object:
    """A query string's integer, from digits only: `5` yes; `5.0`, `true`, `+5` stay text and fail."""
    return int(value) if isinstance(value, str) and value.isascii() and value.isdigit() else value


class ItemsQuery(BaseModel):
    """`GET /v1/items` parameters. Query strings are text: `limit` is read from digits only and
    nothing else is coerced; every value is bounded and unknown parameters are refused."""

    model_config = ConfigDict(extra="forbid")

    q: str | None = Field(
        None,
        min_length=1,
        max_length=MAX_QUERY_CHARS,
        description="Words every returned title contains (case-insensitive), most popular first.",
    )
    id: list[Identifier] | None = Field(
        None,
        min_length=1,
        max_length=MAX_LOOKUP_IDS,
        description="Look these items up instead (repeat the parameter: `id=50&id=172`).",
    )
    limit: Annotated[int, BeforeValidator(_digits)] = Field(
        20, ge=1, le=MAX_ITEMS_PAGE, strict=True
    )

    @model_validator(mode="after")
    def _one_question(self) -> ItemsQuery:
        if self.q is not None and self.id is not None:
            raise ValueError("give q or id, not both")
        if self.q is not None and not self.q.split():
            raise ValueError("q has no words")
        return self


class CatalogItem(BaseModel):
    item_id: str
    title: str
    popularity: int = Field(description="Interactions with the item in the training data.")


class ItemsResponse(BaseModel):
    items: list[CatalogItem]
    total: int = Field(description="Items that match, before `limit`.")
    model_version: str


class Stats(BaseModel):
    """The service's state over the last `window_s` seconds, for the demo page's live strip."""

    model_version: str | None
    window_s: float = Field(description="Seconds the rates and percentiles cover.")
    requests_per_s: float = Field(description="Recommendation requests answered per second.")
    p50_ms: float | None = Field(description="Median latency of successful recommendations.")
    p99_ms: float | None
    errors_per_s: float = Field(description="Recommendations answered with a 4xx/5xx status.")
    shed_per_s: float = Field(description="Recommendations shed with 503 (overloaded).")
    beam_width: int | None = Field(description="Final beam width the last batch used.")
    mean_beam_width: float | None = Field(description="Mean final width over the window.")
    queue_depth: int
    cache_hit_rate: float | None
