"""The stages of benchmarks/scale.py, each run in a process of its own so that its peak memory
(ru_maxrss) is its own and no stage's leftovers inflate the next.

    python benchmarks/scale_stages.py STAGE --work DIR --items N --events E

prints one JSON object on its last stdout line. `base_mb` is the process's RSS once its inputs
are loaded, just before the measured work; `peak_mb` its high-water mark (VmHWM); the growth of a cost
is read from `peak_mb - base_mb` where the interpreter and torch (~300 MB) would hide it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

STEPS = 60  # optimizer steps timed per training run (batch 32 runs × ≤ 16 targets)
BEAM, K = 64, 10


def rss_mb() -> float:
    import psutil

    return float(psutil.Process().memory_info().rss / 2**20)


def peak_mb() -> float:
    """This process's RSS high-water mark (VmHWM). Not ru_maxrss: Linux carries the parent's
    high-water mark at fork over into the child's ru_maxrss across exec."""
    status = Path("/proc/self/status").read_text()
    return int(next(ln for ln in status.splitlines() if ln.startswith("VmHWM")).split()[1]) / 1024


def stage_data(work: Path, items: int, events: int) -> dict[str, Any]:
    """Generate the synthetic log, keep it as arrays and as the Parquet file `genrec train` reads."""
    from synthetic_log import synthetic_log

    started = time.perf_counter()
    log = synthetic_log(items, events, seed=0)
    seconds = time.perf_counter() - started
    work.mkdir(parents=True, exist_ok=True)
    np.save(work / "embeddings.npy", log.embeddings)
    np.savez(work / "log.npz", users=log.users, items=log.items, topics=log.topics)
    log.write_parquet(work / "interactions.parquet")
    pop = np.sort(np.bincount(log.items, minlength=items))[::-1]
    same_user = log.users[1:] == log.users[:-1]
    return {
        "generate_s": seconds,
        "users": log.n_users,
        "items_used": int((pop > 0).sum()),
        "top1pct_share": float(pop[: max(1, items // 100)].sum() / events),
        "next_is_successor": float(
            (log.items[1:] == log.successor(log.items[:-1]))[same_user].mean()
        ),
        "parquet_mb": (work / "interactions.parquet").stat().st_size / 2**20,
    }


def stage_load(work: Path, items: int, events: int) -> dict[str, Any]:
    """What `genrec train --interactions FILE` does before any model work: read, sequence, split."""
    from pipeline.datasets import load_files
    from pipeline.split import build_sequences, leave_one_out

    base = rss_mb()
    started = time.perf_counter()
    dataset = load_files(work / "interactions.parquet")
    read_s = time.perf_counter() - started
    split = leave_one_out(build_sequences(dataset))
    return {
        "base_mb": base,
        "read_s": read_s,
        "seconds": time.perf_counter() - started,
        "peak_mb": peak_mb(),
        "train_examples": len(split.train),
    }


def _split(work: Path):  # type: ignore[no-untyped-def]
    """The log as a leave-one-out split; item index = synthetic item (as the embeddings)."""
    from pipeline.split import Sequences, leave_one_out

    log = np.load(work / "log.npz")
    users, items = log["users"], log["items"]
    n_users, n_items = int(users[-1]) + 1, len(np.load(work / "embeddings.npy", mmap_mode="r"))
    offsets = np.concatenate([[0], np.cumsum(np.bincount(users, minlength=n_users))])
    seqs = Sequences(
        [str(u) for u in range(n_users)], [str(i) for i in range(n_items)], offsets, items
    )
    return leave_one_out(seqs)


def stage_collab(work: Path, items: int, events: int) -> dict[str, Any]:
    """`--embedding collab` (the default): PPMI of item co-occurrence within users, then SVD."""
    from pipeline.embeddings import collaborative

    split = _split(work)
    base = rss_mb()
    started = time.perf_counter()
    x = collaborative(split)
    return {
        "base_mb": base,
        "seconds": time.perf_counter() - started,
        "peak_mb": peak_mb(),
        "dim": int(x.shape[1]),
    }


def stage_tokenizer(work: Path, items: int, events: int) -> dict[str, Any]:
    """Fit semantic IDs on the synthetic embeddings; build the prefix trie; save both."""
    from safetensors.numpy import save_file

    from model.beam_search import TrieTensors
    from tokenizer.config import TokenizerConfig
    from tokenizer.semantic_ids import fit_semantic_ids
    from tokenizer.trie import PrefixTrie

    x = np.load(work / "embeddings.npy")
    base = rss_mb()
    started = time.perf_counter()
    sid = fit_semantic_ids(x, TokenizerConfig(seed=0))
    fit_s = time.perf_counter() - started
    fit_peak = peak_mb()
    save_file(sid.tensors(), str(work / "tokenizer.safetensors"))
    (work / "tokenizer.json").write_text(json.dumps({"config": sid.config.to_dict(), **sid.meta()}))
    started = time.perf_counter()
    trie = PrefixTrie.build(sid.codes, sid.codebook_sizes)
    tensors = TrieTensors.from_trie(trie)
    trie_s = time.perf_counter() - started
    sizes = sid.codebook_sizes
    return {
        "base_mb": base,
        "fit_s": fit_s,
        "peak_mb": fit_peak,
        "levels": sid.quantizer.n_levels,
        "codebook_size": sid.codebook_size,
        "dedup_size": sid.dedup_size,
        "id_space": sid.codebook_size**sid.quantizer.n_levels,
        "collision_rate": sid.report["collision_rate"],
        "collision_rate_resolved": sid.report["collision_rate_resolved"],
        "largest_group": sid.report["max_items_per_code"],
        "reconstruction_error": sid.report["reconstruction_error"],
        "trie_build_s": trie_s,
        "trie_nodes": [trie.n_nodes(level) for level in range(trie.n_levels)],
        "trie_bytes": trie.nbytes,
        "trie_tensors_bytes": tensors.nbytes,
        "dense_tables_bytes": sum(
            trie.n_nodes(level) * sizes[level] * 8 for level in range(trie.n_levels)
        ),
    }


def _semantic_ids(work: Path):  # type: ignore[no-untyped-def]
    from safetensors.numpy import load_file

    from tokenizer.config import TokenizerConfig
    from tokenizer.semantic_ids import SemanticIds

    meta = json.loads((work / "tokenizer.json").read_text())
    config = TokenizerConfig.from_dict(meta["config"])
    return SemanticIds.from_tensors(config, meta, load_file(str(work / "tokenizer.safetensors")))


def stage_train(work: Path, items: int, events: int) -> dict[str, Any]:
    """`STEPS` optimizer steps of the default generator (examples/s and peak RSS of training),
    then the bundle a short training gives: what the serving stages load."""
    import torch

    from model.bundle import Catalog, save_bundle
    from model.config import generator_small
    from model.lazy_decoder import LazyDecoder
    from pipeline.train import TrainConfig, make_batch, make_chunks, optimize, recent_histories

    split = _split(work)
    sid = _semantic_ids(work)
    cfg = TrainConfig(epochs=1, warmup_steps=10, seed=0)
    torch.manual_seed(0)
    model = LazyDecoder(generator_small().for_catalog(sid.codebook_sizes, items))
    codes = torch.from_numpy(sid.codes)
    chunks = make_chunks(split.train, cfg.chunk_size)
    pick = np.random.default_rng(0).permutation(len(chunks))[: STEPS * cfg.batch_size]
    run = chunks.subset(np.sort(pick))

    def step_loss(c):  # type: ignore[no-untyped-def]
        return model.train_loss(make_batch(split, c, codes, model.cfg.max_history, cfg.chunk_size))

    base = rss_mb()
    started = time.perf_counter()
    state, _ = optimize(model, run, step_loss, None, cfg)
    train_s = time.perf_counter() - started
    train_peak = peak_mb()
    model.load_state_dict(state)
    examples = int(run.count.sum())
    started = time.perf_counter()
    bundle = save_bundle(
        work / "bundle",
        model=model.eval(),
        semantic_ids=sid,
        catalog=Catalog(
            [str(i) for i in range(items)],
            [f"Item {i}" for i in range(items)],
            split.popularity(),
        ),
        histories=recent_histories(split, model.cfg.max_history),
        manifest={"data": {"synthetic": {"items": items, "events": events}}},
    )
    files = {p.name: p.stat().st_size for p in bundle.iterdir()}
    return {
        "base_mb": base,
        "params": sum(p.numel() for p in model.parameters()),
        "item_table_params": model.context.items.item_emb.weight.numel()
        if model.context.items.item_emb is not None
        else 0,
        "steps": STEPS,
        "examples": examples,
        "train_s": train_s,
        "examples_per_s": examples / train_s,
        "train_examples": len(split.train),
        "epoch_s_projected": len(split.train) / (examples / train_s),
        "peak_mb": train_peak,
        "save_s": time.perf_counter() - started,
        "save_peak_mb": peak_mb(),
        "bundle_bytes": sum(files.values()),
        "bundle_files": files,
    }


def _histories(work: Path, count: int, min_len: int = 20) -> list[np.ndarray]:
    split = _split(work)
    seqs = split.sequences
    users = np.flatnonzero(seqs.lengths >= min_len)[:count]
    return [seqs.history(int(u))[-50:] for u in users]


def stage_bundle_load(work: Path, items: int, events: int) -> dict[str, Any]:
    """Load and verify the bundle, build the model side a worker builds (per-item context
    table, trie), then time decoding in process: batches of 8, beam 64, k = 10, one thread."""
    import torch

    from model.bundle import load_bundle
    from model.precision import inference_dtype
    from model.recommender import Recommender

    torch.set_num_threads(1)
    histories = _histories(work, 64)
    base = rss_mb()
    started = time.perf_counter()
    bundle = load_bundle(work / "bundle")
    load_s = time.perf_counter() - started
    loaded_mb = rss_mb()
    started = time.perf_counter()
    rec = Recommender(bundle.model, bundle.semantic_ids.codes, dtype=inference_dtype("auto"))
    build_s = time.perf_counter() - started
    built_mb = rss_mb()
    started = time.perf_counter()
    n_hist = len(bundle.histories)
    histories_s = time.perf_counter() - started
    with_histories_mb = rss_mb()
    batches = [histories[i : i + 8] for i in range(0, len(histories), 8)]
    for batch in batches[:2]:
        rec.recommend(batch, K, BEAM)
    times = []
    for _ in range(3):
        for batch in batches:
            started = time.perf_counter()
            rec.recommend(batch, K, BEAM)
            times.append((time.perf_counter() - started) * 1000)
    return {
        "base_mb": base,
        "load_s": load_s,
        "loaded_mb": loaded_mb,
        "build_s": build_s,
        "built_mb": built_mb,
        "histories_users": n_hist,
        "histories_s": histories_s,
        "histories_mb": with_histories_mb - built_mb,
        "peak_mb": peak_mb(),
        "dtype": str(next(rec.model.parameters()).dtype),
        "batch8_ms_p50": float(np.percentile(times, 50)),
        "batch8_ms_p90": float(np.percentile(times, 90)),
    }


def stage_dense(work: Path, items: int, events: int) -> dict[str, Any]:
    """The dense head's re-rank at this catalog size (an untrained head: cost, not quality):
    scoring every item (the reference, O(N·C)) vs gathering the beam's W rows (O(W·C))."""
    import torch

    from model.config import generator_small
    from model.lazy_decoder import LazyDecoder
    from model.precision import inference_dtype
    from model.recommender import Recommender

    torch.set_num_threads(1)
    sid = _semantic_ids(work)
    histories = _histories(work, 8)
    torch.manual_seed(0)
    cfg = replace(generator_small(), dense_weight=1.0, dense_alpha=0.5)
    model = LazyDecoder(cfg.for_catalog(sid.codebook_sizes, items)).eval()
    rec = Recommender(model, sid.codes, dtype=inference_dtype("auto"))
    m = rec.model
    with torch.inference_mode():
        ctx = rec.context(histories)
        beam_items = torch.randint(0, items, (len(histories), BEAM))

        def full() -> None:
            m.dense_log_probs(*ctx).gather(1, beam_items)

        def gathered() -> None:
            m.dense_scores(m.bos_state(*ctx), beam_items)

        out = {}
        for name, fn in (("all_items", full), ("beam_items", gathered)):
            fn()
            times = []
            for _ in range(10):
                started = time.perf_counter()
                fn()
                times.append((time.perf_counter() - started) * 1000)
            out[f"{name}_ms_p50"] = float(np.percentile(times, 50))
    return {"batch": len(histories), "beam": BEAM, **out}


def stage_item_table(work: Path, items: int, events: int) -> dict[str, Any]:
    """What one optimizer step costs the item-id table (N, C) alone: the backward of a
    batch's gather (a dense N×C gradient), gradient clipping and AdamW, as in training. Every
    row is read and written every step, however few items the batch touched."""
    import torch

    from model.config import generator_small

    C = generator_small().d_model
    torch.manual_seed(0)
    table = torch.nn.Parameter(0.02 * torch.randn(items, C))
    opt = torch.optim.AdamW([table], lr=1e-3, weight_decay=0.01)
    rows = torch.randint(0, items, (32 * 65,))  # a batch's history and target items
    times = []
    for _ in range(6):
        started = time.perf_counter()
        table[rows].sum().backward()
        torch.nn.utils.clip_grad_norm_([table], 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - started)
    return {
        "rows_touched": int(rows.unique().numel()),
        "step_ms_p50": 1000 * float(np.median(times[1:])),
    }


STAGES = {
    "data": stage_data,
    "load": stage_load,
    "collab": stage_collab,
    "tokenizer": stage_tokenizer,
    "train": stage_train,
    "bundle_load": stage_bundle_load,
    "dense": stage_dense,
    "item_table": stage_item_table,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("stage", choices=sorted(STAGES))
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--items", type=int, required=True)
    parser.add_argument("--events", type=int, required=True)
    args = parser.parse_args()
    out = STAGES[args.stage](args.work, args.items, args.events)
    print(json.dumps(out, default=float))


if __name__ == "__main__":
    main()
