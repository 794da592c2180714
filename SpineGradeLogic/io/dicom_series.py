"""Find the image series in DICOM files, describe them, and read one into a `Volume`.

One series may hold several stacks: lumbar axial T2 series are often planned as a block of slices
angled through each disc (the RSNA 2024 lumbar studies hold many such series), and a localizer holds
three planes. Read as one volume, such a series becomes a single distorted stack with a made-up
slice spacing. :func:`find_series` therefore splits each series into stacks (same orientation within
1 degree, same image size, no gap along the normal wider than ``STACK_GAP`` times the usual slice
step); a `SeriesInfo` describes its largest stack and lists them all in ``stacks``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Dict, Iterable, List, Optional

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.errors import InvalidDicomError

from ..errors import InputError
from .checks import check_size
from .orientation import plane_of_normal
from .volume import LPS_TO_RAS, Volume

STACK_ANGLE_DEG = 1.0  # slices whose normals differ by more belong to different stacks
STACK_GAP = 2.5  # a step along the normal this many times the series' usual one starts a new stack (one
#                  missing slice does not)
# Series without pixel data we can use (reports, presentation states, raw data, SR, ...)
_NON_IMAGE_MODALITIES = {"SR", "PR", "KO", "RAW", "REG", "SEG", "RTSTRUCT", "DOC"}


@dataclass
class SeriesInfo:
    """One DICOM image series as found on disk (headers only, no pixels read)."""

    series_instance_uid: str
    description: str
    files: List[Path]
    modality: str = ""
    series_number: Optional[int] = None
    sequence: str = "unknown"
    plane: str = "unknown"
    obliquity_deg: float = 0.0
    normal_ras: Optional[tuple] = None
    rows: int = 0
    columns: int = 0
    headers: Dict[str, object] = field(default_factory=dict, repr=False)
    stacks: List["SeriesInfo"] = field(default_factory=list, repr=False)  # every stack (this one included) when several

    @property
    def n_stacks(self) -> int:
        return max(len(self.stacks), 1)

    @property
    def n_files(self) -> int:
        return len(self.files)

    def summary(self) -> str:
        num = f"#{self.series_number} " if self.series_number is not None else ""
        stacks = f" (the largest of {self.n_stacks} stacks)" if self.n_stacks > 1 else ""
        return (
            f"{num}'{self.description or '(no description)'}' {self.plane} {self.sequence}, "
            f"{self.n_files} images{stacks} {self.rows}x{self.columns} ({self.series_instance_uid})"
        )


def _is_dicom(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(132)
        return len(head) == 132 and head[128:132] == b"DICM"
    except OSError:
        return False


def dicom_files(paths: Iterable[Path]) -> List[Path]:
    """The DICOM Part-10 files among ``paths`` (folders are searched recursively)."""
    found: List[Path] = []
    for p in paths:
        p = Path(p)
        candidates = sorted(x for x in p.rglob("*") if x.is_file()) if p.is_dir() else [p]
        found.extend(x for x in candidates if _is_dicom(x))
    return found


def infer_sequence(ds) -> str:
    """T1, T2, STIR or unknown, from the series' own words first, then from TR/TE/TI."""
    words = " ".join(
        str(getattr(ds, k, "") or "") for k in ("SeriesDescription", "ProtocolName", "SequenceName")
    ).upper()
    if re.search(r"STIR|TIRM|\bSPAIR?_?IR\b|T2[ _-]?IR\b", words):
        return "STIR"
    if re.search(r"(?<![A-Z0-9])T2(?![0-9])", words):
        return "T2"
    if re.search(r"(?<![A-Z0-9])T1(?![0-9])", words):
        return "T1"
    try:
        tr = float(getattr(ds, "RepetitionTime", None) or "nan")
        te = float(getattr(ds, "EchoTime", None) or "nan")
        ti = float(getattr(ds, "InversionTime", None) or "nan")
    except (TypeError, ValueError):
        return "unknown"
    if 80 <= ti <= 250:  # a short-tau inversion nulls fat
        return "STIR"
    if te >= 60 and tr >= 1500:
        return "T2"
    if te <= 30 and tr <= 1000:
        return "T1"
    return "unknown"


def _slice_normal_ras(ds) -> Optional[np.ndarray]:
    iop = getattr(ds, "ImageOrientationPatient", None)
    if iop is None or len(iop) != 6:
        return None
    row, col = np.asarray(iop[:3], float), np.asarray(iop[3:], float)
    n = np.cross(row, col)
    if np.linalg.norm(n) < 1e-6:
        return None
    return LPS_TO_RAS @ (n / np.linalg.norm(n))


def _describe(ds, uid: str) -> SeriesInfo:
    normal = _slice_normal_ras(ds)
    plane, angle = plane_of_normal(normal) if normal is not None else ("unknown", 0.0)
    number = getattr(ds, "SeriesNumber", None)
    return SeriesInfo(
        series_instance_uid=uid,
        description=str(getattr(ds, "SeriesDescription", "") or ""),
        files=[],
        modality=str(getattr(ds, "Modality", "") or ""),
        series_number=int(number) if number not in (None, "") else None,
        sequence=infer_sequence(ds),
        plane=plane,
        obliquity_deg=angle,
        normal_ras=tuple(normal.tolist()) if normal is not None else None,
        rows=int(ds.Rows),
        columns=int(ds.Columns),
        headers={
            k: str(getattr(ds, k, "") or "")
            for k in ("StudyInstanceUID", "FrameOfReferenceUID", "PatientID", "Manufacturer", "MagneticFieldStrength",
                      "RepetitionTime", "EchoTime", "InversionTime")
        },
    )


def _position(ds, normal_ras) -> Optional[float]:
    ipp = getattr(ds, "ImagePositionPatient", None)
    if normal_ras is None or ipp is None or len(ipp) != 3:
        return None
    return float(np.dot(np.asarray(ipp, float), LPS_TO_RAS @ np.asarray(normal_ras)))


def _same_stack(a: SeriesInfo, ds) -> bool:
    normal = _slice_normal_ras(ds)
    if (a.rows, a.columns) != (int(ds.Rows), int(ds.Columns)) or (normal is None) != (a.normal_ras is None):
        return False
    return normal is None or float(np.dot(normal, a.normal_ras)) >= np.cos(np.deg2rad(STACK_ANGLE_DEG))


def _split_at_gaps(stack: SeriesInfo, positions: List[Optional[float]]) -> List[SeriesInfo]:
    """Parallel slabs of one orientation (a block per disc) apart: split where the step along the
    normal is much wider than the usual one. Slices at one position stay together (read_series names them)."""
    if len(stack.files) < 3 or any(p is None for p in positions):
        return [stack]
    order = np.argsort(positions, kind="stable")
    pos = np.asarray(positions, float)[order]
    steps = np.diff(pos)
    usual = np.median(steps[steps > 1e-3]) if np.any(steps > 1e-3) else 0.0
    if usual <= 0:
        return [stack]
    cuts = [i + 1 for i, d in enumerate(steps) if d > STACK_GAP * usual]
    files = [stack.files[i] for i in order]
    bounds = [0] + cuts + [len(files)]
    return [replace(stack, files=files[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]


def find_series(paths: Iterable[Path]) -> List[SeriesInfo]:
    """Group the DICOM files under ``paths`` into image series, reading headers only; a series of
    several stacks is described by its largest (see the module)."""
    stacks: Dict[str, List[SeriesInfo]] = {}
    positions: Dict[int, List[Optional[float]]] = {}
    for f in dicom_files(paths):
        try:
            ds = pydicom.dcmread(f, stop_before_pixels=True)
        except (InvalidDicomError, OSError, ValueError, EOFError) as e:
            raise InputError(f"{f}: corrupt or truncated DICOM file ({e})") from None
        if str(getattr(ds, "Modality", "")).upper() in _NON_IMAGE_MODALITIES or "Rows" not in ds:
            continue
        uid = str(getattr(ds, "SeriesInstanceUID", "") or f"no-uid:{f.parent}")
        found = stacks.setdefault(uid, [])
        stack = next((s for s in found if _same_stack(s, ds)), None)
        if stack is None:
            stack = _describe(ds, uid)
            found.append(stack)
        stack.files.append(f)
        positions.setdefault(id(stack), []).append(_position(ds, stack.normal_ras))
    out = []
    for found in stacks.values():
        parts = [part for s in found for part in _split_at_gaps(s, positions[id(s)])]
        parts.sort(key=lambda s: -len(s.files))
        main = parts[0]
        if len(parts) > 1:
            main = replace(main, stacks=parts)
        out.append(main)
    return sorted(out, key=lambda s: (s.series_number is None, s.series_number or 0, s.description))


def _sorted_along_normal(info: SeriesInfo) -> List[str]:
    """Files ordered by position along the slice normal (not by file name or InstanceNumber)."""
    normal_lps = LPS_TO_RAS @ np.asarray(info.normal_ras) if info.normal_ras is not None else None
    keyed = []
    for f in info.files:
        ds = pydicom.dcmread(f, stop_before_pixels=True, specific_tags=["ImagePositionPatient", "InstanceNumber"])
        ipp = getattr(ds, "ImagePositionPatient", None)
        if normal_lps is not None and ipp is not None:
            key = float(np.dot(np.asarray(ipp, float), normal_lps))
        else:
            key = float(getattr(ds, "InstanceNumber", 0) or 0)
        keyed.append((key, str(f)))
    keyed.sort()
    positions = [k for k, _ in keyed]
    if len(set(round(p, 3) for p in positions)) != len(positions):
        raise InputError(
            f"series {info.series_instance_uid}: several images share one slice position "
            "(several echoes or time points?); choose one 3-D series"
        )
    return [f for _, f in keyed]


def read_series(info: SeriesInfo) -> Volume:
    """Read one series' pixels into a `Volume` with the geometry the headers give (of a series of
    several stacks: its largest, which ``info`` describes)."""
    check_size((info.columns, info.rows, info.n_files), f"series '{info.description}'")
    files = _sorted_along_normal(info)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    try:
        image = reader.Execute()
    except RuntimeError as e:
        first = str(e).strip().splitlines()[-1] if str(e).strip() else "unreadable pixel data"
        raise InputError(f"series '{info.description}' ({info.series_instance_uid}): corrupt or truncated DICOM pixel data: {first}") from None
    if image.GetNumberOfComponentsPerPixel() > 1:
        check_size(image.GetSize(), f"series '{info.description}'", image.GetNumberOfComponentsPerPixel())
    return Volume.from_sitk(sitk.Cast(image, sitk.sitkFloat32))


def read_stacks(info: SeriesInfo, min_slices: int = 3) -> List[Volume]:
    """Every stack of a series with at least ``min_slices`` slices (fewer is not a volume: ``checks``),
    largest first, each its own `Volume`."""
    parts = info.stacks or [info]
    return [read_series(part) for part in parts if part.n_files >= min_slices]
