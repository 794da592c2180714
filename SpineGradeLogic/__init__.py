"""SpineGrade engine: spine MRI in, labelled vertebrae, disc levels, grades and evidence out.

A plain Python package that never imports slicer, qt or ctk, so the same functions serve the
3D Slicer module, the Slicer Python console, the ``spinegrade`` command and other programs.
"""

__version__ = "0.1.0"
