"""The vertebra network over a whole working grid: the batch changes the speed, never the result."""

from __future__ import annotations

import numpy as np
import torch

from SpineGradeLogic.vertebrae.infer import GPU_BATCH, default_batch, predict_grid
from SpineGradeLogic.vertebrae.network import build_network


def test_cpu_batches_shrink_as_slices_grow():
    assert default_batch((208, 240)) == 2  # a lumbar study's working grid
    assert default_batch((208, 480)) == 1  # a whole spine: one slice at a time
    assert default_batch((1000, 1000)) == 1  # never zero
    assert default_batch((64, 64)) > default_batch((208, 240))
    assert default_batch((208, 240), device="cuda") == GPU_BATCH


def test_every_batch_size_gives_the_same_probabilities():
    torch.manual_seed(0)
    net = build_network()
    image = np.random.default_rng(0).random((5, 64, 48), dtype=np.float32)
    sem1, lvl1 = predict_grid(net, image, batch=1)
    for batch in (None, 3, 8):
        sem, lvl = predict_grid(net, image, batch=batch)
        assert sem.shape == sem1.shape and lvl.shape == lvl1.shape
        np.testing.assert_allclose(sem.astype(np.float32), sem1.astype(np.float32), atol=2e-3)
        np.testing.assert_allclose(lvl.astype(np.float32), lvl1.astype(np.float32), atol=2e-3)
    # every slice is predicted once, from its own neighbours: the edges differ from the middle
    assert not np.allclose(sem1[0], sem1[2])
