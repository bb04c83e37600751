"""Train a generator bundle end to end: split → embeddings → semantic IDs → lazy decoder → bundle.

genrec train --dataset ml-100k --out artifacts/bundles/ml-100k
torchrun --nproc-per-node 2 -m pipeline.cli train --dataset ml-100k --out artifacts/bundles/ml-100k
"""

from __future__ import annotations

import copy
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from model.bundle import Catalog, save_bundle
from model.config import GeneratorConfig, generator_small
from model.generators import build_generator
from model.lazy_decoder import LazyDecoder
from model.precision import inference_dtype
from model.recommender import Recommender, gather_windows
from pipeline.datasets import Dataset
from pipeline.distributed import (
    all_reduce_gradients,
    broadcast_array,
    broadcast_floats,
    broadcast_module,
    is_main,
    mean_across_ranks,
    rank,
    world_size,
)
from pipeline.embeddings import EmbeddingKind, item_embeddings
from pipeline.evaluate import evaluate_ranker, generator_ranker, popularity_ranker
from pipeline.split import Examples, Split, build_sequences, leave_one_out
from tokenizer.config import TokenizerConfig
from tokenizer.semantic_ids import SemanticIds, fit_semantic_ids
from tokenizer.trie import PrefixTrie

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings; early stopping watches validation NDCG@10."""

    epochs: int = 12
    batch_size: int = 32  # runs of targets per step
    chunk_size: int = 16  # targets per run (one shared context)
    lr: float = 3e-3
    weight_decay: float = 0.01
    warmup_steps: int = 100
    label_smoothing: float = 0.0
    grad_clip: float = 1.0
    patience: int = 4
    eval_beam: int = 32
    seed: int = 0
    max_minutes: float | None = None
    # Forward passes under bfloat16 autocast ("auto": where the CPU multiplies it natively,
    # see model.precision); weights, optimizer and validation stay float32.
    precision: str = "float32"
    # > 0: validate and keep an exponential moving average of the weights (decay per step)
    # instead of the weights themselves: the average of the last few hundred steps of a noisy
    # small-batch run generalizes better than any one of them.
    ema: float = 0.0


@dataclass
class Chunks:
    """Training targets in runs of up to `size` consecutive positions of one user.

    A run shares one context: the items from `max_history` before its first target up to
    its last target; each target sees only its own last `max_history` items (via the bias).
    Runs are what a step batches, so every history item is projected once per run, not
    once per target.
    """

    first: np.ndarray  # flat index of the run's first target
    count: np.ndarray  # targets in the run
    user_start: np.ndarray  # flat index of the user's first item

    def __len__(self) -> int:
        return len(self.first)

    def subset(self, idx: np.ndarray) -> Chunks:
        return Chunks(self.first[idx], self.count[idx], self.user_start[idx])


def make_chunks(train: Examples, size: int) -> Chunks:
    """Group training examples (user-major, positions ascending) into runs of ≤ size."""
    position = train.ends - train.starts  # ≥ 1
    new_run = np.ones(len(train), dtype=bool)
    new_run[1:] = (train.users[1:] != train.users[:-1]) | ((position[1:] - 1) % size == 0)
    starts = np.flatnonzero(new_run)
    counts = np.diff(np.append(starts, len(train)))
    return Chunks(train.ends[starts], counts, train.starts[starts])


def make_batch(
    split: Split, chunks: Chunks, codes: torch.Tensor, max_history: int, size: int
) -> dict[str, torch.Tensor]:
    """Shared context windows (B, T), per-target key distances (B, W, T) and targets (B, W, L)."""
    flat = split.sequences.items
    key_end = chunks.first + chunks.count - 1  # keys stop before the run's last target
    key_start = np.maximum(chunks.user_start, chunks.first - max_history)
    items_np, valid_np = gather_windows(flat, key_start, key_end, max_history + size - 1)
    T = items_np.shape[1]
    key_pos = key_end[:, None] - T + np.arange(T)  # (B, T) flat positions
    w = np.arange(size)
    target_mask = w[None] < chunks.count[:, None]  # (B, W)
    target_pos = chunks.first[:, None] + np.where(
        target_mask, w[None], 0
    )  # padding repeats the first
    items = torch.from_numpy(items_np)
    return {
        "hist_codes": codes[items],  # (B, T, L)
        "hist_items": items,  # (B, T)
        "distance": torch.from_numpy(target_pos[:, :, None] - key_pos[:, None, :]),  # (B, W, T)
        "valid": torch.from_numpy(
            np.broadcast_to(valid_np[:, None, :], (len(chunks), size, T)).copy()
        ),
        "target_codes": codes[torch.from_numpy(flat[target_pos])],  # (B, W, L)
        "target_items": torch.from_numpy(flat[target_pos]),  # (B, W)
        "target_mask": torch.from_numpy(target_mask),  # (B, W)
    }


def lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warm-up, then cosine decay to 10%."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))


def optimize(
    model: torch.nn.Module,
    chunks: Chunks,
    step_loss: Callable[[Chunks], torch.Tensor],
    validate: Callable[[], dict[str, float]] | None,
    cfg: TrainConfig,
) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    """AdamW over shuffled runs with warm-up + cosine; keeps the weights with the best
    validation NDCG@10 and stops after `patience` epochs without a gain. Returns them and the curve.
    With no `validate` (nothing held out) it trains every epoch and keeps the last weights.

    Under torchrun every rank shuffles alike and takes its shard of each step's runs; gradients
    are averaged across ranks (pipeline.distributed), rank 0 validates and all ranks follow
    its early-stopping decision, so N processes take the same steps as one.
    """
    broadcast_module(model)
    torch.manual_seed(cfg.seed + rank())
    rng = np.random.default_rng(cfg.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(len(chunks) / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, cfg.warmup_steps, total))
    best, best_state, curve, bad = -1.0, copy.deepcopy(model.state_dict()), [], 0
    mixed = inference_dtype(cfg.precision) == torch.bfloat16
    ema = (
        AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema), use_buffers=True)
        if cfg.ema
        else None
    )
    started = time.monotonic()
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        order = rng.permutation(len(chunks))
        losses = []
        bar = tqdm(
            range(steps_per_epoch),
            desc=f"epoch {epoch}",
            leave=False,
            mininterval=1.0,
            disable=not is_main(),
        )
        for step in bar:
            batch = order[step * cfg.batch_size : (step + 1) * cfg.batch_size]
            mine = batch[rank() :: world_size()]  # this rank's shard (all of it in one process)
            opt.zero_grad(set_to_none=True)
            if len(mine):
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mixed):
                    loss = step_loss(chunks.subset(mine))
                share = chunks.count[mine].sum() / chunks.count[batch].sum()
                (loss * float(share)).backward()
                losses.append(loss.item())
            all_reduce_gradients(model)
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            sched.step()
            if ema is not None:
                ema.update_parameters(model)
            if step % 20 == 0:
                bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}", refresh=False)
        model.eval()
        live = None
        if ema is not None:  # judge (and keep) the averaged weights
            live = copy.deepcopy(model.state_dict())
            model.load_state_dict(ema.module.state_dict())
        val = validate() if validate and is_main() else {"ndcg@10": 0.0, "recall@10": 0.0}
        ndcg, recall, elapsed = broadcast_floats(
            [val["ndcg@10"], val["recall@10"], time.monotonic() - started]
        )
        point: dict[str, Any] = {
            "epoch": epoch,
            "train_loss": mean_across_ranks(float(np.mean(losses))),
            "lr": sched.get_last_lr()[0],
            "seconds": round(elapsed, 1),
        }
        if validate:
            point |= {"valid_ndcg@10": ndcg, "valid_recall@10": recall}
        curve.append(point)
        log.info("epoch %s", json.dumps(point))
        if validate is None or ndcg > best:
            best, best_state, bad = ndcg, copy.deepcopy(model.state_dict()), 0
        else:
            bad += 1
        if live is not None:
            model.load_state_dict(live)
        if bad >= cfg.patience:
            log.info("early_stop epoch=%d best_valid_ndcg@10=%.4f", epoch, best)
            break
        if cfg.max_minutes and elapsed > 60 * cfg.max_minutes:
            log.info("time_budget_reached epoch=%d minutes=%.1f", epoch, cfg.max_minutes)
            break
    return best_state, curve


def fit(
    model: LazyDecoder, codes: np.ndarray, split: Split, cfg: TrainConfig
) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    """Train the generator on runs of training targets; select on validation NDCG@10 (a split
    with no validation targets, `every_position`, keeps the last epoch)."""
    codes_t = torch.from_numpy(codes)
    trie = PrefixTrie.build(codes, model.cfg.codebook_sizes)

    def step_loss(run: Chunks) -> torch.Tensor:
        batch = make_batch(split, run, codes_t, model.cfg.max_history, cfg.chunk_size)
        return model.train_loss(batch, cfg.label_smoothing)

    def validate() -> dict[str, float]:
        rec = Recommender(model, codes, trie)
        return evaluate_ranker(generator_ranker(rec, cfg.eval_beam), split, split.valid)

    chunks = make_chunks(split.train, cfg.chunk_size)
    return optimize(model, chunks, step_loss, validate if len(split.valid) else None, cfg)


def train(
    dataset: Dataset,
    out: Path,
    *,
    generator: GeneratorConfig | None = None,
    tokenizer: TokenizerConfig | None = None,
    cfg: TrainConfig | None = None,
    embedding: EmbeddingKind = "collab",
    embedding_path: Path | None = None,
    test_beam: int = 64,
) -> Path:
    """The whole offline job; writes a bundle to `out` and returns its path."""
    generator = generator or generator_small()
    tokenizer = tokenizer or TokenizerConfig(seed=(cfg or TrainConfig()).seed)
    cfg = cfg or TrainConfig()
    log.info(
        "config %s",
        json.dumps(
            {
                "generator": generator.to_dict(),
                "tokenizer": tokenizer.to_dict(),
                "train": asdict(cfg),
                "embedding": embedding,
                "data": dataset.spec,
            }
        ),
    )
    split = leave_one_out(build_sequences(dataset))
    seqs = split.sequences
    log.info(
        "data users=%d items=%d interactions=%d train_examples=%d",
        len(seqs.user_ids),
        seqs.n_items,
        len(seqs.items),
        len(split.train),
    )
    trained = train_generator(
        split, dataset.items, generator, tokenizer, cfg, embedding, embedding_path
    )
    if not is_main():  # under torchrun only rank 0 evaluates and writes the bundle
        return Path(out)
    model, semantic_ids = trained.model, trained.semantic_ids
    metrics = test_metrics(model, semantic_ids, split, test_beam)
    log.info("test %s", json.dumps(metrics))
    return save_bundle(
        out,
        model=model,
        semantic_ids=semantic_ids,
        catalog=catalog_of(dataset, split),
        histories=recent_histories(split, generator.max_history),
        manifest={
            "data": dataset.spec,
            "embedding": embedding,
            "training": {
                **asdict(cfg),
                "curve": trained.curve,
                "seconds": round(trained.seconds, 1),
            },
            "metrics": metrics,
        },
    )


@dataclass
class Trained:
    model: LazyDecoder
    semantic_ids: SemanticIds
    curve: list[dict[str, Any]]
    seconds: float


def train_generator(
    split: Split,
    items: pd.DataFrame,
    generator: GeneratorConfig,
    tokenizer: TokenizerConfig,
    cfg: TrainConfig,
    embedding: EmbeddingKind = "collab",
    embedding_path: Path | None = None,
) -> Trained:
    """Embeddings → semantic IDs → generator fitted on `split`, the best validation epoch kept."""
    x = item_embeddings(embedding, split, items, embedding_path, seed=cfg.seed)
    semantic_ids = fit_semantic_ids(x, tokenizer)
    semantic_ids.codes = broadcast_array(semantic_ids.codes)  # under torchrun: rank 0's IDs
    log.info("tokenizer %s", json.dumps(semantic_ids.report))
    config = generator.for_catalog(semantic_ids.codebook_sizes, split.sequences.n_items)
    torch.manual_seed(cfg.seed)  # torch seeds itself randomly per process: make init repeatable
    model = cast(LazyDecoder, build_generator(config))
    log.info("model params=%d", sum(p.numel() for p in model.parameters()))
    started = time.monotonic()
    state, curve = fit(model, semantic_ids.codes, split, cfg)
    model.load_state_dict(state)
    if isinstance(model, LazyDecoder) and model.dense is not None and is_main():
        tune_dense_alpha(model.eval(), semantic_ids.codes, split, cfg.eval_beam)
    return Trained(model.eval(), semantic_ids, curve, time.monotonic() - started)


def tune_dense_alpha(
    model: LazyDecoder,
    codes: np.ndarray,
    split: Split,
    beam: int,
    grid: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0),
) -> float:
    """Pick the weight of the dense head in the final re-ranking on validation NDCG@10."""
    scores = {}
    for alpha in grid:
        model.cfg = replace(model.cfg, dense_alpha=alpha)
        rec = Recommender(model, codes)
        scores[alpha] = evaluate_ranker(generator_ranker(rec, beam), split, split.valid)["ndcg@10"]
    best = max(scores, key=lambda a: scores[a])
    model.cfg = replace(model.cfg, dense_alpha=best)
    log.info("dense_alpha %s chosen=%s", json.dumps(scores), best)
    return best


def test_metrics(
    model: LazyDecoder, semantic_ids: SemanticIds, split: Split, beam: int
) -> dict[str, Any]:
    rec = Recommender(model, semantic_ids.codes)
    return {
        "split": "test",
        "beam_width": beam,
        "genrec": evaluate_ranker(generator_ranker(rec, beam), split, split.test),
        "pop": evaluate_ranker(popularity_ranker(split.popularity()), split, split.test),
    }


def catalog_of(dataset: Dataset, split: Split) -> Catalog:
    ids = split.sequences.item_ids
    titles = dataset.items.set_index("item_id")["title"].reindex(ids).fillna("")
    return Catalog(ids, [str(t) for t in titles], split.popularity())


def recent_histories(split: Split, max_history: int) -> dict[str, list[str]]:
    """Each user's latest items (external IDs), to seed the service's history store."""
    seqs = split.sequences
    ids = np.asarray(seqs.item_ids)
    return {u: ids[seqs.history(i)[-max_history:]].tolist() for i, u in enumerate(seqs.user_ids)}
