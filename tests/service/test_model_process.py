"""Decoding in a child process answers as the in-process engine does, and a killed child
costs one batch (503), not the service."""

import os
import signal

import numpy as np
import pytest

from model.bundle import load_bundle
from service.engine import build_engine, run_jobs
from service.errors import Unavailable
from service.model_process import ModelProcesses
from service.settings import Settings


@pytest.fixture(scope="module")
def settings(tiny_bundle):
    return Settings(bundle=tiny_bundle, precision="float32")


@pytest.fixture(scope="module")
def processes(settings, tiny_bundle):
    procs = ModelProcesses(settings, workers=1)
    procs.prepare(tiny_bundle)
    yield procs
    procs.shutdown()


def jobs(engine, n=6):
    rng = np.random.default_rng(1)
    return [
        (engine, engine.query(rng.choice(len(engine.catalog), size=10, replace=False), 5, w, True))
        for w in [None, 8, 16, 32, None, 8][:n]
    ]


def test_a_child_process_answers_as_the_server_process(settings, processes, tiny_bundle):
    engine = build_engine(load_bundle(tiny_bundle), settings)
    batch = jobs(engine)
    remote = processes.run_jobs(batch, 32)
    assert "recommender" not in vars(engine)  # the parent never built the model side
    local = run_jobs(batch, 32)
    for r, here in zip(remote, local, strict=True):
        assert r.widths == here.widths
        assert [s.item_id for s in r.items] == [s.item_id for s in here.items]
        assert np.allclose([s.score for s in r.items], [s.score for s in here.items], atol=1e-5)


def test_a_killed_child_fails_one_batch_then_a_new_one_serves(settings, processes, tiny_bundle):
    engine = build_engine(load_bundle(tiny_bundle), settings)
    before = processes.run_jobs(jobs(engine, 2), 32)
    pid = processes.workers[0].process.pid
    os.kill(pid, signal.SIGKILL)
    processes.workers[0].process.join(10)
    with pytest.raises(Unavailable):
        processes.run_jobs(jobs(engine, 2), 32)
    assert processes.wait_ready(60)  # replaced in the background
    after = processes.run_jobs(jobs(engine, 2), 32)
    assert processes.workers[0].process.pid != pid
    assert [[s.item_id for s in r.items] for r in after] == [
        [s.item_id for s in r.items] for r in before
    ]
