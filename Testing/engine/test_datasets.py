"""Dataset API (LevelLabel, LabelledStudy), SpineGrade's folder format, and kind detection."""

from __future__ import annotations

import numpy as np
import pytest

from fixtures_datasets import FOLDER_COLUMNS, FOLDER_ROWS, write_csv, write_folder, write_rsna, write_spider
from SpineGradeLogic.datasets import (FolderDataset, LevelLabel, RsnaDataset, SpiderDataset, detect_kind,
                                      open_dataset, parse_level)
from SpineGradeLogic.datasets.__main__ import main as datasets_main
from SpineGradeLogic.errors import DatasetError


def test_level_label_grades_and_sets():
    lv = LevelLabel({"pfirrmann": 3, "central_canal_stenosis": [1, 0, 1], "modic": (2,)})
    assert lv.grades == {"pfirrmann": 3, "central_canal_stenosis": (0, 1), "modic": 2}
    assert lv.allowed("pfirrmann") == (3,) and lv.allowed("disc_bulging") == (0, 1)  # ungraded: all classes
    assert lv.mask("pfirrmann").tolist() == [False, False, True, False, False]
    assert np.allclose(lv.target("central_canal_stenosis"), [0.5, 0.5, 0, 0])
    for bad in ({"pfirrmann": 0}, {"nonsense": 1}, {"modic": ()}):
        with pytest.raises(ValueError):
            LevelLabel(bad)
    assert LevelLabel({}, (1, 2, 3)).center_kind == "given"


def test_parse_level():
    assert parse_level("l4_l5") == "L4/L5" and parse_level("L5-S1") == "L5/S1" and parse_level("T12/L1") == "T12/L1"
    assert parse_level("L5/L6") == "L5/L6" and parse_level("T13/L1") == "T13/L1"
    for bad in ("L4/L6", "L5", "S1/S2", "L4/L5/S1", "X1/X2", ""):
        assert parse_level(bad) is None


# --- folder format --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def folder_root(tmp_path_factory):
    return write_folder(tmp_path_factory.mktemp("folder"))


def test_folder_grades_centres_and_images(folder_root):
    ds = open_dataset(folder_root)
    assert isinstance(ds, FolderDataset) and ds.study_ids() == ["caseA", "caseB"]
    assert ds.heads() == ["pfirrmann", "disc_herniation", "central_canal_stenosis"]
    a = ds.study("caseA")
    assert a.sequence == "T2" and a.levels["L4/L5"].grades == {"pfirrmann": 3, "disc_herniation": 1, "central_canal_stenosis": (0, 1)}
    assert a.levels["L4/L5"].center_ras == (-4.0, 18.0, 26.4) and a.levels["L4/L5"].center_kind == "given"
    assert a.levels["L5/S1"].grades == {"pfirrmann": 4, "central_canal_stenosis": 2} and a.levels["L5/S1"].center_ras is None
    assert a.image_path.endswith("image.nii.gz") and a.load().shape == (24, 40, 5)
    b = ds.study("caseB")
    assert b.sequence == "unknown" and b.image_path.endswith("dicom") and b.load().shape == (24, 40, 5)
    assert b.meta["grade_rows"] == {"L3/L4": 4}


def test_iteration_is_lazy(folder_root):
    studies = list(open_dataset(folder_root))
    assert [s.study_id for s in studies] == ["caseA", "caseB"] and all(s._image is None for s in studies)


@pytest.mark.parametrize("row, message", [
    (["caseB", "L4/L6", 2, 0, "", "", "", "", ""], "unknown level 'L4/L6'"),
    (["caseB", "L4/L5", 6, 0, "", "", "", "", ""], "'pfirrmann' is '6'; must be 1-5"),
    (["caseB", "L4/L5", 2, "0|2", "", "", "", "", ""], "'disc_herniation' is '0|2'; must be 0-1"),
    (["caseB", "L4/L5", "two", 0, "", "", "", "", ""], "'pfirrmann' is 'two'"),
    (["caseB", "L4/L5", 2, 0, "", 1.0, "", "", ""], "give all three of center_x_mm"),
    (["caseB", "L4/L5", 2, 0, "", "", "", "", "T3"], "'sequence' is 'T3'"),
    (["caseZ", "L4/L5", 2, 0, "", "", "", "", ""], "study caseZ has no image"),
    (["caseA", "L5/S1", 2, 0, "", "", "", "", ""], "study caseA, level L5/S1 appears twice (first at row 3)"),
    (["", "L4/L5", 2, 0, "", "", "", "", ""], "'study' is blank"),
])
def test_folder_bad_rows_name_file_and_row(folder_root, tmp_path, row, message):
    for sub in ("caseA", "caseB"):
        (tmp_path / sub).symlink_to(folder_root / sub)
    path = write_csv(tmp_path / "grades.csv", FOLDER_COLUMNS, FOLDER_ROWS + [row])
    with pytest.raises(DatasetError) as e:
        FolderDataset(tmp_path)
    assert str(e.value).startswith(f"{path}, row 5: ") and message in str(e.value)


@pytest.mark.parametrize("columns, message", [
    (["study", "pfirrmann"], "missing column 'level'"),
    (["study", "level", "pfirmann"], "unknown column 'pfirmann'"),
    (["study", "level", "pfirrmann", "center_x_mm"], "centre columns come as a set of three"),
    (["study", "level", "pfirrmann", "pfirrmann"], "column 'pfirrmann' appears twice"),
])
def test_folder_bad_header(tmp_path, columns, message):
    path = write_csv(tmp_path / "grades.csv", columns, [])
    with pytest.raises(DatasetError) as e:
        FolderDataset(tmp_path)
    assert str(e.value).startswith(f"{path}, row 1 (header): ") and message in str(e.value)


def test_row_numbers_count_blank_lines_and_bom(tmp_path, folder_root):
    (tmp_path / "caseA").symlink_to(folder_root / "caseA")
    (tmp_path / "grades.csv").write_text("\ufeffstudy,level,pfirrmann\ncaseA,L4/L5,3\n\ncaseA,L9/L10,2\n")
    with pytest.raises(DatasetError, match=r"grades\.csv, row 4: unknown level 'L9/L10'"):
        FolderDataset(tmp_path)


# --- detection ------------------------------------------------------------------------------
def test_detect_each_kind(tmp_path, folder_root):
    spider = write_spider(tmp_path / "spider", series={"1": ("t2",)})
    rsna = write_rsna(tmp_path / "rsna", image_studies=())
    assert detect_kind(spider) == "spider" and isinstance(open_dataset(spider / "overview.csv"), SpiderDataset)
    assert detect_kind(rsna) == "rsna" and isinstance(open_dataset(rsna / "train.csv"), RsnaDataset)
    assert detect_kind(folder_root) == "folder"
    assert isinstance(open_dataset(folder_root, kind="folder"), FolderDataset)
    with pytest.raises(DatasetError, match="unknown dataset kind 'kaggle'"):
        open_dataset(rsna, kind="kaggle")
    with pytest.raises(DatasetError, match=r"grades\.csv: no such file"):
        open_dataset(rsna, kind="folder")


def test_detect_explains_what_is_missing(tmp_path):
    write_csv(tmp_path / "train.csv", ["study_id"], [])
    with pytest.raises(DatasetError, match=r"not a dataset SpineGrade knows.*partly found: rsna \(has train\.csv; lacks "
                                           r"train_label_coordinates\.csv, train_series_descriptions\.csv\)"):
        open_dataset(tmp_path)
    with pytest.raises(DatasetError, match="no such dataset folder"):
        open_dataset(tmp_path / "absent")


def test_check_command(folder_root, tmp_path, capsys):
    assert datasets_main([str(folder_root), "--check"]) == 0
    out = capsys.readouterr().out
    assert "folder dataset" in out and "3 levels, 1 with a centre" in out
    write_csv(tmp_path / "grades.csv", ["study", "level", "pfirrmann"], [["caseX", "L4/L5", 9]])
    assert datasets_main([str(tmp_path)]) == 3
    assert "grades.csv, row 2: 'pfirrmann' is '9'" in capsys.readouterr().err


def test_studies_pickle_for_worker_processes(folder_root):
    import pickle

    s = pickle.loads(pickle.dumps(open_dataset(folder_root).study("caseA")))
    assert s.levels["L4/L5"].grades["central_canal_stenosis"] == (0, 1) and s.load().shape == (24, 40, 5)


def test_validate_reads_every_study(folder_root):
    assert open_dataset(folder_root).validate() == 3
