"""Student kinds by name, so that a training config can pick one: ``build_student(config)``.

The core never imports ``students`` at module level: each builder imports its class when called.
Other kinds (ColBERT, cross-encoder students) join with :func:`register_student`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from retrieval_kd.errors import RKDError

if TYPE_CHECKING:
    from retrieval_kd.training.config import StudentConfig

StudentBuilder = Callable[["StudentConfig"], Any]


def _bi_encoder(config: StudentConfig) -> Any:
    from students.bi_encoder import BiEncoderStudent

    return BiEncoderStudent(
        config.model,
        pooling=config.pooling,
        similarity=config.similarity,
        query_prefix=config.query_prefix,
        passage_prefix=config.passage_prefix,
        query_max_length=config.query_max_length,
        passage_max_length=config.passage_max_length,
    )


def _colbert(config: StudentConfig) -> Any:
    """ColBERT on sentence-transformers' MultiVectorEncoder; max lengths are token counts."""
    from students.colbert import ColBERTStudent

    _refuse_bi_encoder_settings(config)
    return ColBERTStudent(
        config.model,
        query_length=config.query_max_length,
        document_length=config.passage_max_length,
    )


def _cross_encoder(config: StudentConfig) -> Any:
    """A cross-encoder student: the pair is cut at query + passage max length."""
    from students.cross_encoder_student import CrossEncoderStudent

    _refuse_bi_encoder_settings(config)
    lengths = [config.query_max_length, config.passage_max_length]
    return CrossEncoderStudent(config.model, max_length=sum(lengths) if all(lengths) else None)


def _refuse_bi_encoder_settings(config: StudentConfig) -> None:
    given = [
        key
        for key in ("pooling", "similarity", "query_prefix", "passage_prefix")
        if getattr(config, key) is not None
    ]
    if given:
        raise RKDError(
            f"student.kind {config.kind!r} has no setting {', '.join(given)} (bi-encoder settings)"
        )


_BUILDERS: dict[str, StudentBuilder] = {
    "bi-encoder": _bi_encoder,
    "colbert": _colbert,
    "cross-encoder": _cross_encoder,
}


def register_student(kind: str, builder: StudentBuilder) -> None:
    """Make ``student.kind: <kind>`` build a student with ``builder(student_config)``."""
    _BUILDERS[kind] = builder


def student_kinds() -> list[str]:
    """The registered student kinds, sorted."""
    return sorted(_BUILDERS)


def build_student(config: StudentConfig) -> Any:
    """A ``TrainableStudent`` for the config's ``kind``.

    Raises:
        RKDError: unknown kind, or the builder's own errors (bad settings, mismatched folder).
    """
    from students.base import TrainableStudent

    if config.kind not in _BUILDERS:
        raise RKDError(f"unknown student kind {config.kind!r}; valid: {', '.join(student_kinds())}")
    student = _BUILDERS[config.kind](config)
    if not isinstance(student, TrainableStudent):
        raise RKDError(f"student kind {config.kind!r} built {type(student).__name__}, "
                       "which is not a TrainableStudent")  # fmt: skip
    return student
