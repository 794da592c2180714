"""Evaluation metrics (issue measurements; none are timed tests)."""
