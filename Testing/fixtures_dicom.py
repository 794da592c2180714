"""Write DICOM MR series from a `Volume` for tests (pydicom), with LPS geometry in the headers."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import pydicom
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

from SpineGradeLogic.io.volume import Volume


def write_dicom_series(
    volume: Volume,
    folder: Path,
    description: str = "SAG T2 TSE",
    series_number: int = 1,
    study_uid: Optional[str] = None,
    tr: Optional[float] = None,
    te: Optional[float] = None,
    ti: Optional[float] = None,
    file_names: str = "ordered",  # "ordered" or "shuffled": names must not decide the slice order
    series_uid: Optional[str] = None,
    frame_uid: Optional[str] = None,
    first_instance: int = 0,
) -> str:
    """Write ``volume`` as one series (a file per k-slice); returns the SeriesInstanceUID.

    Given ``series_uid`` (and ``frame_uid``) of an earlier call and a ``first_instance`` past its
    slices, it adds another stack to that series, as scanners write axial blocks angled per disc."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    study_uid = study_uid or generate_uid()
    series_uid = series_uid or generate_uid()
    frame_uid = frame_uid or generate_uid()
    d = volume.direction_lps
    row_dir, col_dir, normal = d[:, 0], d[:, 1], d[:, 2]
    a = volume.array
    lo, hi = float(a.min()), float(a.max())
    scale = (hi - lo) / 4000.0 if hi > lo else 1.0
    nk = volume.shape[2]
    order = np.random.default_rng(3).permutation(nk) if file_names == "shuffled" else np.arange(nk)
    for k in range(nk):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MRImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.PatientID, ds.PatientName = "MR", "TEST01", "Test^Patient"
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.FrameOfReferenceUID = frame_uid
        ds.SeriesDescription, ds.SeriesNumber = description, series_number
        ds.InstanceNumber = int(first_instance + k + 1)
        if tr is not None:
            ds.RepetitionTime = tr
        if te is not None:
            ds.EchoTime = te
        if ti is not None:
            ds.InversionTime = ti
        ds.ImageOrientationPatient = [float(x) for x in np.concatenate([row_dir, col_dir])]
        ds.ImagePositionPatient = [float(x) for x in np.asarray(volume.origin_lps) + k * volume.spacing[2] * normal]
        ds.PixelSpacing = [volume.spacing[1], volume.spacing[0]]  # between rows (j), between columns (i)
        ds.SliceThickness = volume.spacing[2]
        ds.Rows, ds.Columns = volume.shape[1], volume.shape[0]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.RescaleIntercept, ds.RescaleSlope = lo, scale
        pixels = np.round((a[:, :, k].T - lo) / scale).astype(np.uint16)
        ds.PixelData = pixels.tobytes()
        ds.save_as(folder / f"IM{first_instance + order[k]:04d}.dcm", enforce_file_format=True)
    return series_uid
