"""Exercises a learner builds, and the checker that tells them what works.

    chainrule exercises list
    chainrule exercises start value --dir mywork    # writes mywork/value.py, a skeleton
    chainrule exercises check value mywork/value.py

Each exercise is a skeleton file (`skeletons/NAME.py`: the interface, docstrings with the
shapes and formulas, TODOs) and a list of checks (`checks/NAME.py`). `check` runs the learner's
file in a separate Python process with a time limit and a memory limit, so a crash, an endless
loop or a runaway allocation in it is reported as such (see `runner`). This package is in the
outer layer, like the CLI: the core never imports it.
"""

from __future__ import annotations

from .registry import EXERCISES, SKELETONS, Exercise, ExerciseError, get, start
from .runner import Report, Result, check

__all__ = ["EXERCISES", "SKELETONS", "Exercise", "ExerciseError", "Report", "Result", "check",
           "get", "start"]
