"""Turn a SpineGrade result folder into MRML nodes in a scene that the caller passes in.

Uses only ``slicer``'s vtkMRML classes (and vtk, numpy, the engine), so it runs the same inside the
Slicer application and under the ``slicer-core`` wheel. Nothing here touches ``slicer.mrmlScene``,
``slicer.app`` or ``slicer.modules``.

What one call of :func:`load_result` puts in the scene, all under one subject-hierarchy folder per
study (calling it again for the same study first removes that study's nodes):

- a segmentation node: one named segment per vertebra (body and posterior elements), per disc and
  for the canal and cord, coloured from the shipped colour table and tagged with its SNOMED CT
  terminology;
- a markups fiducial node with one labelled point per vertebra at ``centroid_mm``, and one with a
  point per disc level at ``center_mm`` (for centring the views on a level);
- one markups ROI node per disc level, named by the level, spanning ``bbox_mm``, its grades in the
  description;
- a table node: a row per level, per head a grade column and a probability column;
- each saliency map as a scalar volume node with the heat colour map, thresholded so that the
  background stays transparent, and a colour legend; the first one is put in the slice views'
  foreground.

Coordinates are taken from ``result.json`` without any transformation: result coordinates are RAS,
as MRML's world frame is. Markups control points hold them exactly (double precision); an ROI node
stores its centre and size in single precision, so each ROI also keeps the exact values from
``result.json`` in its ``SpineGrade.CenterMM`` / ``SpineGrade.BoxMM`` attributes.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import vtk
from vtk.util import numpy_support

import slicer

from SpineGradeLogic.io.volume import Volume
from SpineGradeLogic.names import DISC_OFFSET, HEADS, LABEL_TO_VERTEBRA, POSTERIOR_OFFSET
from SpineGradeLogic.resources import resources_dir
from SpineGradeLogic.results import ResultFolder, StudyResult, read_result_folder

from . import colortable

ATTR_STUDY = "SpineGrade.Study"  # on the study folder item and every node the adapter makes
ATTR_ROLE = "SpineGrade.Role"
ATTR_LEVEL = "SpineGrade.Level"
ATTR_KEY = "SpineGrade.Saliency"
ATTR_SHARED = "SpineGrade.Shared"

ROLE_SEGMENTATION = "segmentation"
ROLE_VERTEBRAE = "vertebrae"
ROLE_DISC_CENTRES = "disc centres"
ROLE_DISC_ROI = "disc"
ROLE_TABLE = "grades"
ROLE_SALIENCY = "saliency"
ROLE_VOLUME = "volume"

DEFAULT_ROI_SIZE_MM = (40.0, 40.0, 12.0)  # used only where a disc has no box in the result


@dataclass
class SaliencyKey:
    level: str
    head: str
    method: str
    path: str

    @property
    def text(self) -> str:
        return f"{self.level} {self.head} {self.method}"


@dataclass
class StudyNodes:
    """Everything :func:`load_result` made for one study (nodes are vtkMRML objects)."""

    study: str
    folder_item: int
    segmentation: Optional[object] = None
    vertebrae: Optional[object] = None
    disc_centres: Optional[object] = None
    discs: Dict[str, object] = field(default_factory=dict)  # level -> ROI node
    table: Optional[object] = None
    saliency: Dict[str, object] = field(default_factory=dict)  # "L4/L5 pfirrmann gradcam" -> volume node
    saliency_keys: Dict[str, SaliencyKey] = field(default_factory=dict)
    volume: Optional[object] = None  # the input volume shown in the background, where known
    color_table: Optional[object] = None
    heat_color: Optional[object] = None
    result: Optional[StudyResult] = None

    def all_nodes(self) -> List[object]:
        nodes = [self.segmentation, self.vertebrae, self.disc_centres, self.table, self.volume]
        return [n for n in nodes if n is not None] + list(self.discs.values()) + list(self.saliency.values())


# --- small vtk helpers ----------------------------------------------------------------------
def vtk_matrix(a: np.ndarray) -> vtk.vtkMatrix4x4:
    m = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            m.SetElement(r, c, float(a[r, c]))
    return m


def image_data(array: np.ndarray) -> vtk.vtkImageData:
    """``array[i, j, k]`` as vtkImageData (origin 0, spacing 1: geometry lives in IJKToRAS)."""
    img = vtk.vtkImageData()
    img.SetDimensions(*array.shape[:3])
    flat = np.ascontiguousarray(array.ravel(order="F"))
    img.GetPointData().SetScalars(numpy_support.numpy_to_vtk(flat, deep=True))
    return img


def array_from_volume_node(node) -> np.ndarray:
    """The voxels of a volume node as ``array[i, j, k]``."""
    img = node.GetImageData()
    dims = img.GetDimensions()
    flat = numpy_support.vtk_to_numpy(img.GetPointData().GetScalars())
    return flat.reshape(dims[::-1]).transpose(2, 1, 0)


def add_volume_node(scene, volume: Volume, name: str, labelmap: bool = False, display: bool = True):
    """A scalar (or labelmap) volume node holding ``volume`` in its exact geometry."""
    cls = "vtkMRMLLabelMapVolumeNode" if labelmap else "vtkMRMLScalarVolumeNode"
    node = scene.AddNewNodeByClass(cls, name)
    node.SetAndObserveImageData(image_data(volume.array))
    node.SetIJKToRASMatrix(vtk_matrix(volume.affine))
    if display:
        node.CreateDefaultDisplayNodes()
    return node


# --- the scene -----------------------------------------------------------------------------------
#: Node classes Slicer's module logics register at start-up; a bare slicer-core scene lacks them.
EXTRA_NODE_CLASSES = (
    "vtkMRMLMarkupsJsonStorageNode",
    "vtkMRMLMarkupsROIJsonStorageNode",
    "vtkMRMLMarkupsPlaneJsonStorageNode",
    "vtkMRMLColorLegendDisplayNode",
)


def prepare_scene(scene):
    """Register the node classes the adapter writes and reads where the scene lacks them
    (nothing to do inside Slicer). Returns the scene."""
    for name in EXTRA_NODE_CLASSES:
        cls = getattr(slicer, name, None)
        if cls is not None and not scene.IsNodeClassRegistered(name):
            scene.RegisterNodeClass(cls())
    if scene.GetFirstNodeByClass("vtkMRMLSelectionNode") is None:
        # Slicer's application logic adds this singleton; markups look their length unit up in it
        selection = slicer.vtkMRMLSelectionNode()
        selection.SetSingletonTag("Singleton")
        scene.AddNode(selection)
    return scene


# --- scene-wide shared nodes ------------------------------------------------------------------
def _find_shared(scene, cls: str, name: str):
    nodes = scene.GetNodesByClass(cls)
    for i in range(nodes.GetNumberOfItems()):
        n = nodes.GetItemAsObject(i)
        if n.GetAttribute(ATTR_SHARED) == name:
            return n
    return None


def color_table_node(scene, path: Optional[Path] = None):
    """SpineGrade's label colour table (with terminology), loaded once per scene."""
    node = _find_shared(scene, "vtkMRMLColorTableNode", "labels")
    if node is not None:
        return node
    path = Path(path or resources_dir() / colortable.COLOR_TABLE_FILE)
    node = scene.AddNewNodeByClass("vtkMRMLColorTableNode", "SpineGrade labels")
    node.SetAttribute(ATTR_SHARED, "labels")
    reader = slicer.vtkMRMLColorTableStorageNode()
    reader.SetFileName(str(path))
    if not reader.ReadData(node) or node.GetNumberOfColors() < 2:
        raise RuntimeError(f"could not read SpineGrade's colour table {path}")
    node.SetName("SpineGrade labels")
    node.SetAttribute(ATTR_SHARED, "labels")
    node.SetHideFromEditors(False)
    return node


def heat_color_node(scene):
    """The saliency colour map; index 0 transparent."""
    node = _find_shared(scene, "vtkMRMLColorTableNode", "heat")
    if node is not None:
        return node
    node = scene.AddNewNodeByClass("vtkMRMLColorTableNode", colortable.HEAT_NAME)
    node.SetAttribute(ATTR_SHARED, "heat")
    node.SetHideFromEditors(False)
    node.SetTypeToUser()
    lut = colortable.heat_lut(256)
    node.SetNumberOfColors(len(lut))
    for i, (r, g, b) in enumerate(lut):
        node.SetColor(i, f"{i / (len(lut) - 1):.2f}", r / 255.0, g / 255.0, b / 255.0, 1.0)
    node.GetLookupTable().SetRange(0.0, 1.0)
    return node


# --- subject hierarchy ----------------------------------------------------------------------
def _sh(scene):
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    if sh is None:
        raise RuntimeError("the scene has no subject hierarchy node")
    return sh


def find_study_folder(scene, study: str) -> int:
    """The subject-hierarchy folder of ``study`` (0 where there is none)."""
    sh = _sh(scene)
    ids = vtk.vtkIdList()
    sh.GetItemChildren(sh.GetSceneItemID(), ids, True)
    for i in range(ids.GetNumberOfIds()):
        item = ids.GetId(i)
        if sh.GetItemAttribute(item, ATTR_STUDY) == study and sh.GetItemLevel(item) == "Folder":
            return item
    return 0


def remove_node(scene, node) -> None:
    """Remove a node with its display and storage nodes."""
    extra = []
    for getter, count in (("GetNthDisplayNode", "GetNumberOfDisplayNodes"), ("GetNthStorageNode", "GetNumberOfStorageNodes")):
        if hasattr(node, count):
            extra += [getattr(node, getter)(i) for i in range(getattr(node, count)())]
    scene.RemoveNode(node)
    for n in extra:
        if n is not None and n.GetScene() is scene:
            scene.RemoveNode(n)


def remove_study(scene, study: str) -> int:
    """Remove every node SpineGrade made for ``study``; returns how many data nodes went."""
    nodes = scene.GetNodesByClass("vtkMRMLNode")
    doomed = [nodes.GetItemAsObject(i) for i in range(nodes.GetNumberOfItems())]
    doomed = [n for n in doomed if n.GetAttribute(ATTR_STUDY) == study]
    for n in doomed:
        if n.GetScene() is scene:
            remove_node(scene, n)
    folder = find_study_folder(scene, study)
    while folder:
        _sh(scene).RemoveItem(folder, True, False)
        folder = find_study_folder(scene, study)
    return len(doomed)


def _tag(node, study: str, role: str, folder: int, **attrs: str):
    node.SetAttribute(ATTR_STUDY, study)
    node.SetAttribute(ATTR_ROLE, role)
    for k, v in attrs.items():
        node.SetAttribute(k, v)
    sh = _sh(node.GetScene())
    item = sh.GetItemByDataNode(node)
    if item:
        sh.SetItemParent(item, folder)
    else:  # a scene without Slicer's subject-hierarchy plugins (slicer-core) does not add items itself
        sh.CreateItem(folder, node)
    return node


# --- the parts --------------------------------------------------------------------------------
def grade_text(head: str, grade) -> str:
    i = grade.classes.index(grade.grade)
    return f"{head}: {grade.grade} (p={grade.probabilities[i]:.2f})"


def disc_description(disc) -> str:
    lines = [f"SpineGrade grades for {disc.level}"]
    lines += [grade_text(h, disc.grades[h]) for h in HEADS if h in disc.grades]
    lines += [grade_text(h, g) for h, g in disc.grades.items() if h not in HEADS]
    if len(lines) == 1:
        lines.append("(no grades)")
    return "\n".join(lines)


def _segment_name(value: int, entry, result: StudyResult) -> str:
    if DISC_OFFSET < value <= DISC_OFFSET + 28 and value - DISC_OFFSET in LABEL_TO_VERTEBRA:
        upper = LABEL_TO_VERTEBRA[value - DISC_OFFSET]
        for d in result.discs:
            if d.upper == upper:
                return d.level
    return entry.name if entry else f"label {value}"


def add_segmentation(scene, labels: Volume, result: StudyResult, color_node, name: str):
    """One segment per vertebra (posterior elements merged into it), disc, canal and cord."""
    array = np.asarray(labels.array).astype(np.int32)
    posterior = (array > POSTERIOR_OFFSET) & (array <= POSTERIOR_OFFSET + 28)
    array = np.where(posterior & np.isin(array - POSTERIOR_OFFSET, list(LABEL_TO_VERTEBRA)), array - POSTERIOR_OFFSET, array)
    values = [int(v) for v in np.unique(array) if v != 0]
    entries = colortable.entry_by_value()
    missing = [v for v in values if v not in entries]
    if missing or max(values, default=0) >= color_node.GetNumberOfColors():
        raise ValueError(f"label values without a SpineGrade colour: {missing}")

    seg = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
    seg.CreateDefaultDisplayNodes()
    if not values:
        return seg
    lm = add_volume_node(scene, labels.with_array(array.astype(np.uint16)), f"{name} labelmap", labelmap=True,
                         display=False)
    try:
        lm_display = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeDisplayNode")
        lm_display.SetAndObserveColorNodeID(color_node.GetID())
        lm.SetAndObserveDisplayNodeID(lm_display.GetID())
        seg.SetReferenceImageGeometryParameterFromVolumeNode(lm)
        if not slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(lm, seg, ""):
            raise RuntimeError("could not import the label volume into a segmentation")
    finally:
        remove_node(scene, lm)
    segmentation = seg.GetSegmentation()
    for i in range(segmentation.GetNumberOfSegments()):
        segment = segmentation.GetNthSegment(i)
        value = int(segment.GetLabelValue())
        entry = entries.get(value)
        segment.SetName(_segment_name(value, entry, result))
        segment.SetColor(*(c / 255.0 for c in entry.rgb))
        segment.SetTag("SpineGrade.LabelValue", str(value))
        if entry.type:
            segment.SetTerminology(color_node.GetTerminologyAsString(value) or entry.terminology_string())
    return seg


def add_vertebra_points(scene, result: StudyResult, name: str):
    node = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", name)
    node.CreateDefaultDisplayNodes()
    for v in result.vertebrae:
        i = node.AddControlPoint(vtk.vtkVector3d(*v.centroid_mm), v.label)
        node.SetNthControlPointDescription(i, f"confidence {v.confidence:.2f}")
        node.SetNthControlPointLocked(i, True)
    d = node.GetDisplayNode()
    d.SetSelectedColor(1.0, 0.85, 0.2)
    d.SetPointLabelsVisibility(True)
    return node


def add_disc_centres(scene, result: StudyResult, name: str):
    node = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", name)
    node.CreateDefaultDisplayNodes()
    for d in result.discs:
        i = node.AddControlPoint(vtk.vtkVector3d(*d.center_mm), d.level)
        node.SetNthControlPointLocked(i, True)
    node.GetDisplayNode().SetSelectedColor(0.3, 0.7, 1.0)
    node.GetDisplayNode().SetVisibility(False)  # the ROIs show the levels; this is for navigation
    return node


def add_disc_roi(scene, disc):
    node = scene.AddNewNodeByClass("vtkMRMLMarkupsROINode", disc.level)
    node.CreateDefaultDisplayNodes()
    if disc.bbox_mm is not None:
        lo, hi = np.asarray(disc.bbox_mm.min, float), np.asarray(disc.bbox_mm.max, float)
        node.SetCenterWorld(*((lo + hi) / 2.0))
        node.SetSizeWorld(*(hi - lo))
    else:
        node.SetCenterWorld(*disc.center_mm)
        node.SetSizeWorld(*DEFAULT_ROI_SIZE_MM)
    text = disc_description(disc)
    node.SetDescription(text)
    # the markups JSON file keeps control-point descriptions but not the node's: keep the grades there too
    if node.GetNumberOfControlPoints() > 0:
        node.SetNthControlPointDescription(0, text)
    node.SetAttribute("SpineGrade.Grades", json.dumps({h: g.to_dict() for h, g in disc.grades.items()}))
    node.SetAttribute("SpineGrade.CenterMM", json.dumps(list(disc.center_mm)))
    if disc.bbox_mm is not None:
        node.SetAttribute("SpineGrade.BoxMM", json.dumps(disc.bbox_mm.to_dict()))
    node.SetLocked(True)
    d = node.GetDisplayNode()
    d.SetSelectedColor(0.2, 0.9, 0.3)
    d.SetFillOpacity(0.08)
    d.SetHandlesInteractive(False)
    return node


def table_columns(result: StudyResult) -> List[str]:
    heads = [h for h in HEADS if any(h in d.grades for d in result.discs)]
    heads += sorted({h for d in result.discs for h in d.grades} - set(heads))
    return heads


def add_table(scene, result: StudyResult, name: str):
    node = scene.AddNewNodeByClass("vtkMRMLTableNode", name)
    table = node.GetTable()
    level = vtk.vtkStringArray()
    level.SetName("level")
    table.AddColumn(level)
    heads = table_columns(result)
    for h in heads:
        g = vtk.vtkIntArray()
        g.SetName(h)
        p = vtk.vtkDoubleArray()
        p.SetName(f"{h} p")
        table.AddColumn(g)
        table.AddColumn(p)
    table.SetNumberOfRows(len(result.discs))
    for r, d in enumerate(result.discs):
        table.SetValue(r, 0, vtk.vtkVariant(d.level))
        for c, h in enumerate(heads):
            g = d.grades.get(h)
            grade = g.grade if g else -1
            prob = g.probabilities[g.classes.index(g.grade)] if g else math.nan
            table.SetValue(r, 1 + 2 * c, vtk.vtkVariant(int(grade)))
            table.SetValue(r, 2 + 2 * c, vtk.vtkVariant(float(prob)))
    sensitivity = float((result.extra.get("grading") or {}).get("sensitivity") or 0.0)
    node.SetAttribute("SpineGrade.Sensitivity", f"{sensitivity:g}")  # the operating point the grades were shown at
    shown = "most probable grade" if sensitivity == 0 else f"grade shown at sensitivity {sensitivity:g}"
    for h in heads:
        node.SetColumnDescription(h, f"{h} {shown} (classes {list(HEADS.get(h, ()))}; -1: not graded)")
        node.SetColumnDescription(f"{h} p", f"probability of the {h} grade")
    node.SetUseColumnTitleAsColumnHeader(True)
    node.SetLocked(True)
    table.Modified()
    return node


def saliency_keys(result: StudyResult) -> List[SaliencyKey]:
    keys = []
    for d in result.discs:
        for head, path in d.saliency.items():
            stem = Path(path).name.split(".")[0]
            method = stem.rsplit("_", 1)[-1] if "_" in stem else "saliency"
            keys.append(SaliencyKey(d.level, head, method, path))
    return keys


def add_saliency(scene, volume: Volume, key: SaliencyKey, heat_node, name: str):
    heat = np.nan_to_num(np.asarray(volume.array, dtype=np.float32))
    node = add_volume_node(scene, volume.with_array(heat), name, display=False)
    display = scene.AddNewNodeByClass("vtkMRMLScalarVolumeDisplayNode")
    display.SetAndObserveColorNodeID(heat_node.GetID())
    display.SetAutoWindowLevel(False)
    display.SetWindowLevelMinMax(0.0, 1.0)
    display.SetApplyThreshold(True)
    display.SetThreshold(colortable.SALIENCY_THRESHOLD, max(1.0, float(heat.max())))
    display.SetInterpolate(True)
    node.SetAndObserveDisplayNodeID(display.GetID())
    _add_color_legend(scene, node, display, f"{key.head} ({key.method})")
    return node


def _add_color_legend(scene, node, primary_display, title: str):
    """A colour legend for the volume, as Slicer's Colors module would add (where the class exists)."""
    cls = getattr(slicer, "vtkMRMLColorLegendDisplayNode", None)
    if cls is None:
        return None
    if not scene.IsNodeClassRegistered("vtkMRMLColorLegendDisplayNode"):
        scene.RegisterNodeClass(cls())
    legend = scene.AddNewNodeByClass("vtkMRMLColorLegendDisplayNode")
    legend.SetAndObservePrimaryDisplayNode(primary_display)
    legend.SetTitleText(title)
    legend.SetLabelFormat("%.1f")
    legend.SetVisibility(False)  # shown with its volume by show_in_slice_views
    node.AddAndObserveDisplayNodeID(legend.GetID())
    return legend


def color_legend(node):
    for i in range(node.GetNumberOfDisplayNodes()):
        d = node.GetNthDisplayNode(i)
        if d is not None and d.IsA("vtkMRMLColorLegendDisplayNode"):
            return d
    return None


# --- slice views --------------------------------------------------------------------------------
SLICE_VIEWS = (("Red", "Axial"), ("Yellow", "Sagittal"), ("Green", "Coronal"))


def ensure_slice_views(scene) -> List[object]:
    """The slice composite nodes; made as Slicer's Red/Yellow/Green singletons where the scene has
    none (a slicer-core scene), so that a saved scene opens with the same layers in Slicer."""
    comps = scene.GetNodesByClass("vtkMRMLSliceCompositeNode")
    if comps.GetNumberOfItems() == 0:
        for tag, _orientation in SLICE_VIEWS:
            comp = slicer.vtkMRMLSliceCompositeNode()
            comp.SetSingletonTag(tag)
            comp.SetLayoutName(tag)
            scene.AddNode(comp)
        comps = scene.GetNodesByClass("vtkMRMLSliceCompositeNode")
    return [comps.GetItemAsObject(i) for i in range(comps.GetNumberOfItems())]


def show_in_slice_views(scene, background=None, foreground=None, opacity: float = 0.5, create: bool = False):
    """Put ``background`` and ``foreground`` (volume nodes or None) in every slice view."""
    comps = ensure_slice_views(scene) if create else [
        scene.GetNodesByClass("vtkMRMLSliceCompositeNode").GetItemAsObject(i)
        for i in range(scene.GetNodesByClass("vtkMRMLSliceCompositeNode").GetNumberOfItems())]
    for comp in comps:
        if background is not None:
            comp.SetBackgroundVolumeID(background.GetID())
        comp.SetForegroundVolumeID(foreground.GetID() if foreground is not None else None)
        comp.SetForegroundOpacity(float(opacity))
    # the legend of the shown heatmap only
    vols = scene.GetNodesByClass("vtkMRMLScalarVolumeNode")
    for i in range(vols.GetNumberOfItems()):
        v = vols.GetItemAsObject(i)
        legend = color_legend(v)
        if legend is not None:
            legend.SetVisibility(foreground is not None and v.GetID() == foreground.GetID())
    return comps


def jump_slices_to(scene, ras: Sequence[float]) -> None:
    """Centre every slice view on ``ras`` (what clicking a level in the panel does)."""
    views = scene.GetNodesByClass("vtkMRMLSliceNode")
    for i in range(views.GetNumberOfItems()):
        views.GetItemAsObject(i).JumpSliceByCentering(*ras)


def set_visibility(nodes: StudyNodes, labels: Optional[bool] = None, boxes: Optional[bool] = None,
                   points: Optional[bool] = None) -> None:
    """The panel's toggles: segmentation, disc boxes, vertebra points."""
    if labels is not None and nodes.segmentation is not None:
        nodes.segmentation.GetDisplayNode().SetVisibility(labels)
    if boxes is not None:
        for roi in nodes.discs.values():
            roi.GetDisplayNode().SetVisibility(boxes)
    if points is not None and nodes.vertebrae is not None:
        nodes.vertebrae.GetDisplayNode().SetVisibility(points)


def highlight_level(nodes: StudyNodes, level: Optional[str]) -> None:
    """Select the ROI of ``level`` (drawn in its selected colour), deselect the others."""
    for name, roi in nodes.discs.items():
        d = roi.GetDisplayNode()
        on = name == level
        d.SetLineThickness(0.6 if on else 0.2)
        d.SetFillOpacity(0.2 if on else 0.08)
        roi.SetSelected(on)


# --- the entry point ----------------------------------------------------------------------------
def study_name(result: StudyResult, folder: Optional[Path] = None) -> str:
    if result.input.series_instance_uid:
        return result.input.series_instance_uid
    p = Path(result.input.path)
    name = p.name
    for suffix in (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd", ".nhdr"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return name or (folder.name if folder else "study")


def load_result(
    scene,
    result: Union[str, Path, ResultFolder],
    volume_node=None,
    study: Optional[str] = None,
    input_volume: Optional[Volume] = None,
    show: bool = True,
    opacity: float = 0.5,
) -> StudyNodes:
    """Build (or rebuild) one study's nodes in ``scene`` from a result folder.

    Args:
        scene: the vtkMRMLScene (``slicer.mrmlScene`` in Slicer, a new ``slicer.vtkMRMLScene()`` elsewhere).
        result: a result folder (path or :class:`ResultFolder`).
        volume_node: the input volume already in the scene (left where it is, shown as background).
        study: the study's name, which also identifies it for replacement; default: from the result.
        input_volume: the input image to add as a volume node of the study where ``volume_node`` is None.
        show: put the input and the first saliency map in the slice views.
        opacity: the saliency (foreground) opacity.
    """
    folder_obj = result if isinstance(result, ResultFolder) else read_result_folder(Path(result))
    res = folder_obj.result
    study = study or study_name(res, folder_obj.path)
    prepare_scene(scene)
    remove_study(scene, study)

    sh = _sh(scene)
    folder = sh.CreateFolderItem(sh.GetSceneItemID(), f"SpineGrade {study}")
    sh.SetItemAttribute(folder, ATTR_STUDY, study)
    sh.SetItemAttribute(folder, "SpineGrade.ResultFolder", str(folder_obj.path))
    nodes = StudyNodes(study=study, folder_item=folder, result=res)
    nodes.color_table = color_table_node(scene)
    nodes.heat_color = heat_color_node(scene)

    if volume_node is not None:
        nodes.volume = volume_node
    elif input_volume is not None:
        nodes.volume = _tag(add_volume_node(scene, input_volume, f"{study} image"), study, ROLE_VOLUME, folder)

    labels = folder_obj.segmentation()
    if labels is not None:
        seg = add_segmentation(scene, labels, res, nodes.color_table, f"{study} segmentation")
        nodes.segmentation = _tag(seg, study, ROLE_SEGMENTATION, folder)
    nodes.vertebrae = _tag(add_vertebra_points(scene, res, f"{study} vertebrae"), study, ROLE_VERTEBRAE, folder)
    nodes.disc_centres = _tag(add_disc_centres(scene, res, f"{study} disc centres"), study, ROLE_DISC_CENTRES, folder)
    for d in res.discs:
        nodes.discs[d.level] = _tag(add_disc_roi(scene, d), study, ROLE_DISC_ROI, folder, **{ATTR_LEVEL: d.level})
    nodes.table = _tag(add_table(scene, res, f"{study} grades"), study, ROLE_TABLE, folder)
    for key in saliency_keys(res):
        path = folder_obj.path / key.path
        if not path.is_file():
            res.warn(f"saliency map {key.path} is missing from the result folder")
            continue
        node = add_saliency(scene, folder_obj.volume(key.path), key, nodes.heat_color, f"{study} saliency {key.text}")
        nodes.saliency[key.text] = _tag(node, study, ROLE_SALIENCY, folder,
                                        **{ATTR_LEVEL: key.level, ATTR_KEY: key.text})
        nodes.saliency_keys[key.text] = key
    if show:
        first = next(iter(nodes.saliency.values()), None)
        show_in_slice_views(scene, nodes.volume, first, opacity)
    return nodes


def study_nodes(scene, study: str) -> Dict[str, List[object]]:
    """The nodes of ``study`` in ``scene`` by role (e.g. after loading a saved scene)."""
    out: Dict[str, List[object]] = {}
    nodes = scene.GetNodesByClass("vtkMRMLNode")
    for i in range(nodes.GetNumberOfItems()):
        n = nodes.GetItemAsObject(i)
        if n.GetAttribute(ATTR_STUDY) == study:
            out.setdefault(n.GetAttribute(ATTR_ROLE) or "", []).append(n)
    return out
