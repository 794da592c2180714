"""SPIDER adapter on fixtures written in SPIDER's own layout (images/, masks/, CSVs)."""

from __future__ import annotations

import numpy as np
import pytest

from fixtures_datasets import (SPIDER_COLUMNS, SPIDER_DISCS, SPIDER_ROWS, SPIDER_SPACING, block_centroid,
                               hand_ras, write_csv, write_spider)
from SpineGradeLogic.datasets import SpiderDataset, open_dataset
from SpineGradeLogic.datasets.spider import level_of_ivd, spider_label_lut
from SpineGradeLogic.errors import DatasetError
from SpineGradeLogic.names import SPINAL_CANAL, VERTEBRA_LABELS, disc_label


@pytest.fixture(scope="module")
def spider_root(tmp_path_factory):
    return write_spider(tmp_path_factory.mktemp("spider"))


def test_ivd_numbers_count_from_the_bottom():
    assert [level_of_ivd(n) for n in (1, 2, 5, 6, 7)] == ["L5/S1", "L4/L5", "L1/L2", "T12/L1", "T11/T12"]
    lut = spider_label_lut()
    assert lut[1] == VERTEBRA_LABELS["L5"] and lut[5] == VERTEBRA_LABELS["L1"] and lut[6] == VERTEBRA_LABELS["T12"]
    assert lut[103] == VERTEBRA_LABELS["L3"]  # partly visible L3
    assert lut[201] == disc_label("L5") == 124 and lut[202] == disc_label("L4") and lut[100] == SPINAL_CANAL


def test_grades_map_to_heads(spider_root):
    ds = open_dataset(spider_root)
    assert isinstance(ds, SpiderDataset) and ds.study_ids() == ["1", "2"]
    s = ds.study("1")
    assert list(s.levels) == ["L3/L4", "L4/L5", "L5/S1"]
    l5 = s.levels["L5/S1"].grades
    assert l5 == {"modic": 2, "upper_endplate_defect": 1, "lower_endplate_defect": 0, "spondylolisthesis": 0,
                  "disc_herniation": 1, "disc_narrowing": (1, 2, 3), "disc_bulging": 1, "pfirrmann": 4}
    assert s.levels["L4/L5"].grades["disc_narrowing"] == 0
    assert s.levels["L3/L4"].grades["lower_endplate_defect"] == 1 and s.levels["L3/L4"].grades["spondylolisthesis"] == 1
    assert s.heads() == ["pfirrmann", "disc_narrowing", "disc_bulging", "disc_herniation", "spondylolisthesis",
                         "upper_endplate_defect", "lower_endplate_defect", "modic"]
    # narrowing "present" allows mild, moderate or severe
    assert s.levels["L5/S1"].mask("disc_narrowing").tolist() == [False, True, True, True]


def test_disc_centres_are_mask_centroids_in_ras(spider_root):
    s = open_dataset(spider_root).study("1")
    for ivd, level in ((1, "L5/S1"), (2, "L4/L5")):
        expected = hand_ras(block_centroid(SPIDER_DISCS[200 + ivd]), SPIDER_SPACING)
        assert np.allclose(s.levels[level].center_ras, expected)
        assert s.levels[level].center_kind == "mask_centroid"
    assert np.allclose(s.levels["L5/S1"].center_ras, (-4.0, 8.5, -0.5))  # by hand: 2*3-10, 20-11.5, 30-30.5
    assert s.levels["L3/L4"].center_ras is None  # graded but not segmented


def test_main_series_is_t2_and_loads_lazily(spider_root):
    ds = open_dataset(spider_root)
    s = ds.study("1")
    assert s.meta["series"] == "t2" and s.sequence == "T2" and s.image_path.endswith("1_t2.mha")
    assert s.other_images == {"t1": str(spider_root / "images" / "1_t1.mha")}
    assert s.subset == "training" and ds.study("2").subset == "validation"
    assert s._image is None
    vol = s.image
    assert vol.shape == (24, 40, 5) and np.allclose(vol.index_to_ras((0, 0, 0)), hand_ras((0, 0, 0), SPIDER_SPACING))
    assert s.load_other("t1").shape == (24, 40, 5)
    seg = s.load_segmentation()
    assert seg.same_geometry(vol)
    i, j, k = map(int, block_centroid(SPIDER_DISCS[201]))
    assert seg.array[i, j, k] == disc_label("L5") and seg.array[17, 0, 2] == SPINAL_CANAL


def test_all_series_share_the_patients_grades(spider_root):
    ds = open_dataset(spider_root, series="all")
    assert ds.study_ids() == ["1_t2", "1_t1", "2_t2", "2_t2_SPACE"]
    s = ds.study("1_t1")
    assert s.sequence == "T1" and s.patient_id == "1" and s.levels["L4/L5"].grades["pfirrmann"] == 2
    assert ds.study("2_t2_SPACE").sequence == "T2"


def test_without_masks_there_are_no_centres(tmp_path):
    root = write_spider(tmp_path, series={"1": ("t2",)}, masks=False, overview=False)
    s = open_dataset(root).study("1")
    assert all(lv.center_ras is None for lv in s.levels.values()) and not s.has_segmentation and s.subset is None


# --- bad files ------------------------------------------------------------------------------
def _gradings_only(tmp_path, rows, columns=SPIDER_COLUMNS):
    (tmp_path / "images").mkdir()
    return write_csv(tmp_path / "radiological_gradings.csv", columns, rows)


@pytest.mark.parametrize("row, message", [
    ([1, 4, 0, 0, 0, 0, 0, 0, 0, 6], "'Pfirrman grade' is 6"),
    ([1, 4, 4, 0, 0, 0, 0, 0, 0, 3], "'Modic' is 4"),
    ([1, 4, 0, 2, 0, 0, 0, 0, 0, 3], "'UP endplate' is 2"),
    ([1, 4, 0, 0, 0, 0, 0, 2, 0, 3], "'Disc narrowing' is 2"),
    ([1, 4, 0, 0, 0, 0, "yes", 0, 0, 3], "'Disc herniation' is 'yes'"),
    ([1, 30, 0, 0, 0, 0, 0, 0, 0, 3], "'IVD label' is 30"),
    ([1, "", 0, 0, 0, 0, 0, 0, 0, 3], "'IVD label' is blank"),
    (["", 1, 0, 0, 0, 0, 0, 0, 0, 3], "'Patient' is blank"),
])
def test_bad_values_name_file_and_row(tmp_path, row, message):
    path = _gradings_only(tmp_path, SPIDER_ROWS[:2] + [row])
    with pytest.raises(DatasetError) as e:
        SpiderDataset(tmp_path)
    assert str(e.value).startswith(f"{path}, row 4: ") and message in str(e.value)


def test_missing_column_names_header_row(tmp_path):
    cols = [c for c in SPIDER_COLUMNS if c != "Disc bulging"]
    path = _gradings_only(tmp_path, [r[:8] + r[9:] for r in SPIDER_ROWS], cols)
    with pytest.raises(DatasetError, match=r"radiological_gradings\.csv, row 1 \(header\): missing column 'Disc bulging'"):
        SpiderDataset(tmp_path)
    assert path.exists()


def test_duplicate_disc_names_both_rows(tmp_path):
    _gradings_only(tmp_path, SPIDER_ROWS + [SPIDER_ROWS[1]])
    with pytest.raises(DatasetError, match=r"row 7: patient 1, IVD label 2 is graded twice \(first at row 3\)"):
        SpiderDataset(tmp_path)


def test_ivd_label_zero_is_skipped_with_a_warning(tmp_path):
    _gradings_only(tmp_path, SPIDER_ROWS + [[1, 0, 0, 0, 0, 0, 0, 0, 0, 3]])
    ds = SpiderDataset(tmp_path)
    assert any("row 7: 'IVD label' is 0" in w for w in ds.warnings)


def test_bad_overview_names_file_and_row(tmp_path):
    _gradings_only(tmp_path, SPIDER_ROWS)
    write_csv(tmp_path / "overview.csv", ["new_file_name", "subset"], [["1_t2", "training"], ["", "training"]])
    with pytest.raises(DatasetError, match=r"overview\.csv, row 3: 'new_file_name' is blank"):
        SpiderDataset(tmp_path)
    write_csv(tmp_path / "overview.csv", ["file", "subset"], [["1_t2", "training"]])
    with pytest.raises(DatasetError, match=r"overview\.csv, row 1 \(header\): missing column 'new_file_name'"):
        SpiderDataset(tmp_path)
