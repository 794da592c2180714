"""Write a phantom's image as a DICOM MR series with realistic, deterministic headers.

One file per slice, LPS geometry in ImageOrientationPatient / ImagePositionPatient, sequence
parameters (TR, TE, TI, scanning sequence, echo train) matching the contrast, and UIDs derived from
the case's seed, so the same case always gives the same files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage

BODY_PART = {"lumbar": "LSPINE", "thoracolumbar": "TSPINE", "whole": "SPINE"}


def write_dicom_series(case, folder: Path, axial: bool = False) -> str:
    """Write ``case.image`` (or with ``axial`` the case's axial T2 stack, a second series of the same
    study and frame of reference) into ``folder`` (``IM0001.dcm`` ...); returns the SeriesInstanceUID."""
    from .case import protocol_uid

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vol = case.axial if axial else case.image
    if vol is None:
        raise ValueError(f"phantom case {case.seed} has no axial series (generate it with axial=True)")
    proto = case.axial_protocol if axial else case.protocol
    sequence = "T2" if axial else case.sequence
    uid = lambda what: protocol_uid(case.seed, case.fov, case.contrast, what)  # noqa: E731
    prefix = "axial/" if axial else ""
    study_uid, series_uid, frame_uid = uid("study"), uid(prefix + "series"), uid("frame")
    d = vol.direction_lps
    row_dir, col_dir, normal = d[:, 0], d[:, 1], d[:, 2]
    a = np.clip(vol.array, 0, None)
    top = float(a.max()) or 1.0
    slope = top / 4095.0
    pixels = np.round(a / slope).astype(np.uint16)
    seed_rng = np.random.default_rng(case.seed)
    field = float(seed_rng.choice([1.5, 3.0]))
    sex = str(seed_rng.choice(["F", "M"]))
    age = int(seed_rng.integers(25, 80))
    for k in range(vol.shape[2]):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MRImageStorage
        meta.MediaStorageSOPInstanceUID = uid(f"{prefix}image/{k}")
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.Manufacturer = "MR", "SpineGrade phantom"
        ds.ManufacturerModelName = "synthetic"
        ds.PatientName = f"Phantom^{case.seed}"
        ds.PatientID = f"PHANTOM{case.seed:06d}"
        ds.PatientSex, ds.PatientAge = sex, f"{age:03d}Y"
        ds.PatientPosition = "HFS"
        ds.BodyPartExamined = BODY_PART.get(case.fov, "SPINE")
        ds.StudyDate = ds.SeriesDate = ds.ContentDate = "20260101"
        ds.StudyTime = ds.SeriesTime = ds.ContentTime = "120000"
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.FrameOfReferenceUID = frame_uid
        ds.StudyID, ds.AccessionNumber = "1", f"SG{case.seed:08d}"
        ds.StudyDescription = "MR SPINE (synthetic)"
        ds.SeriesDescription = ds.ProtocolName = str(proto.get("description", "SAG T2 TSE"))
        ds.SeriesNumber, ds.InstanceNumber, ds.AcquisitionNumber = 2 if axial else 1, k + 1, 1
        ds.ImageType = ["DERIVED", "SECONDARY", "M", "NORM"]
        ds.ScanningSequence = proto.get("scanning", "SE")
        ds.SequenceVariant = proto.get("variant", ["SK", "SP"])
        ds.ScanOptions = ["IR", "FS"] if sequence == "STIR" else ""
        ds.MRAcquisitionType = "2D"
        ds.SequenceName = "*tir2d1" if sequence == "STIR" else "*tse2d1"
        ds.RepetitionTime = proto.get("tr")
        ds.EchoTime = proto.get("te")
        if proto.get("ti"):
            ds.InversionTime = proto["ti"]
        ds.EchoTrainLength = proto.get("etl", 1)
        ds.NumberOfAverages = 2
        ds.MagneticFieldStrength = field
        ds.ImagingFrequency = round(42.577 * field, 4)
        ds.ImagedNucleus = "1H"
        ds.FlipAngle = 150 if sequence != "T1" else 90
        ds.SliceThickness = round(float(proto.get("thickness", vol.spacing[2])), 4)
        ds.SpacingBetweenSlices = round(float(vol.spacing[2]), 4)
        ds.ImageOrientationPatient = [round(float(x), 8) for x in np.concatenate([row_dir, col_dir])]
        pos = np.asarray(vol.origin_lps) + k * vol.spacing[2] * normal
        ds.ImagePositionPatient = [round(float(x), 6) for x in pos]
        ds.SliceLocation = round(float(pos @ normal), 6)
        ds.PixelSpacing = [round(float(vol.spacing[1]), 8), round(float(vol.spacing[0]), 8)]  # rows (j), columns (i)
        ds.Rows, ds.Columns = vol.shape[1], vol.shape[0]
        ds.InPlanePhaseEncodingDirection = "ROW"
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = 0, round(slope, 8), "US"
        ds.WindowCenter, ds.WindowWidth = 2048 * slope, 4096 * slope
        ds.PixelData = np.ascontiguousarray(pixels[:, :, k].T).tobytes()
        ds.save_as(folder / f"IM{k + 1:04d}.dcm", enforce_file_format=True)
    return series_uid
