"""Reading studies: volume files, DICOM series and DICOM studies, with their exact geometry."""

from .volume import Volume

__all__ = ["Volume"]
