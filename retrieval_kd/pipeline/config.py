"""The ``rkd distill`` config: one YAML file for the whole chain, read strictly.

Pipeline sections (this module) say where data, candidates, the teacher, the index and the
report come from; training sections (``student``, ``groups``, ``loss``, ``training``,
``evaluation``) are exactly those of ``rkd train`` (``retrieval_kd.training.config``) and are
validated by the same code. An unknown key anywhere is an error, raised before any stage runs.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from retrieval_kd.errors import RKDError
from retrieval_kd.strict_config import read_yaml, strict_section
from retrieval_kd.training.config import TrainConfig, config_from_dict
from retrieval_kd.training.precision import resolve_precision

TRAIN_SECTIONS = ("student", "groups", "loss", "training", "evaluation")


@dataclass
class DataSection:
    """Collections: training queries from one split, the report from another."""

    collection: str
    train_split: str = "train"
    eval_split: str = "test"
    conventions: str = "beir"
    max_train_queries: int | None = None
    max_eval_queries: int | None = None


@dataclass
class CandidatesSection:
    """First-stage candidates: BM25 (or a TREC run file) for training and for the report."""

    source: str = "bm25"
    train_depth: int = 30
    eval_depth: int = 100


@dataclass
class TeacherSection:
    """The teacher, and what to use when it cannot be had (first resolvable wins)."""

    model: str = "cross-encoder/ms-marco-MiniLM-L-6-v2"
    fallbacks: list = field(
        default_factory=lambda: [
            "env:RKD_TEACHER",
            "ensemble:zscore:run*1+bi-encoder:sentence-transformers/all-MiniLM-L6-v2*1",
        ]
    )
    score_eval: bool = True


BASELINE_NEGATIVES = ("candidates", "teacher")


@dataclass
class BaselineSection:
    """A student trained on the same queries and candidates without the teacher.

    ``negatives`` says whose order picks each group's negatives: ``"candidates"`` (default) the
    candidate run's own scores (BM25's), so the baseline uses nothing from the teacher;
    ``"teacher"`` the teacher's, which lends the baseline the teacher's hard-negative mining.
    """

    enabled: bool = True
    loss: dict = field(default_factory=lambda: {"info_nce": {"weight": 1.0, "temperature": 0.05}})
    negatives: str = "candidates"


@dataclass
class IndexSection:
    """FAISS index of the corpus for each student."""

    type: str = "flat"
    chunk_size: int = 10_000
    batch_size: int = 64


SEARCH_CORPORA = ("full", "candidates")


@dataclass
class SearchSection:
    """Retrieval depth, what the students retrieve from, and the metrics of the report.

    ``corpus: full`` (default) indexes the whole collection; ``corpus: candidates`` indexes only
    the evaluation queries' candidates and judged documents (a smoke-test pool for ``--quick``:
    its figures are not full-corpus retrieval figures, and the report says so).
    """

    k: int = 100
    metrics: list = field(default_factory=lambda: ["ndcg@10", "mrr@10", "recall@100"])
    agreement_depth: int = 10
    corpus: str = "full"


@dataclass
class DistillConfig:
    """A whole distillation run: the pipeline sections plus an ``rkd train`` config."""

    name: str
    output_dir: str
    data: DataSection
    candidates: CandidatesSection
    teacher: TeacherSection
    baseline: BaselineSection
    index: IndexSection
    search: SearchSection
    train: dict[str, Any]
    quick: dict[str, Any] = field(default_factory=dict)

    def train_config(
        self, output_dir: str | Path, score_store: str | Path, loss: Mapping[str, Any] | None = None
    ) -> TrainConfig:
        """The ``rkd train`` config of one training stage (validated)."""
        raw = copy.deepcopy(self.train)
        raw["data"] = {
            "collection": self.data.collection,
            "split": self.data.train_split,
            "score_store": str(score_store),
            "max_queries": self.data.max_train_queries,
        }
        raw.setdefault("training", {})["output_dir"] = str(output_dir)
        if loss is not None:
            raw["loss"] = dict(loss)
        return config_from_dict(raw)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


PIPELINE_SECTIONS = {
    "data": DataSection,
    "candidates": CandidatesSection,
    "teacher": TeacherSection,
    "baseline": BaselineSection,
    "index": IndexSection,
    "search": SearchSection,
}
TOP_LEVEL = ("name", "output_dir", "quick", *PIPELINE_SECTIONS, *TRAIN_SECTIONS)


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def distill_config_from_dict(raw: Mapping[str, Any], quick: bool = False) -> DistillConfig:
    """Validate plain data into a ``DistillConfig``; ``quick`` applies the ``quick:`` overrides.

    Raises:
        RKDError: an unknown or missing key, a wrong type, an invalid training section.
    """
    if not isinstance(raw, Mapping):
        raise RKDError("a distill config must be a mapping of sections")
    for key in raw:
        if key not in TOP_LEVEL:
            raise RKDError(f"unknown config key '{key}'; valid keys: {', '.join(TOP_LEVEL)}")
    for key in ("name", "output_dir", "data"):
        if key not in raw:
            raise RKDError(f"missing required config key '{key}'")
    overrides = raw.get("quick") or {}
    if not isinstance(overrides, Mapping):
        raise RKDError("config key 'quick' must be a mapping of overrides")
    if quick:
        raw = _merge({k: v for k, v in raw.items() if k != "quick"}, overrides)
        raw["output_dir"] = f"{raw['output_dir']}-quick"
    sections = {
        name: strict_section(cls, raw.get(name), name) for name, cls in PIPELINE_SECTIONS.items()
    }
    train = {key: copy.deepcopy(raw[key]) for key in TRAIN_SECTIONS if key in raw}
    training = train.get("training")
    if isinstance(training, dict) and training.get("precision") == "auto":
        training["precision"] = resolve_precision("auto")  # fingerprints record what runs
    config = DistillConfig(
        name=str(raw["name"]),
        output_dir=str(raw["output_dir"]),
        train=train,
        quick=dict(overrides),
        **sections,
    )
    config.train_config(Path(config.output_dir) / "check", Path(config.output_dir) / "check")
    if config.baseline.enabled:
        config.train_config(
            Path(config.output_dir) / "check",
            Path(config.output_dir) / "check",
            loss=config.baseline.loss,
        )
    _check(config)
    return config


def _check(config: DistillConfig) -> None:
    from evaluation.conventions import get_conventions, parse_metrics

    parse_metrics(config.search.metrics)
    get_conventions(config.data.conventions)
    if config.candidates.train_depth < 2 or config.candidates.eval_depth < 1:
        raise RKDError("config key 'candidates.train_depth' must be >= 2 and eval_depth >= 1")
    group_size = config.train.get("groups", {}).get("size", 8)
    if group_size - 1 > config.candidates.train_depth:
        raise RKDError(
            f"config key 'groups.size' ({group_size}) needs candidates.train_depth >= "
            f"{group_size - 1}"
        )
    if config.search.k < 1:
        raise RKDError("config key 'search.k' must be >= 1")
    if config.search.corpus not in SEARCH_CORPORA:
        raise RKDError(
            f"config key 'search.corpus' must be one of {SEARCH_CORPORA}, "
            f"got {config.search.corpus!r}"
        )
    if config.baseline.negatives not in BASELINE_NEGATIVES:
        raise RKDError(
            f"config key 'baseline.negatives' must be one of {BASELINE_NEGATIVES}, "
            f"got {config.baseline.negatives!r}"
        )


def load_distill_config(path: str | Path, quick: bool = False) -> DistillConfig:
    """Read a distill YAML file strictly (see ``distill_config_from_dict``)."""
    raw = read_yaml(path)
    try:
        return distill_config_from_dict(raw or {}, quick=quick)
    except RKDError as err:
        raise RKDError(f"{path}: {err}") from None
