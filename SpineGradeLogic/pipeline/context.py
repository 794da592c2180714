"""What a pipeline run carries from stage to stage."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from ..io.study import LoadedStudy
from ..io.volume import Volume
from ..names import HEAD_NAMES
from ..results.model import StudyResult

log = logging.getLogger("spinegrade")


@dataclass
class RunOptions:
    """Choices a user makes for one run (the CLI's flags, the Slicer panel's fields)."""

    series_uid: Optional[str] = None
    series_description: Optional[str] = None
    sequence: Optional[str] = None
    heads: List[str] = field(default_factory=lambda: list(HEAD_NAMES))
    saliency: str = "default"  # "default" (fast: one map per level), "all", "none"
    saliency_methods: List[str] = field(default_factory=lambda: ["auto"])  # saliency.methods.METHODS
    device: str = "cpu"
    bundles: Dict[str, Path] = field(default_factory=dict)  # model name -> bundle folder override
    axial: Optional[Path] = None  # the axial T2 series (file or DICOM folder); None: the study's own, if any
    use_axial: bool = True  # False: grade from the sagittal series alone
    sensitivity: float = 0.0  # operating point of the grade shown, 0-1 (grading/decision.py); 0: most probable


@dataclass
class StudyContext:
    """The study and everything the stages have found so far."""

    source: Any
    out_dir: Path
    options: RunOptions
    study: Optional[LoadedStudy] = None
    result: Optional[StudyResult] = None
    segmentation: Optional[Volume] = None  # label map in the input's geometry
    heatmaps: Dict[str, Volume] = field(default_factory=dict)  # path in result folder -> volume
    artifacts: Dict[str, Any] = field(default_factory=dict)  # stage-to-stage data (e.g. disc crops)

    def warn(self, message: str) -> None:
        log.warning(message)
        self.result.warn(message)


ProgressCallback = Callable[[int, int, str], None]  # (stages done, stages in all, stage name)
