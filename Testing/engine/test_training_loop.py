"""The shared training loop and the vertebra model's partial-label loss."""

from __future__ import annotations

import numpy as np
import torch

from SpineGradeLogic.training import fit
from SpineGradeLogic.vertebrae.cases import PreparedCase, split_names
from SpineGradeLogic.vertebrae.network import partial_label_loss
from SpineGradeLogic.vertebrae.targets import BODY, IGNORE, LEVELS, NOT_BODY, SEMANTIC, bodies_only_targets


def _toy():
    torch.manual_seed(0)
    x = torch.randn(64, 3)
    y = (x @ torch.tensor([1.0, -2.0, 0.5]) > 0).long()
    net = torch.nn.Linear(3, 2)

    def batches():
        while True:
            i = torch.randint(0, 64, (16,))
            yield x[i], y[i]

    def loss(n, b):
        return torch.nn.functional.cross_entropy(n(b[0]), b[1])

    def validate(n):
        with torch.no_grad():
            return {"acc": float((n(x).argmax(1) == y).float().mean())}

    return net, batches, loss, validate


def test_fit_learns_and_resumes_from_its_checkpoint(tmp_path):
    net, batches, loss, validate = _toy()
    r = fit(net, batches, loss, validate, "acc", tmp_path / "ck.pt", epochs=3, steps_per_epoch=20, lr=0.05, show_progress=False)
    assert r.epochs_run == 3 and r.best_score > 0.8
    net2, *_ = _toy()
    r2 = fit(net2, batches, loss, validate, "acc", tmp_path / "ck.pt", epochs=5, steps_per_epoch=20, lr=0.05, show_progress=False)
    assert r2.epochs_run == 5 and [h["epoch"] for h in r2.history] == [1, 2, 3, 4, 5]


def test_fit_stops_early_and_keeps_the_best_weights(tmp_path):
    net, batches, loss, _ = _toy()
    scores = iter([0.9, 0.5, 0.4, 0.3, 0.2, 0.1])
    r = fit(net, batches, loss, lambda n: {"s": next(scores)}, "s", tmp_path / "ck.pt", epochs=6,
            steps_per_epoch=2, patience=2, show_progress=False)
    assert r.stopped_early and r.best_epoch == 1 and r.epochs_run == 3


def test_not_body_voxels_push_body_probability_down():
    logits = torch.zeros(1, len(SEMANTIC) + len(LEVELS), 4, 4, requires_grad=True)
    semantic = torch.full((1, 4, 4), NOT_BODY)
    level = torch.full((1, 4, 4), IGNORE)
    partial_label_loss(logits, semantic, level).backward()
    assert (logits.grad[0, BODY] > 0).all()  # descending the gradient lowers the body logit
    ignored = torch.full((1, 4, 4), IGNORE)
    assert partial_label_loss(logits, ignored, level).item() == 0.0


def test_bodies_only_targets_know_nothing_beyond_the_labelled_extent():
    labels = np.zeros((3, 10, 30), np.int16)
    labels[:, 2:6, 10:14] = 20  # L1
    labels[:, 2:6, 16:20] = 21  # L2
    semantic, level = bodies_only_targets(labels, si_axis=2)
    assert (semantic[:, :, :10] == IGNORE).all() and (semantic[:, :, 20:] == IGNORE).all()
    assert (semantic[:, 7:, 10:20] == NOT_BODY).all()
    assert (semantic[labels > 0] == BODY).all()
    assert set(np.unique(level[labels == 21])) == {LEVELS.index("L2")}


def test_cache_round_trip_and_fixed_split(tmp_path):
    case = PreparedCase("c", np.random.rand(3, 16, 16).astype(np.float32), np.zeros((3, 16, 16), np.int64),
                        np.full((3, 16, 16), IGNORE, np.int64))
    case.save(tmp_path / "c.npz")
    back = PreparedCase.load(tmp_path / "c.npz")
    assert np.abs(back.image - case.image).max() < 0.01 and back.name == "c"
    names = [f"vb3-{i:02d}" for i in range(1, 55)]
    assert split_names(names, 0.3) == split_names(list(reversed(names)), 0.3)
    train, val = split_names(names, 0.3)
    assert len(val) == 16 and not set(train) & set(val)


def test_field_of_view_cut_blanks_everything_below_a_cut_inside_the_bony_extent():
    from SpineGradeLogic.vertebrae.train import cut_field_of_view

    stack = np.ones((3, 10, 100), np.float32)
    semantic = np.zeros((10, 100), np.int64)
    semantic[:, 20:80] = BODY
    level = np.full((10, 100), LEVELS.index("L3"), np.int64)
    cuts = set()
    for seed in range(20):
        img, sem, lvl = cut_field_of_view(stack, semantic, level, np.random.default_rng(seed))
        cut = int(np.flatnonzero(sem[0] != IGNORE)[0])
        assert 35 <= cut <= 65  # a quarter to three quarters of the bony rows 20-79
        assert (img[..., :cut] == 0).all() and (img[..., cut:] == 1).all()
        assert (lvl[:, :cut] == IGNORE).all() and (lvl[:, cut:] == level[:, cut:]).all()
        cuts.add(cut)
    assert len(cuts) > 5
    assert (semantic[:, 20:80] == BODY).all() and (stack == 1).all()  # the case's own arrays are untouched
    empty = np.zeros((10, 100), np.int64)
    assert cut_field_of_view(stack, empty, level, np.random.default_rng(0))[0] is stack  # no bone: as it was


def test_slice_stacks_cut_the_field_of_view_of_the_share_asked_for():
    from SpineGradeLogic.vertebrae.train import SliceStacks

    image = np.random.default_rng(0).random((5, 192, 192)).astype(np.float32) + 0.5
    semantic = np.zeros((5, 192, 192), np.int64)
    semantic[:, 60:130, 20:170] = BODY
    level = np.full((5, 192, 192), IGNORE, np.int64)
    case = PreparedCase("generated-a", image, semantic, level)

    def cut_share(fov_cut, n=24):
        it = iter(SliceStacks([case], seed=1, fov_cut=fov_cut))
        # a cut blanks whole rows at the inferior end (image 0, semantic ignored) inside the bony extent
        return np.mean([bool((next(it)["semantic"][:, :40] == IGNORE).all()) for _ in range(n)])

    assert cut_share(0.0) == 0.0
    assert cut_share(1.0) > 0.7  # the affine augmentation moves some cuts out of the window's first rows


def test_training_shares_outside_zero_to_one_are_refused():
    import argparse

    import pytest

    from SpineGradeLogic.cli.train import share

    assert share("0.35") == 0.35
    for bad in ("1.5", "-0.1", "a third"):
        with pytest.raises(argparse.ArgumentTypeError):
            share(bad)
