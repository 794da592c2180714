"""Partial labels in grading: allowed-class bitmasks, the set likelihood in the loss and in
temperature fitting, the RSNA score on partly graded rows, caches with and without masks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from SpineGradeLogic.grading.calibration import fit_temperatures
from SpineGradeLogic.grading.data import Augment, BatchSource, CropSet, sampling_weights
from SpineGradeLogic.grading.heads import OUTPUT_SIZE, head_log_probabilities, split_outputs
from SpineGradeLogic.grading.loss import grading_loss
from SpineGradeLogic.grading.metrics import rsna_weighted_log_loss
from SpineGradeLogic.grading.network import CROP_SHAPE
from SpineGradeLogic.grading.targets import (
    FULL_MASKS, indices_from_masks, known, mask_of_classes, mask_row, masks_from_indices, rsna_truth,
)
from SpineGradeLogic.names import HEAD_NAMES, HEADS

J = HEAD_NAMES.index


def test_masks_round_trip_and_sets():
    idx = np.full((2, len(HEAD_NAMES)), -1)
    idx[0, J("pfirrmann")] = 4
    idx[1, J("modic")] = 2
    m = masks_from_indices(idx)
    assert m[0, J("pfirrmann")] == 0b10000 and m[1, J("modic")] == 0b100
    assert m[0, J("modic")] == FULL_MASKS[J("modic")] == 0b1111
    np.testing.assert_array_equal(indices_from_masks(m), idx)
    assert mask_of_classes("central_canal_stenosis", (0, 1)) == 0b11
    assert mask_of_classes("pfirrmann", (3,)) == 0b100  # grade 3 is the third class
    with pytest.raises(ValueError, match="pfirrmann: 0"):
        mask_of_classes("pfirrmann", (0,))
    row = mask_row({"disc_narrowing": (1, 2, 3), "pfirrmann": (2,)})
    assert row[J("disc_narrowing")] == 0b1110 and indices_from_masks(row[None])[0, J("pfirrmann")] == 1
    assert known(row[None])[0].sum() == 2


def test_rsna_truth_counts_normal_mild_as_severity_zero():
    rows = np.stack([mask_row({"central_canal_stenosis": (0, 1)}), mask_row({"central_canal_stenosis": (3,)}),
                     mask_row({"central_canal_stenosis": (1, 2, 3)}), mask_row({})])
    np.testing.assert_array_equal(rsna_truth(rows, "central_canal_stenosis"), [0, 3, -1, -1])


def test_set_loss_is_nll_for_exact_labels_zero_for_unknown_and_the_set_probability_otherwise():
    torch.manual_seed(0)
    raw = torch.randn(3, OUTPUT_SIZE)
    target = torch.full((3, len(HEAD_NAMES)), -1, dtype=torch.long)
    target[0, J("central_canal_stenosis")] = 2
    allowed = torch.as_tensor(masks_from_indices(target.numpy()).astype(np.int64))
    exact = grading_loss(raw, target, smoothing=0)
    assert float(grading_loss(raw, target, smoothing=0, allowed=allowed)) == pytest.approx(float(exact), rel=1e-6)
    # row 1: Normal/Mild for the canal
    allowed[1, J("central_canal_stenosis")] = 0b11
    logp = head_log_probabilities("central_canal_stenosis", split_outputs(raw)["central_canal_stenosis"])
    expected = 0.5 * (-logp[0, 2] - torch.log(logp[1, :2].exp().sum()))
    got = grading_loss(raw, target, smoothing=0, allowed=allowed)
    assert float(got) == pytest.approx(float(expected), rel=1e-5)
    # nothing known anywhere: no loss at all
    none = torch.as_tensor(np.tile(FULL_MASKS, (3, 1)).astype(np.int64))
    assert float(grading_loss(raw, target, allowed=none)) == 0.0


def test_set_loss_moves_mass_into_the_set_without_splitting_it():
    raw = torch.zeros(1, OUTPUT_SIZE, requires_grad=True)
    allowed = torch.as_tensor(mask_row({"modic": (0, 1)})[None].astype(np.int64))
    opt = torch.optim.SGD([raw], lr=1.0)
    for _ in range(50):
        opt.zero_grad()
        grading_loss(raw, torch.full((1, len(HEAD_NAMES)), -1), smoothing=0, allowed=allowed).backward()
        opt.step()
    p = head_log_probabilities("modic", split_outputs(raw.detach())["modic"]).exp()[0]
    assert float(p[:2].sum()) > 0.95
    # the other heads got no gradient at all
    assert torch.all(raw.grad[:, split_outputs(torch.arange(OUTPUT_SIZE)[None])["pfirrmann"][0]] == 0)


def test_temperatures_from_sets_match_exact_labels_and_use_partial_rows():
    rng = np.random.default_rng(0)
    n = 400
    raw = torch.as_tensor(rng.normal(0, 4, (n, OUTPUT_SIZE)), dtype=torch.float32)
    t = torch.as_tensor(np.stack([rng.integers(0, len(HEADS[h]), n) for h in HEAD_NAMES], 1))
    exact = fit_temperatures(raw, t)
    same = fit_temperatures(raw, t, allowed=masks_from_indices(t.numpy()))
    for h in HEAD_NAMES:
        assert same[h] == pytest.approx(exact[h], rel=1e-3)
    # random labels against confident logits: both fits flatten (T > 1); all-unknown rows leave T = 1
    assert exact["pfirrmann"] > 1.5
    unknown = fit_temperatures(raw, torch.full_like(t, -1), allowed=np.tile(FULL_MASKS, (n, 1)))
    assert all(v == 1.0 for v in unknown.values())


def test_rsna_score_leaves_ungraded_rows_out():
    rng = np.random.default_rng(1)
    probs = {h: rng.dirichlet(np.ones(4), 6) for h in ("central_canal_stenosis", "foraminal_stenosis_left",
                                                        "foraminal_stenosis_right", "lateral_recess_stenosis_left",
                                                        "lateral_recess_stenosis_right")}
    truth = {h: np.array([0, 2, 3, 1, 0, 2]) for h in probs}
    study = np.array([0, 0, 0, 1, 1, 1])
    with_gaps = {h: v.copy() for h, v in truth.items()}
    with_gaps["central_canal_stenosis"][[1, 4]] = -1
    keep = np.array([True, False, True, True, False, True])
    a = rsna_weighted_log_loss(probs, with_gaps, study)
    sub = {h: (p[keep] if h == "central_canal_stenosis" else p) for h, p in probs.items()}
    sub_truth = {h: (v[keep] if h == "central_canal_stenosis" else v) for h, v in truth.items()}
    # the canal rows left out must not change the other conditions; the canal terms equal the subset's
    b_canal = rsna_weighted_log_loss({"central_canal_stenosis": sub["central_canal_stenosis"]},
                                     {"central_canal_stenosis": sub_truth["central_canal_stenosis"]}, study[keep])
    assert a["spinal_canal_stenosis"] == pytest.approx(b_canal["spinal_canal_stenosis"])
    assert a["any_severe_spinal"] == pytest.approx(b_canal["any_severe_spinal"])
    full = rsna_weighted_log_loss(probs, truth, study)
    assert a["neural_foraminal_narrowing"] == pytest.approx(full["neural_foraminal_narrowing"])
    assert math.isfinite(a["score"])


def _crops(n, allowed=None):
    img = np.random.default_rng(0).integers(0, 40, (n, *CROP_SHAPE)).astype(np.uint8)
    grades = np.array([[HEADS[h][0] for h in HEAD_NAMES]] * n)
    return CropSet(img, grades, np.array(["L4/L5"] * n), np.zeros(n, np.float32), np.arange(n), np.array(["T2"] * n),
                   allowed)


def test_crop_cache_keeps_masks_and_reads_old_caches(tmp_path):
    m = np.tile(FULL_MASKS, (3, 1))
    m[0, J("central_canal_stenosis")] = 0b11
    c = _crops(3, m)
    c.save(tmp_path / "a.npz", study="s1")
    back = CropSet.load(tmp_path / "a.npz")
    np.testing.assert_array_equal(back.allowed, m)
    assert back.targets[0, J("central_canal_stenosis")] == -1
    # a generator cache written before masks existed: exact grades, masks derived
    np.savez_compressed(tmp_path / "old.npz", image=c.image, grades=c.grades.astype(np.int8), level=c.level,
                        outside=c.outside, case=c.case, contrast=c.contrast)
    old = CropSet.load(tmp_path / "old.npz")
    assert np.all(old.targets == 0) and np.all(known(old.allowed))
    assert len(CropSet.concat([back, old])) == 6


def test_batches_carry_masks_and_mirroring_swaps_them():
    m = np.tile(FULL_MASKS, (8, 1))
    m[:, J("foraminal_stenosis_left")] = 0b1100  # moderate or severe, left only
    src = BatchSource(_crops(8, m), 64, augment=Augment(rotate_deg=(0, 0, 0), shift_mm=(0, 0, 0), scale=0,
                                                         gamma=(1, 1), gain=0, bias=0, noise=0, edge_zero_prob=0))
    b = next(src())
    left, right = b["allowed"][:, J("foraminal_stenosis_left")], b["allowed"][:, J("foraminal_stenosis_right")]
    swapped = right == 0b1100
    assert 0 < int(swapped.sum()) < 64
    assert torch.all(left[swapped] == 0b1111) and torch.all(left[~swapped] == 0b1100)


def test_sampling_weights_ignore_partial_labels():
    t = np.zeros((4, len(HEAD_NAMES)), np.int64)
    t[:, J("modic")] = [-1, -1, 0, 1]
    w = sampling_weights(t)
    assert np.all(np.isfinite(w)) and w.sum() == pytest.approx(1.0)
