"""Request and response models: strict types, no extra fields, every string and list bounded."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

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
    score: float = Field(description="Log-probability of the item's semantic ID under the model.")
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
