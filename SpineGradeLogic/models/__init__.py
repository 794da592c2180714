"""Model bundles (MONAI bundle layout) shared by every SpineGrade model."""

from .bundle import (
    LoadedModel,
    build_network,
    default_metadata,
    env_var_for,
    find_bundle,
    load_bundle,
    read_metadata,
    save_bundle,
    sha256_file,
)

__all__ = [
    "LoadedModel",
    "build_network",
    "default_metadata",
    "env_var_for",
    "find_bundle",
    "load_bundle",
    "read_metadata",
    "save_bundle",
    "sha256_file",
]
