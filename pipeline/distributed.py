"""Data-parallel training helpers (torch.distributed, gloo on CPU) for runs under torchrun.

Every helper is a no-op in a single process, so `optimize` reads the same either way.
The scheme is DDP's: identical initial weights (broadcast from rank 0), each rank a shard
of every step's batch, gradients averaged by all-reduce before the optimizer step, so all
ranks take the same step and stay identical.
"""

from __future__ import annotations

import logging
import os

import numpy as np
import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


def init_from_env() -> bool:
    """Join the process group torchrun describes (WORLD_SIZE, RANK, MASTER_ADDR/PORT).

    Called by entry points only; returns False (and does nothing) outside torchrun.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return dist.is_initialized()
    dist.init_process_group("gloo")
    log.info("distributed rank=%d world_size=%d backend=gloo", rank(), world_size())
    return True


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def is_main() -> bool:
    return rank() == 0


def broadcast_module(module: torch.nn.Module) -> None:
    """Copy rank 0's parameters and buffers to every rank."""
    if world_size() == 1:
        return
    for t in [*module.parameters(), *module.buffers()]:
        dist.broadcast(t.data, src=0)


def broadcast_array(x: np.ndarray) -> np.ndarray:
    """Rank 0's copy of an array of the same shape and dtype on every rank."""
    if world_size() == 1:
        return x
    t = torch.from_numpy(np.ascontiguousarray(x)).clone()
    dist.broadcast(t, src=0)
    return t.numpy()


def broadcast_floats(values: list[float]) -> list[float]:
    """Rank 0's values on every rank (e.g. a validation score and a stop flag)."""
    if world_size() == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64)
    dist.broadcast(t, src=0)
    return t.tolist()


def mean_across_ranks(value: float) -> float:
    """The mean of one number over all ranks (e.g. each rank's training loss)."""
    if world_size() == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.item() / world_size()


def all_reduce_gradients(module: torch.nn.Module) -> None:
    """Sum every parameter's gradient across ranks, in one flat buffer (one message per step).

    Each rank scales its loss by its share of the step's targets, so the sum is the
    gradient of the mean over the whole step, as one process would compute it.
    """
    if world_size() == 1:
        return
    params = [p for p in module.parameters() if p.requires_grad]
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = flat[offset : offset + n].view_as(p).clone()
        offset += n
