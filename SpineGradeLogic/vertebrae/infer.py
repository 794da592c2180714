"""Run the vertebra network over a whole study, slice by slice, on the working grid."""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from .network import split_heads
from .spec import IN_SLICES

# Slices per forward pass. On the CPU small batches are faster, most likely because a larger batch's
# activations no longer fit the processor's caches: on 2 threads a 35 x 208 x 240 working grid (the
# bench_vertebrae.py study) took 1.8 s in batches of 2 and 3.4 s in batches of 8, and a 30 x 208 x 480
# one (a whole spine) 4.2 s one slice at a time, 4.7 s in twos and 6.7 s in eights. So the CPU batch
# holds about this many in-plane pixels; a GPU wants larger batches.
CPU_PIXELS_PER_BATCH = 100_000
GPU_BATCH = 8


def default_batch(slice_shape, device: str = "cpu") -> int:
    """Slices per forward pass for slices of ``slice_shape`` (A, I) on ``device``."""
    if torch.device(device).type != "cpu":
        return GPU_BATCH
    return max(1, CPU_PIXELS_PER_BATCH // int(np.prod(slice_shape)))


@torch.no_grad()
def predict_grid(network: torch.nn.Module, image: np.ndarray, batch: Optional[int] = None,
                 device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Softmax probabilities of both heads for every slice: ([S, C_sem, A, I], [S, C_lvl, A, I]) float16.

    ``batch``: slices per forward pass (default: :func:`default_batch`); it changes the speed, not
    the result.
    """
    batch = batch or default_batch(image.shape[1:], device)
    network.eval()
    n = image.shape[0]
    half = IN_SLICES // 2
    padded = np.concatenate([image[:1].repeat(half, 0), image, image[-1:].repeat(half, 0)])
    sem_out, lvl_out = [], []
    for start in range(0, n, batch):
        idx = np.arange(start, min(n, start + batch))
        x = np.stack([padded[i : i + IN_SLICES] for i in idx])
        logits = network(torch.from_numpy(x).float().to(device))
        sem, lvl = split_heads(logits)
        # halve in torch: numpy's float32 -> float16 cast is a hundred times slower on CPU
        sem_out.append(torch.softmax(sem, 1).to(torch.float16).cpu().numpy())
        lvl_out.append(torch.softmax(lvl, 1).to(torch.float16).cpu().numpy())
    return np.concatenate(sem_out), np.concatenate(lvl_out)
