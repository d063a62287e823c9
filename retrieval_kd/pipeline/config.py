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

import yaml

from retrieval_kd.errors import RKDError
from retrieval_kd.strict_config import read_yaml, strict_section
from retrieval_kd.training.config import TrainConfig, config_from_dict
from retrieval_kd.training.precision import resolve_precision

TRAIN_SECTIONS = ("student", "groups", "loss", "training", "evaluation")


TRAIN_QUERIES = ("split", "generate")


@dataclass
class DataSection:
    """Collections: training queries from one split (or generated from the corpus), the report
    from another.

    ``train_queries: split`` (default) trains on ``train_split``'s judged queries;
    ``train_queries: generate`` trains on queries generated from the corpus (the ``generate:``
    section), with no use of any split's queries or qrels: the corpus is the only input and
    ``eval_split`` is used for the report only.

    Your own files instead of a named collection: ``corpus`` (JSONL / TSV), ``queries`` and
    ``qrels`` (split name -> qrels file, e.g. ``{train: train.tsv, test: test.tsv}``); they
    become a collection folder (:mod:`retrieval_kd.data.own_files`) and ``collection`` is set
    to it.
    """

    collection: str | None = None
    train_split: str = "train"
    eval_split: str = "test"
    conventions: str = "beir"
    max_train_queries: int | None = None
    max_eval_queries: int | None = None
    train_queries: str = "split"
    corpus: str | None = None
    queries: str | None = None
    qrels: dict | None = None


@dataclass
class CandidatesSection:
    """First-stage candidates for training and for the report.

    ``sources``: one or more of ``bm25``, ``dense:<bi-encoder spec or student folder>`` and TREC
    run files of the collection (``retrieval_kd.candidates.sources``); several are combined by
    ``fusion`` (``rrf``: the fused top ``depth``; ``union``: every source's top ``depth``).
    ``eval_sources`` (default: ``[bm25]``) are the report's candidates, which the teacher
    re-ranks.
    """

    sources: list = field(default_factory=lambda: ["bm25"])
    fusion: str = "rrf"
    train_depth: int = 30
    eval_depth: int = 100
    eval_sources: list = field(default_factory=lambda: ["bm25"])


@dataclass
class GenerateSection:
    """Query generation for ``data.train_queries: generate`` (``retrieval_kd.generation``).

    ``generator``: ``llm:<model>`` or ``span[:sentence|span|title]``; ``kind`` / ``template`` /
    ``examples``: the LLM's prompt; ``per_doc`` queries for each of ``docs`` sampled documents,
    or ``queries`` in all (GPL's budget rule: ``ceil(queries / per_doc)`` documents), or every
    document; ``options``: the generator's own settings (``batch_size``, ``max_new_tokens``,
    ``temperature``, ``top_p``, ``passage_max_tokens`` for an LLM; ``min_words`` /
    ``max_words`` for spans).
    """

    generator: str = "llm:HuggingFaceTB/SmolLM2-135M-Instruct"
    kind: str = "question"
    template: str | None = None
    examples: str | None = None
    per_doc: int = 1
    docs: int | None = None
    queries: int | None = None
    seed: int = 0
    docs_per_shard: int = 64
    min_words: int = 3
    max_words: int = 64
    options: dict = field(default_factory=dict)


@dataclass
class FiltersSection:
    """Filters on generated (query, source document) pairs, each optional and counted.

    ``round_trip_k``: keep a query only if its source document is in the top k of
    ``round_trip`` (``teacher``: the teacher's order of the query's candidates; ``candidates``:
    the candidate run's). ``teacher_floor``: keep a query only if the teacher scores its source
    at least this (teacher units). The QGen baseline trains on the queries that pass the filters
    which do not use the teacher.
    """

    round_trip: str = "teacher"
    round_trip_k: int | None = None
    teacher_floor: float | None = None


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
    ``groups`` overrides keys of the ``groups`` section for the baseline only (e.g.
    ``{false_negatives: null}``); a false-negative rule reads teacher scores, so it needs
    ``negatives: teacher``.
    """

    enabled: bool = True
    loss: dict = field(default_factory=lambda: {"info_nce": {"weight": 1.0, "temperature": 0.05}})
    negatives: str = "candidates"
    groups: dict = field(default_factory=dict)


@dataclass
class IndexSection:
    """FAISS index of the corpus for each student; ``max_length``: the passages' token limit
    when indexing (null: the student's own ``passage_max_length``), so a student trained on
    short passages for speed can index whole ones; ``precision``: the encoder's arithmetic
    (``auto``: bf16 where the hardware computes it natively, else fp32 on CPU / fp16 on GPU;
    or ``fp32``, ``bf16``, ``fp16``), recorded in the stage's manifest as ``dtype``."""

    type: str = "flat"
    chunk_size: int = 10_000
    batch_size: int = 64
    max_length: int | None = None
    precision: str = "auto"


SEARCH_CORPORA = ("full", "candidates")
ROUND_TRIPS = ("teacher", "candidates")


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
    generate: GenerateSection = field(default_factory=GenerateSection)
    filters: FiltersSection = field(default_factory=FiltersSection)
    quick: dict[str, Any] = field(default_factory=dict)

    @property
    def generates(self) -> bool:
        """Whether the training queries are generated from the corpus."""
        return self.data.train_queries == "generate"

    def train_config(
        self,
        output_dir: str | Path,
        score_store: str | Path,
        loss: Mapping[str, Any] | None = None,
        collection: str | None = None,
        split: str | None = None,
        groups: Mapping[str, Any] | None = None,
    ) -> TrainConfig:
        """The ``rkd train`` config of one training stage (validated); ``collection`` /
        ``split`` default to the data section's (a generated query set overrides them);
        ``groups`` overrides keys of the groups section (the baseline's ``baseline.groups``)."""
        raw = copy.deepcopy(self.train)
        if groups:
            raw["groups"] = {**raw.get("groups", {}), **groups}
        raw["data"] = {
            "collection": collection or self.data.collection,
            "split": split or self.data.train_split,
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
    "generate": GenerateSection,
    "filters": FiltersSection,
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
    _own_files(sections["data"])
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
        baseline = config.train_config(
            Path(config.output_dir) / "check",
            Path(config.output_dir) / "check",
            loss=config.baseline.loss,
            groups=config.baseline.groups,
        )
        if baseline.groups.false_negatives is not None and config.baseline.negatives != "teacher":
            raise RKDError(
                "groups.false_negatives reads teacher scores, but the baseline's groups come from "
                "the candidate run's scores (baseline.negatives: candidates): set "
                "baseline.groups: {false_negatives: null}, or baseline.negatives: teacher"
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
    from retrieval_kd.models.arithmetic import PRECISION_NAMES

    if config.index.precision != "auto" and config.index.precision not in PRECISION_NAMES:
        raise RKDError(
            f"config key 'index.precision' must be auto or one of "
            f"{', '.join(sorted(PRECISION_NAMES))}, got {config.index.precision!r}"
        )
    if config.search.corpus not in SEARCH_CORPORA:
        raise RKDError(
            f"config key 'search.corpus' must be one of {SEARCH_CORPORA}, "
            f"got {config.search.corpus!r}"
        )
    from retrieval_kd.candidates import FUSIONS

    kind = config.train.get("student", {}).get("kind", "bi-encoder")
    if kind == "colbert":
        raise RKDError(
            "config key 'student.kind': rkd distill does not index ColBERT students yet; train "
            "one with rkd train and index it with rkd index (a late-interaction index)"
        )

    if config.data.train_queries not in TRAIN_QUERIES:
        raise RKDError(
            f"config key 'data.train_queries' must be one of {TRAIN_QUERIES}, "
            f"got {config.data.train_queries!r}"
        )
    cand = config.candidates
    for key in ("sources", "eval_sources"):
        value = getattr(cand, key)
        if not value or not all(isinstance(v, str) and v.strip() for v in value):
            raise RKDError(f"config key 'candidates.{key}' must be a non-empty list of specs")
    if cand.fusion not in FUSIONS:
        raise RKDError(
            f"config key 'candidates.fusion' must be one of {FUSIONS}, got {cand.fusion!r}"
        )
    f = config.filters
    if f.round_trip not in ROUND_TRIPS:
        raise RKDError(f"config key 'filters.round_trip' must be one of {ROUND_TRIPS}")
    if f.round_trip_k is not None and f.round_trip_k < 1:
        raise RKDError("config key 'filters.round_trip_k' must be null or >= 1")
    g = config.generate
    if g.per_doc < 1 or g.docs_per_shard < 1:
        raise RKDError("config keys 'generate.per_doc' and 'generate.docs_per_shard' must be >= 1")
    if g.docs is not None and g.queries is not None:
        raise RKDError("give config key 'generate.docs' or 'generate.queries', not both")
    if g.min_words < 1 or g.max_words < g.min_words:
        raise RKDError("config keys 'generate.min_words' <= 'generate.max_words', both >= 1")
    if config.baseline.negatives not in BASELINE_NEGATIVES:
        raise RKDError(
            f"config key 'baseline.negatives' must be one of {BASELINE_NEGATIVES}, "
            f"got {config.baseline.negatives!r}"
        )


def apply_overrides(raw: Mapping[str, Any], overrides: list[str]) -> dict[str, Any]:
    """``raw`` with ``section.key=value`` overrides applied (values parsed as YAML).

    Example:
        >>> apply_overrides({"training": {"seed": 42}}, ["training.seed=1", "output_dir=runs/x"])
        {'training': {'seed': 1}, 'output_dir': 'runs/x'}

    Raises:
        RKDError: an override without ``=`` or with an empty key.
    """
    out = copy.deepcopy(dict(raw))
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip() or any(not part for part in key.strip().split(".")):
            raise RKDError(f"--set {item!r}: expected section.key=value")
        parts = key.strip().split(".")
        target = out
        for part in parts[:-1]:
            if not isinstance(target.get(part, {}), Mapping):
                raise RKDError(f"--set {item!r}: {part!r} is not a section")
            target = target.setdefault(part, {})
        target[parts[-1]] = yaml.safe_load(text) if text.strip() else None
    return out


def _own_files(data: DataSection) -> None:
    """Point ``data.collection`` at the collection folder of the user's own files, if given."""
    if data.corpus is None:
        if data.queries is not None or data.qrels is not None:
            raise RKDError("config keys 'data.queries' / 'data.qrels' need 'data.corpus'")
        if data.collection is None:
            raise RKDError("config key 'data': give 'collection' or 'corpus' (your own files)")
        return
    if data.collection is not None:
        raise RKDError("config key 'data': give 'collection' or 'corpus', not both")
    from retrieval_kd.data.own_files import own_data_folder

    qrels = data.qrels or {}
    if not isinstance(qrels, Mapping):
        raise RKDError("config key 'data.qrels' must map split names to qrels files")
    data.collection = str(own_data_folder(data.corpus, data.queries, dict(qrels)))


def load_distill_config(
    path: str | Path, quick: bool = False, overrides: list[str] | None = None
) -> DistillConfig:
    """Read a distill YAML file strictly (see ``distill_config_from_dict``); ``overrides``
    (``section.key=value``) are applied first and validated like the file."""
    raw = apply_overrides(read_yaml(path) or {}, overrides or [])
    try:
        return distill_config_from_dict(raw, quick=quick)
    except RKDError as err:
        raise RKDError(f"{path}: {err}") from None
