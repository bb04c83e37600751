"""A tiny random catalog and untrained model: enough to check decoding logic exactly."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from model.config import generator_tiny
from model.lazy_decoder import LazyDecoder
from model.recommender import Recommender
from tests.synthetic import clustered_embeddings
from tokenizer.config import TokenizerConfig
from tokenizer.semantic_ids import fit_semantic_ids


@pytest.fixture(scope="module")
def semantic_ids():
    return fit_semantic_ids(clustered_embeddings(120), TokenizerConfig(codebook_size=8))


@pytest.fixture(scope="module", params=[False, True], ids=["bos", "newest-query"])
def model(semantic_ids, request):
    """Both first-token variants: a constant BOS, or BOS plus the newest item's query."""
    torch.manual_seed(0)
    cfg = replace(generator_tiny(), newest_query=request.param)
    model = LazyDecoder(cfg.for_catalog(semantic_ids.codebook_sizes, 120)).eval()
    if model.newest_query is not None:  # make the query matter (it starts near zero)
        torch.nn.init.normal_(model.newest_query.weight, std=0.5)
    return model


@pytest.fixture(scope="module")
def recommender(model, semantic_ids):
    return Recommender(model, semantic_ids.codes)


@pytest.fixture
def histories():
    rng = np.random.default_rng(0)
    return [rng.choice(120, size=n, replace=False) for n in (1, 5, 17, 60)]
