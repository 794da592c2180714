"""Mixed-precision training: which dtype each setting picks, a float32 grading output under
bfloat16 autocast, and the shared loop training under it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from SpineGradeLogic.grading.heads import OUTPUT_SIZE, probabilities
from SpineGradeLogic.grading.measures import MeasureTrainer
from SpineGradeLogic.grading.network import CROP_SHAPE, build_network
from SpineGradeLogic.training import fit
from SpineGradeLogic.training.precision import autocast, autocast_dtype, native_bf16


def test_precision_settings_pick_the_dtype():
    assert autocast_dtype("fp32", "cpu") is None
    assert autocast_dtype("bf16", "cpu") is torch.bfloat16
    assert autocast_dtype("auto", "cpu") is (torch.bfloat16 if native_bf16(torch.device("cpu")) else None)
    with pytest.raises(ValueError, match="precision must be one of"):
        autocast_dtype("fp16", "cpu")


def test_grading_heads_stay_float32_under_bfloat16_autocast():
    torch.manual_seed(0)
    net = build_network().eval()
    x = torch.rand(2, 3, *CROP_SHAPE)
    with torch.no_grad():
        full = net(x)
        with autocast("cpu", torch.bfloat16):
            mixed = net(x)
            trainer = MeasureTrainer(net, np.zeros((2, 12), np.float32))
            raw, measured = trainer.grades_and_measures(x)
    assert mixed.dtype == torch.float32 and raw.dtype == torch.float32 and measured.dtype == torch.float32
    assert mixed.shape == (2, OUTPUT_SIZE)
    # the convolutions ran in bfloat16 (a few hundredths off), the cut points and probabilities did not break
    assert not torch.equal(mixed, full) and torch.allclose(mixed, full, atol=0.1)
    for h, p in probabilities(mixed).items():
        assert np.allclose(np.asarray(p).sum(1), 1.0, atol=1e-5), h


def test_fit_trains_under_bfloat16_autocast(tmp_path):
    torch.manual_seed(0)
    x = torch.randn(128, 3)
    y = (x @ torch.tensor([1.0, -2.0, 0.5]) > 0).long()
    net = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    seen = []

    def batches():
        while True:
            i = torch.randint(0, 128, (32,))
            yield x[i], y[i]

    def loss(n, b):
        out = n(b[0])
        seen.append(out.dtype)
        return torch.nn.functional.cross_entropy(out.float(), b[1])

    def validate(n):
        with torch.no_grad():
            return {"acc": float((n(x).argmax(1) == y).float().mean())}

    r = fit(net, batches, loss, validate, "acc", tmp_path / "ck.pt", epochs=3, steps_per_epoch=30, lr=0.02,
            show_progress=False, autocast_dtype=torch.bfloat16)
    assert set(seen) == {torch.bfloat16}  # the loss function ran under autocast
    assert all(p.dtype == torch.float32 for p in net.parameters())  # the weights stay float32
    assert r.best_score > 0.9
