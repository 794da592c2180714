"""Synthetic spine MRI with ground truth: anatomy, pathology, grades, T1/T2/STIR or random contrast.

    from SpineGradeLogic.phantom import generate_case, write_case
    case = generate_case(seed=3, fov="lumbar", contrast="T2")
    write_case(case, "phantom-3", dicom=True)

See docs/phantom.md for the anatomy, the grading thresholds and a gallery.
"""

from .case import CONTRASTS, PhantomCase, generate_case, write_case
from .acquisition import FOVS
from .config import LevelPathology, PhantomConfig

__all__ = ["PhantomCase", "PhantomConfig", "LevelPathology", "generate_case", "write_case", "FOVS", "CONTRASTS"]
