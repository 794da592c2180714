"""SpineGrade's Slicer side: the scripted module (``SpineGrade.py``) and ``SpineGradeLib``.

Inside Slicer the module folder is on ``sys.path`` and the library is imported as ``SpineGradeLib``;
from the engine's CLI and the tests it is ``SpineGradeSlicer.SpineGradeLib``. Only ``SpineGrade.py``
imports ``qt``/``ctk``; ``SpineGradeLib`` needs nothing beyond ``slicer``'s vtkMRML classes (the
``slicer-core`` wheel outside Slicer), vtk, numpy and the engine.
"""
