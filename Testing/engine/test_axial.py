"""The axial T2 channel: the generator's axial stack, its crops, the 3-channel network and the
grading stage that finds, crops and records the study's axial series."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from SpineGradeLogic.discs.crop import extract_crop
from SpineGradeLogic.errors import InputError
from SpineGradeLogic.grading.data import (NO_AXIAL, Augment, CropSet, axial_channel, load_prepared,
                                          network_input)
from SpineGradeLogic.grading.network import CROP_SHAPE, build_network, input_channels, widen_input
from SpineGradeLogic.grading.prepare import crops_of_case, truth_location
from SpineGradeLogic.io.axial import load_axial, pick_axial_series
from SpineGradeLogic.io.orientation import acquisition_plane
from SpineGradeLogic.io.study import load_study
from SpineGradeLogic.names import HEAD_NAMES
from SpineGradeLogic.phantom import PhantomConfig, generate_case
from SpineGradeLogic.phantom.case import write_case

SMALL = PhantomConfig.small(axial_lower_share=0.0, coverage_mm=(52.0, 52.0))  # the crop is 48 mm across


@pytest.fixture(scope="module")
def with_axial():
    return generate_case(21, "lumbar", "T2", SMALL, axial=True)


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory, with_axial):
    return write_case(with_axial, tmp_path_factory.mktemp("axial_case"), dicom=True)


def test_the_axial_stack_is_axial_and_leaves_the_grades_alone(with_axial):
    plain = generate_case(21, "lumbar", "T2", SMALL)
    assert plain.axial is None and with_axial.axial is not None
    plane = acquisition_plane(with_axial.axial)
    assert plane.plane == "axial" and plane.obliquity_deg <= SMALL.axial_tilt_deg + 1
    assert with_axial.axial.spacing[2] >= SMALL.axial_thickness_mm[0] > with_axial.axial.spacing[0]
    grades = lambda c: {(d.level, h): g.grade for d in c.truth.discs for h, g in d.grades.items()}  # noqa: E731
    assert grades(plain) == grades(with_axial)
    # the stack runs from L1/L2 to L5/S1: those discs' centres lie inside it
    for d in with_axial.truth.discs:
        if d.level in ("L1/L2", "L3/L4", "L5/S1"):
            ijk = with_axial.axial.ras_to_index(np.asarray(d.center_mm)[None])[0]
            assert np.all(ijk >= -0.5) and np.all(ijk <= np.array(with_axial.axial.shape) - 0.5), d.level


def test_the_axial_crop_shows_the_same_anatomy(with_axial):
    d = next(d for d in with_axial.truth.discs if d.level == "L4/L5")
    loc = truth_location(d)
    sag, ax = extract_crop(with_axial.image, loc), extract_crop(with_axial.axial, loc)
    assert ax.outside_fraction < 0.2
    # both series image one anatomy in one frame: their crops correlate far above chance
    a, b = sag.image.array[ax.inside], ax.image.array[ax.inside]
    assert np.corrcoef(a, b)[0, 1] > 0.5


def test_written_study_holds_two_series_and_the_sagittal_is_graded(study_dir):
    assert (study_dir / "axial.nii.gz").is_file()
    study = load_study(study_dir / "dicom")
    assert study.info.extra["plane"] == "sagittal"
    axial = study.other_series("axial")
    assert len(axial) == 1 and axial[0].sequence == "T2"
    frame = study.chosen_series().headers["FrameOfReferenceUID"]
    assert pick_axial_series(study.other_series(), frame) is axial[0]
    assert pick_axial_series(study.other_series(), "1.2.3.another.frame") is None
    assert load_axial(study_dir / "dicom").volume.shape == load_axial(study_dir / "axial.nii.gz").volume.shape


def test_load_axial_names_what_is_wrong(tmp_path, study_dir):
    with pytest.raises(InputError, match="no such file"):
        load_axial(tmp_path / "missing.nii.gz")
    with pytest.raises(InputError, match="not an axial one"):
        load_axial(study_dir / "image.nii.gz")
    bad = tmp_path / "axial.nii.gz"
    bad.write_bytes(b"not an image")
    with pytest.raises(InputError, match="not a readable"):
        load_axial(bad)


def test_axial_crops_are_stored_and_marked_absent(tmp_path, with_axial):
    crops = crops_of_case(with_axial, "T2")
    lumbar = np.isin(crops.level, ["L1/L2", "L2/L3", "L3/L4", "L4/L5", "L5/S1"])
    assert crops.has_axial[lumbar].all() and not crops.has_axial[np.isin(crops.level, ["T11/T12"])].any()
    far = extract_crop(with_axial.axial, truth_location(with_axial.truth.discs[0]))
    far.inside[:] = False  # a level the stack does not reach
    assert np.all(axial_channel(far) == NO_AXIAL)
    crops.save(tmp_path / "grading-train-21.npz")
    back = load_prepared([tmp_path], "train")
    np.testing.assert_array_equal(back.axial, crops.axial)
    assert not back.without_axial().has_axial.any()
    # a cache written before the axial channel loads with the axial marked absent
    d = dict(np.load(tmp_path / "grading-train-21.npz"))
    d.pop("axial")
    np.savez_compressed(tmp_path / "grading-train-22.npz", **d)
    old = CropSet.load(tmp_path / "grading-train-22.npz")
    assert old.axial.shape == old.image.shape and not old.has_axial.any()


def test_network_input_channels():
    img = torch.full((2, *CROP_SHAPE), 42, dtype=torch.uint8)
    ax = torch.full((2, *CROP_SHAPE), 21, dtype=torch.uint8)
    ax[1] = NO_AXIAL
    assert network_input(img, ax, 1).shape == (2, 1, *CROP_SHAPE)
    x = network_input(img, ax, 3)
    assert x.shape == (2, 3, *CROP_SHAPE)
    assert float(x[0, 1].mean()) == pytest.approx(0.5) and float(x[0, 2].min()) == 1.0
    assert float(x[1, 1:].abs().max()) == 0.0  # absent: zero image and zero mask
    with pytest.raises(ValueError):
        network_input(img, ax, 2)


def test_widening_a_sagittal_network_keeps_its_outputs():
    torch.manual_seed(0)
    one, three = build_network(in_channels=1).eval(), build_network().eval()
    assert input_channels(one) == 1 and input_channels(three) == 3
    three.load_state_dict(widen_input(one.state_dict(), 3))
    x = torch.rand(2, 1, *CROP_SHAPE)
    x3 = torch.cat([x, torch.rand(2, 2, *CROP_SHAPE)], 1)
    assert torch.allclose(one(x), three(x3), atol=1e-5)
    with pytest.raises(ValueError):
        widen_input(three.state_dict(), 1)


def test_augment_keeps_the_mask_binary_and_drops_the_axial_whole():
    gen = torch.Generator().manual_seed(0)
    x = torch.cat([torch.rand(16, 2, *CROP_SHAPE), torch.ones(16, 1, *CROP_SHAPE)], 1)
    x[:8, 2, :, :, :20] = 0  # the stack ends part-way up these crops
    x[:8, 1, :, :, :20] = 0
    y = torch.zeros(16, len(HEAD_NAMES), dtype=torch.long)
    xa, _ = Augment(axial_drop=0.0)(x, y, gen)
    mask = xa[:, 2]
    assert set(torch.unique(mask).tolist()) <= {0.0, 1.0}
    assert float(xa[:, 1][mask == 0].abs().max()) == 0.0
    assert float(mask[8:].mean()) > 0.9 and float(mask[:8].mean()) < 0.85
    dropped, _ = Augment(axial_drop=1.0)(x, y, gen)
    assert float(dropped[:, 1:].abs().max()) == 0.0 and float(dropped[:, 0].max()) > 0


# --- the grading stage with a 3-channel model ------------------------------------------------------

@pytest.fixture(scope="module")
def sagittal_bundle(tmp_path_factory) -> Path:
    """An (untrained) 1-channel grading bundle, as 0.1.0 and 0.2.0 were: it reads the sagittal crop only."""
    import torch

    from SpineGradeLogic.grading.bundle_card import grading_metadata, grading_model_card
    from SpineGradeLogic.grading.network import NETWORK_KWARGS, build_network
    from SpineGradeLogic.models.bundle import save_bundle

    kwargs = {**NETWORK_KWARGS, "in_channels": 1}
    record = {"network_kwargs": kwargs}
    out = tmp_path_factory.mktemp("sagittal_bundle") / "spinegrade_grading"
    torch.manual_seed(0)
    save_bundle(out, build_network(**kwargs), kwargs,
                grading_metadata("0.0.1", "sagittal-only test bundle", {h: 1.0 for h in HEAD_NAMES}, record),
                grading_model_card(record), network_class_name="SpineGradeLogic.grading.network.GradingNet")
    return out


@pytest.fixture(scope="module")
def axial_bundle(tmp_path_factory) -> Path:
    """A (barely trained) 3-channel grading bundle written by the real training command."""
    import argparse

    from SpineGradeLogic.grading.cli import register_grading
    from SpineGradeLogic.names import HEADS

    root = tmp_path_factory.mktemp("axial_bundle")
    rng = np.random.default_rng(0)
    for name, n in (("grading-train-0.npz", 8), ("grading-calibration-100000.npz", 4)):
        grades = np.array([[HEADS[h][rng.integers(len(HEADS[h]))] for h in HEAD_NAMES] for _ in range(n)])
        CropSet(rng.integers(0, 40, (n, *CROP_SHAPE)).astype(np.uint8), grades, np.array(["L4/L5"] * n),
                np.zeros(n, np.float32), np.arange(n), np.array(["T2"] * n),
                axial=rng.integers(0, 40, (n, *CROP_SHAPE)).astype(np.uint8)).save(root / "prep" / name)
    p = argparse.ArgumentParser()
    register_grading(p.add_subparsers(dest="model"))
    out = root / "spinegrade_grading"
    args = p.parse_args(["grading", "--prepared", str(root / "prep"), "--out", str(out), "--epochs", "1",
                         "--steps", "1", "--batch-size", "4"])
    assert args.func(args) == 0
    return out


def _run(study_dir, out, bundle, **kw):
    from SpineGradeLogic.pipeline import RunOptions, run_study

    opts = RunOptions(saliency="default", bundles={"spinegrade_grading": bundle}, **kw)
    return run_study(study_dir / "dicom", out, opts)


def test_the_stage_grades_with_the_studys_axial_series(tmp_path, study_dir, axial_bundle):
    from SpineGradeLogic.grading.infer import Grader

    assert Grader.load(axial_bundle).uses_axial
    res = _run(study_dir, tmp_path / "with", axial_bundle)
    used = res.input.extra["axial_series"]
    assert used["description"] == "AX T2 TSE" and used["source"] == "study"
    cover = {d.level: d.extra.get("axial_coverage") for d in res.discs if d.grades}
    assert cover and all(v is not None for v in cover.values())
    assert max(cover.values()) > 0.5 and min(cover.values()) == 0.0  # thoracic levels: no axial slices
    assert any(d.saliency for d in res.discs)
    alone = _run(study_dir, tmp_path / "alone", axial_bundle, use_axial=False)
    assert "axial_series" not in alone.input.extra
    assert all("axial_coverage" not in d.extra for d in alone.discs)
    # the axial channels change what the model sees, hence (an untrained model's) probabilities
    p = lambda r: np.array([g.probabilities for d in r.discs if d.level == "L4/L5" for g in d.grades.values()],  # noqa: E731
                           dtype=object)
    assert not all(np.allclose(a, b) for a, b in zip(p(res), p(alone)))


def test_a_bad_axial_series_is_a_warning(tmp_path, study_dir, axial_bundle):
    res = _run(study_dir, tmp_path / "bad", axial_bundle, axial=study_dir / "image.nii.gz")
    assert any("axial series could not be used" in w and "not an axial one" in w for w in res.warnings)
    assert any(d.grades for d in res.discs) and "axial_series" not in res.input.extra


def test_a_sagittal_only_model_says_it_ignores_a_named_axial(tmp_path, study_dir, sagittal_bundle):
    res = _run(study_dir, tmp_path / "one", sagittal_bundle, axial=study_dir / "axial.nii.gz")
    assert any("reads sagittal crops only" in w for w in res.warnings)


def test_regrade_reads_the_axial_file_the_first_run_was_given(tmp_path, study_dir, axial_bundle):
    from SpineGradeLogic.pipeline import RunOptions, run_study
    from SpineGradeLogic.pipeline.regrade import regrade

    opts = lambda **kw: RunOptions(saliency="none", bundles={"spinegrade_grading": axial_bundle}, **kw)  # noqa: E731
    first = run_study(study_dir / "image.nii.gz", tmp_path / "first", opts(axial=study_dir / "axial.nii.gz"))
    assert first.input.extra["axial_series"]["source"] == str(study_dir / "axial.nii.gz")
    names = [v.label for v in first.vertebrae]
    again = regrade(tmp_path / "first", {names[0]: names[0]}, tmp_path / "again", opts())
    assert again.input.extra["axial_series"]["source"] == str(study_dir / "axial.nii.gz")
    assert any("axial_coverage" in d.extra for d in again.discs)


def test_a_sagittal_only_model_reads_no_axial_series(tmp_path, study_dir, monkeypatch, sagittal_bundle):
    import SpineGradeLogic.io.axial as axial_io

    def must_not_read(*a, **k):
        raise AssertionError("a sagittal-only model read the axial series")

    monkeypatch.setattr(axial_io, "read_axial_series", must_not_read)
    res = _run(study_dir, tmp_path / "one", sagittal_bundle)
    assert "axial_series" not in res.input.extra and not any("axial" in w for w in res.warnings)
    assert any(d.grades for d in res.discs)


def test_the_shipped_model_reads_a_named_axial(tmp_path, study_dir):
    from SpineGradeLogic.models.bundle import find_bundle

    res = _run(study_dir, tmp_path / "one", find_bundle("spinegrade_grading"), axial=study_dir / "axial.nii.gz")
    assert res.input.extra["axial_series"]["source"] == str(study_dir / "axial.nii.gz")
    assert not any("reads sagittal crops only" in w for w in res.warnings)
    assert max(d.extra.get("axial_coverage", 0.0) for d in res.discs) > 0.5
