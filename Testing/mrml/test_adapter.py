"""The MRML adapter against a real slicer-core scene."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

pytest.importorskip("slicer_core", reason="slicer-core is not installed: the MRML adapter tests need Slicer's MRML libraries")

import vtk  # noqa: E402

from SpineGradeLogic.names import HEADS  # noqa: E402
from SpineGradeLogic.results import read_result_folder  # noqa: E402
from SpineGradeSlicer.SpineGradeLib import colortable, mrml_adapter, runner  # noqa: E402


def _load(scene, study):
    out, result, geom = study
    return mrml_adapter.load_result(scene, out), read_result_folder(out).result


def test_node_types_and_names(scene, study):
    nodes, res = _load(scene, study)
    assert nodes.segmentation.IsA("vtkMRMLSegmentationNode")
    assert nodes.vertebrae.IsA("vtkMRMLMarkupsFiducialNode")
    assert nodes.table.IsA("vtkMRMLTableNode")
    assert set(nodes.discs) == {d.level for d in res.discs}
    for level, roi in nodes.discs.items():
        assert roi.IsA("vtkMRMLMarkupsROINode")
        assert roi.GetName() == level
    assert [nodes.vertebrae.GetNthControlPointLabel(i) for i in range(nodes.vertebrae.GetNumberOfControlPoints())] \
        == [v.label for v in res.vertebrae]
    assert list(nodes.saliency) == ["L4/L5 pfirrmann gradcam"]
    assert nodes.saliency["L4/L5 pfirrmann gradcam"].IsA("vtkMRMLScalarVolumeNode")


def test_segments_names_colours_terminology(scene, study):
    nodes, res = _load(scene, study)
    seg = nodes.segmentation.GetSegmentation()
    names = {seg.GetNthSegment(i).GetName(): seg.GetNthSegment(i) for i in range(seg.GetNumberOfSegments())}
    assert set(names) == {"L3", "L4", "L5", "S1", "L3/L4", "L4/L5", "L5/S1", "spinal canal"}
    entries = colortable.entry_by_value()
    expected_codes = {"L4": "11994002", "S1": "54735007", "L4/L5": "360499006", "spinal canal": "61853006"}
    for name, code in expected_codes.items():
        segment = names[name]
        value = int(segment.GetLabelValue())
        assert np.allclose(segment.GetColor(), np.array(entries[value].rgb) / 255.0)
        term = segment.GetTerminology()
        assert f"SCT^{code}^" in term
        assert "SCT^123037004^Anatomical Structure" in term
    assert "SCT^122496007^Lumbar spine" in names["L4/L5"].GetTerminology()


def test_posterior_elements_merged_into_vertebra(scene, study):
    out, result, geom = study
    nodes = mrml_adapter.load_result(scene, out)
    seg = nodes.segmentation.GetSegmentation()
    values = {seg.GetNthSegment(i).GetLabelValue() for i in range(seg.GetNumberOfSegments())}
    assert not any(40 < v <= 68 for v in values)


def test_coordinates_equal_result_json(scene, study):
    nodes, res = _load(scene, study)
    p = [0.0, 0.0, 0.0]
    for i, v in enumerate(res.vertebrae):
        nodes.vertebrae.GetNthControlPointPositionWorld(i, p)
        assert tuple(p) == tuple(v.centroid_mm)  # exactly
    for i, d in enumerate(res.discs):
        nodes.disc_centres.GetNthControlPointPositionWorld(i, p)
        assert tuple(p) == tuple(d.center_mm)
        roi = nodes.discs[d.level]
        b = [0.0] * 6
        roi.GetRASBounds(b)  # MRML keeps an ROI in single precision ...
        assert np.allclose(b[0::2], d.bbox_mm.min, atol=1e-4, rtol=0)
        assert np.allclose(b[1::2], d.bbox_mm.max, atol=1e-4, rtol=0)
        # ... so the exact values ride along as attributes
        assert json.loads(roi.GetAttribute("SpineGrade.BoxMM")) == d.bbox_mm.to_dict()
        assert tuple(json.loads(roi.GetAttribute("SpineGrade.CenterMM"))) == tuple(d.center_mm)


def test_roi_description_holds_grades(scene, study):
    nodes, res = _load(scene, study)
    d = res.disc("L4/L5")
    text = nodes.discs["L4/L5"].GetDescription()
    for head, g in d.grades.items():
        p = g.probabilities[g.classes.index(g.grade)]
        assert f"{head}: {g.grade} (p={p:.2f})" in text


def test_table_rows_and_columns(scene, study):
    nodes, res = _load(scene, study)
    t = nodes.table
    assert t.GetNumberOfRows() == len(res.discs)
    heads = [h for h in HEADS if h in res.discs[0].grades]
    assert [t.GetColumnName(i) for i in range(t.GetNumberOfColumns())] == ["level"] + [
        c for h in heads for c in (h, f"{h} p")]
    for r, d in enumerate(res.discs):
        assert t.GetCellText(r, 0) == d.level
        for c, h in enumerate(heads):
            g = d.grades[h]
            assert int(t.GetCellText(r, 1 + 2 * c)) == g.grade
            assert math.isclose(float(t.GetCellText(r, 2 + 2 * c)), g.probabilities[g.classes.index(g.grade)],
                                rel_tol=1e-5)
    assert t.GetAttribute("SpineGrade.Sensitivity") == "0"
    assert "most probable grade" in t.GetColumnDescription(heads[0])


def test_table_says_the_operating_point_its_grades_were_shown_at(scene, study):
    res = read_result_folder(study[0]).result
    res.extra["grading"] = {"sensitivity": 0.5}
    t = mrml_adapter.add_table(scene, res, "graded at 0.5")
    assert t.GetAttribute("SpineGrade.Sensitivity") == "0.5"
    assert "grade shown at sensitivity 0.5" in t.GetColumnDescription(next(iter(res.discs[0].grades)))


def test_saliency_display_colour_map_legend_and_foreground(scene, study):
    nodes, res = _load(scene, study)
    vol = nodes.saliency["L4/L5 pfirrmann gradcam"]
    display = vol.GetDisplayNode()
    assert display.GetColorNode().GetName() == colortable.HEAT_NAME
    assert display.GetApplyThreshold()
    legend = mrml_adapter.color_legend(vol)
    assert legend is not None and legend.GetPrimaryDisplayNode() is display
    comps = mrml_adapter.show_in_slice_views(scene, None, vol, 0.4, create=True)
    assert comps and all(c.GetForegroundVolumeID() == vol.GetID() for c in comps)
    assert all(abs(c.GetForegroundOpacity() - 0.4) < 1e-9 for c in comps)
    assert legend.GetVisibility()
    mrml_adapter.show_in_slice_views(scene, None, None)
    assert not legend.GetVisibility()


def test_geometry_of_volumes_matches_input(scene, study):
    out, result, geom = study
    nodes = mrml_adapter.load_result(scene, out)
    vol = nodes.saliency["L4/L5 pfirrmann gradcam"]
    m = vtk.vtkMatrix4x4()
    vol.GetIJKToRASMatrix(m)
    a = np.array([[m.GetElement(r, c) for c in range(4)] for r in range(4)])
    assert np.allclose(a, geom.affine, atol=1e-6)
    arr = mrml_adapter.array_from_volume_node(vol)
    heat = read_result_folder(out).volume(result.discs[1].saliency["pfirrmann"]).array
    assert np.allclose(arr, heat)


def test_everything_under_one_study_folder(scene, study):
    nodes, res = _load(scene, study)
    sh = mrml_adapter._sh(scene)
    for n in nodes.all_nodes():
        assert sh.GetItemParent(sh.GetItemByDataNode(n)) == nodes.folder_item
    assert sh.GetItemAttribute(nodes.folder_item, mrml_adapter.ATTR_STUDY) == nodes.study


def test_rerun_replaces_the_study(scene, study):
    out, result, geom = study
    first = mrml_adapter.load_result(scene, out)
    count = scene.GetNumberOfNodes()
    second = mrml_adapter.load_result(scene, out)
    assert scene.GetNumberOfNodes() == count
    assert first.segmentation.GetScene() is None  # the old nodes left the scene
    assert mrml_adapter.find_study_folder(scene, second.study) == second.folder_item
    assert scene.GetNodesByClass("vtkMRMLSegmentationNode").GetNumberOfItems() == 1


def test_two_studies_live_side_by_side(scene, study):
    out, result, geom = study
    a = mrml_adapter.load_result(scene, out, study="A")
    b = mrml_adapter.load_result(scene, out, study="B")
    assert a.folder_item != b.folder_item
    assert a.segmentation.GetScene() is scene and b.segmentation.GetScene() is scene


def test_result_without_segmentation_or_boxes(scene, tmp_path):
    from conftest import make_study
    from SpineGradeLogic.results import write_result_folder

    out, result, geom = make_study(tmp_path, with_image=False)
    for d in result.discs:
        d.bbox_mm = None
        d.saliency = {}
    result.segmentation = None
    bare = write_result_folder(result, tmp_path / "bare")
    nodes = mrml_adapter.load_result(scene, bare)
    assert nodes.segmentation is None and not nodes.saliency
    c = [0.0, 0.0, 0.0]
    nodes.discs["L4/L5"].GetCenterWorld(c)
    assert np.allclose(c, result.disc("L4/L5").center_mm, atol=1e-4, rtol=0)


def test_navigation_helpers(scene, study):
    nodes, res = _load(scene, study)
    mrml_adapter.highlight_level(nodes, "L4/L5")
    assert nodes.discs["L4/L5"].GetSelected() and not nodes.discs["L3/L4"].GetSelected()
    mrml_adapter.set_visibility(nodes, labels=False, boxes=False)
    assert not nodes.segmentation.GetDisplayNode().GetVisibility()
    assert not any(r.GetDisplayNode().GetVisibility() for r in nodes.discs.values())


def test_volume_node_written_for_the_engine_keeps_its_geometry(scene, tmp_path):
    from conftest import study_geometry
    from SpineGradeLogic.results import read_volume
    from SpineGradeSlicer.SpineGradeLib import processing

    geom = study_geometry()
    vol = geom.with_array(np.arange(np.prod(geom.shape), dtype=np.float32).reshape(geom.shape))
    node = mrml_adapter.add_volume_node(scene, vol, "input")
    req = processing.make_request(node, tmp_path, heads=["pfirrmann"], device="cpu")
    back = read_volume(req.input)
    assert back.same_geometry(vol, tol=1e-4)
    assert np.array_equal(back.array, vol.array)
    assert req.out_dir == tmp_path / "result" and req.heads == ["pfirrmann"] and req.axial is None


def test_an_axial_node_is_written_beside_the_input_in_its_own_geometry(scene, tmp_path):
    from SpineGradeLogic.io.axial import load_axial
    from SpineGradeLogic.phantom import PhantomConfig, generate_case
    from SpineGradeSlicer.SpineGradeLib import processing

    case = generate_case(21, "lumbar", "T2", PhantomConfig.small(), axial=True)
    sag = mrml_adapter.add_volume_node(scene, case.image, "sagittal")
    ax = mrml_adapter.add_volume_node(scene, case.axial, "axial")
    req = processing.make_request(sag, tmp_path, axial_node=ax)
    assert req.axial == tmp_path / "input" / "axial.nii.gz"
    back = load_axial(req.axial).volume  # what the engine reads: still an axial series, same place
    assert back.same_geometry(case.axial, tol=1e-4)
    assert "--axial" in runner.build_command(req, python="py")
