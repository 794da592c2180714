"""SpineGrade's own plain training-folder format (see docs/datasets.md).

::

    <root>/grades.csv                 study, level, <head>..., [center_x_mm, center_y_mm, center_z_mm], [sequence]
    <root>/<study>/image.nii.gz       or image.nii / .nrrd / .nhdr / .mha / .mhd, or a dicom/ folder

A grade cell holds one class (``2``), a set of allowed classes (``0|1``), or nothing (unknown).
Centres are RAS millimetres in the image's physical space.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional

from ..errors import DatasetError
from ..names import HEADS, SEQUENCES
from functools import partial

from .common import Dataset, LabelledStudy, LevelLabel, load_image, normalise_grade, parse_level, sort_levels
from .tables import Table, read_table

GRADES = "grades.csv"
IMAGE_NAMES = ("image.nii.gz", "image.nii", "image.nrrd", "image.nhdr", "image.mha", "image.mhd")
DICOM_FOLDER = "dicom"
CENTER_COLUMNS = ("center_x_mm", "center_y_mm", "center_z_mm")
OPTIONAL_COLUMNS = (*CENTER_COLUMNS, "sequence")


def find_image(folder: Path) -> Optional[Path]:
    for name in IMAGE_NAMES:
        if (folder / name).is_file():
            return folder / name
    if (folder / DICOM_FOLDER).is_dir():
        return folder / DICOM_FOLDER
    return None


def parse_grade_cell(table: Table, row, head: str):
    text = row.get(head)
    if text == "":
        return None
    parts = [p.strip() for p in text.split("|")]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise table.error(row.number, f"'{head}' is '{text}'; expected a class such as 2, or a set such as 0|1") from None
    if any(not v.is_integer() for v in values):
        raise table.error(row.number, f"'{head}' is '{text}'; classes are whole numbers")
    ints = [int(v) for v in values]
    try:
        return normalise_grade(head, ints[0] if len(ints) == 1 else ints)
    except ValueError:
        classes = HEADS[head]
        raise table.error(row.number, f"'{head}' is '{text}'; must be {classes[0]}-{classes[-1]}") from None


class FolderDataset(Dataset):
    """A folder per study plus one ``grades.csv`` (one row per study and level)."""

    kind = "folder"

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.grades_path = self.root / GRADES
        table = read_table(self.grades_path, ("study", "level"), "SpineGrade grades")
        unknown = [c for c in table.columns if c and c not in ("study", "level", *HEADS, *OPTIONAL_COLUMNS)]
        if unknown:
            raise table.error(1, f"unknown column '{unknown[0]}' (grading heads: {', '.join(HEADS)}; "
                              f"optional: {', '.join(OPTIONAL_COLUMNS)})")
        has_centre = [c for c in CENTER_COLUMNS if c in table.columns]
        if has_centre and len(has_centre) != 3:
            raise table.error(1, f"centre columns come as a set of three: {', '.join(CENTER_COLUMNS)}")
        self._heads = [h for h in HEADS if h in table.columns]
        self._levels: Dict[str, Dict[str, LevelLabel]] = {}
        self._rows: Dict[str, Dict[str, int]] = {}
        self._sequence: Dict[str, str] = {}
        self._images: Dict[str, Path] = {}
        for row in table:
            sid = row.get("study")
            if not sid:
                raise table.error(row.number, "'study' is blank")
            if "/" in sid or "\\" in sid or sid in (".", ".."):
                raise table.error(row.number, f"'study' is '{sid}'; it must be a folder name under {self.root}")
            level = parse_level(row.get("level"))
            if level is None:
                raise table.error(row.number, f"unknown level '{row.get('level')}' (expected a disc level such as L4/L5)")
            seen = self._rows.setdefault(sid, {})
            if level in seen:
                raise table.error(row.number, f"study {sid}, level {level} appears twice (first at row {seen[level]})")
            seen[level] = row.number
            grades = {h: g for h in self._heads if (g := parse_grade_cell(table, row, h)) is not None}
            centre = None
            if has_centre:
                xyz = [table.float_value(row, c) for c in CENTER_COLUMNS]
                if any(v is not None for v in xyz):
                    if any(v is None for v in xyz):
                        raise table.error(row.number, f"give all three of {', '.join(CENTER_COLUMNS)} or none")
                    centre = tuple(xyz)
            self._levels.setdefault(sid, {})[level] = LevelLabel(grades, centre, "given" if centre else None)
            if "sequence" in table.columns and row.get("sequence"):
                seq = {s.upper(): s for s in SEQUENCES}.get(row.get("sequence").upper())
                if seq is None:
                    raise table.error(row.number, f"'sequence' is '{row.get('sequence')}'; must be one of {', '.join(SEQUENCES)}")
                if self._sequence.get(sid, seq) != seq:
                    raise table.error(row.number, f"study {sid} is given two sequences ({self._sequence[sid]}, {seq})")
                self._sequence[sid] = seq
            if sid not in self._images:
                image = find_image(self.root / sid)
                if image is None:
                    raise table.error(row.number, f"study {sid} has no image: expected {self.root / sid}/image.nii.gz "
                                      f"(or .nii/.nrrd/.mha) or a {DICOM_FOLDER}/ folder")
                self._images[sid] = image
        folders = {p.name for p in self.root.iterdir() if p.is_dir()}
        ungraded = sorted(folders - set(self._levels))
        if ungraded:
            self.warnings.append(f"{len(ungraded)} folder(s) under {self.root} have no rows in {GRADES} "
                                 f"(e.g. {ungraded[0]}); ignored")

    def study_ids(self) -> List[str]:
        return list(self._levels)

    def heads(self) -> List[str]:
        return list(self._heads)

    def study(self, study_id: str) -> LabelledStudy:
        if study_id not in self._levels:
            raise DatasetError(f"{self.grades_path}: no study '{study_id}'")
        image = self._images[study_id]
        seq = self._sequence.get(study_id, "unknown")
        return LabelledStudy(
            study_id=study_id, levels=sort_levels({lv: _copy(l) for lv, l in self._levels[study_id].items()}),
            sequence=seq, source=f"folder: {self.grades_path}", dataset=self.kind, image_path=str(image),
            loader=partial(load_image, str(image), seq), patient_id=study_id, meta={"grade_rows": dict(self._rows[study_id])},
        )


def _copy(label: LevelLabel) -> LevelLabel:
    return LevelLabel(dict(label.grades), label.center_ras, label.center_kind, dict(label.points_ras))
