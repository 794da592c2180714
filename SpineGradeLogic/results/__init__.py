"""The result contract: `StudyResult` and the result folder it is written to."""

from .folder import (
    GRADES_CSV,
    RESULT_JSON,
    SEGMENTATION,
    ResultFolder,
    heatmap_path,
    is_result_folder,
    read_result_folder,
    read_volume,
    write_result_folder,
    write_volume,
)
from .model import SCHEMA_VERSION, Box, Disc, Grade, InputInfo, ModelInfo, StudyResult, Vertebra
from .validate import validate_result_dict

__all__ = [
    "Box", "Disc", "Grade", "InputInfo", "ModelInfo", "StudyResult", "Vertebra", "SCHEMA_VERSION",
    "ResultFolder", "read_result_folder", "write_result_folder", "read_volume", "write_volume",
    "is_result_folder", "heatmap_path", "validate_result_dict", "RESULT_JSON", "GRADES_CSV", "SEGMENTATION",
]
