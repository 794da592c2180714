"""Write a result folder atomically and read it back.

A result folder holds ``result.json``, ``grades.csv`` (one row per disc level), the label volume
``segmentation.nii.gz`` and the saliency heatmaps, all in the input's geometry. Everything is first
written into a hidden temporary folder beside the target and renamed into place at the end, so a
crash or Ctrl-C never leaves half a result under the target name.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from ..io.volume import Volume
from ..names import HEADS
from .model import StudyResult

RESULT_JSON = "result.json"
GRADES_CSV = "grades.csv"
SEGMENTATION = "segmentation.nii.gz"
SALIENCY_DIR = "saliency"


@dataclass
class ResultFolder:
    """A result read back from disk, with its volumes loaded lazily."""

    path: Path
    result: StudyResult
    _cache: Dict[str, Volume] = field(default_factory=dict, repr=False)

    def volume(self, relative_path: str) -> Volume:
        if relative_path not in self._cache:
            self._cache[relative_path] = read_volume(self.path / relative_path)
        return self._cache[relative_path]

    def segmentation(self) -> Optional[Volume]:
        return self.volume(self.result.segmentation) if self.result.segmentation else None

    def input_path(self) -> Optional[Path]:
        """The study the result was made from: ``input.path`` of result.json. Runs store it absolute;
        a relative one (older results) is looked for beside the result folder, then from the working
        folder. The first candidate when neither exists; None when the result names no path."""
        raw = self.result.input.path
        if not raw:
            return None
        p = Path(raw)
        if p.is_absolute():
            return p
        candidates = [(self.path / p).resolve(), p.resolve()]
        return next((c for c in candidates if c.exists()), candidates[0])


def read_volume(path: Path) -> Volume:
    import SimpleITK as sitk  # here, not at the top: model code imports results without image I/O

    return Volume.from_sitk(sitk.ReadImage(str(path)), source=str(path))


def write_volume(volume: Volume, path: Path) -> None:
    import SimpleITK as sitk

    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(volume.to_sitk(), str(path), useCompression=True)


def grades_table(result: StudyResult) -> List[Dict[str, object]]:
    """One row per disc level: centre, each head's grade, and each class probability."""
    rows = []
    for disc in result.discs:
        row: Dict[str, object] = {"level": disc.level}
        for axis, value in zip("xyz", disc.center_mm):
            row[f"center_{axis}_mm"] = round(value, 3)
        for head, classes in HEADS.items():
            grade = disc.grades.get(head)
            row[head] = grade.grade if grade else ""
            for i, c in enumerate(classes):
                row[f"{head}_p{c}"] = round(grade.probabilities[i], 6) if grade else ""
        rows.append(row)
    return rows


def grades_columns() -> List[str]:
    cols = ["level", "center_x_mm", "center_y_mm", "center_z_mm"]
    for head, classes in HEADS.items():
        cols.append(head)
        cols.extend(f"{head}_p{c}" for c in classes)
    return cols


def write_result_folder(
    result: StudyResult,
    out_dir: Path,
    segmentation: Optional[Volume] = None,
    heatmaps: Optional[Dict[str, Volume]] = None,
    extra_files: Optional[Dict[str, bytes]] = None,
) -> Path:
    """Write ``result`` and its volumes into ``out_dir``, replacing any earlier result there.

    ``heatmaps`` maps a path relative to the folder (as referenced from ``result.saliency``) to
    its volume. The folder appears complete or not at all.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    try:
        if segmentation is not None:
            write_volume(segmentation, tmp / SEGMENTATION)
            result.segmentation = SEGMENTATION
        for rel, vol in (heatmaps or {}).items():
            write_volume(vol, tmp / rel)
        for rel, data in (extra_files or {}).items():
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp / rel).write_bytes(data)
        with open(tmp / GRADES_CSV, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=grades_columns())
            writer.writeheader()
            writer.writerows(grades_table(result))
        # result.json last: its presence marks a finished result
        (tmp / RESULT_JSON).write_text(json.dumps(result.to_dict(), indent=2, allow_nan=False))
        _replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def _replace_dir(new: Path, target: Path) -> None:
    """Put ``new`` at ``target``; an old ``target`` is moved aside first and removed after."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        if old.exists():
            shutil.rmtree(old)
        target.rename(old)
    try:
        new.rename(target)
    except BaseException:
        if old is not None:
            old.rename(target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    os.chmod(target, 0o755)


def is_result_folder(path: Path) -> bool:
    return (Path(path) / RESULT_JSON).is_file()


def read_result_folder(path: Path) -> ResultFolder:
    """Load a result folder written by :func:`write_result_folder`."""
    path = Path(path)
    if not is_result_folder(path):
        raise FileNotFoundError(f"no {RESULT_JSON} in {path}: not a SpineGrade result folder")
    data = json.loads((path / RESULT_JSON).read_text())
    return ResultFolder(path, StudyResult.from_dict(data))


def heatmap_path(level: str, head: str, method: str) -> str:
    """Where a level's saliency map for ``head`` goes, relative to the result folder."""
    return f"{SALIENCY_DIR}/{level.replace('/', '-')}_{head}_{method}.nii.gz"


def normalised_heatmap(volume: Volume) -> Volume:
    """Scale a heatmap to [0, 1] as float32 (what the writers store)."""
    a = np.nan_to_num(volume.array.astype(np.float32))
    top = float(a.max()) if a.size else 0.0
    return volume.with_array(a / top if top > 0 else a)
