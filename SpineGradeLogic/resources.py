"""Where shipped, non-code files live (model bundles, colour tables, terminology).

``Resources/`` sits beside the packages in the repository and in the Slicer extension; the
``SPINEGRADE_RESOURCES`` environment variable points elsewhere (an installed copy, a test).
"""

from __future__ import annotations

import os
from pathlib import Path


def resources_dir() -> Path:
    env = os.environ.get("SPINEGRADE_RESOURCES")
    return Path(env) if env else Path(__file__).resolve().parents[1] / "Resources"


def models_dir() -> Path:
    """Default model bundles; ``SPINEGRADE_MODELS`` overrides (a folder of bundles)."""
    env = os.environ.get("SPINEGRADE_MODELS")
    return Path(env) if env else resources_dir() / "Models"
