"""Saved scenes load back; screenshots are not blank and show the overlay where the disc is."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("slicer_core", reason="slicer-core is not installed: scene export needs Slicer's MRML libraries")

from SpineGradeLogic.errors import InputError  # noqa: E402
from SpineGradeSlicer.SpineGradeLib import colortable, mrml_adapter, render, scene_export  # noqa: E402


@pytest.mark.parametrize("suffix", [".mrml", ".mrb"])
def test_saved_scene_loads_back(study, tmp_path, suffix):
    out, result, geom = study
    summary = scene_export.export_scene(out, tmp_path / f"scene{suffix}", None)
    assert summary["nodes"]["segments"] == 8 and summary["nodes"]["input_volume"]
    scene = scene_export.load_scene(tmp_path / f"scene{suffix}")
    by_role = mrml_adapter.study_nodes(scene, summary["study"])
    assert {k: len(v) for k, v in by_role.items()} == {
        "volume": 1, "segmentation": 1, "vertebrae": 1, "disc centres": 1, "disc": 3, "grades": 1, "saliency": 1}
    seg = by_role["segmentation"][0].GetSegmentation()
    names = sorted(seg.GetNthSegment(i).GetName() for i in range(seg.GetNumberOfSegments()))
    assert "L4/L5" in names and "spinal canal" in names
    l4 = seg.GetSegment(seg.GetSegmentIdBySegmentName("L4"))
    assert "SCT^11994002^L4 vertebra" in l4.GetTerminology()
    points = by_role["vertebrae"][0]
    p = [0.0, 0.0, 0.0]
    for i, v in enumerate(result.vertebrae):
        points.GetNthControlPointPositionWorld(i, p)
        assert points.GetNthControlPointLabel(i) == v.label
        assert np.allclose(p, v.centroid_mm, atol=1e-6, rtol=0)  # through a text file and back
    rois = {r.GetName(): r for r in by_role["disc"]}
    roi = rois["L4/L5"]
    text = roi.GetDescription() or roi.GetNthControlPointDescription(0)
    assert "pfirrmann" in text
    assert "pfirrmann" in roi.GetAttribute("SpineGrade.Grades")
    table = by_role["grades"][0]
    assert table.GetNumberOfRows() == 3 and table.GetCellText(1, 0) == "L4/L5"
    heat = by_role["saliency"][0]
    assert heat.GetImageData().GetDimensions() == geom.shape
    assert heat.GetDisplayNode().GetColorNode().GetName() == colortable.HEAT_NAME
    comps = scene.GetNodesByClass("vtkMRMLSliceCompositeNode")
    assert comps.GetNumberOfItems() == 3
    assert comps.GetItemAsObject(0).GetForegroundVolumeID() == heat.GetID()
    assert comps.GetItemAsObject(0).GetBackgroundVolumeID() == by_role["volume"][0].GetID()


def test_bad_scene_suffix(study, tmp_path):
    out, _, _ = study
    with pytest.raises(InputError):
        scene_export.export_scene(out, tmp_path / "scene.nrrd", None)


def _shots(study, tmp_path):
    out, result, geom = study
    summary = scene_export.export_scene(out, tmp_path / "scene.mrb", tmp_path / "shots")
    names = sorted(p.split("/")[-1] for p in summary["screenshots"])
    assert names == ["mid_sagittal.png", "saliency_L4-L5_pfirrmann_gradcam.png"]
    return summary, result, geom


def test_mid_sagittal_screenshot_shows_labels_and_boxes(study, tmp_path):
    summary, result, geom = _shots(study, tmp_path)
    img = np.asarray(Image.open(tmp_path / "shots" / "mid_sagittal.png").convert("RGB")).astype(int)
    assert img.shape[0] >= render.MIN_HEIGHT_PX and img.std() > 20  # not blank
    # the same rendering's geometry, to find the disc in pixels
    plane = render.sagittal_plane(geom, render.mid_sagittal_point(result, geom))
    sl = render.SliceImage(Image.new("RGB", (1, 1)), plane, max(1.0, render.MIN_HEIGHT_PX / plane.height))
    disc = result.disc("L4/L5")
    x, y = sl.to_pixel(disc.center_mm)
    r, g, b = img[y, x]
    assert b > r + 40  # the disc's blue/cyan label colour
    x0, y0, x1, y1 = render._box_rect(sl, disc.bbox_mm.min, disc.bbox_mm.max)
    edge = img[int(y0), int(x0):int(x1) + 1]
    green = (edge[:, 1] > 200) & (edge[:, 0] < 120)
    assert green.mean() > 0.5  # the box outline is drawn on the box's top edge
    v = result.vertebra("L4")
    x, y = sl.to_pixel(v.centroid_mm)
    r, g, b = img[y, x]
    assert r > b  # bone tones on the vertebra


def test_saliency_screenshot_overlay_is_on_the_disc(study, tmp_path):
    summary, result, geom = _shots(study, tmp_path)
    img = np.asarray(Image.open(tmp_path / "shots" / "saliency_L4-L5_pfirrmann_gradcam.png").convert("RGB")).astype(int)
    disc = result.disc("L4/L5")
    plane = render.sagittal_plane(geom, disc.center_mm)
    sl = render.SliceImage(Image.new("RGB", (1, 1)), plane, max(1.0, render.MIN_HEIGHT_PX / plane.height))
    x, y = sl.to_pixel(disc.center_mm)
    r, g, b = img[y - 2:y + 3, x - 2:x + 3].reshape(-1, 3).mean(0)
    assert r > 200 and r > b + 25  # hot colours at the disc (white-yellow at the peak)
    x0, y0, x1, y1 = render._box_rect(sl, disc.bbox_mm.min, disc.bbox_mm.max)
    ring = img[int(y0) + 3:int(y1) - 2, int(x0) + 3:int(x1) - 2].reshape(-1, 3)
    reddish = (ring[:, 0] > 150) & (ring[:, 0] > ring[:, 2] + 60)
    assert reddish.mean() > 0.2  # the heat is inside the highlighted disc box
    for name in ("L3", "S1"):  # none on vertebrae far from it
        x, y = sl.to_pixel(result.vertebra(name).centroid_mm)
        r, g, b = img[y - 1:y + 2, x + 4:x + 7].reshape(-1, 3).mean(0)
        assert abs(r - b) < 30  # grey
    # the legend bar is drawn at the right edge
    right = img[:, -60:]
    assert ((right[..., 0] > 200) & (right[..., 1] < 80)).any()


def test_screenshots_without_input_image(tmp_path):
    from conftest import make_study

    out, result, geom = make_study(tmp_path, with_image=False)
    summary = scene_export.export_scene(out, tmp_path / "scene.mrml", tmp_path / "shots")
    assert any("not found" in w for w in summary["warnings"])
    img = np.asarray(Image.open(tmp_path / "shots" / "mid_sagittal.png").convert("RGB"))
    assert img.std() > 10  # labels and boxes on black
    assert summary["nodes"]["input_volume"] is False


def test_cli_scene_command(study, tmp_path, capfd):
    from SpineGradeLogic.cli import scene as scene_cli

    out, _, _ = study
    parser = argparse.ArgumentParser()
    scene_cli.register(parser.add_subparsers())
    args = parser.parse_args(["scene", str(out), "--out", str(tmp_path / "s.mrml"), "--screenshot", str(tmp_path / "png")])
    assert args.func(args) == 0
    assert (tmp_path / "s.mrml").is_file() and (tmp_path / "s_data").is_dir()
    assert (tmp_path / "png" / "mid_sagittal.png").is_file()
    # a bare scene gets the selection node Slicer would have: without it every markup warns on stderr
    assert "GetUnitNode failed" not in capfd.readouterr().err
    bad = parser.parse_args(["scene", str(out), "--out", str(tmp_path / "s.txt")])
    with pytest.raises(InputError):
        bad.func(bad)


def test_prepare_scene_adds_one_selection_node():
    import slicer

    scene = mrml_adapter.prepare_scene(mrml_adapter.prepare_scene(slicer.vtkMRMLScene()))
    assert scene.GetNumberOfNodesByClass("vtkMRMLSelectionNode") == 1
