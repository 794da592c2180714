"""SpineGrade: vertebra labels, disc-level grades and saliency evidence on spine MRI, in 3D Slicer.

The panel collects inputs, runs the engine (``PythonSlicer -m SpineGradeLogic.cli run``) in a
background process with progress and Cancel, and hands the result folder to the MRML adapter
(``SpineGradeLib.mrml_adapter``). Everything beneath the widget is plain Python tested outside
Slicer (Testing/mrml); this file stays a thin, idiomatic scripted module.
"""

import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import qt
import slicer
import vtk
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode, vtkMRMLTableNode
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

# In a source checkout the engine sits beside this folder; in the installed extension both are in
# the scripted-modules folder, which Slicer already puts on sys.path.
_HERE = Path(__file__).resolve().parent
if not (_HERE / "SpineGradeLogic").is_dir() and (_HERE.parent / "SpineGradeLogic").is_dir():
    sys.path.insert(0, str(_HERE.parent))

from SpineGradeLib import dependencies, mrml_adapter, processing, relabel, runner  # noqa: E402

from SpineGradeLogic.names import HEAD_NAMES, SPINE_ORDER  # noqa: E402
from SpineGradeLogic.resources import resources_dir  # noqa: E402
from SpineGradeLogic.saliency.methods import DEFAULT_METHOD, METHODS  # noqa: E402


def resource(relative: str) -> str:
    """A shipped file: beside the module (installed extension) or in the repository's Resources/."""
    for root in (_HERE / "Resources", resources_dir()):
        if (root / relative).exists():
            return str(root / relative)
    return str(_HERE / "Resources" / relative)


#
# SpineGrade
#
class SpineGrade(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("SpineGrade")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Segmentation")]
        self.parent.dependencies = []
        self.parent.contributors = ["SpineGrade developers"]
        self.parent.helpText = _(
            "Labels the vertebrae on a sagittal spine MRI, finds every disc level and grades it "
            "(Pfirrmann, narrowing, herniation, Modic, canal, foraminal and lateral-recess stenosis, ...), "
            "with saliency maps that show what each grade looked at. Pick a volume and press Apply. "
            "See <a href='https://github.com/spinegrade/SpineGrade/blob/main/docs/slicer.md'>the documentation</a>."
        )
        self.parent.acknowledgementText = _(
            "Networks and saliency methods from MONAI. Terminology codes follow the TotalSegmentator extension."
        )
        self.parent.icon = qt.QIcon(resource("Icons/SpineGrade.png"))
        slicer.app.connect("startupCompleted()", registerSampleData)


#
# Sample data: the engine's synthetic lumbar T2 study, generated locally (nothing is downloaded)
#
SAMPLE_NAME = "SpineGradeSampleLumbarT2"


def _generateSample(source=None):
    from SpineGradeLogic.cli.demo import make_sample_study

    folder = Path(slicer.app.temporaryPath) / "SpineGradeSample"
    image = folder / "image.nii.gz"
    if not image.exists():
        make_sample_study(folder)
    return slicer.util.loadVolume(str(image), {"name": SAMPLE_NAME})


def registerSampleData():
    import SampleData

    kwargs = dict(
        category="SpineGrade",
        sampleName=SAMPLE_NAME,
        thumbnailFileName=resource("Icons/SpineGrade.png"),
        uris=None,
        fileNames=f"{SAMPLE_NAME}.nii.gz",
        nodeNames=SAMPLE_NAME,
        loadFileType="VolumeFile",
    )
    try:
        SampleData.SampleDataLogic.registerCustomSampleDataSource(customDownloader=_generateSample, **kwargs)
    except TypeError:  # a Slicer without custom downloaders: generate now and register the local file
        folder = Path(slicer.app.temporaryPath) / "SpineGradeSample"
        if not (folder / "image.nii.gz").exists():
            from SpineGradeLogic.cli.demo import make_sample_study

            make_sample_study(folder)
        kwargs["uris"] = (folder / "image.nii.gz").as_uri()
        SampleData.SampleDataLogic.registerCustomSampleDataSource(**kwargs)


#
# Parameter node
#
@parameterNodeWrapper
class SpineGradeParameterNode:
    """The panel's state, saved with the scene.

    inputVolume - the sagittal spine MRI to grade.
    axialVolume - the same study's axial T2 series (optional; the grading model reads it at each level).
    heads - grading heads to run, comma separated ("all" for every head).
    sensitivity - operating point of the grade shown, 0-1: 0 the most probable grade; higher values call
        the uncommon (mild to severe) grades more often. The probabilities do not change.
    saliencyMode - default (the most abnormal head per level), all heads, or none.
    saliencyMethod - auto (per head the best-localising method: ig or smoothgrad), gradcam, ig
        (Integrated Gradients), smoothgrad or occlusion.
    useGPU - run the models on CUDA.
    modelBundlePath - a folder of model bundles to use instead of the shipped ones.
    opacity, showLabels, showBoxes, showSaliency - how the evidence is drawn.
    outputSegmentation, outputTable - the last run's segmentation and grades table.
    """

    inputVolume: vtkMRMLScalarVolumeNode
    axialVolume: vtkMRMLScalarVolumeNode  # may stay empty (None): grade from the sagittal alone
    heads: str = "all"
    sensitivity: Annotated[float, WithinRange(0.0, 1.0)] = 0.0
    saliencyMode: Annotated[str, Choice(["default", "all", "none"])] = "default"
    saliencyMethod: Annotated[str, Choice(list(METHODS))] = DEFAULT_METHOD
    useGPU: bool = False
    modelBundlePath: Path
    opacity: Annotated[float, WithinRange(0.0, 1.0)] = 0.5
    showLabels: bool = True
    showBoxes: bool = True
    showSaliency: bool = True
    outputSegmentation: vtkMRMLSegmentationNode
    outputTable: vtkMRMLTableNode


#
# Widget
#
class SpineGradeWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._run = None  # (EngineProcess, RunRequest, volume node)
        self._timer = qt.QTimer()
        self._timer.setInterval(250)
        self._timer.connect("timeout()", self.onPoll)
        self.nodes = None  # the last loaded StudyNodes

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(resource("UI/SpineGrade.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = SpineGradeLogic()

        for head in HEAD_NAMES:
            self.ui.headsComboBox.addItem(head)
        for name in SPINE_ORDER:
            self.ui.newLabelComboBox.addItem(name)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancelButton)
        self.ui.headsComboBox.connect("checkedIndexesChanged()", self.onHeadsChanged)
        self.ui.levelComboBox.connect("currentIndexChanged(int)", self.onLevelChanged)
        self.ui.saliencyComboBox.connect("currentIndexChanged(int)", self.updateEvidence)
        self.ui.relabelButton.connect("clicked(bool)", self.onRelabelButton)
        self.ui.resultsTableView.connect("selectionChanged()", self.onTableSelection)
        self.initializeParameterNode()

    def cleanup(self) -> None:
        self.onCancelButton()
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)

    def onSceneStartClose(self, caller, event) -> None:
        self.setParameterNode(None)
        self.nodes = None

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputVolume:
            first = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if first:
                self._parameterNode.inputVolume = first

    def setParameterNode(self, inputParameterNode: Optional[SpineGradeParameterNode]) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
            self._checkCanApply()

    def _checkCanApply(self, caller=None, event=None) -> None:
        running = self._run is not None
        ok = bool(self._parameterNode and self._parameterNode.inputVolume)
        self.ui.applyButton.enabled = ok and not running
        self.ui.applyButton.toolTip = _("Grade the input volume") if ok else _("Select an input volume")
        self.ui.cancelButton.enabled = running
        self.updateEvidence()

    def onHeadsChanged(self) -> None:
        checked = [self.ui.headsComboBox.itemText(i.row()) for i in self.ui.headsComboBox.checkedIndexes()]
        self._parameterNode.heads = ",".join(checked) if checked and len(checked) < len(HEAD_NAMES) else "all"

    # --- running ------------------------------------------------------------------------------
    def onApplyButton(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("SpineGrade could not start."), waitCursor=True):
            if not dependencies.ensure():
                return
            p = self._parameterNode
            proc, req = self.logic.start(p.inputVolume, **self.logic.runOptions(p))
            self._run = (proc, req, p.inputVolume)
            self.ui.progressBar.value = 0
            self.ui.statusLabel.text = _("Starting the engine...")
            self._timer.start()
            self._checkCanApply()

    def onCancelButton(self) -> None:
        if self._run is not None:
            self._run[0].cancel()
            self.ui.statusLabel.text = _("Cancelling...")

    def onPoll(self) -> None:
        proc, req, volumeNode = self._run
        for progress in proc.poll():
            self.ui.progressBar.value = progress.percent
            self.ui.statusLabel.text = progress.what
        if proc.running:
            return
        self._timer.stop()
        self._run = None
        self._checkCanApply()
        failure = proc.failure_message()
        if failure:
            self.ui.statusLabel.text = _("Stopped") if proc.cancelled else _("Failed")
            if not proc.cancelled:
                slicer.util.errorDisplay(_("SpineGrade failed: {message}").format(message=failure))
            return
        with slicer.util.tryWithErrorDisplay(_("Could not show the result."), waitCursor=True):
            self.showResult(self.logic.loadResult(req.out_dir, volumeNode))
            self.ui.progressBar.value = 100
            self.ui.statusLabel.text = _("Done: {path}").format(path=req.out_dir)

    # --- results --------------------------------------------------------------------------------
    def showResult(self, nodes) -> None:
        self.nodes = nodes
        self._parameterNode.outputSegmentation = nodes.segmentation
        self._parameterNode.outputTable = nodes.table
        self.ui.resultsTableView.setMRMLTableNode(nodes.table)
        with slicer.util.NodeModify(self._parameterNode):
            self.ui.levelComboBox.clear()
            self.ui.levelComboBox.addItems(list(nodes.discs))
            self.ui.saliencyComboBox.clear()
            self.ui.saliencyComboBox.addItems(list(nodes.saliency))
            self.ui.vertebraComboBox.clear()
            self.ui.vertebraComboBox.addItems([v.label for v in nodes.result.vertebrae])
        self.updateEvidence()

    def onTableSelection(self) -> None:
        rows = self.ui.resultsTableView.selectedMRMLTableRowIndexes() if self.nodes else []
        if rows:
            self.ui.levelComboBox.currentIndex = rows[0]

    def onLevelChanged(self, index: int) -> None:
        if not self.nodes or index < 0:
            return
        level = self.ui.levelComboBox.currentText
        disc = self.nodes.result.disc(level)
        if disc is not None:
            mrml_adapter.jump_slices_to(slicer.mrmlScene, disc.center_mm)
        mrml_adapter.highlight_level(self.nodes, level)
        for i in range(self.ui.saliencyComboBox.count):  # show this level's evidence
            if self.ui.saliencyComboBox.itemText(i).startswith(level + " "):
                self.ui.saliencyComboBox.currentIndex = i
                break

    def updateEvidence(self, *args) -> None:
        if not self.nodes or not self._parameterNode:
            return
        p = self._parameterNode
        mrml_adapter.set_visibility(self.nodes, labels=p.showLabels, boxes=p.showBoxes)
        key = self.ui.saliencyComboBox.currentText
        foreground = self.nodes.saliency.get(key) if p.showSaliency else None
        mrml_adapter.show_in_slice_views(slicer.mrmlScene, self.nodes.volume, foreground, p.opacity)

    def onRelabelButton(self) -> None:
        if not self.nodes:
            return
        with slicer.util.tryWithErrorDisplay(_("Could not correct the label."), waitCursor=True):
            nodes = self.logic.relabel(self.nodes, self.ui.vertebraComboBox.currentText,
                                       self.ui.newLabelComboBox.currentText,
                                       **self.logic.runOptions(self._parameterNode))
            self.showResult(nodes)


#
# Logic
#
class SpineGradeLogic(ScriptedLoadableModuleLogic):
    """Usable without the GUI: ``slicer.util.getModuleLogic('SpineGrade').process(volumeNode)``."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)

    def getParameterNode(self):
        return SpineGradeParameterNode(super().getParameterNode())

    @staticmethod
    def runOptions(p: SpineGradeParameterNode) -> dict:
        heads = None if p.heads in ("", "all") else [h.strip() for h in p.heads.split(",") if h.strip()]
        bundles = str(p.modelBundlePath) if p.modelBundlePath and str(p.modelBundlePath) not in ("", ".") else None
        return dict(heads=heads, saliency=p.saliencyMode, saliency_methods=[p.saliencyMethod],
                    device="cuda" if p.useGPU else "cpu", models_dir=bundles, axial_node=p.axialVolume,
                    sensitivity=p.sensitivity)

    def start(self, volumeNode, workDir=None, **options):
        """Start the engine in the background; returns (EngineProcess, RunRequest)."""
        req = processing.make_request(volumeNode, workDir, **options)
        return processing.start(req), req

    def loadResult(self, resultDir, volumeNode=None, study=None):
        """Put a result folder's nodes in the scene (replacing that study's earlier nodes)."""
        return processing.load(slicer.mrmlScene, Path(resultDir), volumeNode, study)

    def process(self, volumeNode, heads=None, saliency="default", saliencyMethods=(DEFAULT_METHOD,), device="cpu",
                modelsDir=None, workDir=None, showProgress=True, axialVolumeNode=None, sensitivity=0.0):
        """Grade ``volumeNode`` (with the study's axial T2 ``axialVolumeNode`` where given; ``sensitivity``
        the operating point of the grade shown, 0 the most probable) and return
        the nodes (a ``StudyNodes``: segmentation, vertebrae,
        discs (level -> ROI), table, saliency (key -> volume), result). Blocks until done."""
        dialog = slicer.util.createProgressDialog(labelText=_("SpineGrade"), maximum=100) if showProgress else None

        def onProgress(progress):
            logging.info(f"SpineGrade {progress.done}/{progress.total} {progress.what}")
            if dialog is not None:
                dialog.value = progress.percent
                dialog.labelText = progress.what
                slicer.app.processEvents()

        try:
            return processing.process(slicer.mrmlScene, volumeNode, workDir, heads, saliency, saliencyMethods,
                                      device, models_dir=modelsDir, on_progress=onProgress, axial_node=axialVolumeNode,
                                      sensitivity=sensitivity)
        finally:
            if dialog is not None:
                dialog.close()

    def relabel(self, nodes, vertebra: str, newLabel: str, showProgress=True, **options):
        """Correct one vertebra's label (its neighbours follow), re-grade and show the corrected result.

        The engine (``spinegrade regrade`` in a background process) renames the vertebrae, places the
        disc levels again, grades them and makes the saliency maps on the input image; ``options``
        are :meth:`runOptions`' (heads, sensitivity, saliency, saliency_methods, device, models_dir)."""
        folder = Path(slicer.mrmlScene.GetSubjectHierarchyNode().GetItemAttribute(
            nodes.folder_item, "SpineGrade.ResultFolder"))
        dialog = slicer.util.createProgressDialog(labelText=_("SpineGrade: re-grading"), maximum=100) if showProgress else None

        def onProgress(progress):
            if dialog is not None:
                dialog.value = progress.percent
                dialog.labelText = progress.what
                slicer.app.processEvents()

        try:
            corrected = relabel.regrade_result(folder, vertebra, newLabel, on_progress=onProgress, **options)
        finally:
            if dialog is not None:
                dialog.close()
        return processing.load(slicer.mrmlScene, corrected, nodes.volume, nodes.study)


#
# Test
#
class SpineGradeTest(ScriptedLoadableModuleTest):
    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_SpineGrade_sample_study()

    def test_SpineGrade_sample_study(self):
        """The real logic on the registered sample study: the engine runs, nodes appear, rerun replaces."""
        self.delayDisplay("Generating the sample study")
        registerSampleData()
        volumeNode = _generateSample()
        logic = SpineGradeLogic()
        self.delayDisplay("Running SpineGrade")
        nodes = logic.process(volumeNode, showProgress=False)
        self.assertIsNotNone(nodes.table)
        self.assertEqual(nodes.table.GetNumberOfRows(), len(nodes.result.discs))
        self.assertEqual(nodes.vertebrae.GetNumberOfControlPoints(), len(nodes.result.vertebrae))
        for disc in nodes.result.discs:
            self.assertIn(disc.level, nodes.discs)
        count = slicer.mrmlScene.GetNumberOfNodes()
        logic.process(volumeNode, showProgress=False)
        self.assertEqual(slicer.mrmlScene.GetNumberOfNodes(), count)
        self.delayDisplay("Test passed")
