"""Shared test helpers: volumes with oblique geometry and DICOM series written by the tests."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fixtures_dicom import write_dicom_series  # noqa: E402
from fixtures_volumes import oblique_sagittal_volume, rotation  # noqa: E402

REAL_DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "real-dev"


@pytest.fixture
def real_dev() -> Path:
    """The real scans beside the project; tests that need them skip where the folder is absent."""
    if not REAL_DEV.is_dir():
        pytest.skip(f"real-dev scans not found at {REAL_DEV} (they live in ../shared beside the project)")
    return REAL_DEV


@pytest.fixture
def sagittal_volume():
    return oblique_sagittal_volume()


__all__ = ["write_dicom_series", "oblique_sagittal_volume", "rotation", "np"]
