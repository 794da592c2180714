"""The result contract: schema, round trip through a folder, grades.csv, and atomic writes."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from fixtures_volumes import oblique_sagittal_volume
from SpineGradeLogic.names import HEADS, disc_label, next_vertebra, label_name
from SpineGradeLogic.results import (Box, Disc, Grade, InputInfo, ModelInfo, StudyResult, Vertebra,
                                     heatmap_path, read_result_folder, validate_result_dict, write_result_folder)
from SpineGradeLogic.results.validate import result_schema

SHARED_SCHEMA = Path(__file__).resolve().parents[3] / "shared" / "spec" / "result.schema.json"


def full_result() -> StudyResult:
    rng = np.random.default_rng(0)
    discs = []
    for z, level in ((40.0, "L3/L4"), (10.0, "L4/L5"), (-20.0, "L5/S1")):
        grades = {h: Grade.from_probabilities(h, rng.dirichlet(np.ones(len(c)))) for h, c in HEADS.items()}
        discs.append(Disc(level, (1.5, -20.0, z), grades, normal=(0, 0.2, 1), bbox_mm=Box((-20, -40, z - 5), (20, 0, z + 5)),
                          saliency={"modic": heatmap_path(level, "modic", "gradcam")}))
    return StudyResult(
        input=InputInfo("scan.nii.gz", (40, 48, 9), (0.8, 0.9, 4.0), "1.2.3", "T2", {"selection": "test"}),
        vertebrae=[Vertebra(n, (0, -25, z), 0.9, Box((-20, -45, z - 12), (20, -5, z + 12))) for n, z in
                   (("L3", 55.0), ("L4", 25.0), ("L5", -5.0), ("S1", -35.0))],
        discs=discs, warnings=["a warning"], models=[ModelInfo("m", "0.1.0", "ab" * 32)], timing_s={"load": 0.1},
    )


def test_result_validates_against_the_shared_schema():
    data = full_result().to_dict()
    validate_result_dict(data)
    if SHARED_SCHEMA.is_file():
        jsonschema.validate(data, json.loads(SHARED_SCHEMA.read_text()))


def test_packaged_schema_is_the_shared_one():
    if not SHARED_SCHEMA.is_file():
        pytest.skip(f"shared schema not found at {SHARED_SCHEMA}")
    assert result_schema() == json.loads(SHARED_SCHEMA.read_text())


def test_schema_rejects_a_broken_result():
    data = full_result().to_dict()
    data["vertebrae"][0]["label"] = "L9"
    with pytest.raises(jsonschema.ValidationError):
        validate_result_dict(data)


def test_folder_round_trip(tmp_path):
    v = oblique_sagittal_volume()
    seg = v.with_array((v.array > 120).astype(np.int16))
    result = full_result()
    heat = {result.discs[0].saliency["modic"]: v.with_array(np.abs(v.array - 100).astype(np.float32))}
    write_result_folder(result, tmp_path / "r", seg, heat)
    back = read_result_folder(tmp_path / "r")
    assert back.result.to_dict() == json.loads((tmp_path / "r" / "result.json").read_text())
    assert back.result.to_dict()["discs"] == result.to_dict()["discs"]
    assert back.segmentation().same_geometry(v)
    assert back.volume(result.discs[0].saliency["modic"]).same_geometry(v)
    assert back.result.input.extra["selection"] == "test"


def test_grades_csv_has_a_row_per_level_and_every_probability(tmp_path):
    result = full_result()
    write_result_folder(result, tmp_path / "r")
    rows = list(csv.DictReader(open(tmp_path / "r" / "grades.csv")))
    assert [r["level"] for r in rows] == ["L3/L4", "L4/L5", "L5/S1"]
    for row, disc in zip(rows, result.discs):
        for head, classes in HEADS.items():
            assert int(row[head]) == disc.grades[head].grade
            probs = [float(row[f"{head}_p{c}"]) for c in classes]
            assert np.isclose(sum(probs), 1.0, atol=1e-5)


def test_a_failed_write_leaves_the_old_result_and_no_partial_folder(tmp_path):
    write_result_folder(full_result(), tmp_path / "r")
    before = (tmp_path / "r" / "result.json").read_text()
    bad = full_result()
    bad.timing_s["load"] = float("nan")  # JSON cannot hold NaN: the write fails at the very end
    with pytest.raises(ValueError):
        write_result_folder(bad, tmp_path / "r")
    assert (tmp_path / "r" / "result.json").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]


def test_grades_are_consistent():
    g = Grade.from_probabilities("pfirrmann", [0.1, 0.2, 0.5, 0.1, 0.1])
    assert g.grade == 3 and g.classes == [1, 2, 3, 4, 5]
    with pytest.raises(ValueError):
        Grade(7, [0, 1], [0.5, 0.5])
    assert Grade.certain("modic", 2).probabilities == [0, 0, 1, 0]
    # a grade chosen at another operating point keeps every probability
    g = Grade.from_probabilities("pfirrmann", [0.1, 0.2, 0.5, 0.1, 0.1], index=3)
    assert g.grade == 4 and g.probabilities[2] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="class index 5"):
        Grade.from_probabilities("pfirrmann", [0.1, 0.2, 0.5, 0.1, 0.1], index=5)


def test_label_names_follow_design():
    assert disc_label("L4") == 123 and disc_label("L5") == 124
    assert label_name(123) == "L4/L5 disc" and label_name(26) == "S1" and label_name(28) == "T13"
    assert next_vertebra("T12") == "L1" and next_vertebra("T12", has_t13=True) == "T13"
    assert next_vertebra("L5", has_l6=True) == "L6" and next_vertebra("L6") == "S1"
