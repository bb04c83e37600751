"""The `genrec` command line: data, train, evaluate, serve."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    help="genrec: generative recommendations with semantic IDs.", no_args_is_help=True
)
data_app = typer.Typer(help="Datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")

DataDir = Annotated[Path, typer.Option(envvar="GENREC_DATA_DIR", help="Where datasets are cached.")]
DEFAULT_DATA_DIR = Path("data")


@app.callback()
def _setup(verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )


@data_app.command("fetch")
def data_fetch(
    name: Annotated[str, typer.Argument(help="Dataset name.")] = "ml-100k",
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Download a built-in dataset (a no-op when it is already there)."""
    from pipeline.datasets import fetch_builtin

    typer.echo(fetch_builtin(name, data_dir))


@app.command()
def train(
    out: Annotated[Path, typer.Option(help="Bundle directory to write.")],
    dataset: Annotated[str | None, typer.Option(help="Built-in dataset, e.g. ml-100k.")] = None,
    interactions: Annotated[
        Path | None, typer.Option(help="CSV/Parquet: user_id,item_id,timestamp.")
    ] = None,
    items: Annotated[Path | None, typer.Option(help="CSV/Parquet: item_id,title,…")] = None,
    preset: Annotated[str, typer.Option(help="Generator size: tiny, small, base.")] = "small",
    embedding: Annotated[str, typer.Option(help="collab, text, hybrid or file.")] = "collab",
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
    """Train a bundle: semantic IDs + lazy decoder, evaluated on the held-out split."""
    from model.config import PRESETS
    from pipeline.datasets import load_builtin, load_files
    from pipeline.train import TrainConfig
    from pipeline.train import train as run
    from tokenizer.config import TokenizerConfig

    if (dataset is None) == (interactions is None):
        raise typer.BadParameter("give exactly one of --dataset or --interactions")
    if preset not in PRESETS:
        raise typer.BadParameter(f"--preset must be one of {sorted(PRESETS)}")
    data = load_builtin(dataset, data_dir) if dataset else load_files(interactions, items)  # type: ignore[arg-type]
    cfg = TrainConfig(seed=seed, max_minutes=max_minutes)
    if epochs is not None:
        cfg = replace(cfg, epochs=epochs)
    path = run(
        data,
        out,
        generator=PRESETS[preset](),
        cfg=cfg,
        embedding=embedding,  # type: ignore[arg-type]
        tokenizer=TokenizerConfig(codebook_size=codebook_size, seed=seed),
        embedding_path=embedding_path,
    )
    typer.echo(path)


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
def serve(
    bundle: Annotated[Path, typer.Option(envvar="GENREC_BUNDLE", help="Bundle directory.")],
    host: str = "127.0.0.1",
    port: int = 8000,
) -> None:
    """Serve the HTTP API (uvicorn) for a bundle."""
    import uvicorn

    os.environ["GENREC_BUNDLE"] = str(bundle.resolve())
    uvicorn.run("service.app:create_app", factory=True, host=host, port=port, log_level="info")


if __name__ == "__main__":
    app()
