"""The auxiliary measurement target: what a crop carries, how the mirror treats it, that the cache
keeps it, that it lines up with the grades, and that training uses it and ships without it."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch

from SpineGradeLogic.grading.data import Augment, BatchSource, CropSet, load_prepared
from SpineGradeLogic.grading.loss import grading_loss, loss_with_measures
from SpineGradeLogic.grading.measures import (
    MEASURE_NAMES, MeasureTrainer, measure_loss, measure_vector, mirror_measure_permutation,
)
from SpineGradeLogic.grading.network import CROP_SHAPE, build_network, input_channels
from SpineGradeLogic.names import HEAD_NAMES, HEADS
from SpineGradeLogic.phantom import grading as truth_grading

COL = {n: i for i, n in enumerate(MEASURE_NAMES)}


def _crops(n=8, seed=0, measured=True) -> CropSet:
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 40, (n, *CROP_SHAPE)).astype(np.uint8)
    grades = np.array([[HEADS[h][rng.integers(len(HEADS[h]))] for h in HEAD_NAMES] for _ in range(n)])
    measures = rng.uniform(0, 1, (n, len(MEASURE_NAMES))).astype(np.float32) if measured else None
    return CropSet(img, grades, np.array(["L4/L5"] * n), np.zeros(n, np.float32), np.arange(n) // 4,
                   np.array(["T2"] * n), measures=measures)


def test_measure_vector_scales_and_marks_what_is_missing():
    extra = {"measurements": {"height_ratio": 0.7, "hydration": 0.4, "slip_mm": 30.0, "central_compromise": 0.5},
             "pathology": {"herniation_mm": 2.0}}
    v = measure_vector(extra)
    assert v[COL["height_loss"]] == pytest.approx(0.3)
    assert v[COL["hydration"]] == pytest.approx(0.4)
    assert v[COL["slip"]] == pytest.approx(2.0)  # 30 mm / 6 clipped to the maximum
    assert v[COL["herniation"]] == pytest.approx(0.5)  # the 2 mm threshold lands on 0.5
    assert v[COL["central_compromise"]] == pytest.approx(0.5)
    assert np.isnan(v[COL["bulge"]]) and np.isnan(v[COL["foramen_compromise_left"]])
    assert np.isnan(measure_vector(None)).all()


def test_mirror_swaps_left_and_right_measurements_with_the_heads():
    perm = mirror_measure_permutation()
    assert sorted(perm) == list(range(len(MEASURE_NAMES)))
    assert perm[COL["foramen_compromise_left"]] == COL["foramen_compromise_right"]
    assert perm[COL["recess_compromise_right"]] == COL["recess_compromise_left"]
    assert perm[COL["central_compromise"]] == COL["central_compromise"]

    gen = torch.Generator().manual_seed(0)
    x = torch.zeros(64, 1, *CROP_SHAPE)
    x[:, :, :4] = 1.0  # bright on the patient's left
    y = torch.zeros(64, len(HEAD_NAMES), dtype=torch.long)
    m = torch.zeros(64, len(MEASURE_NAMES))
    m[:, COL["foramen_compromise_left"]] = 0.9
    m[:, COL["hydration"]] = 0.3
    aug = Augment(rotate_deg=(0, 0, 0), shift_mm=(0, 0, 0), scale=0, gamma=(1, 1), gain=0, bias=0, noise=0,
                  edge_zero_prob=0)
    xa, ya, ma = aug(x, y, gen, m)
    flipped = xa[:, 0, -4:].mean((1, 2, 3)) > 0.5
    assert 0 < int(flipped.sum()) < 64
    assert torch.equal(ma[:, COL["foramen_compromise_right"]] == 0.9, flipped)
    assert torch.equal(ma[:, COL["foramen_compromise_left"]] == 0.9, ~flipped)
    assert torch.all(ma[:, COL["hydration"]] == 0.3)
    assert len(aug(x, y, gen)) == 2  # without measurements the call is as before


def test_the_cache_keeps_measurements_and_older_caches_read_as_unknown(tmp_path):
    c = _crops()
    c.save(tmp_path / "grading-train-1.npz")
    back = load_prepared([tmp_path], "train")
    np.testing.assert_array_equal(back.measures, c.measures)
    np.testing.assert_array_equal(back.subset(np.arange(8) < 3).measures, c.measures[:3])
    np.testing.assert_array_equal(back.without_axial().measures, c.measures)
    np.testing.assert_array_equal(CropSet.concat([back, _crops(measured=False)]).measures[:8], c.measures)
    # a cache written before measurements existed
    d = dict(np.load(tmp_path / "grading-train-1.npz"))
    del d["measures"]
    np.savez_compressed(tmp_path / "grading-train-2.npz", **d)
    both = load_prepared([tmp_path], "train")
    assert np.isnan(both.measures[8:]).all() and np.isfinite(both.measures[:8]).all()
    with pytest.raises(Exception, match="measurements"):
        CropSet(c.image, c.grades, c.level, c.outside, c.case, c.contrast, measures=np.zeros((8, 3), np.float32))


def test_generated_crops_carry_the_measurements_behind_their_grades():
    from SpineGradeLogic.grading.prepare import crops_of_case
    from SpineGradeLogic.phantom import PhantomConfig, generate_case

    case = generate_case(5, "lumbar", "T2", PhantomConfig.small())
    crops = crops_of_case(case, "T2")
    assert len(crops) == len(case.truth.discs) > 0
    m = crops.measures
    assert np.isfinite(m).all()
    g = {h: crops.grades[:, HEAD_NAMES.index(h)] for h in HEAD_NAMES}
    # row for row the grades are these measurements cut at the generator's thresholds (values stored
    # rounded and in float32: those within 1e-3 of a threshold are not checked)
    def agrees(head, value, cuts, grade_of):
        return np.abs(value - np.asarray(cuts)).min() < 1e-3 or g[head][i] == grade_of(value)

    for i in range(len(crops)):
        assert agrees("disc_narrowing", m[i, COL["height_loss"]], truth_grading.NARROWING,
                      lambda v: truth_grading.narrowing_grade(1 - v))
        for head, col in (("central_canal_stenosis", "central_compromise"),
                          ("foraminal_stenosis_left", "foramen_compromise_left"),
                          ("lateral_recess_stenosis_right", "recess_compromise_right")):
            assert agrees(head, m[i, COL[col]], truth_grading.STENOSIS, truth_grading.stenosis_grade)
        assert agrees("disc_herniation", m[i, COL["herniation"]], [0.5], lambda v: int(v >= 0.5))


def test_measure_loss_skips_unknown_values():
    pred = torch.zeros(3, 2)
    target = torch.tensor([[1.0, float("nan")], [1.0, float("nan")], [float("nan"), float("nan")]])
    assert float(measure_loss(pred, target)) == pytest.approx(1.0)


def test_the_measurement_head_trains_with_the_network_and_leaves_its_output_alone():
    torch.manual_seed(0)
    net = build_network(channels=(4, 8, 8, 8), dropout=0.0)
    crops = _crops(8)
    trainer = MeasureTrainer(net, crops.measures)
    x = torch.rand(4, input_channels(net), *CROP_SHAPE)
    net.eval(), trainer.eval()
    assert torch.equal(trainer(x), net(x))  # validation and calibration see the shipped network
    assert input_channels(trainer) == input_channels(net)
    # it starts at the training set's mean
    np.testing.assert_allclose(trainer.predicted_measures(x).detach().numpy()[0], np.nanmean(crops.measures, 0), atol=1e-5)

    batch = next(BatchSource(crops, 4, channels=input_channels(net))())
    target = batch["target"]
    plain = grading_loss(net(batch["image"]), target, allowed=batch["allowed"])
    no_measures = dict(batch, measures=torch.full_like(batch["measures"], float("nan")))
    assert float(loss_with_measures(1.0)(trainer, no_measures).detach()) == pytest.approx(float(plain.detach()), rel=1e-5)

    trainer.train()
    opt = torch.optim.Adam(trainer.parameters(), lr=1e-2)
    first = None
    for _ in range(15):
        opt.zero_grad()
        _, pred = trainer.grades_and_measures(batch["image"])
        err = trainer.measure_error(pred, batch["measures"])
        first = float(err.detach()) if first is None else first
        err.backward()
        opt.step()
    assert float(err.detach()) < 0.5 * first
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.features.parameters())


def test_training_with_measurements_ships_the_plain_network(tmp_path):
    from SpineGradeLogic.grading.cli import register_grading
    from SpineGradeLogic.grading.infer import Grader
    import json

    prepared = tmp_path / "prep"
    _crops(8, 0).save(prepared / "grading-train-0.npz")
    _crops(4, 1, measured=False).save(prepared / "grading-train-1.npz")
    _crops(4, 2, measured=False).save(prepared / "grading-calibration-100000.npz")
    p = argparse.ArgumentParser()
    register_grading(p.add_subparsers(dest="model"))
    out = tmp_path / "spinegrade_grading"
    args = p.parse_args(["grading", "--prepared", str(prepared), "--out", str(out), "--epochs", "1", "--steps", "2",
                         "--batch-size", "4", "--measure-weight", "0.5"])
    assert args.func(args) == 0
    g = Grader.load(out)  # the bundle rebuilds as the plain grading network
    assert not any(k.startswith("measure") for k in g.network.state_dict())
    record = json.loads((out / "configs" / "metadata.json").read_text())["spinegrade"]["training"]
    assert record["training"]["crops_with_measurements"] == 8
    assert record["config"]["measure_weight"] == 0.5
    assert "Auxiliary target on 8 of the training crops" in (out / "docs" / "README.md").read_text()
