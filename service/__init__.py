"""The HTTP service: FastAPI app, settings, Redis store, micro-batcher, recommendation engine."""
