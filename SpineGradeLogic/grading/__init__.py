"""Disc grading: a multi-task MONAI network on disc-centred crops, calibrated per head.

Modules: ``heads`` (ordinal / nominal heads, probabilities), ``network``, ``loss``, ``data`` (crop
normalisation, npz caches, augmentation; no SimpleITK), ``prepare`` (crops from the generator;
SimpleITK), ``calibration`` (temperature scaling), ``metrics``, ``training_run``, ``infer``
(``Grader``), ``cli`` (``spinegrade train grading``), ``evaluate`` (``spinegrade evaluate grading``).
Nothing heavy is imported here, so ``import SpineGradeLogic.grading.data`` stays light.
"""
