"""Ground-truth grades follow the generated geometry."""

from __future__ import annotations

import pytest

from SpineGradeLogic.phantom import LevelPathology, PhantomConfig, generate_case
from SpineGradeLogic.phantom.case import build_anatomy


def _grades(level: str, seed: int = 21, **pathology):
    cfg = PhantomConfig.small(healthy=True, levels={level: LevelPathology(**pathology)} if pathology else {})
    a = build_anatomy(seed, "lumbar", cfg)
    grades, measured = a.graded[level]
    return {h: g.grade for h, g in grades.items()}, measured


def test_healthy_spine_grades_normal():
    a = build_anatomy(21, "lumbar", PhantomConfig.small(healthy=True))
    for level, (grades, measured) in a.graded.items():
        g = {h: x.grade for h, x in grades.items()}
        assert g.pop("pfirrmann") in (1, 2), level
        assert all(v == 0 for v in g.values()), (level, g, measured)


def test_shrinking_a_disc_raises_narrowing():
    seen = [_grades("L4/L5", height_ratio=r)[0]["disc_narrowing"] for r in (1.0, 0.75, 0.5, 0.25)]
    assert seen == [0, 1, 2, 3]
    assert _grades("L4/L5", height_ratio=0.4)[0]["pfirrmann"] >= 4  # a collapsed-ish disc is not grade 1


def test_the_random_draw_reaches_every_severe_grade():
    """A grader trained on the generator can only learn the severe grades if the draw makes them;
    the draw before 2026-12 made them on 0-2 of these levels (narrowing 1, canal 2, foramina 0/1)."""
    cfg = PhantomConfig.small(degeneration=1.0, herniation=0.6, flavum=0.8, facet=0.8)
    severe = dict.fromkeys(("disc_narrowing", "central_canal_stenosis", "foraminal_stenosis_left",
                            "foraminal_stenosis_right"), 0)
    for seed in range(16):
        for grades, _ in build_anatomy(seed, "lumbar", cfg).graded.values():
            for h in severe:
                severe[h] += grades[h].grade == 3
    assert min(severe.values()) >= 4, severe


def test_a_larger_herniation_raises_canal_stenosis():
    grades = [_grades("L4/L5", herniation_mm=d, herniation_side="central", herniation_width_mm=16)[0]
              for d in (0.0, 3.0, 6.0, 10.0)]
    central = [g["central_canal_stenosis"] for g in grades]
    assert central == sorted(central) and central[0] == 0 and central[-1] >= 2, central
    assert [g["disc_herniation"] for g in grades] == [0, 1, 1, 1]


def test_foraminal_herniation_narrows_its_side_only():
    g, m = _grades("L4/L5", herniation_mm=7.0, herniation_side="foraminal_left", herniation_width_mm=10)
    assert g["foraminal_stenosis_left"] >= 1 and g["foraminal_stenosis_right"] == 0, m


def test_facet_hypertrophy_narrows_recess_and_foramen():
    g, m = _grades("L4/L5", facet_right_mm=6.0)
    assert g["lateral_recess_stenosis_right"] >= 1 and g["lateral_recess_stenosis_left"] == 0, m
    assert m["foramen_compromise_right"] > m["foramen_compromise_left"]


@pytest.mark.parametrize("field,value,head,grade", [
    ("hydration", 0.1, "pfirrmann", 5), ("hydration", 0.5, "pfirrmann", 3), ("bulge_mm", 3.0, "disc_bulging", 1),
    ("slip_mm", 6.0, "spondylolisthesis", 1), ("modic", 2, "modic", 2),
    ("upper_endplate_defect_mm", 4.0, "upper_endplate_defect", 1), ("lower_endplate_defect_mm", 4.0, "lower_endplate_defect", 1),
])
def test_forced_pathology_sets_its_head(field, value, head, grade):
    assert _grades("L4/L5", **{field: value})[0][head] == grade


def test_thick_flavum_and_slip_narrow_the_canal():
    assert _grades("L4/L5", flavum_mm=7.5)[1]["central_compromise"] > 0.15
    assert _grades("L4/L5", slip_mm=9.0)[1]["central_compromise"] > _grades("L4/L5")[1]["central_compromise"]


def test_forced_level_in_the_image_truth():
    cfg = PhantomConfig.small(healthy=True, levels={"L4/L5": LevelPathology(height_ratio=0.4, modic=1)})
    case = generate_case(21, "lumbar", "T2", cfg)
    d = case.truth.disc("L4/L5")
    assert d.grades["disc_narrowing"].grade == 2 and d.grades["modic"].grade == 1
    assert case.truth.disc("L3/L4").grades["disc_narrowing"].grade == 0
