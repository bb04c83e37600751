"""Retrain the served bundle on new events and publish it only if it passes the quality gate.

genrec retrain --store artifacts/store --redis-url redis://localhost:6379/0

Stages, each logged as `retrain stage=…`: read the events after the current bundle's stream
checkpoints, one per partition the service recorded (at most `max_events` per run, in pages: a backlog of any length is consumed over
several runs in bounded memory) → merge them with the base data and earlier events → semantic
IDs for new items (frozen codebooks; `refit_tokenizer` fits new ones) → warm-start the
generator on every position but each user's last two (selected on the second-to-last) → score
the candidate and the served model on the held-out last items of the users with new events →
gate → a final pass through every position → write the bundle → switch `current` → trim the
consumed events.

Why a final pass: leave-one-out holds each user's two newest items out, and the newest
interactions are exactly where new items and trends live; a model that never trains on them
cannot recommend the item everyone just moved to. So the gate judges the candidate on held-out
data, and the published model is that candidate trained on for `final_epochs` more over every
position (new items re-placed in the codebooks from all their co-occurrences). Its weights have
then seen every held-out item of the data it was trained on, so the next gate scores both
models only on users with new events: their newest items are new to both.

The switch is the only commit point: a crash
before it leaves the served bundle and the stream untouched; a crash after it leaves events
that the new current already holds, which the next run trims first. Reruns are safe, and a
lock keeps two runs from overlapping.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import pandas as pd

from model.bundle import Bundle, BundleError, load_bundle, new_version, save_bundle
from model.lazy_decoder import LazyDecoder
from model.recommender import Recommender
from model.warm_start import warm_start
from pipeline.datasets import Dataset, load_dataset
from pipeline.embeddings import item_embeddings
from pipeline.evaluate import evaluate_ranker, generator_ranker, popularity_ranker
from pipeline.events import (
    EVENTS_FILE,
    StreamsBatch,
    SyncClient,
    bundle_events,
    checkpoints,
    events_bytes,
    read_streams,
    stored_keys,
    trim_through,
    with_events,
)
from pipeline.fold_in import fold_in
from pipeline.gate import quality_gate, served_model_ranker
from pipeline.publish import BundleStore
from pipeline.split import Examples, Split, build_sequences, every_position, leave_one_out
from pipeline.train import TrainConfig, catalog_of, fit, recent_histories
from tokenizer.semantic_ids import SemanticIds, fit_semantic_ids

log = logging.getLogger(__name__)

REJECTED_EXIT_CODE = 3


@dataclass(frozen=True)
class RetrainConfig:
    """How a retrain trains and decides. `tolerance` is absolute NDCG@10."""

    tolerance: float = 0.005
    refit_tokenizer: bool = False
    min_events: int = 1
    max_events: int = 250_000  # per run (the rest stays for the next): bounds the reader's memory
    epochs: int = 4
    final_epochs: int = 2  # the pass through every position after the gate
    lr: float = 1e-3
    warmup_steps: int = 20
    patience: int = 2
    max_minutes: float | None = None
    test_beam: int = 64
    keep_versions: int = 5
    redis_prefix: str = "genrec"


@dataclass
class RetrainResult:
    status: Literal["published", "rejected", "no_new_events"]
    summary: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


def stage(name: str, **fields: Any) -> None:
    log.info("retrain stage=%s %s", name, json.dumps(fields, default=str))


def retrain(
    store: BundleStore, client: SyncClient, data_dir: Path, cfg: RetrainConfig
) -> RetrainResult:
    """The whole job; `client` (a Redis or a Redis Cluster) must decode responses. Holds the
    store's lock throughout."""
    started = time.monotonic()
    log.info("config %s", json.dumps({"retrain": asdict(cfg), "store": str(store.root)}))
    with store.lock():
        store.prune(cfg.keep_versions)  # also clears what a crashed run left in staging
        current = load_current(store)
        keys = stored_keys(client, cfg.redis_prefix)
        after = checkpoints(current.manifest.get("stream", {}), keys)
        recovered = trim(client, after)  # a crash between publish and trim
        batch = read_streams(client, after, max_events=cfg.max_events)
        backlog = sum(int(client.xlen(key)) for key in keys.streams)
        summary: dict[str, Any] = {
            "parent": current.version,
            "events_consumed": len(batch),
            "events_left_for_next_run": max(0, backlog - len(batch)),
            "stream": {"after": after, **batch.manifest()},
            "trimmed_before": recovered,
        }
        stage("events", **summary)
        if len(batch) < cfg.min_events:
            stage("done", status="no_new_events", min_events=cfg.min_events)
            return RetrainResult("no_new_events", summary)
        return _train_and_gate(store, client, data_dir, cfg, current, batch, summary, started)


def trim(client: SyncClient, last_ids: dict[str, str | None]) -> int:
    """Trim every stream through its checkpoint (one key per call: no cross-slot command)."""
    return sum(trim_through(client, key, last_id) for key, last_id in last_ids.items())


def load_current(store: BundleStore) -> Bundle:
    if store.current_version() is None:
        raise BundleError(
            f"{store.root} has no current bundle: run `genrec train --store {store.root}` "
            f"or `genrec publish BUNDLE --store {store.root}` first"
        )
    return load_bundle(store.current)


def _train_and_gate(
    store: BundleStore,
    client: SyncClient,
    data_dir: Path,
    cfg: RetrainConfig,
    current: Bundle,
    batch: StreamsBatch,
    summary: dict[str, Any],
    started: float,
) -> RetrainResult:
    base = load_dataset(current.manifest["data"], data_dir)
    previous = bundle_events(current)
    events = pd.concat([previous, batch.frame], ignore_index=True)
    dataset = with_events(base, events)
    known_users = set(base.interactions["user_id"]) | set(previous["user_id"])
    new_items = [i for i in dict.fromkeys(batch.frame["item_id"]) if i not in current.catalog.index]
    item_ids = current.catalog.item_ids + new_items  # the catalog only appends
    split = leave_one_out(build_sequences(dataset, item_ids))
    summary |= {
        "events_total": len(events),
        "new_users": len(set(batch.frame["user_id"]) - known_users),
        "new_items": len(new_items),
        "new_item_examples": new_items[:20],
        "items": len(item_ids),
        "users": len(split.sequences.user_ids),
        "interactions": len(split.sequences.items),
    }
    stage("data", **{k: summary[k] for k in ("events_total", "new_users", "new_items", "items")})

    semantic_ids = code_items(current, split, dataset, len(new_items), cfg.refit_tokenizer)
    summary["refit_tokenizer"] = cfg.refit_tokenizer
    stage("semantic_ids", refit=cfg.refit_tokenizer, codebook_sizes=semantic_ids.codebook_sizes)

    model_cfg = current.model.cfg.for_catalog(semantic_ids.codebook_sizes, len(item_ids))
    model = warm_start(current.model, model_cfg, keep_codes=not cfg.refit_tokenizer)
    train_cfg = retrain_config(current, cfg)
    fit_started = time.monotonic()
    state, curve = fit(model, semantic_ids.codes, split, train_cfg)
    model.load_state_dict(state)
    train_seconds = round(time.monotonic() - fit_started, 1)
    stage("trained", epochs=len(curve), seconds=train_seconds)

    judged = gate_examples(split, set(batch.frame["user_id"]))
    candidate = judged_metrics(model, semantic_ids, split, judged.examples, cfg.test_beam)
    served = served_metrics(current, split, len(current.catalog), cfg.test_beam, judged.examples)
    decision = quality_gate(served, candidate["genrec"], cfg.tolerance)
    summary |= {
        "metrics": {"current": served, "candidate": candidate["genrec"], "pop": candidate["pop"]},
        "gate": {**decision.to_dict(), "users": judged.who, "examples": len(judged.examples)},
        "published": decision.passed,
    }
    stage("gate", **summary["gate"])

    final: dict[str, Any] = {}
    if decision.passed:
        semantic_ids, final = final_pass(
            model, semantic_ids, current, dataset, split, train_cfg, cfg
        )
        stage("final_pass", **{k: v for k, v in final.items() if k != "curve"})
    summary["seconds"] = round(time.monotonic() - started, 1)

    version = new_version()
    path = save_bundle(
        store.staging(),
        model=model,
        semantic_ids=semantic_ids,
        catalog=catalog_of(dataset, split),
        histories=recent_histories(split, model_cfg.max_history),
        manifest={
            "version": version,
            "parent": current.version,
            "data": current.manifest["data"],
            "embedding": current.manifest.get("embedding", "collab"),
            "events": {"file": EVENTS_FILE, "count": len(events), "new": len(batch)},
            "stream": batch.manifest(),
            "training": {
                **asdict(train_cfg),
                "curve": curve,
                "seconds": train_seconds,
                "warm_start": current.version,
                "final_pass": final or None,
            },
            "metrics": {
                **candidate,
                "measured_on": f"the candidate before its final pass; test items of "
                f"{judged.who} ({len(judged.examples)})",
            },
            "retrain": summary,
        },
        extra_files={EVENTS_FILE: events_bytes(events)},
    )
    summary["version"] = version
    if not decision.passed:
        rejected = store.reject(path)
        stage("done", status="rejected", kept=str(rejected))
        return RetrainResult("rejected", summary, rejected)
    store.publish(path, move=True)
    stage("published", version=version)
    summary["trimmed"] = trim(client, batch.last_ids)
    store.prune(cfg.keep_versions)
    stage("done", status="published", version=version, trimmed=summary["trimmed"])
    return RetrainResult("published", summary, store.path(version))


def code_items(
    current: Bundle, split: Split, dataset: Dataset, n_new: int, refit: bool
) -> SemanticIds:
    """Semantic IDs for the grown catalog: new items from the frozen codebooks (existing IDs
    unchanged) after a collaborative fold-in, or new codebooks for every item with `refit`."""
    if refit:
        kind = current.manifest.get("embedding", "collab")
        if kind == "file":
            raise ValueError("--refit-tokenizer cannot recompute a user-supplied embedding file")
        seed = current.semantic_ids.config.seed
        return fit_semantic_ids(
            item_embeddings(kind, split, dataset.items, seed=seed), current.semantic_ids.config
        )
    frozen = current.semantic_ids
    semantic_ids = replace(frozen, codes=frozen.codes.copy(), report=dict(frozen.report))
    if n_new:
        n_known = len(frozen.codes)
        known = frozen.quantizer.decode(frozen.codes[:, : frozen.quantizer.n_levels])
        semantic_ids.extend(fold_in(split, known, np.arange(n_known, n_known + n_new)))
        semantic_ids.report["extended_items"] = (
            cast(int, frozen.report.get("extended_items", 0)) + n_new
        )
    return semantic_ids


@dataclass(frozen=True)
class GateExamples:
    examples: Examples
    who: Literal["users with new events", "all users"]


def gate_examples(split: Split, event_users: set[str]) -> GateExamples:
    """The test examples of users with new events: their newest item is new to the served
    model (whose final pass trained through every item it was given) and to the candidate
    (held out). Only when none of them has a test example (all new users with < 3 items)
    are all users' test examples used."""
    user_ids = np.asarray(split.sequences.user_ids)
    fresh = np.flatnonzero(np.isin(user_ids[split.test.users], list(event_users)))
    if len(fresh):
        return GateExamples(split.test.subset(fresh), "users with new events")
    return GateExamples(split.test, "all users")


def final_pass(
    model: LazyDecoder,
    semantic_ids: SemanticIds,
    current: Bundle,
    dataset: Dataset,
    split: Split,
    train_cfg: TrainConfig,
    cfg: RetrainConfig,
) -> tuple[SemanticIds, dict[str, Any]]:
    """Train the judged candidate on through every position, the held-out newest ones too.

    With frozen codebooks the new items are coded again from all their co-occurrences (the
    candidate's fold-in could only use training positions, and an item seen only in the
    newest positions had none); with refit codebooks the candidate's IDs stay.
    """
    everything = every_position(split.sequences)
    if not cfg.refit_tokenizer:
        n_new = len(semantic_ids.codes) - len(current.semantic_ids.codes)
        semantic_ids = code_items(current, everything, dataset, n_new, refit=False)
    started = time.monotonic()
    final_cfg = replace(
        train_cfg, epochs=cfg.final_epochs, warmup_steps=0, patience=cfg.final_epochs
    )
    state, curve = fit(model, semantic_ids.codes, everything, final_cfg)
    model.load_state_dict(state)
    return semantic_ids, {
        "epochs": cfg.final_epochs,
        "targets": len(everything.train),
        "seconds": round(time.monotonic() - started, 1),
        "curve": curve,
    }


def retrain_config(current: Bundle, cfg: RetrainConfig) -> TrainConfig:
    """The parent's training settings, with the retrain's shorter warm-start schedule."""
    names = {f.name for f in fields(TrainConfig)}
    parent = {k: v for k, v in current.manifest.get("training", {}).items() if k in names}
    return replace(
        TrainConfig(**parent),
        epochs=cfg.epochs,
        lr=cfg.lr,
        warmup_steps=cfg.warmup_steps,
        patience=cfg.patience,
        max_minutes=cfg.max_minutes,
    )


def judged_metrics(
    model: LazyDecoder, semantic_ids: SemanticIds, split: Split, examples: Examples, beam: int
) -> dict[str, Any]:
    """The candidate's and popularity's metrics on the gate's examples."""
    rec = Recommender(model, semantic_ids.codes)
    return {
        "split": "test",
        "beam_width": beam,
        "genrec": evaluate_ranker(generator_ranker(rec, beam), split, examples),
        "pop": evaluate_ranker(popularity_ranker(split.popularity()), split, examples),
    }


def served_metrics(
    current: Bundle, split: Split, n_known: int, beam: int, examples: Examples
) -> dict[str, float]:
    rec = Recommender(current.model, current.semantic_ids.codes)
    return evaluate_ranker(served_model_ranker(rec, n_known, beam), split, examples)
