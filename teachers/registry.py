"""Teacher specs: one string (CLI) or dict (YAML) -> a ``Scorer``.

String forms::

    cross-encoder:<model>          a sequence-classification reranker (the default kind)
    bi-encoder:<model>             cosine of a sentence-transformers model
    colbert:<model>                MaxSim of a ColBERT (MultiVectorEncoder) model
    llm-yes-no:<model>             LLM relevance logit log P(yes) - log P(no)
    llm-ql:<model>                 LLM query likelihood
    llm-pairwise:<model>           LLM pairwise preferences, Bradley-Terry scores
    llm-listwise:<model>           LLM sliding-window listwise ranking, -rank scores
    run                            the candidate run's own scores (e.g. BM25)
    scores:<path>                  another teacher's stored scores (a finished score store, a
                                   stage folder holding one, or a TREC run), by id: score an
                                   expensive teacher once, combine it in ensembles many times
    bm25                           exact BM25 of any candidate (needs the corpus)
    ensemble:<calibration>:<member>*<weight>+<member>*<weight>...
    <file>.yaml / <file>.json      a dict spec
    <model>                        a bare model id or folder: cross-encoder

Dict form: ``{"kind": "bi-encoder", "model": "...", **options}``; an ensemble is
``{"kind": "ensemble", "calibration": "zscore", "members": [{"kind": ..., "weight": 1.0}, ...]}``.

Example:
    ``ensemble:zscore:run*1+bi-encoder:sentence-transformers/all-MiniLM-L6-v2*1`` is the hybrid
    of BM25 and MiniLM-L6 that the SciFact demo falls back to offline.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from retrieval_kd.data.types import Run
from retrieval_kd.errors import RKDError
from retrieval_kd.interfaces import Scorer


def _cross_encoder(model: str, **options: Any) -> Scorer:
    from teachers.cross_encoder import CrossEncoderTeacher

    return CrossEncoderTeacher(model, **options)


def _bi_encoder(model: str, **options: Any) -> Scorer:
    from teachers.bi_encoder import BiEncoderTeacher

    return BiEncoderTeacher(model, **options)


def _colbert(model: str, **options: Any) -> Scorer:
    from teachers.colbert import ColBERTTeacher

    return ColBERTTeacher(model, **options)


def _llm(mode: str) -> Callable[..., Scorer]:
    def build(model: str, **options: Any) -> Scorer:
        from teachers.llm_pointwise import LLMPointwiseTeacher

        return LLMPointwiseTeacher(model, mode=mode, **options)

    return build


def _llm_pairwise(model: str, **options: Any) -> Scorer:
    from teachers.llm_pairwise import LLMPairwiseTeacher

    return LLMPairwiseTeacher(model, **options)


def _llm_listwise(model: str, **options: Any) -> Scorer:
    from teachers.llm_listwise import LLMListwiseTeacher

    return LLMListwiseTeacher(model, **options)


MODEL_KINDS: dict[str, Callable[..., Scorer]] = {
    "cross-encoder": _cross_encoder,
    "bi-encoder": _bi_encoder,
    "colbert": _colbert,
    "llm-yes-no": _llm("yes_no"),
    "llm-ql": _llm("query_likelihood"),
    "llm-pairwise": _llm_pairwise,
    "llm-listwise": _llm_listwise,
}
KINDS = (*MODEL_KINDS, "run", "bm25", "scores", "ensemble")


def parse_teacher_spec(spec: str) -> dict[str, Any]:
    """The dict form of a string spec (see the module docstring)."""
    spec = spec.strip()
    if not spec:
        raise RKDError("empty teacher spec")
    if spec.endswith((".yaml", ".yml", ".json")) and Path(spec).is_file():
        text = Path(spec).read_text(encoding="utf-8")
        loaded = json.loads(text) if spec.endswith(".json") else yaml.safe_load(text)
        if not isinstance(loaded, dict):
            raise RKDError(f"teacher spec file {spec} must hold a mapping")
        return loaded
    if spec in ("run", "bm25"):
        return {"kind": spec}
    if spec.startswith("ensemble:"):
        _, calibration, members = spec.split(":", 2) if spec.count(":") >= 2 else (spec, "", "")
        if not members:
            raise RKDError(
                f"ensemble spec {spec!r}: expected ensemble:<calibration>:<member>*<weight>+..."
            )
        parsed = []
        for member in members.split("+"):
            body, star, weight = member.rpartition("*")
            if not star:
                body, weight = member, "1"
            try:
                parsed.append({**parse_teacher_spec(body), "weight": float(weight)})
            except ValueError:
                raise RKDError(
                    f"ensemble member {member!r}: weight {weight!r} is not a number"
                ) from None
        return {"kind": "ensemble", "calibration": calibration, "members": parsed}
    kind, sep, model = spec.partition(":")
    if sep and kind == "scores":
        return {"kind": "scores", "path": model}
    if sep and kind in MODEL_KINDS:
        return {"kind": kind, "model": model}
    return {"kind": "cross-encoder", "model": spec}


def build_teacher(
    spec: str | Mapping[str, Any], candidates: Run | None = None, corpus: Any = None
) -> Scorer:
    """Construct the teacher a spec describes (models are resolved and loaded here).

    Args:
        spec: a string or dict spec (module docstring).
        candidates: the candidate run, needed by ``run`` members.
        corpus: the collection's ``Corpus``, needed by ``bm25`` members.

    Raises:
        RKDError: unknown kind, missing model, a ``run`` member without candidates, a ``bm25``
            member without a corpus, or a model that cannot be resolved (from the resolver).
    """
    config = dict(parse_teacher_spec(spec) if isinstance(spec, str) else spec)
    kind = config.pop("kind", "cross-encoder")
    config.pop("weight", None)
    if kind == "run":
        if candidates is None:
            raise RKDError("teacher 'run' uses the candidates' own scores: give candidates")
        from teachers.run_scores import RunScoreTeacher

        return RunScoreTeacher(candidates, name=config.get("name", "run"))
    if kind == "bm25":
        if corpus is None:
            raise RKDError("teacher 'bm25' scores with the corpus's BM25 index: give the corpus")
        from teachers.bm25 import BM25Teacher

        return BM25Teacher(corpus)
    if kind == "scores":
        if not config.get("path"):
            raise RKDError("teacher kind 'scores' needs a path: scores:<store, stage or .trec>")
        from teachers.stored_scores import StoredScoresTeacher

        return StoredScoresTeacher(config["path"])
    if kind == "ensemble":
        from teachers.ensemble import EnsembleTeacher

        members = config.get("members") or []
        built = [
            (build_teacher(m, candidates, corpus), float(m.get("weight", 1.0))) for m in members
        ]
        return EnsembleTeacher(built, calibration=config.get("calibration") or "zscore")
    if kind not in MODEL_KINDS:
        raise RKDError(f"unknown teacher kind {kind!r}; choose one of {', '.join(KINDS)}")
    model = config.pop("model", None)
    if not model:
        raise RKDError(f"teacher kind {kind!r} needs a model")
    return MODEL_KINDS[kind](model, **config)
