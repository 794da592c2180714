"""Preparing training cases for the vertebra model: generated cases and partly labelled real scans,
resampled onto the working grid with their targets (see `cases` for the prepared form)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..errors import DatasetError
from ..io.volume import Volume
from ..results.folder import read_volume
from .grid import study_on_grid, to_working_grid
from .cases import PreparedCase
from .targets import IGNORE, bodies_only_targets, level_target, semantic_target


def prepare(image: Volume, labels: Volume, name: str, fully_labelled: bool) -> PreparedCase:
    """Resample a case onto its working grid and derive the targets."""
    grid, img, inside = study_on_grid(image)
    lab = to_working_grid(labels.with_array(labels.array.astype(np.int16)), grid, sitk.sitkNearestNeighbor)
    if fully_labelled:
        semantic, level = semantic_target(lab), level_target(lab)
    else:
        semantic, level = bodies_only_targets(lab, si_axis=2)
    semantic[~inside] = IGNORE
    return PreparedCase(name, img, semantic, level).trimmed()


def prepare_generated(folder: Path) -> PreparedCase:
    """A case written by ``spinegrade phantom`` (image.nii.gz + labels.nii.gz)."""
    return prepare(read_volume(folder / "image.nii.gz"), read_volume(folder / "labels.nii.gz"), folder.name, True)


def prepare_bodies_only(folder: Path, label_file: str = "vertebrae.nii.gz") -> PreparedCase:
    """A real scan with only some vertebral bodies labelled (e.g. real-dev vb3)."""
    for f in ("image.nii.gz", label_file):
        if not (folder / f).is_file():
            raise DatasetError(f"{folder / f}: missing")
    return prepare(read_volume(folder / "image.nii.gz"), read_volume(folder / label_file), folder.name, False)
