"""Teachers: models that score (query, passage) candidates for distillation.

Every teacher implements ``retrieval_kd.interfaces.Scorer``: raw scores, higher = more
relevant, no hidden normalisation. ``build_teacher(spec)`` makes one from a spec string or dict.
"""

from teachers.calibration import CALIBRATIONS, get_calibration
from teachers.ensemble import EnsembleTeacher
from teachers.registry import KINDS, build_teacher, parse_teacher_spec
from teachers.run_scores import RunScoreTeacher

__all__ = [
    "CALIBRATIONS",
    "KINDS",
    "EnsembleTeacher",
    "RunScoreTeacher",
    "build_teacher",
    "get_calibration",
    "parse_teacher_spec",
]
