"""The study's axial T2 series, read for the grading model's axial channels.

Lumbar protocols pair the sagittal series with an axial T2 stack; it shows the lateral recesses,
the foramina and the canal's cross-section at 0.5-0.9 mm across, where sagittal slices are 3-5 mm
thick. The grading stage resamples it onto each disc's crop grid through world coordinates
(``discs/crop.py``), so it has to share the sagittal series' frame of reference: a DICOM series of
the same study (same FrameOfReferenceUID), or a volume file the user names for the same session.

Choice (:func:`pick_axial_series`): axial series of the study only; T2 before unknown, STIR and T1
(a T1 axial is not what the model learned); then the most images.

An axial series is often planned as several stacks, a block of slices angled through each disc
(``io/dicom_series.py`` splits them): every axial stack is kept, and each disc's crop is cut from the
stack that covers most of it (:class:`~SpineGradeLogic.discs.crop.StackSampler`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Union

from ..errors import InputError
from .checks import check_values
from .dicom_series import SeriesInfo, dicom_files, find_series, read_stacks
from .orientation import acquisition_plane
from .volume import Volume

AXIAL_SEQUENCES = ("T2", "unknown", "STIR", "T1")


@dataclass
class AxialSeries:
    """An axial series ready to crop, and what it was (recorded in ``result.json``)."""

    volume: Volume
    description: str
    series_instance_uid: Optional[str]
    sequence: str
    source: str
    stacks: List[Volume] = field(default_factory=list)  # every axial stack, ``volume`` (the largest) first

    def __post_init__(self):
        self.stacks = list(self.stacks) or [self.volume]

    def summary(self) -> dict:
        out = {"description": self.description, "series_instance_uid": self.series_instance_uid,
               "sequence": self.sequence, "source": self.source, "shape": list(self.volume.shape),
               "spacing_mm": [round(float(x), 4) for x in self.volume.spacing]}
        if len(self.stacks) > 1:
            out["stacks"] = len(self.stacks)
        return out


def _images(series: SeriesInfo) -> int:
    """Images in all of a series' stacks (an axial series may be a block of a few slices per disc)."""
    return sum(part.n_files for part in series.stacks or [series])


def pick_axial_series(series: List[SeriesInfo], frame_of_reference: Optional[str] = None) -> Optional[SeriesInfo]:
    """The study's best axial series for grading (see the module), or None."""
    pool = [s for s in series if s.plane == "axial" and s.n_files >= 3]  # a stack of 3 slices, at least
    if frame_of_reference:
        pool = [s for s in pool if s.headers.get("FrameOfReferenceUID") in ("", None, frame_of_reference)]
    if not pool:
        return None
    return sorted(pool, key=lambda s: (AXIAL_SEQUENCES.index(s.sequence) if s.sequence in AXIAL_SEQUENCES else 9,
                                       -_images(s)))[0]


def _checked_axial(volume: Volume, name: str, normal_ras=None) -> Volume:
    check_values(volume, name)
    plane = acquisition_plane(volume, normal_ras)
    if plane.plane != "axial":
        raise InputError(f"{name}: a {plane.plane} series, not an axial one; give the study's axial T2 series")
    return volume


def read_axial_series(info: SeriesInfo) -> AxialSeries:
    """Read one DICOM axial series found by :func:`pick_axial_series`: every stack of it that is
    axial (a localizer's other planes are left out), the largest first."""
    name = f"series '{info.description}' ({info.series_instance_uid})"
    volumes = read_stacks(info)
    if not volumes:
        raise InputError(f"{name}: no stack of three or more slices")
    main = _checked_axial(volumes[0], name, info.normal_ras)
    others = []
    for volume in volumes[1:]:
        check_values(volume, name)
        if acquisition_plane(volume).plane == "axial":
            others.append(volume)
    return AxialSeries(main, info.description, info.series_instance_uid, info.sequence, "study", [main] + others)


def load_axial(source: Union[str, Path]) -> AxialSeries:
    """An axial series from a volume file, a DICOM series folder or a DICOM study folder (its best
    axial series). Raises :class:`InputError` naming the problem (missing, unreadable, not axial)."""
    from .study import is_volume_file, load_volume_pixels, sequence_from_filename

    path = Path(source)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder (the axial series)")
    if path.is_file() and (is_volume_file(path) or not dicom_files([path])):
        volume = _checked_axial(load_volume_pixels(path), str(path))
        return AxialSeries(volume, path.name, None, sequence_from_filename(path), str(path.resolve()))
    series = find_series([path])
    chosen = pick_axial_series(series)
    if chosen is None:
        listing = "; ".join(s.summary() for s in series) or "no image series"
        raise InputError(f"{path}: no axial series found ({listing})")
    out = read_axial_series(chosen)
    out.source = str(path.resolve())  # absolute: a result is read back from other working folders
    return out
