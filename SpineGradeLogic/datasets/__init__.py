"""Training dataset adapters: SPIDER, RSNA 2024 lumbar and SpineGrade's own folder format.

Every adapter yields `LabelledStudy` objects (an image read on demand + per-level `LevelLabel`s
mapped onto `names.HEADS`); `open_dataset(path)` picks the adapter from the files present.
Malformed dataset files raise `errors.DatasetError` naming the file and row. See docs/datasets.md.
"""

from .common import CENTER_KINDS, Dataset, Grade, LabelledStudy, LevelLabel, normalise_grade, parse_level
from .detect import KINDS, detect_kind, open_dataset
from .folder import FolderDataset
from .rsna import RsnaDataset
from .spider import SpiderDataset

__all__ = [
    "CENTER_KINDS", "Dataset", "Grade", "LabelledStudy", "LevelLabel", "normalise_grade", "parse_level",
    "KINDS", "detect_kind", "open_dataset", "FolderDataset", "RsnaDataset", "SpiderDataset",
]
