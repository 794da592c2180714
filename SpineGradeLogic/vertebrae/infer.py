"""Run the vertebra network over a whole study, slice by slice, on the working grid."""

from __future__ import annotations

import numpy as np
import torch

from .network import split_heads
from .spec import IN_SLICES


@torch.no_grad()
def predict_grid(network: torch.nn.Module, image: np.ndarray, batch: int = 8, device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Softmax probabilities of both heads for every slice: ([S, C_sem, A, I], [S, C_lvl, A, I]) float16."""
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
