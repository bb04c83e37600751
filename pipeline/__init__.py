"""Offline jobs: datasets, embeddings, training, evaluation, retraining; the `genrec` CLI."""
