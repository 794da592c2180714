"""Build a result's scene headlessly (``slicer-core``), save it for Slicer, render screenshots.

``spinegrade scene RESULT_DIR --out FILE.mrml|FILE.mrb [--screenshot DIR]`` calls
:func:`export_scene`. The scene is made by the same adapter the Slicer module uses; it holds the
input image (where its file is still there), the segmentation, markups, disc ROIs, grades table
and saliency volumes, and the slice views' layers, so it opens in Slicer as the panel shows it.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Dict, List, Optional

import slicer

from SpineGradeLogic.errors import InputError
from SpineGradeLogic.results import read_result_folder

from . import mrml_adapter, render

log = logging.getLogger("spinegrade")

SCENE_SUFFIXES = (".mrml", ".mrb")


def load_input_image(result_folder):
    """The input image named in result.json, or None (with the reason) when it cannot be read."""
    path = result_folder.input_path()
    if path is None or not path.exists():
        return None, f"input image {path or '(none named)'} not found: the scene and screenshots are made without it"
    try:
        from SpineGradeLogic.io.study import load_study

        return load_study(path, series_uid=result_folder.result.input.series_instance_uid).volume, None
    except Exception as e:  # an unreadable input must not stop the export of the result itself
        return None, f"input image {path} could not be read ({e}): the scene and screenshots are made without it"


def _safe(text: str) -> str:
    return render.safe_name(text) or "node"


def save_scene(scene, out_file: Path, thumbnail_png: Optional[Path] = None) -> Path:
    """Save ``scene`` as a ``.mrb`` bundle or as ``.mrml`` with its data in ``<stem>_data/`` beside it."""
    out_file = Path(out_file).resolve()
    suffix = out_file.suffix.lower()
    if suffix not in SCENE_SUFFIXES:
        raise InputError(f"{out_file}: the scene file must end in .mrml or .mrb")
    out_file.parent.mkdir(parents=True, exist_ok=True)
    mrml_adapter.prepare_scene(scene)
    if suffix == ".mrb":
        thumb = _png_to_vtk(thumbnail_png) if thumbnail_png else None
        messages = slicer.vtkMRMLMessageCollection()
        if out_file.exists():
            out_file.unlink()
        if not scene.WriteToMRB(str(out_file), thumb, messages):
            raise RuntimeError(f"could not write {out_file}: {messages.GetAllMessagesAsString()}")
        return out_file

    data_dir = out_file.parent / f"{out_file.stem}_data"
    if data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True)
    used: set = set()
    nodes = scene.GetNodesByClass("vtkMRMLStorableNode")
    for i in range(nodes.GetNumberOfItems()):
        node = nodes.GetItemAsObject(i)
        if node.GetHideFromEditors() and not node.IsA("vtkMRMLColorTableNode"):
            continue
        storage = node.GetStorageNode()
        if storage is None:
            if not node.AddDefaultStorageNode():
                continue
            storage = node.GetStorageNode()
        if storage is None:
            continue
        ext = storage.GetDefaultWriteFileExtension() or "dat"
        stem = _safe(node.GetName())
        name, n = f"{stem}.{ext}", 1
        while name in used:
            n += 1
            name = f"{stem}_{n}.{ext}"
        used.add(name)
        storage.SetFileName(str(data_dir / name))
        if not storage.WriteData(node):
            raise RuntimeError(f"could not write {node.GetName()} to {data_dir / name}")
    scene.SetRootDirectory(str(out_file.parent))
    scene.SetURL(str(out_file))
    if not scene.Commit():
        raise RuntimeError(f"could not write {out_file}")
    return out_file


def load_scene(path: Path, scene=None):
    """Load a saved ``.mrml`` or ``.mrb`` into ``scene`` (a new one by default) and return it."""
    path = Path(path).resolve()
    scene = mrml_adapter.prepare_scene(scene or slicer.vtkMRMLScene())
    if path.suffix.lower() == ".mrb":
        tmp = Path(tempfile.mkdtemp(prefix="spinegrade-mrb-"))
        with zipfile.ZipFile(path) as z:
            z.extractall(tmp)
        mrml = sorted(tmp.rglob("*.mrml"))
        if not mrml:
            raise InputError(f"{path}: no .mrml inside this bundle")
        path = mrml[0]
    scene.SetRootDirectory(str(path.parent))
    scene.SetURL(str(path))
    if not scene.Connect():
        raise RuntimeError(f"could not load {path}")
    return scene


def _png_to_vtk(path: Path):
    import vtk

    reader = vtk.vtkPNGReader()
    reader.SetFileName(str(path))
    reader.Update()
    return reader.GetOutput()


def export_scene(result_dir: Path, out_file: Path, screenshot_dir: Optional[Path] = None) -> Dict[str, object]:
    """Build the scene of a result folder, save it, and (optionally) render PNG screenshots.

    Returns a summary: ``scene`` (the saved file), ``study``, ``nodes`` (counts by kind),
    ``screenshots`` (PNG paths) and ``warnings``.
    """
    folder = read_result_folder(Path(result_dir))
    out_file = Path(out_file)
    if out_file.suffix.lower() not in SCENE_SUFFIXES:
        raise InputError(f"{out_file}: the scene file must end in .mrml or .mrb")
    warnings: List[str] = []
    image, why = load_input_image(folder)
    if why:
        warnings.append(why)
        log.warning(why)

    scene = mrml_adapter.prepare_scene(slicer.vtkMRMLScene())
    mrml_adapter.ensure_slice_views(scene)
    nodes = mrml_adapter.load_result(scene, folder, input_volume=image, show=True)

    shots: Dict[str, render.SliceImage] = {}
    if screenshot_dir is not None:
        labels = folder.segmentation()
        geometry = image or labels
        heatmaps = {}
        for text, key in nodes.saliency_keys.items():
            heatmaps[text] = (key.level, key.head, key.method, folder.volume(key.path))
            geometry = geometry or heatmaps[text][3]
        if geometry is None:
            warnings.append("no image, label volume or heatmap to draw: no screenshots")
        else:
            shots = render.render_screenshots(Path(screenshot_dir), folder.result, geometry, image, labels, heatmaps)
            for sl in shots.values():
                warnings.extend(n for n in sl.notes if n not in warnings)

    thumb = Path(screenshot_dir) / "mid_sagittal.png" if "mid_sagittal.png" in shots else None
    saved = save_scene(scene, out_file, thumb)
    warnings.extend(w for w in folder.result.warnings if w not in warnings)
    return {
        "scene": str(saved),
        "study": nodes.study,
        "nodes": {
            "segments": nodes.segmentation.GetSegmentation().GetNumberOfSegments() if nodes.segmentation else 0,
            "vertebra_points": nodes.vertebrae.GetNumberOfControlPoints() if nodes.vertebrae else 0,
            "disc_rois": len(nodes.discs),
            "table_rows": nodes.table.GetNumberOfRows() if nodes.table else 0,
            "saliency_volumes": len(nodes.saliency),
            "input_volume": nodes.volume is not None,
        },
        "screenshots": [str(Path(screenshot_dir) / name) for name in shots] if screenshot_dir else [],
        "warnings": warnings,
    }
