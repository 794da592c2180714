"""Fine-tuning the grader on labelled datasets: levels placed and cut from SPIDER, RSNA 2024 and
folder-format fixtures, the patient split, the crop cache, and `spinegrade finetune grading` end to
end (a bundle that verifies, records its data, resumes, and grades a study)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from fixtures_datasets import write_folder, write_rsna, write_spider
from SpineGradeLogic.cli import main
from SpineGradeLogic.datasets import open_dataset
from SpineGradeLogic.discs.localise import DiscLocation
from SpineGradeLogic.errors import DatasetError
from SpineGradeLogic.grading import dataset_crops as dc
from SpineGradeLogic.grading.data import CropSet
from SpineGradeLogic.grading.heads import probabilities
from SpineGradeLogic.grading.network import CROP_SHAPE
from SpineGradeLogic.grading.targets import FULL_MASKS
from SpineGradeLogic.models.bundle import find_bundle, sha256_file
from SpineGradeLogic.names import HEAD_NAMES, HEADS

J = HEAD_NAMES.index
SHIPPED = find_bundle("spinegrade_grading")


def test_spider_levels_are_placed_at_the_mask_centroids_with_the_mask_normal(tmp_path):
    ds = open_dataset(write_spider(tmp_path / "spider"))
    study = ds.study("1")
    sc = dc.study_crops(study, locate="dataset", max_outside=1.0)
    # L3/L4 is graded but not in the mask: no anchor, skipped with a warning
    assert sorted(sc.crops.level) == ["L4/L5", "L5/S1"] and any("L3/L4" in w and "skipped" in w for w in sc.warnings)
    assert set(sc.placed.values()) == {"dataset"}
    locs, _ = dc.dataset_locations(study, study.load())
    for level, loc in locs.items():
        np.testing.assert_allclose(loc.center_mm, study.levels[level].center_ras, atol=1e-6)
        assert loc.normal[2] > 0.99  # the fixture's disc blocks are thinnest along the image's S-I axis
    i = list(sc.crops.level).index("L5/S1")
    assert sc.crops.targets[i, J("pfirrmann")] == 3  # grade 4
    assert sc.crops.allowed[i, J("disc_narrowing")] == 0b1110  # SPIDER "narrowing present" = grades 1-3
    assert sc.crops.allowed[i, J("central_canal_stenosis")] == FULL_MASKS[J("central_canal_stenosis")]  # not graded
    assert sc.crops.image.shape[1:] == CROP_SHAPE and sc.crops.case[0] == dc.patient_case("1")


def test_rsna_reader_points_are_moved_forward_onto_the_disc(tmp_path):
    ds = open_dataset(write_rsna(tmp_path / "rsna"))
    study = ds.study("100")
    lab = study.levels["L4/L5"]
    assert lab.center_kind == "canal_point"
    locs, _ = dc.dataset_locations(study, study.load())
    loc = locs["L4/L5"]
    back = np.asarray(lab.center_ras) - loc.center_mm
    assert np.linalg.norm(back) == pytest.approx(dc.ANCHOR_BEHIND_DISC_MM["canal_point"])
    np.testing.assert_allclose(back / np.linalg.norm(back), loc.frame[:, 1], atol=1e-9)  # straight back, posterior
    sc = dc.study_crops(study, locate="dataset", max_outside=1.0)
    i = list(sc.crops.level).index("L4/L5")
    assert sc.crops.targets[i, J("central_canal_stenosis")] == 3  # Severe
    j = list(sc.crops.level).index("L5/S1")
    assert sc.crops.allowed[j, J("central_canal_stenosis")] == 0b11  # Normal/Mild
    assert sc.crops.contrast[0] == "T2"


def test_folder_levels_without_a_centre_are_skipped_by_dataset_placement(tmp_path):
    ds = open_dataset(write_folder(tmp_path / "folder"))
    sc = dc.study_crops(ds.study("caseA"), locate="dataset", max_outside=1.0)
    assert list(sc.crops.level) == ["L4/L5"]
    assert any("L5/S1" in w and "not placed" in w for w in sc.warnings)
    # and a crop mostly outside a tiny image is refused at the grading stage's limit
    tight = dc.study_crops(ds.study("caseA"), locate="dataset")
    assert len(tight.crops) == 0 and any("outside the image" in w for w in tight.warnings)


def test_normals_follow_the_line_of_anchors():
    anchors = {"L3/L4": np.array([0.0, 0.0, 80.0]), "L4/L5": np.array([0.0, 10.0, 40.0]),
               "L5/S1": np.array([0.0, 20.0, 0.0])}
    n = dc.anchor_normals(anchors)
    expect = np.array([0.0, -10.0, 40.0]) / np.linalg.norm([0.0, -10.0, 40.0])
    for level in anchors:
        np.testing.assert_allclose(n[level], expect, atol=1e-9)


def _loc(level, z):
    return DiscLocation(level, np.array([0.0, 0.0, z]), np.eye(3), np.array([20.0, 16.0, 5.0]))


def test_dataset_names_win_when_our_naming_is_one_level_off():
    from SpineGradeLogic.datasets.common import LevelLabel

    class Study:
        levels = {"L4/L5": LevelLabel({"pfirrmann": 3}, (0.0, 0.0, 40.0)), "L5/S1": LevelLabel({"pfirrmann": 2}, (0.0, 0.0, 2.0)),
                  "L2/L3": LevelLabel({"pfirrmann": 2})}

    found = [_loc("L2/L3", 120.0), _loc("L3/L4", 41.0), _loc("L4/L5", 1.0)]  # the model named one level too high
    m = dc.match_levels(Study(), found)
    assert m["L4/L5"].center_mm[2] == 41.0 and m["L5/S1"].center_mm[2] == 1.0
    assert m["L2/L3"].center_mm[2] == 120.0  # no anchor: the name decides
    far = dc.match_levels(Study(), [_loc("L4/L5", 100.0)])
    assert "L4/L5" not in far  # same name, 60 mm from the reader's anchor: not that disc


def _study_crops(pid, subset=None, n=2):
    img = np.zeros((n, *CROP_SHAPE), np.uint8)
    grades = np.array([[HEADS[h][0] for h in HEAD_NAMES]] * n)
    c = CropSet(img, grades, np.array(["L4/L5"] * n), np.zeros(n, np.float32), np.full(n, dc.patient_case(pid)),
                np.array(["T2"] * n))
    return dc.StudyCrops(f"s{pid}", pid, subset, c)


def test_split_keeps_patients_whole_and_honours_the_dataset_subset():
    studies = [_study_crops("a", "training"), _study_crops("a", "training"), _study_crops("b", "validation"),
               _study_crops("c", "training")]
    train, held, split = dc.split_studies(studies)
    assert split["held_out_patients"] == ["b"] and len(held) == 2 and len(train) == 6
    plain = [_study_crops(p) for p in "abcdefghij"]
    train, held, split = dc.split_studies(plain, share=0.3, seed=1)
    assert len(split["held_out_patients"]) == 3
    assert not set(np.unique(train.case)) & set(np.unique(held.case))
    with pytest.raises(DatasetError, match="at least two patients"):
        dc.split_studies([_study_crops("a"), _study_crops("a")])


def test_prepared_studies_are_reused_and_remade_when_the_recipe_changes(tmp_path, monkeypatch):
    ds = open_dataset(write_spider(tmp_path / "spider"))
    first = dc.prepare_dataset(ds, tmp_path / "cache", locate="dataset", max_outside=1.0, show_progress=False)
    assert len(first) == 2 and sorted(p.name for p in (tmp_path / "cache").iterdir()) == \
        ["grading-spider-1.npz", "grading-spider-2.npz"]

    def boom(*a, **k):
        raise AssertionError("a cached study was prepared again")

    monkeypatch.setattr(dc, "study_crops", boom)
    again = dc.prepare_dataset(ds, tmp_path / "cache", locate="dataset", max_outside=1.0, show_progress=False)
    assert [len(s.crops) for s in again] == [len(s.crops) for s in first]
    assert again[0].placed == first[0].placed
    with pytest.raises(AssertionError, match="prepared again"):
        dc.prepare_dataset(ds, tmp_path / "cache", locate="dataset", max_outside=0.9, show_progress=False)


def test_unreadable_images_are_skipped_and_no_crop_at_all_is_an_error(tmp_path):
    root = write_spider(tmp_path / "spider")
    (root / "images" / "1_t2.mha").write_bytes(b"not an image")
    ds = open_dataset(root)
    studies = dc.prepare_dataset(ds, tmp_path / "cache", locate="dataset", max_outside=1.0, show_progress=False)
    assert [s.patient_id for s in studies] == ["2"]
    with pytest.raises(DatasetError, match="no usable crop"):
        dc.prepare_dataset(ds, tmp_path / "cache2", locate="dataset", max_outside=0.0, show_progress=False)


# --- end to end on generated cases written in the folder format ---------------------------------
@pytest.fixture(scope="module")
def phantom_folder(tmp_path_factory):
    """Three generated lumbar studies as a folder-format dataset: exact grades, Normal/Mild sets for
    the canal, some levels with their centre, the others left for the vertebra model to find."""
    from SpineGradeLogic.phantom import generate_case

    root = tmp_path_factory.mktemp("phantom-folder")
    rows = []
    for k, seed in enumerate((710, 711, 712)):
        case = generate_case(seed, "lumbar", "T2")
        (root / f"p{k}").mkdir()
        sitk.WriteImage(case.image.to_sitk(), str(root / f"p{k}" / "image.nii.gz"))
        for i, d in enumerate(case.truth.discs):
            g = {h: d.grades[h].grade for h in HEAD_NAMES}
            g["central_canal_stenosis"] = "0|1" if g["central_canal_stenosis"] <= 1 else g["central_canal_stenosis"]
            centre = list(d.center_mm) if i % 2 == 0 else ["", "", ""]
            rows.append([f"p{k}", d.level] + [g[h] for h in HEAD_NAMES] + centre + ["T2"])
    with open(root / "grades.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["study", "level", *HEAD_NAMES, "center_x_mm", "center_y_mm", "center_z_mm", "sequence"])
        w.writerows(rows)
    return root


@pytest.mark.skipif(SHIPPED is None, reason="the shipped grading bundle is not installed")
def test_finetune_grading_end_to_end(phantom_folder, tmp_path, capsys):
    from SpineGradeLogic.grading.infer import Grader
    from SpineGradeLogic.pipeline import RunOptions, run_study

    out = tmp_path / "tuned"
    args = ["finetune", "grading", "--dataset", str(phantom_folder), "--out", str(out), "--epochs", "1", "--steps", "2",
            "--batch-size", "4", "--validation-share", "0.34"]
    assert main(args) == 0
    g = Grader.load(out)  # SHA-256 checked, weights_only
    meta = json.loads((out / "configs" / "metadata.json").read_text())
    rec = meta["spinegrade"]["training"]
    assert rec["init"]["sha256"] == sha256_file(SHIPPED / "models" / "model.pt")
    assert rec["dataset"]["kind"] == "folder" and rec["dataset"]["studies"] == 3
    assert len(rec["dataset"]["split"]["held_out_patients"]) == 1
    # the vertebra model placed most levels; the anchors placed what it missed
    assert rec["dataset"]["levels_placed_by"].get("pipeline", 0) > 0
    assert set(g.temperatures) == set(HEAD_NAMES) and all(t > 0 for t in g.temperatures.values())
    assert "canal" in json.dumps(rec["held_out"]["calibrated"]["rsna"])
    card = (out / "docs" / "README.md").read_text()
    assert "Fine-tuning" in card and "folder" in card and "Not a medical device" in card
    start = json.loads((SHIPPED / "configs" / "metadata.json").read_text())
    assert meta["version"] == start["version"] + "+finetuned" and "fine-tuned" in meta["changelog"][meta["version"]]
    assert all(meta["changelog"][v] == c for v, c in start["changelog"].items())  # the history is kept
    assert (tmp_path / "tuned.crops").is_dir()  # crops cached beside the bundle

    # a longer run resumes from the checkpoint instead of starting over
    capsys.readouterr()
    assert main(args[:-8] + ["--epochs", "2", "--steps", "2", "--batch-size", "4", "--validation-share", "0.34"]) == 0
    err = capsys.readouterr().err
    assert "resumed from" in err and "at epoch 1" in err
    rec2 = json.loads((out / "configs" / "metadata.json").read_text())["spinegrade"]["training"]
    assert rec2["epochs_run"] == 2

    # the tuned bundle grades a study through the pipeline
    study = next(phantom_folder.glob("p0/image.nii.gz"))
    result = run_study(study, tmp_path / "run", RunOptions(bundles={"spinegrade_grading": out}, saliency="none"))
    assert result.discs and all(set(d.grades) == set(HEAD_NAMES) for d in result.discs if d.grades)


@pytest.mark.skipif(SHIPPED is None, reason="the shipped grading bundle is not installed")
def test_finetuning_moves_the_model_towards_the_dataset(tmp_path):
    from SpineGradeLogic.grading.training_run import GradingTrainingConfig, raw_outputs, train_grading_model

    rng = np.random.default_rng(0)
    n = 24
    img = rng.integers(0, 40, (n, *CROP_SHAPE)).astype(np.uint8)
    grades = np.array([[HEADS[h][0] for h in HEAD_NAMES]] * n)
    allowed = np.tile(FULL_MASKS, (n, 1))
    allowed[:, J("disc_herniation")] = 0b10  # every level herniated; nothing else known
    crops = CropSet(img, grades, np.array(["L4/L5"] * n), np.zeros(n, np.float32), np.arange(n) // 4,
                    np.array(["T2"] * n), allowed)
    train, held = crops.subset(crops.case < 4), crops.subset(crops.case >= 4)
    cfg = GradingTrainingConfig(epochs=3, steps_per_epoch=4, batch_size=4, lr=3e-3, patience=5, init=SHIPPED,
                                monitor="nll")
    from SpineGradeLogic.grading.training_run import initial_network

    before_net, temps, _ = initial_network(cfg)
    p0 = probabilities(raw_outputs(before_net, held, "cpu"))["disc_herniation"][:, 1].mean()
    outcome = train_grading_model(cfg, tmp_path / "ck.pt", train, held)
    p1 = probabilities(raw_outputs(outcome["network"], held, "cpu"))["disc_herniation"][:, 1].mean()
    assert p1 > p0 + 0.05
    # heads with no held-out labels keep the starting bundle's temperatures
    assert outcome["temperatures"]["pfirrmann"] == pytest.approx(temps["pfirrmann"])
    assert outcome["init"]["name"] == "spinegrade_grading"


def test_finetune_reports_a_bad_dataset_row(tmp_path, capsys):
    root = write_folder(tmp_path / "folder", rows=[["caseA", "L4/L6", 3, 1, "0|1", "", "", "", "T2"]])
    assert main(["finetune", "grading", "--dataset", str(root), "--out", str(tmp_path / "b")]) == 3
    err = capsys.readouterr().err
    assert "grades.csv, row 2" in err and "L4/L6" in err
    assert not (tmp_path / "b").exists()


def test_finetune_without_data_or_bundle_says_what_is_missing(tmp_path, capsys, monkeypatch):
    assert main(["finetune", "grading", "--out", str(tmp_path / "b")]) == 3
    assert "nothing to train on" in capsys.readouterr().err
    monkeypatch.setenv("SPINEGRADE_GRADING_BUNDLE", str(tmp_path / "none"))
    root = write_folder(tmp_path / "folder")
    assert main(["finetune", "grading", "--dataset", str(root), "--out", str(tmp_path / "b")]) == 5
    assert "not a bundle" in capsys.readouterr().err and not (tmp_path / "b").exists()


@pytest.mark.skipif(SHIPPED is None, reason="the shipped grading bundle is not installed")
def test_evaluate_grading_measures_a_bundle_on_a_dataset(phantom_folder, tmp_path, capsys):
    j = tmp_path / "eval.json"
    assert main(["evaluate", "grading", "--dataset", str(phantom_folder), "--cache", str(tmp_path / "c"),
                 "--json", str(j)]) == 0
    out = capsys.readouterr().out
    assert "patients of the folder dataset" in out and "set likelihood" in out
    r = json.loads(j.read_text())
    assert r["crops"] >= 15 and r["cases"] == 3
    heads = r["calibrated"]["heads"]
    assert heads["pfirrmann"]["n"] == r["crops"]
    # the canal is graded Normal/Mild (a set) on most levels: exact-label metrics see only the rest,
    # the set likelihood and the RSNA score see every level
    assert heads.get("central_canal_stenosis", {"n": 0})["n"] < r["crops"]
    assert "central_canal_stenosis" in r["calibrated"]["set_nll"]
    assert np.isfinite(r["calibrated"]["rsna"]["spinal_canal_stenosis"])


def test_auto_placement_falls_back_to_the_anchors_when_labelling_fails(tmp_path, monkeypatch):
    ds = open_dataset(write_spider(tmp_path / "spider"))

    def broken(*a, **k):
        raise ValueError("no curve through these pieces")

    monkeypatch.setattr(dc, "pipeline_locations", broken)
    sc = dc.study_crops(ds.study("1"), locate="auto", vertebra_model=object(), max_outside=1.0)
    assert set(sc.placed.values()) == {"dataset"} and any("labelling failed" in w for w in sc.warnings)
    with pytest.raises(DatasetError, match="study 1: vertebra labelling failed"):
        dc.study_crops(ds.study("1"), locate="pipeline", vertebra_model=object(), max_outside=1.0)


@pytest.mark.skipif(SHIPPED is None, reason="the shipped grading bundle is not installed")
def test_evaluation_reports_each_contrast_apart(capsys):
    from SpineGradeLogic.grading.evaluate import evaluate_bundle, format_report

    rng = np.random.default_rng(3)
    n = 12
    grades = np.array([[HEADS[h][int(rng.integers(len(HEADS[h])))] for h in HEAD_NAMES] for _ in range(n)])
    contrast = np.array(["T1"] * 4 + ["T2"] * 8)
    crops = CropSet(rng.integers(0, 40, (n, *CROP_SHAPE)).astype(np.uint8), grades, np.array(["L4/L5"] * n),
                    np.zeros(n, np.float32), np.arange(n) // 2, contrast)
    r = evaluate_bundle(SHIPPED, crops)
    assert set(r["by_contrast"]) == {"T1", "T2"}
    assert r["by_contrast"]["T1"]["pfirrmann"]["n"] == 4 and r["by_contrast"]["T2"]["pfirrmann"]["n"] == 8
    text = format_report(r)
    assert "balanced accuracy by contrast" in text and "T1 (4)" in text and "T2 (8)" in text
    for m in r["calibrated"]["heads"].values():  # every head's figure comes with its case-bootstrap interval
        lo, hi = m["balanced_accuracy_ci"]
        assert lo <= m["balanced_accuracy"] <= hi
    assert "95% CI" in text
    # the default operating point is the table's; the others are scored beside it
    points = r["operating_points"]
    assert list(points) == ["0", "0.5", "1"] and "other operating points" in text
    for h, m in r["calibrated"]["heads"].items():
        assert points["0"]["heads"][h]["balanced_accuracy"] == pytest.approx(m["balanced_accuracy"])
        assert points["0"]["heads"][h]["accuracy"] == pytest.approx(m["accuracy"])


@pytest.mark.skipif(SHIPPED is None, reason="the shipped grading bundle is not installed")
def test_generated_crops_join_the_training_side_of_a_dataset_finetune(phantom_folder, tmp_path):
    gen = tmp_path / "gen"
    rng = np.random.default_rng(5)
    grades = np.array([[HEADS[h][0] for h in HEAD_NAMES]] * 6)
    CropSet(rng.integers(0, 40, (6, *CROP_SHAPE)).astype(np.uint8), grades, np.array(["L4/L5"] * 6),
            np.zeros(6, np.float32), np.arange(6), np.array(["T2"] * 6)).save(gen / "grading-train-0.npz")
    out = tmp_path / "mixed"
    assert main(["finetune", "grading", "--dataset", str(phantom_folder), "--prepared", str(gen), "--out", str(out),
                 "--cache", str(tmp_path / "c"), "--epochs", "1", "--steps", "1", "--batch-size", "4",
                 "--validation-share", "0.34"]) == 0
    rec = json.loads((out / "configs" / "metadata.json").read_text())["spinegrade"]["training"]
    assert rec["dataset"]["generated_training_crops"] == 6
    assert rec["training"]["crops"] == rec["dataset"]["training_crops"] + 6
    assert rec["held_out"]["crops"] == rec["dataset"]["held_out_crops"]  # validation stays on the dataset


def test_finetune_vertebrae_starts_from_the_installed_bundle(monkeypatch, tmp_path, capsys):
    import argparse

    from SpineGradeLogic.cli.finetune import default_vertebra_init

    args = argparse.Namespace(init=None)
    installed = find_bundle("spinegrade_vertebrae")
    if installed is not None:
        default_vertebra_init(args)
        assert args.init == installed
    given = argparse.Namespace(init=tmp_path / "mine")
    default_vertebra_init(given)
    assert given.init == tmp_path / "mine"  # an explicit --init is kept
    monkeypatch.setenv("SPINEGRADE_MODELS", str(tmp_path / "none"))
    monkeypatch.delenv("SPINEGRADE_VERTEBRAE_BUNDLE", raising=False)
    with pytest.raises(DatasetError, match="none is installed"):
        default_vertebra_init(argparse.Namespace(init=None))


def test_rsna_crops_carry_the_studys_axial_t2(tmp_path):
    import shutil

    from fixtures_dicom import write_dicom_series
    from fixtures_datasets import rename_to_instances
    from SpineGradeLogic.io.volume import Volume

    root = write_rsna(tmp_path / "rsna")
    study = open_dataset(root).study("100")
    assert study.axial_t2_name() == "Axial T2 (13)"
    sag = study.load()
    # an axial stack (LPS axes: rows to the left, columns posterior, slices superior) over the sagittal field
    corners = sag.index_to_ras(np.array([[i, j, k] for i in (0, sag.shape[0] - 1) for j in (0, sag.shape[1] - 1)
                                         for k in (0, sag.shape[2] - 1)], float))
    lo_lps = np.diag([-1.0, -1.0, 1.0]) @ corners.T
    lo, hi = lo_lps.min(1) - 30, lo_lps.max(1) + 30
    spacing = np.array([0.8, 0.8, 4.0])
    shape = tuple(int(n) for n in np.ceil((hi - lo) / spacing) + 1)
    ax = Volume(np.random.default_rng(2).normal(100, 10, shape).astype(np.float32), tuple(spacing), tuple(lo), np.eye(3))
    folder = root / "train_images" / "100" / "13"
    shutil.rmtree(folder)
    write_dicom_series(ax, folder, description="Axial T2", series_number=13)
    rename_to_instances(folder)
    sc = dc.study_crops(study, locate="dataset", max_outside=1.0)
    assert len(sc.crops) and sc.crops.has_axial.all(), sc.warnings
    # an unreadable axial series: a warning, and the crops go on without it
    for f in folder.glob("*.dcm"):
        f.write_bytes(b"broken")
    sc = dc.study_crops(study, locate="dataset", max_outside=1.0)
    assert len(sc.crops) and not sc.crops.has_axial.any()
    assert any("Axial T2 (13)" in w and "could not be read" in w for w in sc.warnings)
