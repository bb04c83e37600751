"""RQ-VAE (TIGER): an MLP autoencoder whose latent is residually quantized by learned codebooks.

Recipe: encoder D → 256 → 128 → 32, 3 codebooks, commitment β = 0.25, codebooks initialised
by k-means on the first latents, unused codes reset to random latents (dead-code reset).
Inference is numpy only: the trained weights are frozen into an `RQVAEQuantizer`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tokenizer.config import TokenizerConfig
from tokenizer.rq_kmeans import ResidualQuantizer, fit_rq_kmeans

HIDDEN = (256, 128)
LATENT = 32
BETA = 0.25


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


@dataclass
class RQVAEQuantizer:
    """Frozen RQ-VAE: MLP weights as (W, b) pairs and latent codebooks, all numpy."""

    encoder: list[tuple[np.ndarray, np.ndarray]]
    decoder: list[tuple[np.ndarray, np.ndarray]]
    latent: ResidualQuantizer

    @property
    def n_levels(self) -> int:
        return self.latent.n_levels

    @property
    def codebooks(self) -> list[np.ndarray]:
        return self.latent.codebooks

    @staticmethod
    def _run(layers: list[tuple[np.ndarray, np.ndarray]], x: np.ndarray) -> np.ndarray:
        for i, (w, b) in enumerate(layers):
            x = x @ w.T + b
            if i < len(layers) - 1:
                x = np.maximum(x, 0.0)
        return x.astype(np.float32)

    def encode(self, x: np.ndarray) -> np.ndarray:
        return self.latent.encode(self._run(self.encoder, np.asarray(x, dtype=np.float32)))

    def decode(self, codes: np.ndarray) -> np.ndarray:
        return self._run(self.decoder, self.latent.decode(codes))

    def tensors(self) -> dict[str, np.ndarray]:
        out = self.latent.tensors()
        for part, layers in (("encoder", self.encoder), ("decoder", self.decoder)):
            for i, (w, b) in enumerate(layers):
                out[f"rqvae.{part}.{i}.weight"], out[f"rqvae.{part}.{i}.bias"] = w, b
        return out

    @classmethod
    def from_tensors(cls, tensors: dict[str, np.ndarray]) -> RQVAEQuantizer:
        def layers(part: str) -> list[tuple[np.ndarray, np.ndarray]]:
            n = sum(1 for k in tensors if k.startswith(f"rqvae.{part}.") and k.endswith(".weight"))
            return [
                (tensors[f"rqvae.{part}.{i}.weight"], tensors[f"rqvae.{part}.{i}.bias"])
                for i in range(n)
            ]

        return cls(layers("encoder"), layers("decoder"), ResidualQuantizer.from_tensors(tensors))


def fit_rq_vae(
    x: np.ndarray, codebook_size: int, config: TokenizerConfig, lr: float = 1e-3
) -> tuple[RQVAEQuantizer, np.ndarray]:
    """Train on the whole catalog (full batch); returns the frozen quantizer and codes (N, L)."""
    torch.manual_seed(config.seed)
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    N, D = xt.shape
    encoder, decoder = _mlp([D, *HIDDEN, LATENT]), _mlp([LATENT, *HIDDEN[::-1], D])
    with torch.no_grad():  # k-means initialisation of the codebooks on the untrained latents
        init, _ = fit_rq_kmeans(
            encoder(xt).numpy(),
            codebook_size,
            TokenizerConfig(n_levels=config.n_levels, balanced=False, seed=config.seed),
        )
    codebooks = nn.Parameter(torch.from_numpy(np.stack(init.codebooks)))  # (L, K, latent)
    params = [*encoder.parameters(), *decoder.parameters(), codebooks]
    opt = torch.optim.Adam(params, lr=lr)
    gen = torch.Generator().manual_seed(config.seed)
    for step in range(config.rqvae_steps):
        z = encoder(xt)
        residual, quantized, commit = z, torch.zeros_like(z), z.new_zeros(())
        codes = []
        for level in range(config.n_levels):
            cb = codebooks[level]  # (K, latent)
            idx = torch.cdist(residual, cb).argmin(1)  # (N,)
            e = cb[idx]
            commit = (
                commit + F.mse_loss(e, residual.detach()) + BETA * F.mse_loss(residual, e.detach())
            )
            quantized = quantized + e
            residual = residual - e.detach()
            codes.append(idx)
        x_hat = decoder(z + (quantized - z).detach())  # straight-through
        loss = F.mse_loss(x_hat, xt) + commit
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 100 == 99:  # dead-code reset: unused codes jump to random current residuals
            with torch.no_grad():
                residual = z.detach()
                for level in range(config.n_levels):
                    used = torch.bincount(codes[level], minlength=codebook_size) > 0
                    dead = torch.nonzero(~used).flatten()
                    if len(dead):
                        pick = torch.randint(0, N, (len(dead),), generator=gen)
                        codebooks[level][dead] = residual[pick]
                    residual = residual - codebooks[level][codes[level]]
    quantizer = RQVAEQuantizer(
        [
            (m.weight.detach().numpy().copy(), m.bias.detach().numpy().copy())
            for m in encoder
            if isinstance(m, nn.Linear)
        ],
        [
            (m.weight.detach().numpy().copy(), m.bias.detach().numpy().copy())
            for m in decoder
            if isinstance(m, nn.Linear)
        ],
        ResidualQuantizer([cb.detach().numpy().copy() for cb in codebooks]),
    )
    return quantizer, quantizer.encode(x)
