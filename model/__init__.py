"""The generator (lazy decoder-only), constrained beam search, baselines and the bundle format."""
