"""Load a study: a volume file, a DICOM series, or a DICOM study holding several series.

For a study the sagittal T2 is used by default (then STIR, then T1, then any sagittal), unless
the caller names a series by SeriesInstanceUID or description; the choice and its reason are
recorded in the result's ``input``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence, Union

import SimpleITK as sitk

from ..errors import InputError
from ..results.model import InputInfo
from .checks import check_nifti_file, check_plane, check_size, check_values
from .dicom_series import SeriesInfo, dicom_files, find_series, read_series
from .orientation import acquisition_plane
from .volume import Volume

VOLUME_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
SEQUENCE_PREFERENCE = ("T2", "STIR", "T1", "unknown")
PLANE_PREFERENCE = ("sagittal", "coronal", "unknown")  # coronal and oblique: handled through the geometry

PathLike = Union[str, Path]


@dataclass
class LoadedStudy:
    """The chosen series as a `Volume`, what it was, and every series the study holds."""

    volume: Volume
    info: InputInfo
    series: List[SeriesInfo] = field(default_factory=list)

    def chosen_series(self) -> Optional[SeriesInfo]:
        """The DICOM series the volume was read from (None for a volume file)."""
        uid = self.info.series_instance_uid
        return next((s for s in self.series if s.series_instance_uid == uid), None) if uid else None

    def other_series(self, plane: Optional[str] = None) -> List[SeriesInfo]:
        """Series not used for the main volume (e.g. an axial T2 for the grading stage)."""
        chosen = self.info.series_instance_uid
        return [s for s in self.series if s.series_instance_uid != chosen and (plane is None or s.plane == plane)]


def is_volume_file(path: PathLike) -> bool:
    return str(path).lower().endswith(VOLUME_SUFFIXES)


def sequence_from_filename(path: PathLike) -> str:
    """BIDS-style suffixes (``_T2w``, ``_T1w``, ``_STIR``) tell the sequence of a volume file."""
    name = Path(path).name.upper()
    for pattern, seq in ((r"STIR", "STIR"), (r"(?<![A-Z0-9])T2W?(?![0-9])", "T2"), (r"(?<![A-Z0-9])T1W?(?![0-9])", "T1")):
        if re.search(pattern, name):
            return seq
    return "unknown"


def load_volume_pixels(path: Path) -> Volume:
    """A NIfTI, NRRD or MHA/MHD file as a float32 `Volume`, its header checked before its pixels
    (size, NIfTI truncation and NaNs); any plane."""
    name = str(path)
    reader = sitk.ImageFileReader()
    reader.SetFileName(name)
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        raise InputError(f"{name}: not a readable image (unrecognised format or corrupt header)") from None
    check_size(reader.GetSize(), name, reader.GetNumberOfComponents())
    if name.lower().endswith((".nii", ".nii.gz")):
        check_nifti_file(path)
    try:
        image = reader.Execute()
    except RuntimeError:
        raise InputError(f"{name}: corrupt or truncated image data") from None
    if image.GetDimension() == 4:  # a 4-D file with one time point
        image = image[:, :, :, 0]
    return Volume.from_sitk(sitk.Cast(image, sitk.sitkFloat32), source=name)


def load_volume_file(path: Path, sequence: Optional[str] = None) -> LoadedStudy:
    """Read a NIfTI, NRRD or MHA/MHD file as the study's sagittal series."""
    name = str(path)
    volume = load_volume_pixels(path)
    plane = _checked(volume, name)
    seq = sequence or sequence_from_filename(path)
    info = InputInfo(  # the path absolute: regrade and scene export read the image again from elsewhere
        path=str(Path(path).resolve()), shape=volume.shape, spacing_mm=volume.spacing, series_instance_uid=None, sequence=seq,
        extra={"plane": plane.plane, "obliquity_deg": round(plane.obliquity_deg, 2),
               "selection": "volume file" + ("" if seq != "unknown" else "; sequence unknown (name it with --sequence)")},
    )
    return LoadedStudy(volume, info, [])


def _checked(volume: Volume, name: str, slice_normal_ras=None):
    check_values(volume, name)
    plane = acquisition_plane(volume, slice_normal_ras)
    check_plane(plane, name)
    return plane


def rank_series(series: Sequence[SeriesInfo]) -> List[SeriesInfo]:
    """Usable series, best first: sagittal before coronal, then T2 > STIR > T1 > unknown, then most images."""
    usable = [s for s in series if s.plane in PLANE_PREFERENCE and s.n_files >= 3]
    return sorted(
        usable,
        key=lambda s: (PLANE_PREFERENCE.index(s.plane), SEQUENCE_PREFERENCE.index(s.sequence), -s.n_files),
    )


def choose_series(
    series: Sequence[SeriesInfo], series_uid: Optional[str] = None, description: Optional[str] = None
) -> tuple[SeriesInfo, str]:
    """Pick the series to grade and say why."""
    listing = "; ".join(s.summary() for s in series)
    if series_uid:
        match = [s for s in series if s.series_instance_uid == series_uid]
        if not match:
            raise InputError(f"no series with SeriesInstanceUID {series_uid}; the study holds: {listing}")
        return match[0], "chosen by SeriesInstanceUID"
    pool, how = list(series), ""
    if description:
        pool = [s for s in series if description.lower() in s.description.lower()]
        if not pool:
            raise InputError(f"no series whose description contains '{description}'; the study holds: {listing}")
        how = f"description contains '{description}'; "
        if len(pool) == 1:
            return pool[0], f"chosen by description '{description}'"
    ranked = rank_series(pool)
    if not ranked:
        planes = sorted({s.plane for s in pool})
        if planes == ["axial"]:
            raise InputError(f"only axial series found ({listing}); SpineGrade needs a sagittal series of the spine")
        raise InputError(f"no usable 3-D sagittal series found ({listing})")
    best = ranked[0]
    why = f"{how}{best.plane} {best.sequence} preferred (sagittal before coronal; T2 > STIR > T1)"
    if len(ranked) > 1:
        why += f"; {len(ranked) - 1} other candidate(s): " + ", ".join(f"'{s.description}'" for s in ranked[1:])
    return best, why


def load_dicom(
    paths: Sequence[Path], series_uid: Optional[str] = None, description: Optional[str] = None,
    sequence: Optional[str] = None,
) -> LoadedStudy:
    """Load the chosen series of the DICOM files or folders ``paths``."""
    name = str(paths[0]) if len(paths) == 1 else f"{len(paths)} DICOM files"
    series = find_series(paths)
    if not series:
        raise InputError(f"{name}: no DICOM image series found")
    chosen, why = choose_series(series, series_uid, description)
    if chosen.n_stacks > 1:
        why += (f"; the series holds {chosen.n_stacks} stacks (other orientations, image sizes or separate slabs): "
                f"its largest, {chosen.n_files} images, was read")
    volume = read_series(chosen)
    volume.meta["source"] = name
    plane = _checked(volume, name, chosen.normal_ras)
    info = InputInfo(
        path=str(Path(paths[0]).resolve()) if len(paths) == 1 else name, shape=volume.shape, spacing_mm=volume.spacing,
        series_instance_uid=chosen.series_instance_uid, sequence=sequence or chosen.sequence,
        extra={
            "series_description": chosen.description, "series_number": chosen.series_number,
            "plane": plane.plane, "obliquity_deg": round(plane.obliquity_deg, 2), "selection": why,
            "series_found": [s.summary() for s in series],
        },
    )
    return LoadedStudy(volume, info, series)


def load_study(
    source: Union[PathLike, Sequence[PathLike]],
    series_uid: Optional[str] = None,
    series_description: Optional[str] = None,
    sequence: Optional[str] = None,
) -> LoadedStudy:
    """Load a volume file, a DICOM series (folder or list of files) or a DICOM study folder.

    Args:
        source: a path, or a list of DICOM file paths.
        series_uid: use the series with this SeriesInstanceUID.
        series_description: use the series whose description contains this text.
        sequence: override the sequence (T1, T2, STIR) the headers or file name imply.

    Raises:
        InputError: one readable line naming the problem (missing, corrupt, 2-D, 4-D, axial-only,
            NaN voxels, too large, no image series).
    """
    paths = [Path(source)] if isinstance(source, (str, Path)) else [Path(p) for p in source]
    if not paths:
        raise InputError("no input given")
    for p in paths:
        if not p.exists():
            raise InputError(f"{p}: no such file or folder")
    if sequence is not None and sequence not in ("T1", "T2", "STIR", "unknown"):
        raise InputError(f"sequence must be T1, T2, STIR or unknown, not '{sequence}'")
    if len(paths) == 1 and paths[0].is_file() and is_volume_file(paths[0]):
        return load_volume_file(paths[0], sequence)
    if len(paths) == 1 and paths[0].is_file() and not dicom_files(paths):
        # not DICOM and no known suffix: let ITK try (e.g. .img/.hdr), else say what it is not
        return load_volume_file(paths[0], sequence)
    if len(paths) == 1 and paths[0].is_dir() and not dicom_files(paths):
        raise InputError(f"{paths[0]}: no DICOM image series in this folder")
    return load_dicom(paths, series_uid, series_description, sequence)
