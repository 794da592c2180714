"""The pipeline: replaceable stages run in order on one study."""

from .context import RunOptions, StudyContext
from .runner import Cancelled, run_study
from .stages import Stage, default_stages

__all__ = ["RunOptions", "StudyContext", "Stage", "default_stages", "run_study", "Cancelled"]
