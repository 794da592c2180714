"""What the module's Logic does, without Qt: volume node -> engine run -> nodes in the scene.

``SpineGradeLogic.process`` in ``SpineGrade.py`` is a thin wrapper around :func:`process`; the panel
uses :func:`start` (a background :class:`~.runner.EngineProcess`) and :func:`load` when it ends.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence

import slicer

from . import mrml_adapter, runner


def write_volume_node(volume_node, path: Path) -> Path:
    """Write a scalar volume node to a file (NIfTI/NRRD by suffix) without touching the scene."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = slicer.vtkMRMLVolumeArchetypeStorageNode()
    writer.SetFileName(str(path))
    writer.SetUseCompression(True)
    if not writer.WriteData(volume_node):
        raise RuntimeError(f"could not write {volume_node.GetName()} to {path}")
    return path


def default_work_dir(volume_node) -> Path:
    name = "".join(c if c.isalnum() or c in "-_" else "_" for c in volume_node.GetName()) or "volume"
    return Path(tempfile.mkdtemp(prefix=f"SpineGrade-{name}-"))


def make_request(volume_node, work_dir: Optional[Path] = None, heads: Optional[Sequence[str]] = None,
                 saliency: str = "default", saliency_methods: Sequence[str] = ("auto",), device: str = "cpu",
                 bundles: Optional[Dict[str, Path]] = None, models_dir: Optional[Path] = None,
                 axial_node=None, sensitivity: float = 0.0) -> runner.RunRequest:
    """Write the volume (and the study's axial T2 volume, if given) where the engine can read them
    and describe the run. Both keep their scene geometry, so the engine crops the axial series at
    every disc through world coordinates."""
    work_dir = Path(work_dir) if work_dir else default_work_dir(volume_node)
    image = write_volume_node(volume_node, work_dir / "input" / "image.nii.gz")
    axial = write_volume_node(axial_node, work_dir / "input" / "axial.nii.gz") if axial_node is not None else None
    return runner.RunRequest(image, work_dir / "result", list(heads) if heads else None, saliency,
                             list(saliency_methods), device, dict(bundles or {}),
                             models_dir=Path(models_dir) if models_dir else None, axial=axial,
                             sensitivity=float(sensitivity))


def start(req: runner.RunRequest, python: Optional[str] = None) -> runner.EngineProcess:
    """The engine running in the background (the panel polls it)."""
    return runner.EngineProcess(runner.build_command(req, python), env=runner.engine_environment(models_dir=req.models_dir))


def load(scene, result_dir: Path, volume_node=None, study: Optional[str] = None, opacity: float = 0.5):
    """The result's nodes in ``scene`` (a study's earlier nodes replaced)."""
    return mrml_adapter.load_result(scene, Path(result_dir), volume_node=volume_node,
                                    study=study or (volume_node.GetName() if volume_node is not None else None),
                                    opacity=opacity)


def process(scene, volume_node, work_dir: Optional[Path] = None, heads: Optional[Sequence[str]] = None,
            saliency: str = "default", saliency_methods: Sequence[str] = ("auto",), device: str = "cpu",
            bundles: Optional[Dict[str, Path]] = None, models_dir: Optional[Path] = None,
            python: Optional[str] = None,
            on_progress: Optional[Callable[[runner.Progress], None]] = None,
            axial_node=None, sensitivity: float = 0.0) -> mrml_adapter.StudyNodes:
    """Run the engine on ``volume_node`` (blocking; ``axial_node`` the study's axial T2, optional;
    ``sensitivity`` the operating point of the grade shown) and put its result in ``scene``."""
    req = make_request(volume_node, work_dir, heads, saliency, saliency_methods, device, bundles, models_dir,
                       axial_node, sensitivity)
    runner.run_blocking(req, on_progress=on_progress, python=python)
    return load(scene, req.out_dir, volume_node)
