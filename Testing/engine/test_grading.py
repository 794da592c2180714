"""Grading: network shapes, ordered probabilities, metrics against hand-computed values, calibration,
the crop cache, augmentation, a smoke training run and the SimpleITK-free training path."""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from SpineGradeLogic.grading.calibration import fit_temperatures
from SpineGradeLogic.grading.data import IMAGE_SCALE, Augment, CropSet, load_prepared, normalise_crop
from SpineGradeLogic.grading.heads import (
    OUTPUT_SIZE, ORDINAL_HEADS, abnormality, evidence_class, grade_indices, mirror_permutation, most_abnormal_head,
    probabilities, split_outputs,
)
from SpineGradeLogic.grading.loss import grading_loss
from SpineGradeLogic.grading.metrics import (
    balanced_accuracy, balanced_accuracy_interval, expected_calibration_error, head_metrics, quadratic_weighted_kappa,
    recall_per_class, rsna_weighted_log_loss,
)
from SpineGradeLogic.grading.network import CROP_SHAPE, GradingNet, build_network
from SpineGradeLogic.names import HEAD_NAMES, HEADS


def test_network_shapes_and_size():
    net = build_network().eval()
    n_params = sum(p.numel() for p in net.parameters())
    assert n_params * 4 < 5e6  # a few MB of float32 weights
    with torch.no_grad():
        raw = net(torch.rand(3, 3, *CROP_SHAPE))
    assert raw.shape == (3, OUTPUT_SIZE)
    probs = probabilities(raw)
    for h in HEAD_NAMES:
        assert probs[h].shape == (3, len(HEADS[h]))
        np.testing.assert_allclose(probs[h].sum(1), 1.0, atol=1e-5)
        assert np.all(probs[h] >= 0)


def test_ordinal_probabilities_follow_the_grade_order():
    """Raising an ordinal head's latent score moves probability to higher grades at every cut point."""
    torch.manual_seed(0)
    net = GradingNet(channels=(4, 4, 8, 8)).eval()
    x = torch.rand(1, 1, *CROP_SHAPE)
    bias_index = {}
    i = 0
    for h, n in zip(HEAD_NAMES, net.n_pre):
        bias_index[h] = i
        i += n
    prev = None
    for shift in (-3.0, -1.0, 0.0, 1.0, 3.0):
        with torch.no_grad():
            net.linear.bias.zero_()
            for h in ORDINAL_HEADS:
                net.linear.bias[bias_index[h]] = shift
            p = probabilities(net(x))
        exceed = {h: 1 - np.cumsum(p[h][0])[:-1] for h in ORDINAL_HEADS}  # P(grade > k)
        for h in ORDINAL_HEADS:
            assert np.all(np.diff(exceed[h]) <= 1e-7), h  # P(y > k) falls with k
            if prev is not None:
                assert np.all(exceed[h] >= prev[h] - 1e-7), h  # stochastic dominance
        prev = exceed


def test_temperature_keeps_order_and_sums():
    raw = torch.randn(5, OUTPUT_SIZE) * 3
    p = probabilities(raw, {h: 2.5 for h in HEAD_NAMES})
    for h in HEAD_NAMES:
        np.testing.assert_allclose(p[h].sum(1), 1.0, atol=1e-5)


def test_balanced_accuracy_by_hand():
    assert balanced_accuracy([0, 0, 0, 1], [0, 0, 1, 1]) == pytest.approx((2 / 3 + 1) / 2)
    assert balanced_accuracy([2, 2, 0], [2, 0, 0]) == pytest.approx((1 + 0.5) / 2)


def test_recall_per_grade_and_its_support_explain_balanced_accuracy():
    t, p = [0, 0, 0, 1, 1, 3], [0, 1, 0, 1, 1, 2]
    recall, support = recall_per_class(t, p, 4)
    assert support == [3, 2, 0, 1]
    assert recall[:2] == pytest.approx([2 / 3, 1.0]) and recall[2] is None and recall[3] == 0.0
    assert np.mean([r for r in recall if r is not None]) == pytest.approx(balanced_accuracy(t, p))
    json.dumps(recall, allow_nan=False)  # bundle metadata and --json output stay strict JSON
    # one head through head_metrics and the evaluation report: grades named by value, rare ones flagged
    from SpineGradeLogic.grading.evaluate import per_grade_lines

    probs = {"disc_narrowing": np.eye(4)[p]}
    targets = np.full((6, len(HEAD_NAMES)), -1)
    targets[:, HEAD_NAMES.index("disc_narrowing")] = t
    m = head_metrics(probs, targets)
    assert m["disc_narrowing"]["support"] == support
    text = "\n".join(per_grade_lines(m))
    assert "0: 0.67 (3*)" in text and "2: -" in text and "3: 0.00 (1*)" in text
    assert "disc_narrowing grade 3 (1 crop)" in text and "disc_narrowing grade 2" not in text
    pf = {"pfirrmann": np.eye(5)[np.zeros(12, int)]}
    targets = np.full((12, len(HEAD_NAMES)), -1)
    targets[:, HEAD_NAMES.index("pfirrmann")] = 0
    text = "\n".join(per_grade_lines(head_metrics(pf, targets)))
    assert "1: 1.00 (12)" in text and "handful" not in text  # Pfirrmann's grades start at 1


def test_balanced_accuracy_interval_resamples_cases_not_crops():
    rng = np.random.default_rng(1)
    t = rng.integers(0, 3, 60)
    p = np.where(rng.random(60) < 0.7, t, (t + 1) % 3)
    cases = np.arange(60)
    lo, hi = balanced_accuracy_interval(t, p, cases)
    assert lo < balanced_accuracy(t, p) < hi
    assert balanced_accuracy_interval(t, t, cases) == (1.0, 1.0)
    # four identical crops per case add no information: a case bootstrap gives the same interval,
    # a crop bootstrap would narrow it by half
    rep = np.repeat(np.arange(60), 4)
    assert balanced_accuracy_interval(t[rep], p[rep], cases[rep]) == pytest.approx((lo, hi))
    # more independent cases narrow it
    t4, p4 = np.tile(t, 4), np.tile(p, 4)
    lo4, hi4 = balanced_accuracy_interval(t4, p4, np.arange(240))
    assert hi4 - lo4 < 0.7 * (hi - lo)


def test_quadratic_weighted_kappa_by_hand():
    # O = diag(1,1,1) + one 3->2; worked out in docs/grading.md: 1 - (1/9) / (32/36) = 0.875
    assert quadratic_weighted_kappa([0, 1, 2, 3], [0, 1, 2, 2], 4) == pytest.approx(0.875)
    assert quadratic_weighted_kappa([0, 1, 2], [0, 1, 2], 3) == pytest.approx(1.0)
    assert quadratic_weighted_kappa([0, 0], [0, 0], 2) == 1.0
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    t, p = rng.integers(0, 4, 50), rng.integers(0, 4, 50)
    assert quadratic_weighted_kappa(t, p, 4) == pytest.approx(sk.cohen_kappa_score(t, p, weights="quadratic"))


def test_expected_calibration_error_by_hand():
    probs = np.array([[0.9, 0.1], [0.6, 0.4]])
    # bin of 0.9: correct (1 - 0.9) x 1/2; bin of 0.6: wrong (0.6 - 0) x 1/2
    assert expected_calibration_error(probs, [0, 1]) == pytest.approx(0.5 * 0.1 + 0.5 * 0.6)
    assert expected_calibration_error(np.array([[1.0, 0.0]] * 4), [0] * 4) == pytest.approx(0.0)


def test_rsna_weighted_log_loss_by_hand():
    uniform = np.full((2, 4), 0.25)  # RSNA: normal/mild 0.5, moderate 0.25, severe 0.25
    probs = {h: uniform for h in ("central_canal_stenosis", "foraminal_stenosis_left", "foraminal_stenosis_right",
                                  "lateral_recess_stenosis_left", "lateral_recess_stenosis_right")}
    truth = {"central_canal_stenosis": [0, 3], "foraminal_stenosis_left": [2, 2], "foraminal_stenosis_right": [0, 1],
             "lateral_recess_stenosis_left": [0, 0], "lateral_recess_stenosis_right": [1, 0]}
    r = rsna_weighted_log_loss(probs, truth, ["s1", "s1"])
    l2, l4 = math.log(2), math.log(4)
    spinal = (1 * l2 + 4 * l4) / 5  # weights 1 (normal) and 4 (severe)
    foraminal = (2 * l4 + 2 * l4 + 1 * l2 + 1 * l2) / 6  # moderate, moderate, normal, mild
    subarticular = l2
    any_severe = l4  # one study, label 1, predicted 0.25, weight 4
    assert r["spinal_canal_stenosis"] == pytest.approx(spinal)
    assert r["neural_foraminal_narrowing"] == pytest.approx(foraminal)
    assert r["subarticular_stenosis"] == pytest.approx(subarticular)
    assert r["any_severe_spinal"] == pytest.approx(any_severe)
    assert r["score"] == pytest.approx((spinal + foraminal + subarticular + any_severe) / 4)


def test_calibration_reduces_ece_on_an_overconfident_toy():
    rng = np.random.default_rng(1)
    n = 4000
    p_true = rng.uniform(0.05, 0.95, n)
    y = (rng.uniform(size=n) < p_true).astype(int)
    logit = np.log(p_true / (1 - p_true))
    raw = torch.zeros(n, OUTPUT_SIZE, dtype=torch.float64)
    sl = split_outputs(raw)  # views
    sl["disc_herniation"][:, 1] = torch.as_tensor(4.0 * logit)  # four times overconfident
    targets = torch.zeros(n, len(HEAD_NAMES), dtype=torch.long)
    targets[:, HEAD_NAMES.index("disc_herniation")] = torch.as_tensor(y)
    temps = fit_temperatures(raw, targets, ["disc_herniation"])
    assert temps["disc_herniation"] == pytest.approx(4.0, rel=0.15)
    before = probabilities(raw)["disc_herniation"]
    after = probabilities(raw, temps)["disc_herniation"]
    assert expected_calibration_error(after, y) < 0.5 * expected_calibration_error(before, y)
    assert expected_calibration_error(after, y) < 0.03


def test_heads_selection_helpers():
    probs = {h: np.eye(len(HEADS[h]))[0] for h in HEAD_NAMES}  # everything normal...
    probs["pfirrmann"] = np.array([0.0, 1.0, 0, 0, 0])  # Pfirrmann 2 counts as normal
    probs["modic"] = np.array([0.3, 0.1, 0.5, 0.1])  # ... but a likely Modic 2
    assert most_abnormal_head(probs) == "modic"
    assert abnormality("pfirrmann", probs["pfirrmann"]) == pytest.approx(0.0)
    assert evidence_class("modic", probs["modic"]) == 2
    assert evidence_class("disc_herniation", np.array([0.8, 0.2])) == 1  # normal predicted: explain the abnormal class
    assert grade_indices(np.array([[5] + [0] * 12]))[0, 0] == 4


def test_loss_decreases_on_the_right_class():
    raw = torch.zeros(2, OUTPUT_SIZE, requires_grad=True)
    target = torch.zeros(2, len(HEAD_NAMES), dtype=torch.long)
    loss = grading_loss(raw, target)
    loss.backward()
    assert torch.isfinite(loss) and raw.grad.abs().sum() > 0


def _toy_crops(n=12, seed=0) -> CropSet:
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 40, (n, *CROP_SHAPE)).astype(np.uint8)
    grades = np.array([[HEADS[h][rng.integers(len(HEADS[h]))] for h in HEAD_NAMES] for _ in range(n)])
    return CropSet(img, grades, np.array(["L4/L5"] * n), np.zeros(n, np.float32), np.arange(n) // 4,
                   np.array(["T2"] * n))


def test_crop_cache_round_trip(tmp_path):
    c = _toy_crops()
    c.save(tmp_path / "grading-train-7.npz")
    back = load_prepared([tmp_path], "train")
    assert len(back) == len(c)
    np.testing.assert_array_equal(back.image, c.image)
    np.testing.assert_array_equal(back.grades, c.grades)
    assert len(load_prepared([tmp_path], "calibration")) == 0


def test_loading_many_caches_keeps_every_field_in_file_order(tmp_path):
    from dataclasses import replace

    from SpineGradeLogic.errors import DatasetError

    a, b = _toy_crops(5, seed=1), _toy_crops(3, seed=2)
    rng = np.random.default_rng(3)
    b = replace(b, axial=rng.integers(0, 60, b.image.shape).astype(np.uint8), level=np.array(["L5/S1"] * 3),
                measures=rng.random((3, a.measures.shape[1])).astype(np.float32))
    a.save(tmp_path / "one" / "grading-train-1.npz")
    b.save(tmp_path / "two" / "grading-train-2.npz")
    both = load_prepared([tmp_path / "one", tmp_path / "two"], "train")
    ref = CropSet.concat([a, b])
    for f in CropSet.FIELDS:
        np.testing.assert_array_equal(getattr(both, f), getattr(ref, f), err_msg=f)
    assert both.has_axial.tolist() == [False] * 5 + [True] * 3
    (tmp_path / "two" / "grading-train-3.npz").write_bytes(b"truncated")
    with pytest.raises(DatasetError, match="grading-train-3.npz"):
        load_prepared([tmp_path / "one", tmp_path / "two"], "train")


def test_normalise_crop_scale():
    a = np.linspace(0, 200, 24 * 80 * 64, dtype=np.float32).reshape(CROP_SHAPE)
    x = normalise_crop(a)
    assert x.max() <= 1.5 and np.percentile(x[a > 0], 99) == pytest.approx(1.0, abs=0.01)
    assert not np.any(normalise_crop(np.zeros(CROP_SHAPE)))


def test_augment_mirror_swaps_left_and_right():
    gen = torch.Generator().manual_seed(0)
    x = torch.zeros(64, 1, *CROP_SHAPE)
    x[:, :, :4] = 1.0  # bright on the left (axis 0 = patient left)
    y = torch.zeros(64, len(HEAD_NAMES), dtype=torch.long)
    y[:, HEAD_NAMES.index("foraminal_stenosis_left")] = 3
    aug = Augment(rotate_deg=(0, 0, 0), shift_mm=(0, 0, 0), scale=0, gamma=(1, 1), gain=0, bias=0, noise=0,
                  edge_zero_prob=0)
    xa, ya = aug(x, y, gen)
    assert xa.shape == x.shape
    flipped = ya[:, HEAD_NAMES.index("foraminal_stenosis_right")] == 3
    assert 0 < flipped.sum() < 64
    # a mirrored crop is bright on the other side, and only those
    right_bright = xa[:, 0, -4:].mean((1, 2, 3)) > 0.5
    assert torch.equal(right_bright, flipped)
    assert sorted(mirror_permutation()) == list(range(len(HEAD_NAMES)))


def test_augment_geometry_keeps_values_in_range():
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(4, 1, *CROP_SHAPE)
    xa, _ = Augment()(x, torch.zeros(4, len(HEAD_NAMES), dtype=torch.long), gen)
    assert xa.shape == x.shape and float(xa.min()) >= 0 and float(xa.max()) <= 1.5


def test_training_path_does_not_import_simpleitk():
    code = ("import sys; import SpineGradeLogic.grading.training_run, SpineGradeLogic.grading.cli, "
            "SpineGradeLogic.grading.evaluate, SpineGradeLogic.grading.infer, SpineGradeLogic.models.bundle; "
            "bad = [m for m in ('SimpleITK',) if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    # (nibabel is not checked: MONAI imports it by itself where it is installed, and does without it)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_smoke_training_writes_a_calibrated_bundle(tmp_path):
    from SpineGradeLogic.grading.cli import register_grading
    from SpineGradeLogic.grading.infer import Grader

    prepared = tmp_path / "prep"
    _toy_crops(8, 0).save(prepared / "grading-train-0.npz")
    _toy_crops(4, 1).save(prepared / "grading-calibration-100000.npz")
    p = argparse.ArgumentParser()
    register_grading(p.add_subparsers(dest="model"))
    out = tmp_path / "spinegrade_grading"
    args = p.parse_args(["grading", "--prepared", str(prepared), "--out", str(out), "--epochs", "1", "--steps", "2",
                         "--batch-size", "4"])
    assert args.func(args) == 0
    g = Grader.load(out)
    assert set(g.temperatures) == set(HEAD_NAMES) and all(t > 0 for t in g.temperatures.values())
    card = (out / "docs" / "README.md").read_text()
    assert "synthetic" in card
    # the card names how few crops each head's rarest grade had; the bundle keeps the held-out grade counts
    counts = json.loads((out / "configs" / "metadata.json").read_text())["spinegrade"]["training"]["training"]["class_counts"]
    assert f"disc_narrowing {HEADS['disc_narrowing'][int(np.argmin(counts['disc_narrowing']))]}: " \
           f"{min(counts['disc_narrowing'])}" in card
    assert set(g.priors) <= set(HEAD_NAMES) and g.priors
    assert (tmp_path / "spinegrade_grading.checkpoint.record.json").is_file()


def _intensity_as_defined(aug: Augment, x: torch.Tensor, U, gen: torch.Generator) -> torch.Tensor:
    """``Augment._intensity`` written out step by step, each a new tensor (before it was made fast)."""
    B = x.shape[0]
    g = aug.gamma[0] + U(B, 1, 1, 1, 1) * (aug.gamma[1] - aug.gamma[0])
    x = x.clamp_min(0).pow(g)
    x = x * (1 + (U(B, 1, 1, 1, 1) * 2 - 1) * aug.gain)
    L, P, S = torch.meshgrid(*[torch.linspace(-1, 1, n) for n in x.shape[2:]], indexing="ij")
    d = (U(B, 3) * 2 - 1) * aug.bias
    field = 1 + d[:, 0, None, None, None] * L + d[:, 1, None, None, None] * P + d[:, 2, None, None, None] * S
    x = x * field[:, None].clamp_min(0.3)
    x = x + torch.randn(x.shape, generator=gen) * (U(B, 1, 1, 1, 1) * aug.noise)
    x = x + (U(*x.shape) - 0.5) / IMAGE_SCALE
    return x.clamp(0, 1.5)


def test_augment_intensity_follows_its_definition_and_leaves_the_input_alone():
    aug = Augment(bias=0.6, gain=0.3, noise=0.1)  # strong enough that a ramp along a wrong axis shows
    x = torch.rand(6, 1, *CROP_SHAPE) * 1.5
    before = x.clone()
    streams = []
    for _ in range(2):
        gen = torch.Generator().manual_seed(5)
        streams.append((gen, lambda *shape, gen=gen: torch.rand(*shape, generator=gen)))
    fast = aug._intensity(x, streams[0][1], streams[0][0], edges=False)
    slow = _intensity_as_defined(aug, x, streams[1][1], streams[1][0])
    assert torch.equal(x, before)
    assert torch.allclose(fast, slow, atol=1e-5)
