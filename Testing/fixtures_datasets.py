"""Write small training datasets in the exact public formats (SPIDER, RSNA 2024) and ours.

Geometry is chosen so expected RAS points can be worked out by hand: sagittal volumes use
`SAGITTAL_LPS` (i -> posterior, j -> inferior, k -> patient's right, i.e. -L) from an LPS origin
of (10, -20, 30). A point at index (i, j, k) with spacing (si, sj, sk) is at
LPS (10 - k*sk, -20 + i*si, 30 - j*sj), i.e. RAS (k*sk - 10, 20 - i*si, 30 - j*sj).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence

import numpy as np
import pydicom
import SimpleITK as sitk

from fixtures_dicom import write_dicom_series
from fixtures_volumes import SAGITTAL_LPS
from SpineGradeLogic.io.volume import Volume

ORIGIN_LPS = (10.0, -20.0, 30.0)


def hand_ras(ijk, spacing) -> tuple:
    """RAS of voxel index ``ijk`` in a fixture's sagittal geometry, worked out without `Volume`."""
    i, j, k = ijk
    si, sj, sk = spacing
    return (k * sk - 10.0, 20.0 - i * si, 30.0 - j * sj)


def sagittal_volume(shape=(24, 40, 5), spacing=(1.0, 1.0, 3.0), seed=0) -> Volume:
    rng = np.random.default_rng(seed)
    i, j, k = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    array = (200 + 40 * np.sin(i / 3.0) + 30 * np.cos(j / 4.0) + 5 * k + rng.normal(0, 2, shape)).astype(np.float32)
    return Volume(array, spacing, ORIGIN_LPS, SAGITTAL_LPS)


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[object]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for r in rows:
            w.writerow(["" if v is None else v for v in r])
    return path


# --- SPIDER ---------------------------------------------------------------------------------
SPIDER_COLUMNS = ["Patient", "IVD label", "Modic", "UP endplate", "LOW endplate", "Spondylolisthesis",
                  "Disc herniation", "Disc narrowing", "Disc bulging", "Pfirrman grade"]
SPIDER_ROWS = [
    # Patient, IVD, Modic, UP, LOW, Spondylo, Herniation, Narrowing, Bulging, Pfirrman
    [1, 1, 2, 1, 0, 0, 1, 1, 1, 4],  # L5/S1
    [1, 2, 0, 0, 0, 0, 0, 0, 0, 2],  # L4/L5
    [1, 3, 0, 0, 1, 1, 0, 0, 0, 3],  # L3/L4: graded, not in the mask -> no centre
    [2, 1, 1, 0, 0, 0, 0, 0, 1, 5],
    [2, 2, 0, 0, 0, 0, 0, 1, 0, 3],
]
SPIDER_SPACING = (1.0, 1.0, 3.0)
# Disc blocks in the mask (i0, i1, j0, j1, k0, k1), half-open; centroid = block centre.
SPIDER_DISCS = {201: (10, 14, 30, 32, 1, 4), 202: (10, 14, 20, 22, 1, 4)}
SPIDER_VERTEBRAE = {1: (9, 15, 24, 30, 0, 5), 2: (9, 15, 14, 20, 0, 5), 103: (9, 15, 0, 4, 0, 5)}


def block_centroid(block) -> tuple:
    i0, i1, j0, j1, k0, k1 = block
    return ((i0 + i1 - 1) / 2, (j0 + j1 - 1) / 2, (k0 + k1 - 1) / 2)


def spider_mask(shape=(24, 40, 5)) -> np.ndarray:
    m = np.zeros(shape, dtype=np.uint8)
    m[16:19, :, 1:4] = 100  # spinal canal
    for value, (i0, i1, j0, j1, k0, k1) in {**SPIDER_VERTEBRAE, **SPIDER_DISCS}.items():
        m[i0:i1, j0:j1, k0:k1] = value
    return m


def write_spider(root: Path, series: Dict[str, Sequence[str]] = None, rows: Optional[List[list]] = None,
                 columns: Sequence[str] = SPIDER_COLUMNS, overview: bool = True, masks: bool = True) -> Path:
    """``images/``, ``masks/``, ``overview.csv`` and ``radiological_gradings.csv`` for a few patients."""
    root = Path(root)
    series = series or {"1": ("t1", "t2"), "2": ("t2", "t2_SPACE")}
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    ov = []
    for n, (patient, names) in enumerate(series.items()):
        for s, name in enumerate(names):
            vol = sagittal_volume(spacing=SPIDER_SPACING, seed=10 * n + s)
            stem = f"{patient}_{name}"
            sitk.WriteImage(vol.to_sitk(), str(root / "images" / f"{stem}.mha"))
            if masks:
                sitk.WriteImage(vol.with_array(spider_mask(vol.shape)).to_sitk(), str(root / "masks" / f"{stem}.mha"))
            ov.append([stem, "training" if n == 0 else "validation", "M", 50])
    if overview:
        write_csv(root / "overview.csv", ["new_file_name", "subset", "sex", "age"], ov)
    write_csv(root / "radiological_gradings.csv", columns, SPIDER_ROWS if rows is None else rows)
    return root


# --- RSNA 2024 ------------------------------------------------------------------------------
RSNA_CONDITIONS = ["spinal_canal_stenosis", "left_neural_foraminal_narrowing", "right_neural_foraminal_narrowing",
                   "left_subarticular_stenosis", "right_subarticular_stenosis"]
RSNA_LEVELS = ["l1_l2", "l2_l3", "l3_l4", "l4_l5", "l5_s1"]
RSNA_TRAIN_COLUMNS = ["study_id"] + [f"{c}_{l}" for c in RSNA_CONDITIONS for l in RSNA_LEVELS]
RSNA_SAG_SPACING = (0.5, 0.6, 3.0)  # columns 0.5 mm apart, rows 0.6 mm apart, slices 3 mm
RSNA_SERIES = {"11": "Sagittal T2/STIR", "12": "Sagittal T1", "13": "Axial T2"}


def rsna_train_row(study: str, overrides: Dict[str, str] = None) -> list:
    values = {c: "Normal/Mild" for c in RSNA_TRAIN_COLUMNS[1:]}
    values.update({"spinal_canal_stenosis_l4_l5": "Severe", "left_neural_foraminal_narrowing_l5_s1": "Moderate",
                   "right_subarticular_stenosis_l3_l4": ""})
    values.update(overrides or {})
    return [study] + [values[c] for c in RSNA_TRAIN_COLUMNS[1:]]


RSNA_COORDS = [
    # study, series, instance, condition, level, x, y
    ["100", "11", 3, "Spinal Canal Stenosis", "L4/L5", 4.0, 6.0],
    ["100", "12", 1, "Left Neural Foraminal Narrowing", "L5/S1", 10.0, 20.0],
    ["100", "12", 5, "Right Neural Foraminal Narrowing", "L5/S1", 12.0, 22.0],
    ["100", "13", 2, "Left Subarticular Stenosis", "L3/L4", 5.0, 5.0],
]


def tilted_axial(deg: float) -> np.ndarray:
    """LPS direction of an axial stack tilted ``deg`` about the left-right axis (as angled to a disc)."""
    a = np.deg2rad(deg)
    return np.array([[1.0, 0.0, 0.0], [0.0, np.cos(a), -np.sin(a)], [0.0, np.sin(a), np.cos(a)]])


def rename_to_instances(folder: Path) -> None:
    """write_dicom_series names files IM0000.dcm...; RSNA names them <InstanceNumber>.dcm."""
    for f in sorted(folder.glob("IM*.dcm")):
        f.rename(folder / f"{int(f.stem[2:]) + 1}.dcm")


def write_rsna(root: Path, train_rows: Optional[List[list]] = None, coords: Optional[List[list]] = None,
               series: Optional[Dict[str, str]] = None, train_columns: Sequence[str] = RSNA_TRAIN_COLUMNS,
               image_studies: Sequence[str] = ("100",)) -> Path:
    """train.csv, train_label_coordinates.csv, train_series_descriptions.csv, train_images/."""
    root = Path(root)
    series = RSNA_SERIES if series is None else series
    for study in image_studies:
        for ser, desc in series.items():
            folder = root / "train_images" / study / ser
            if desc.lower().startswith("axial"):
                # as RSNA's axial series often are: a block of slices per disc, each angled to its disc
                # (one SeriesInstanceUID); instances 1-4 the first block, 5-7 the second
                rng = np.random.default_rng(1)
                first = Volume(rng.normal(100, 10, (16, 16, 4)).astype(np.float32), (0.8, 0.8, 4.0), (0.0, 0.0, 0.0),
                               np.eye(3))
                uid = write_dicom_series(first, folder, description=desc, series_number=int(ser))
                frame = pydicom.dcmread(next(folder.glob("IM*.dcm")), stop_before_pixels=True).FrameOfReferenceUID
                second = Volume(rng.normal(100, 10, (16, 16, 3)).astype(np.float32), (0.8, 0.8, 4.0),
                                (0.0, 0.0, 40.0), tilted_axial(15.0))
                write_dicom_series(second, folder, description=desc, series_number=int(ser), series_uid=uid,
                                   frame_uid=frame, first_instance=4)
            else:
                vol = sagittal_volume(shape=(32, 40, 5), spacing=RSNA_SAG_SPACING, seed=int(ser))
                write_dicom_series(vol, folder, description=desc, series_number=int(ser))
            rename_to_instances(folder)
    write_csv(root / "train.csv", train_columns, train_rows if train_rows is not None else [rsna_train_row("100")])
    write_csv(root / "train_series_descriptions.csv", ["study_id", "series_id", "series_description"],
              [[s, ser, d] for s in ("100",) for ser, d in series.items()])
    write_csv(root / "train_label_coordinates.csv",
              ["study_id", "series_id", "instance_number", "condition", "level", "x", "y"],
              RSNA_COORDS if coords is None else coords)
    return root


# --- SpineGrade folder format ---------------------------------------------------------------
FOLDER_COLUMNS = ["study", "level", "pfirrmann", "disc_herniation", "central_canal_stenosis",
                  "center_x_mm", "center_y_mm", "center_z_mm", "sequence"]
FOLDER_ROWS = [
    ["caseA", "L4/L5", 3, 1, "0|1", -4.0, 18.0, 26.4, "T2"],
    ["caseA", "L5/S1", 4, "", 2, "", "", "", "T2"],
    ["caseB", "L3/L4", 2, 0, "", "", "", "", ""],
]


def write_folder(root: Path, rows: Optional[List[list]] = None, columns: Sequence[str] = FOLDER_COLUMNS,
                 dicom_study: str = "caseB") -> Path:
    """grades.csv + caseA/image.nii.gz + caseB/dicom/ (a DICOM series)."""
    root = Path(root)
    (root / "caseA").mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(sagittal_volume().to_sitk(), str(root / "caseA" / "image.nii.gz"))
    write_dicom_series(sagittal_volume(seed=3), root / dicom_study / "dicom", description="SAG T2 TSE")
    write_csv(root / "grades.csv", columns, FOLDER_ROWS if rows is None else rows)
    return root
