"""Inference precision: float32, or bfloat16 where the CPU multiplies it natively.

On CPUs with AMX or AVX512-BF16 the decoder's matrix products run several times faster in
bfloat16 (oneDNN), and the beam scores stay float32 (the heads' log-softmax upcasts). Where
the CPU lacks them bfloat16 is emulated and slower, so `auto` picks it only when native.
"""

from __future__ import annotations

from enum import StrEnum

import torch


class Precision(StrEnum):
    auto = "auto"
    float32 = "float32"
    bfloat16 = "bfloat16"


def native_bfloat16() -> bool:
    """Whether this CPU has bfloat16 matrix instructions (AMX tiles or AVX512-BF16)."""
    cpu = torch.cpu
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")  # private, so guarded
    return any(getattr(cpu, name, lambda: False)() for name in checks)


def inference_dtype(precision: Precision | str) -> torch.dtype:
    precision = Precision(precision)
    if precision is Precision.auto:
        return torch.bfloat16 if native_bfloat16() else torch.float32
    return torch.bfloat16 if precision is Precision.bfloat16 else torch.float32
