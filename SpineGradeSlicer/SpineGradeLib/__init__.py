"""The testable part of SpineGrade's Slicer module: MRML adapter, scene export, screenshots,
background runner, dependency handling and the shipped colour table / terminology."""
