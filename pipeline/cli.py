"""The `genrec` command line: data, train, evaluate, info, recommend, serve, publish, retrain.

Thin: each command parses its options and calls a pipeline module. Errors a user can fix (bad
files, a bundle that fails its checks, an unknown user) print one line and exit 2, never a
traceback.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import Annotated, NoReturn

import typer

app = typer.Typer(
    help="genrec: generative recommendations with semantic IDs.", no_args_is_help=True
)
data_app = typer.Typer(help="Datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")

DataDir = Annotated[Path, typer.Option(envvar="GENREC_DATA_DIR", help="Where datasets are cached.")]
DEFAULT_DATA_DIR = Path("data")
Store = Annotated[
    Path,
    typer.Option(
        envvar="GENREC_STORE",
        help="Bundle store: ROOT/versions/<version> and ROOT/current (serve ROOT/current).",
    ),
]


def fail(command: str, error: Exception) -> NoReturn:
    """One line on stderr saying what is wrong, and exit code 2."""
    typer.echo(f"genrec {command}: {error}", err=True)
    raise typer.Exit(2)


@app.callback()
def _setup(verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False) -> None:
    # Read when torch and faiss load (commands import them lazily, after this): their two
    # OpenMP pools otherwise spin-wait against each other; an ml-100k epoch took 266.5 s
    # without it and 51.4 s with it on a busy 2-core machine (same loss). Export it to override.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)  # which SIMD build it tried


@data_app.command("fetch")
def data_fetch(
    name: Annotated[str, typer.Argument(help="Dataset name.")] = "ml-100k",
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Download a built-in dataset (a no-op when it is already there)."""
    from pipeline.datasets import fetch_builtin

    typer.echo(fetch_builtin(name, data_dir))


@data_app.command("import")
def data_import(
    path: Annotated[
        Path,
        typer.Argument(
            help="A MovieLens zip or folder (ml-1m, ml-10m, ml-20m, ml-25m, ml-32m) or an Amazon "
            "reviews JSON-lines file (.json/.jsonl, gzipped or not)."
        ),
    ],
    metadata: Annotated[
        Path | None, typer.Option(help="Amazon metadata file (titles), e.g. meta_Beauty.json.gz.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Output folder (default: DATA_DIR/<file name>).")
    ] = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Read a dataset you downloaded into interactions and items tables for `genrec train`."""
    from pipeline.datasets import DataError
    from pipeline.importers import default_name, import_path, write_tables

    try:
        imported = import_path(path, metadata)
    except DataError as e:
        fail("data import", e)
    ds = imported.dataset
    inter, items = write_tables(ds, out or data_dir / default_name(path))
    typer.echo(
        f"{imported.format}: {len(ds.interactions):,} interactions, "
        f"{ds.interactions['user_id'].nunique():,} users, {len(ds.items):,} items"
    )
    typer.echo(f"train with: genrec train --interactions {inter} --items {items} --out DIR")


@app.command()
def train(
    out: Annotated[Path | None, typer.Option(help="Bundle directory to write.")] = None,
    store: Annotated[
        Path | None,
        typer.Option(help="Publish into this bundle store instead (a new version, made current)."),
    ] = None,
    dataset: Annotated[str | None, typer.Option(help="Built-in dataset, e.g. ml-100k.")] = None,
    interactions: Annotated[
        Path | None, typer.Option(help="CSV/Parquet: user_id,item_id,timestamp.")
    ] = None,
    items: Annotated[Path | None, typer.Option(help="CSV/Parquet: item_id,title,…")] = None,
    preset: Annotated[
        str,
        typer.Option(
            help="Recipe: demo (what make demo trains: lazy decoder + dense item head, ≤ 10 min on 2 cores) or tiny (tests)."
        ),
    ] = "demo",
    embedding: Annotated[
        str | None, typer.Option(help="collab, text, hybrid or file (default: the preset's).")
    ] = None,
    embedding_path: Annotated[
        Path | None, typer.Option(help="Matrix for --embedding file.")
    ] = None,
    codebook_size: Annotated[
        int | None, typer.Option(help="Codes per level (default: from item count).")
    ] = None,
    epochs: Annotated[int | None, typer.Option()] = None,
    seed: Annotated[int, typer.Option()] = 0,
    max_minutes: Annotated[
        float | None, typer.Option(help="Stop training after this long.")
    ] = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Train a bundle: semantic IDs + lazy decoder, evaluated on the held-out split.

    Under torchrun (`torchrun --nproc-per-node N -m pipeline.cli train …`) the same training runs
    data-parallel; rank 0 writes the bundle.
    """
    from contextlib import nullcontext

    from pipeline import distributed
    from pipeline.datasets import DataError, load_builtin, load_files
    from pipeline.presets import PRESETS
    from pipeline.publish import BundleStore
    from pipeline.train import train as run

    if (dataset is None) == (interactions is None):
        raise typer.BadParameter("give exactly one of --dataset or --interactions")
    if (out is None) == (store is None):
        raise typer.BadParameter("give exactly one of --out or --store")
    distributed.init_from_env()
    if not distributed.is_main():
        logging.getLogger().setLevel(logging.WARNING)
    if preset not in PRESETS:
        raise typer.BadParameter(f"--preset must be one of {sorted(PRESETS)}")
    try:
        data = load_builtin(dataset, data_dir) if dataset else load_files(interactions, items)  # type: ignore[arg-type]
    except DataError as e:
        fail("train", e)
    recipe = PRESETS[preset]()
    cfg = replace(recipe.train, seed=seed, max_minutes=max_minutes)
    if epochs is not None:
        cfg = replace(cfg, epochs=epochs)
    tokenizer = replace(recipe.tokenizer, seed=seed)
    if codebook_size is not None:
        tokenizer = replace(tokenizer, codebook_size=codebook_size)
    bundles = BundleStore(store) if store and distributed.is_main() else None
    with bundles.lock() if bundles else nullcontext():
        path = run(
            data,
            bundles.staging() if bundles else (out or store),  # type: ignore[arg-type]
            generator=recipe.generator,
            cfg=cfg,
            embedding=embedding or recipe.embedding,  # type: ignore[arg-type]
            tokenizer=tokenizer,
            embedding_path=embedding_path,
        )
        if distributed.is_main():
            if bundles:
                path = bundles.path(bundles.publish(path, move=True))
            typer.echo(path)
    distributed.shutdown()


@app.command()
def evaluate(
    bundle: Annotated[Path, typer.Option(help="Bundle directory.")],
    beam_width: Annotated[int, typer.Option(help="Final beam width.")] = 64,
    split: Annotated[str, typer.Option(help="test or valid.")] = "test",
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Print one JSON object: Recall/NDCG@5/10/20 of genrec, and of popularity under `pop`."""
    from pipeline.evaluate import evaluate_bundle

    if split not in {"test", "valid"}:
        raise typer.BadParameter("--split must be test or valid")
    typer.echo(json.dumps(evaluate_bundle(bundle, data_dir, beam_width, split), indent=1))


@app.command("export-onnx")
def export_onnx(
    bundle: Annotated[Path, typer.Option(help="Bundle directory; its graphs are added to it.")],
) -> None:
    """Export the bundle's model to ONNX into the bundle (for GENREC_BACKEND=onnx)."""
    from model.onnx_export import add_onnx_to_bundle

    typer.echo(add_onnx_to_bundle(bundle))


@app.command()
def info(
    bundle: Annotated[Path, typer.Option(help="Bundle directory.")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object, for scripts.")] = False,
) -> None:
    """What a bundle holds: version, data, sizes, metrics, tokenizer, training curve, cost."""
    from model.bundle import BundleError
    from pipeline.info import bundle_info, render

    try:
        facts = bundle_info(bundle)
    except BundleError as e:
        fail("info", e)
    typer.echo(json.dumps(facts) if as_json else render(facts))


@app.command()
def recommend(
    bundle: Annotated[Path, typer.Option(help="Bundle directory.")],
    user: Annotated[str | None, typer.Option(help="A user of the bundle's data.")] = None,
    history: Annotated[
        str | None, typer.Option(help="Item IDs, oldest first, comma-separated.")
    ] = None,
    k: Annotated[int, typer.Option("-k", "--k", min=1, max=100, help="How many items.")] = 10,
    beam_width: Annotated[
        int | None, typer.Option(min=1, max=1024, help="Cap on the final beam width.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The API's JSON response.")] = False,
) -> None:
    """Recommend offline, no server: the same items `POST /v1/recommend` returns."""
    from model.bundle import BundleError
    from pipeline.recommend import recommend_offline
    from service.errors import ServiceError
    from service.settings import Settings

    if (user is None) == (history is None):
        raise typer.BadParameter("give exactly one of --user or --history")
    items = [i.strip() for i in history.split(",") if i.strip()] if history is not None else None
    if items is not None and not items:
        raise typer.BadParameter("--history needs at least one item ID")
    try:
        answer = recommend_offline(
            bundle, Settings(), user_id=user, history=items, k=k, beam_width=beam_width
        )
    except (BundleError, ServiceError) as e:
        fail("recommend", e)
    if as_json:
        typer.echo(answer.model_dump_json())
        return
    typer.echo(
        f"{len(answer.items)} items for {f'user {user}' if user else 'the history'} "
        f"(history {answer.history_length}, beam widths {answer.beam_widths}, "
        f"model {answer.model_version})"
    )
    for rank, item in enumerate(answer.items, 1):
        code = "-".join(map(str, item.semantic_id))
        typer.echo(f"{rank:>3}. {item.item_id:<12} {item.score:>8.3f}  {code:<16} {item.title}")


@app.command()
def serve(
    bundle: Annotated[Path, typer.Option(envvar="GENREC_BUNDLE", help="Bundle directory.")],
    host: str = "127.0.0.1",
    port: int = 8000,
) -> None:
    """Serve the HTTP API (uvicorn) for a bundle (a store's ROOT/current follows publishes).

    SIGTERM drains first (GENREC_DRAIN_S: /readyz 503 while serving on), then in-flight
    requests finish; Ctrl-C stops at once, gracefully."""
    from service.app import create_app
    from service.server import serve as run
    from service.settings import get_settings

    os.environ["GENREC_BUNDLE"] = str(bundle.absolute())  # not resolved: `current` may move
    settings = get_settings()
    run(create_app(settings), host, port, settings.drain_s)


@app.command()
def publish(
    bundle: Annotated[Path, typer.Argument(help="Bundle directory to publish (copied).")],
    store: Store,
) -> None:
    """Add a bundle to a store as a version and make it current (no quality gate)."""
    from pipeline.publish import BundleStore

    bundles = BundleStore(store)
    with bundles.lock():
        version = bundles.publish(bundle)
    typer.echo(bundles.path(version))


@app.command()
def versions(store: Store) -> None:
    """List a store's versions, oldest first; the current one is marked with `*`."""
    from pipeline.publish import BundleStore

    bundles = BundleStore(store)
    current = bundles.current_version()
    for v in bundles.versions():
        typer.echo(f"{'*' if v == current else ' '} {v}")


@app.command()
def retrain(
    store: Store,
    redis_url: Annotated[
        str, typer.Option(envvar="GENREC_REDIS_URL", help="The Redis the service writes events to.")
    ] = "redis://localhost:6379/0",
    redis_prefix: Annotated[str, typer.Option(envvar="GENREC_REDIS_PREFIX")] = "genrec",
    redis_cluster: Annotated[
        bool,
        typer.Option(
            envvar="GENREC_REDIS_CLUSTER",
            help="--redis-url is a node of a Redis Cluster (the partitions are those the "
            "service recorded).",
        ),
    ] = False,
    redis_password: Annotated[
        str | None,
        typer.Option(
            envvar="GENREC_REDIS_PASSWORD", help="Redis password (requirepass).", show_default=False
        ),
    ] = None,
    tolerance: Annotated[
        float, typer.Option(help="Publish if new NDCG@10 ≥ current − tolerance.")
    ] = 0.005,
    refit_tokenizer: Annotated[
        bool, typer.Option(help="Fit new codebooks for every item (IDs change).")
    ] = False,
    epochs: Annotated[int, typer.Option(help="Warm-start epochs.")] = 4,
    final_epochs: Annotated[
        int,
        typer.Option(help="Epochs through every position, the newest too, after the gate."),
    ] = 2,
    lr: Annotated[float, typer.Option(help="Peak learning rate of the warm start.")] = 1e-3,
    min_events: Annotated[int, typer.Option(help="Skip retraining below this many.")] = 1,
    max_events: Annotated[
        int, typer.Option(min=1, help="Consume at most this many events per run (the rest wait).")
    ] = 250_000,
    beam_width: Annotated[int, typer.Option(help="Beam width of the gate's evaluation.")] = 64,
    keep: Annotated[int, typer.Option(help="Versions to keep in the store.")] = 5,
    max_minutes: Annotated[float | None, typer.Option(help="Training time budget.")] = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Retrain on new events from the Redis stream; publish only if it passes the quality gate.

    Prints a JSON summary. Exit code 0: published or no new events; 3: the gate rejected
    the candidate (kept under ROOT/rejected/, events not consumed).
    """
    import redis
    from redis.cluster import RedisCluster

    from pipeline.publish import BundleStore
    from pipeline.retrain import REJECTED_EXIT_CODE, RetrainConfig
    from pipeline.retrain import retrain as run

    cfg = RetrainConfig(
        tolerance=tolerance,
        refit_tokenizer=refit_tokenizer,
        min_events=min_events,
        max_events=max_events,
        epochs=epochs,
        final_epochs=final_epochs,
        lr=lr,
        max_minutes=max_minutes,
        test_beam=beam_width,
        keep_versions=keep,
        redis_prefix=redis_prefix,
    )
    from model.bundle import BundleError
    from pipeline.publish import StoreBusy
    from service.settings import get_settings

    if redis_password is None and (secret := get_settings().redis_password) is not None:
        redis_password = secret.get_secret_value()  # e.g. a Compose secret in /run/secrets
    opts = {"decode_responses": True, "socket_timeout": 30, "password": redis_password}
    client = (RedisCluster if redis_cluster else redis.Redis).from_url(redis_url, **opts)
    try:
        result = run(BundleStore(store), client, data_dir, cfg)
    except (StoreBusy, BundleError) as e:
        typer.echo(f"genrec retrain: {e}", err=True)
        raise typer.Exit(1) from e
    finally:
        client.close()
    typer.echo(json.dumps({"status": result.status, **result.summary}, indent=1, default=str))
    if result.status == "rejected":
        raise typer.Exit(REJECTED_EXIT_CODE)


if __name__ == "__main__":  # `python -m pipeline.cli …`, and torchrun's `-m pipeline.cli train …`
    app()
