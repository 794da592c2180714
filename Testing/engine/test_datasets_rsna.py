"""RSNA 2024 lumbar adapter on fixtures in the Kaggle layout (CSVs + train_images/<study>/<series>/<n>.dcm)."""

from __future__ import annotations

import numpy as np
import pytest

from fixtures_datasets import (RSNA_COORDS, RSNA_SAG_SPACING, RSNA_SERIES, RSNA_TRAIN_COLUMNS, hand_ras,
                               rsna_train_row, write_csv, write_rsna)
from SpineGradeLogic.datasets import RsnaDataset, open_dataset
from SpineGradeLogic.datasets.rsna import parse_column, pixel_to_ras
from SpineGradeLogic.errors import DatasetError

COORD_COLUMNS = ["study_id", "series_id", "instance_number", "condition", "level", "x", "y"]


@pytest.fixture(scope="module")
def rsna_root(tmp_path_factory):
    return write_rsna(tmp_path_factory.mktemp("rsna"))


def test_columns_map_to_heads():
    assert parse_column("spinal_canal_stenosis_l1_l2") == ("central_canal_stenosis", "L1/L2")
    assert parse_column("left_neural_foraminal_narrowing_l4_l5") == ("foraminal_stenosis_left", "L4/L5")
    assert parse_column("right_neural_foraminal_narrowing_l5_s1") == ("foraminal_stenosis_right", "L5/S1")
    assert parse_column("left_subarticular_stenosis_l3_l4") == ("lateral_recess_stenosis_left", "L3/L4")
    assert parse_column("right_subarticular_stenosis_l2_l3") == ("lateral_recess_stenosis_right", "L2/L3")
    assert parse_column("spinal_canal_stenosis_l3_l5") is None and parse_column("disc_bulge_l4_l5") is None
    assert all(parse_column(c) for c in RSNA_TRAIN_COLUMNS[1:]) and len(RSNA_TRAIN_COLUMNS) == 26


def test_severities_and_normal_mild_set(rsna_root):
    ds = open_dataset(rsna_root)
    assert isinstance(ds, RsnaDataset) and ds.study_ids() == ["100"]
    s = ds.study("100")
    assert list(s.levels) == ["L1/L2", "L2/L3", "L3/L4", "L4/L5", "L5/S1"]
    assert s.levels["L4/L5"].grades["central_canal_stenosis"] == 3
    assert s.levels["L5/S1"].grades["foraminal_stenosis_left"] == 2
    nm = s.levels["L1/L2"]
    assert nm.grades["central_canal_stenosis"] == (0, 1) and not nm.is_exact("central_canal_stenosis")
    assert nm.mask("central_canal_stenosis").tolist() == [True, True, False, False]
    assert np.allclose(nm.target("central_canal_stenosis"), [0.5, 0.5, 0, 0])
    assert "lateral_recess_stenosis_right" not in s.levels["L3/L4"].grades  # blank = unknown
    assert len(s.levels["L2/L3"].grades) == 5 and "pfirrmann" not in s.levels["L2/L3"].grades


def test_canal_point_becomes_the_centre_in_ras(rsna_root):
    s = open_dataset(rsna_root).study("100")
    lv = s.levels["L4/L5"]
    # instance 3 of the sagittal T2 is slice k = 2; x is the column (i), y the row (j)
    assert np.allclose(lv.center_ras, hand_ras((4.0, 6.0, 2), RSNA_SAG_SPACING))
    assert np.allclose(lv.center_ras, (-4.0, 18.0, 26.4)) and lv.center_kind == "canal_point"
    # the same point through the project's own DICOM reader
    assert np.allclose(s.image.index_to_ras((4.0, 6.0, 2.0)), lv.center_ras, atol=1e-4)


def test_foramina_midpoint_and_other_points(rsna_root):
    s = open_dataset(rsna_root).study("100")
    lv = s.levels["L5/S1"]
    left, right = hand_ras((10.0, 20.0, 0), RSNA_SAG_SPACING), hand_ras((12.0, 22.0, 4), RSNA_SAG_SPACING)
    assert np.allclose(lv.points_ras["foraminal_stenosis_left"], left)
    assert np.allclose(lv.center_ras, (np.array(left) + right) / 2) and lv.center_kind == "foramina_mean"
    sub = s.levels["L3/L4"]
    # axial series: identity direction, origin 0, spacing 0.8 x 0.8 x 4; instance 2 is z = 4 mm
    assert np.allclose(sub.points_ras["lateral_recess_stenosis_left"], (-4.0, -4.0, 4.0))
    assert sub.center_ras is None  # only one side marked
    assert s.levels["L1/L2"].center_ras is None


def test_main_series_and_others(rsna_root):
    s = open_dataset(rsna_root).study("100")
    assert s.meta["series_id"] == "11" and s.meta["series_description"] == "Sagittal T2/STIR" and s.sequence == "T2"
    assert set(s.other_images) == {"Sagittal T1 (12)", "Axial T2 (13)"}
    assert s.load().shape == (32, 40, 5)
    assert s.load_other("Axial T2 (13)").shape == (16, 16, 4)  # the larger of its two angled blocks
    blocks = s.load_other_stacks("Axial T2 (13)")
    assert [b.shape for b in blocks] == [(16, 16, 4), (16, 16, 3)]
    assert np.allclose([b.spacing[2] for b in blocks], 4.0)  # each block's own step, not a made-up mean


def test_of_several_axial_series_the_one_marked_is_used(tmp_path):
    series = dict(RSNA_SERIES, **{"09": "Axial T2"})  # sorts first, but carries no points
    write_rsna(tmp_path, series=series)
    s = open_dataset(tmp_path).study("100")
    assert set(s.other_images) >= {"Axial T2 (09)", "Axial T2 (13)"}
    assert s.axial_t2_name() == "Axial T2 (13)"


def test_missing_image_folder_is_skipped_with_a_warning(tmp_path):
    write_rsna(tmp_path, train_rows=[rsna_train_row("100"), rsna_train_row("200")])
    ds = RsnaDataset(tmp_path)
    assert ds.study_ids() == ["100"] and any("no folder" in w for w in ds.warnings)


# --- bad files ------------------------------------------------------------------------------
def _csvs(tmp_path, train=None, coords=None, train_columns=RSNA_TRAIN_COLUMNS, descriptions=None):
    write_csv(tmp_path / "train.csv", train_columns, train or [rsna_train_row("100")])
    write_csv(tmp_path / "train_series_descriptions.csv", ["study_id", "series_id", "series_description"],
              descriptions or [["100", "11", "Sagittal T2/STIR"], ["100", "12", "Sagittal T1"]])
    write_csv(tmp_path / "train_label_coordinates.csv", COORD_COLUMNS, coords or RSNA_COORDS[:2])
    (tmp_path / "train_images").mkdir(exist_ok=True)
    return tmp_path


def test_bad_severity_names_row_and_column(tmp_path):
    _csvs(tmp_path, train=[rsna_train_row("100"), rsna_train_row("101", {"spinal_canal_stenosis_l2_l3": "Mild"})])
    with pytest.raises(DatasetError, match=r"train\.csv, row 3: 'spinal_canal_stenosis_l2_l3' is 'Mild'"):
        RsnaDataset(tmp_path)


def test_unknown_level_column_names_header(tmp_path):
    cols = RSNA_TRAIN_COLUMNS[:-1] + ["right_subarticular_stenosis_l5_l7"]
    _csvs(tmp_path, train_columns=cols)
    with pytest.raises(DatasetError, match=r"train\.csv, row 1 \(header\): unknown column 'right_subarticular_stenosis_l5_l7'"):
        RsnaDataset(tmp_path)


def test_missing_column(tmp_path):
    _csvs(tmp_path)
    write_csv(tmp_path / "train_label_coordinates.csv", COORD_COLUMNS[:-1], [r[:-1] for r in RSNA_COORDS])
    with pytest.raises(DatasetError, match=r"train_label_coordinates\.csv, row 1 \(header\): missing column 'y'"):
        RsnaDataset(tmp_path)


@pytest.mark.parametrize("bad, message", [
    (["100", "11", 3, "Spinal Canal Stenosis", "L4/L6", 4, 6], "unknown level 'L4/L6'"),
    (["100", "11", 3, "Disc Bulge", "L4/L5", 4, 6], "unknown condition 'Disc Bulge'"),
    (["100", "99", 3, "Spinal Canal Stenosis", "L4/L5", 4, 6], "series 99 of study 100 is not in train_series_descriptions.csv"),
    (["100", "11", 0, "Spinal Canal Stenosis", "L4/L5", 4, 6], "'instance_number' is 0"),
    (["100", "11", 3, "Spinal Canal Stenosis", "L4/L5", "left", 6], "'x' is 'left'"),
])
def test_bad_coordinate_rows(tmp_path, bad, message):
    path = _csvs(tmp_path, coords=RSNA_COORDS[:2] + [bad]) / "train_label_coordinates.csv"
    with pytest.raises(DatasetError) as e:
        RsnaDataset(tmp_path)
    assert str(e.value).startswith(f"{path}, row 4: ") and message in str(e.value)


def test_coordinate_on_a_missing_instance(tmp_path):
    coords = RSNA_COORDS[:1] + [["100", "11", 9, "Left Subarticular Stenosis", "L2/L3", 4.0, 6.0]]
    root = write_rsna(tmp_path, coords=coords)
    ds = RsnaDataset(root)  # CSVs are fine; the instance is checked when the study is read
    with pytest.raises(DatasetError) as e:
        ds.study("100")
    assert str(e.value).startswith(f"{root / 'train_label_coordinates.csv'}, row 3: instance 9 does not exist")
    with pytest.raises(DatasetError, match="row 3: instance 9"):
        ds.validate()


def test_coordinate_outside_the_image(tmp_path):
    coords = [["100", "11", 3, "Spinal Canal Stenosis", "L4/L5", 400.0, 6.0]]
    root = write_rsna(tmp_path, coords=coords)
    with pytest.raises(DatasetError, match=r"row 2: point \(400.0, 6.0\) lies outside the 32x40 image"):
        RsnaDataset(root).study("100")


def test_pixel_to_ras_by_hand():
    # a sagittal image: rows run down (-S), columns run back (+P); first pixel at LPS (10, -20, 30)
    ras = pixel_to_ras((10, -20, 30), (0, 1, 0, 0, 0, -1), (0.6, 0.5), x=4, y=6)
    assert np.allclose(ras, (-10.0, 18.0, 26.4))
