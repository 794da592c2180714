"""``python -m SpineGradeLogic.cli`` (how the Slicer module runs the engine in a background process)."""

import sys

from . import main

sys.exit(main())
