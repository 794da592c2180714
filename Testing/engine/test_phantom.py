"""Synthetic spine generator: determinism, fields of view, label values, truth contract."""

from __future__ import annotations

import numpy as np
import pytest

from SpineGradeLogic.errors import InputError
from SpineGradeLogic.names import (HEADS, LABEL_TO_VERTEBRA, POSTERIOR_OFFSET, SPINAL_CANAL, SPINAL_CORD, SPINE_ORDER,
                                   VERTEBRA_LABELS)
from SpineGradeLogic.phantom import PhantomConfig, generate_case
from SpineGradeLogic.results import validate_result_dict

SMALL = PhantomConfig.small()


@pytest.fixture(scope="module")
def lumbar():
    return generate_case(11, "lumbar", "T2", SMALL)


def test_same_seed_same_case(lumbar):
    again = generate_case(11, "lumbar", "T2", SMALL)
    assert np.array_equal(again.image.array, lumbar.image.array)
    assert np.array_equal(again.labels.array, lumbar.labels.array)
    assert again.truth.to_dict()["discs"] == lumbar.truth.to_dict()["discs"]
    other = generate_case(12, "lumbar", "T2", SMALL)
    assert not np.array_equal(other.labels.array, lumbar.labels.array) or other.image.shape != lumbar.image.shape


def test_contrast_does_not_change_anatomy(lumbar):
    t1 = generate_case(11, "lumbar", "T1", SMALL)
    assert np.array_equal(t1.labels.array, lumbar.labels.array)
    assert t1.sequence == "T1" and lumbar.sequence == "T2"
    # fat bright on T1, CSF bright on T2: the canal's CSF is brighter than marrow on T2 only
    from SpineGradeLogic.phantom import tissues as T

    def mean(case, tissue):
        return float(case.image.array[case.tissues.array == tissue].mean())

    assert mean(lumbar, T.CSF) > mean(lumbar, T.MARROW)
    assert mean(t1, T.CSF) < mean(t1, T.MARROW)
    assert mean(t1, T.FAT) > mean(t1, T.MUSCLE)


@pytest.mark.parametrize("fov,first,last", [("lumbar", "T12", "S1"), ("thoracolumbar", "T8", "S1"), ("whole", "C1", "S1")])
def test_fov_has_its_vertebrae(fov, first, last):
    case = generate_case(3, fov, "T2", SMALL)
    names = [v.label for v in case.truth.vertebrae]
    need = SPINE_ORDER[SPINE_ORDER.index(first): SPINE_ORDER.index(last) + 1]
    missing = [v for v in need if v not in names and v not in ("T13", "L6")]
    assert not missing, f"{fov} lacks {missing}; has {names}"
    # superior first, discs between neighbours, superior first
    idx = [SPINE_ORDER.index(n) for n in names]
    assert idx == sorted(idx)
    levels = [d.level for d in case.truth.discs]
    assert [SPINE_ORDER.index(lv.split("/")[0]) for lv in levels] == sorted(SPINE_ORDER.index(lv.split("/")[0]) for lv in levels)
    assert "L4/L5" in levels and "L5/S1" in levels


def test_label_values_and_geometry(lumbar):
    vals = set(np.unique(lumbar.labels.array).tolist())
    allowed = {0, SPINAL_CANAL, SPINAL_CORD}
    allowed |= set(LABEL_TO_VERTEBRA) | {POSTERIOR_OFFSET + v for v in LABEL_TO_VERTEBRA}
    allowed |= {100 + v for v in LABEL_TO_VERTEBRA}
    assert vals <= allowed, vals - allowed
    assert {20, 21, 22, 23, 24, 26, 123, 124, SPINAL_CANAL} <= vals
    assert lumbar.image.array.dtype == np.float32 and lumbar.labels.array.dtype == np.int16
    assert lumbar.image.same_geometry(lumbar.labels)
    # a truth centroid lies inside its own body label
    for v in lumbar.truth.vertebrae:
        ijk = np.round(lumbar.labels.ras_to_index(v.centroid_mm)).astype(int)
        if np.all(ijk >= 0) and np.all(ijk < lumbar.labels.shape):
            window = lumbar.labels.array[ijk[0] - 2:ijk[0] + 3, ijk[1] - 2:ijk[1] + 3, ijk[2]]
            assert (window == VERTEBRA_LABELS[v.label]).any(), v.label


def test_truth_contract(lumbar):
    d = lumbar.truth.to_dict()
    validate_result_dict(d)
    for disc in lumbar.truth.discs:
        assert set(disc.grades) == set(HEADS)
        for h, g in disc.grades.items():
            assert sorted(g.probabilities) == [0.0] * (len(g.classes) - 1) + [1.0]
        n = np.array(disc.normal)
        assert abs(np.linalg.norm(n) - 1) < 1e-6 and n[2] > 0.5  # superior
    assert all(v.confidence == 1.0 and v.bbox_mm is not None for v in lumbar.truth.vertebrae)
    assert d["input"]["sequence"] == "T2" and d["warnings"] == [] and d["models"] == []


def test_random_contrast():
    case = generate_case(5, "lumbar", "random", SMALL)
    assert case.sequence in ("T1", "T2", "STIR", "unknown")
    assert np.isfinite(case.image.array).all() and case.image.array.min() >= 0
    validate_result_dict(case.truth.to_dict())


@pytest.mark.parametrize("kw,msg", [(dict(fov="cervical"), "field of view"), (dict(contrast="PD"), "contrast"),
                                    (dict(seed=-1), "seed")])
def test_bad_arguments(kw, msg):
    args = dict(seed=1, fov="lumbar", contrast="T2")
    args.update(kw)
    with pytest.raises(InputError, match=msg):
        generate_case(**args)


def test_unknown_forced_level():
    from SpineGradeLogic.phantom import LevelPathology

    with pytest.raises(InputError, match="L7/S1"):
        generate_case(1, "lumbar", "T2", PhantomConfig.small(levels={"L7/S1": LevelPathology(height_ratio=0.5)}))


def test_transitional_anatomy():
    seen = set()
    cfg = PhantomConfig.small(transitional_share=1.0)
    for seed in range(12):
        case = generate_case(seed, "lumbar", "T2", cfg)
        t = case.truth.extra["phantom"]["transitional"]
        seen.add(t)
        names = [v.label for v in case.truth.vertebrae]
        if t == "L6":
            assert "L6" in names and "L6/S1" in [d.level for d in case.truth.discs]
        if t == "T13":
            assert "T13" in names and "T13/L1" in [d.level for d in case.truth.discs]
        if len(seen) == 3:
            break
    assert seen == {"L6", "T13", "sacralised_L5"}


def test_anatomy_grid_is_1mm_and_matches_labels(lumbar):
    from SpineGradeLogic.phantom import tissues as T

    grid = lumbar.anatomy
    assert grid.spacing == (1.0, 1.0, 1.0)
    assert set(np.unique(T.label_of(grid.array)).tolist()) >= set(np.unique(lumbar.labels.array).tolist())
    # the series' labels are the 1 mm labels sampled at each voxel centre
    ijk = np.array([[lumbar.labels.shape[0] // 2, lumbar.labels.shape[1] // 2, lumbar.labels.shape[2] // 2]])
    xyz = np.round(grid.ras_to_index(lumbar.labels.index_to_ras(ijk))).astype(int)[0]
    assert T.label_of(grid.array[tuple(xyz)]) == lumbar.labels.array[tuple(ijk[0])]
