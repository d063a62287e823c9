"""A bi-encoder student on a sentence-transformers model: one vector per text, dot or cosine.

The student trains the very modules a plain ``SentenceTransformer`` runs at inference, through the
same code path as ``encode_query`` / ``encode_document`` (``preprocess(texts, prompt, task)`` then
``forward(features, task)``), so what it saves encodes identically in plain sentence-transformers:

- **pooling** ``mean`` or ``cls``: the ``Pooling`` module's mode;
- **similarity** ``cosine`` (a ``Normalize`` module ends the pipeline, scores are dot products of
  unit vectors) or ``dot`` (no ``Normalize``); recorded as ``similarity_fn_name``;
- **prefixes**: the model's ``prompts["query"]`` and ``prompts["document"]``, which
  ``encode_query`` / ``encode_document`` prepend;
- **max lengths per side**: the ``Transformer`` module's ``query_length`` / ``document_length``
  (truncation limits that ``encode_query`` / ``encode_document`` apply); plain ``encode()`` uses
  the passage limit.

``save(folder)`` writes the sentence-transformers folder plus ``rkd_student.json`` (these
settings, the base model's identity). Loading a folder that has ``rkd_student.json`` with settings
that contradict the ones asked for is an error naming each difference.

Example:
    >>> student = BiEncoderStudent("sentence-transformers/paraphrase-MiniLM-L3-v2",
    ...                            similarity="dot", query_max_length=64)  # doctest: +SKIP
    >>> student.score_groups(["q"], [["p1", "p2"]]).shape  # doctest: +SKIP
    torch.Size([1, 2])
"""

from __future__ import annotations

import inspect
import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch

from retrieval_kd.errors import InputError, RKDError
from retrieval_kd.models.model_card import hub_id_of, save_with_card

SETTINGS_FILE = "rkd_student.json"
FORMAT_VERSION = 1
POOLING_MODES = ("mean", "cls")
SIMILARITIES = ("dot", "cosine")
QUERY_PROMPT = "query"
DOCUMENT_PROMPT = "document"
_DOCUMENT_PROMPT_NAMES = ("document", "passage", "corpus")  # encode_document's lookup order


@dataclass(frozen=True)
class BiEncoderSettings:
    """What identifies a bi-encoder student beyond its weights; None = keep the model's own.

    Attributes:
        pooling: ``"mean"`` or ``"cls"``.
        similarity: ``"dot"`` or ``"cosine"``.
        query_prefix: text prepended to every query (``prompts["query"]``).
        passage_prefix: text prepended to every passage (``prompts["document"]``).
        query_max_length: token limit of queries.
        passage_max_length: token limit of passages.
    """

    pooling: str | None = None
    similarity: str | None = None
    query_prefix: str | None = None
    passage_prefix: str | None = None
    query_max_length: int | None = None
    passage_max_length: int | None = None

    def __post_init__(self) -> None:
        if self.pooling is not None and self.pooling not in POOLING_MODES:
            raise RKDError(f"pooling must be one of {POOLING_MODES}, got {self.pooling!r}")
        if self.similarity is not None and self.similarity not in SIMILARITIES:
            raise RKDError(f"similarity must be one of {SIMILARITIES}, got {self.similarity!r}")
        for name in ("query_max_length", "passage_max_length"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise RKDError(f"{name} must be a positive integer, got {value!r}")
            if value is not None and value < 1:
                raise RKDError(f"{name} must be a positive integer, got {value!r}")

    def mismatches(self, saved: BiEncoderSettings) -> list[str]:
        """``"name: saved X, asked Y"`` for every setting given here that differs from ``saved``."""
        out = []
        for field in fields(self):
            asked, have = getattr(self, field.name), getattr(saved, field.name)
            if asked is not None and asked != have:
                out.append(f"{field.name}: saved {have!r}, asked {asked!r}")
        return out


def _pooling_index(model: Any) -> int:
    from sentence_transformers.sentence_transformer.modules import Pooling

    for index, module in enumerate(model):
        if isinstance(module, Pooling):
            return index
    raise RKDError("the sentence-transformers model has no Pooling module: not a bi-encoder")


def _drop_unused_pooler(transformer: Any) -> bool:
    """Remove a BERT-style pooler head, never used for embeddings; True when the model has none.

    Unused parameters would stall DistributedDataParallel and waste optimizer state. True means
    a saved folder must tell ``from_pretrained`` not to add one (``add_pooling_layer=False``).
    """
    auto_model = transformer.auto_model
    if not hasattr(auto_model, "pooler"):
        return False
    if auto_model.pooler is None:
        return True
    if "add_pooling_layer" not in inspect.signature(type(auto_model).__init__).parameters:
        return False
    auto_model.pooler = None
    return True


class BiEncoderStudent:
    """A sentence-transformers bi-encoder that the trainer optimises (``TrainableStudent``).

    Args:
        model: hub id, registered short name or local folder (resolved offline through
            ``retrieval_kd.models.resolve_model``), or a ``SentenceTransformer`` instance.
        pooling, similarity, query_prefix, passage_prefix, query_max_length,
        passage_max_length: see :class:`BiEncoderSettings`; None keeps what the model has
            (a folder saved by this class: its ``rkd_student.json``).
        device: torch device for the model (None: sentence-transformers' default).

    Raises:
        InputError: the folder's ``rkd_student.json`` contradicts a setting given here.
        RKDError: bad settings, or a model without a Pooling module.
    """

    def __init__(
        self,
        model: str | Path | Any,
        *,
        pooling: str | None = None,
        similarity: str | None = None,
        query_prefix: str | None = None,
        passage_prefix: str | None = None,
        query_max_length: int | None = None,
        passage_max_length: int | None = None,
        device: str | None = None,
    ) -> None:
        from sentence_transformers import SentenceTransformer

        asked = BiEncoderSettings(
            pooling, similarity, query_prefix, passage_prefix, query_max_length, passage_max_length
        )
        self.base_model: dict[str, Any]
        saved: dict[str, Any] | None = None
        if isinstance(model, SentenceTransformer):
            st = model
            self.base_model = {"spec": "<in-memory SentenceTransformer>"}
        else:
            path, self.base_model = _resolve(str(model))
            saved = read_saved_settings(path)
            if saved is not None:
                problems = asked.mismatches(BiEncoderSettings(**saved["settings"]))
                if problems:
                    raise InputError(
                        "the saved student's settings do not match the config: "
                        + "; ".join(problems),
                        path / SETTINGS_FILE,
                    )
                self.base_model = saved.get("base_model", self.base_model)
            st = SentenceTransformer(str(path), device=device)
        self.model = st
        self.pooler_removed = _drop_unused_pooler(st[0])
        self._apply(asked)

    # -- settings ---------------------------------------------------------------------------
    def _apply(self, asked: BiEncoderSettings) -> None:
        from sentence_transformers.sentence_transformer.modules import Normalize, Pooling

        st = self.model
        index = _pooling_index(st)
        pooling = st[index]
        if asked.pooling is not None and pooling.pooling_mode != asked.pooling:
            st[index] = Pooling(
                pooling.get_embedding_dimension(), asked.pooling, include_prompt=True
            ).to(st.device)
        mode = st[index].pooling_mode
        if mode not in POOLING_MODES:
            raise RKDError(f"unsupported pooling {mode!r} in the model; set pooling: mean or cls")
        normalised = any(isinstance(m, Normalize) for m in st)
        similarity = asked.similarity or ("cosine" if normalised else st.similarity_fn_name)
        if similarity not in SIMILARITIES:
            similarity = "dot"
        if similarity == "cosine" and not normalised:
            st.append(Normalize())
        if similarity == "dot" and normalised:
            for index in reversed(range(len(st))):
                if isinstance(st[index], Normalize):
                    del st[index]
        st.similarity_fn_name = similarity

        prompts = dict(st.prompts or {})
        if asked.query_prefix is not None:
            prompts[QUERY_PROMPT] = asked.query_prefix
        if asked.passage_prefix is not None:
            for name in _DOCUMENT_PROMPT_NAMES:
                prompts.pop(name, None)
            prompts[DOCUMENT_PROMPT] = asked.passage_prefix
        st.prompts = {k: v for k, v in prompts.items() if v}
        st.default_prompt_name = None

        transformer = st[0]
        if asked.query_max_length is not None:
            transformer.query_length = asked.query_max_length
        if asked.passage_max_length is not None:
            transformer.document_length = asked.passage_max_length
            st.max_seq_length = asked.passage_max_length

    @property
    def settings(self) -> BiEncoderSettings:
        """The settings in force (every field concrete)."""
        st = self.model
        transformer = st[0]
        prompts = st.prompts
        passage_prefix = next((prompts[n] for n in _DOCUMENT_PROMPT_NAMES if n in prompts), "")
        return BiEncoderSettings(
            pooling=st[_pooling_index(st)].pooling_mode,
            similarity=st.similarity_fn_name,
            query_prefix=st.prompts.get(QUERY_PROMPT, ""),
            passage_prefix=passage_prefix,
            query_max_length=transformer.query_length or st.max_seq_length,
            passage_max_length=transformer.document_length or st.max_seq_length,
        )

    # -- encoding ---------------------------------------------------------------------------
    def _encode(self, texts: list[str], task: str) -> torch.Tensor:
        st = self.model
        if not texts:
            return torch.zeros(0, st.get_embedding_dimension() or 0, device=st.device)
        prompt_name = QUERY_PROMPT if task == "query" else DOCUMENT_PROMPT
        prompt = st.prompts.get(prompt_name) or None
        features = st.preprocess(list(texts), prompt=prompt, task=task)
        features = {
            k: v.to(st.device) if isinstance(v, torch.Tensor) else v for k, v in features.items()
        }
        return st(features, task=task)["sentence_embedding"]

    def encode_queries(self, texts: list[str]) -> torch.Tensor:
        """Query vectors, differentiable when grad is enabled (as ``encode_query`` computes them).

        Shapes:
            texts: Q strings -> Tensor[Q, D] (unit length for cosine).
        """
        return self._encode(texts, "query")

    def encode_passages(self, texts: list[str]) -> torch.Tensor:
        """Passage vectors, differentiable when grad is enabled (as ``encode_document``).

        Shapes:
            texts: P strings -> Tensor[P, D] (unit length for cosine).
        """
        return self._encode(texts, "document")

    @staticmethod
    def similarity(queries: torch.Tensor, passages: torch.Tensor) -> torch.Tensor:
        """Dot products (cosine for unit vectors). Shapes: [Q, D] x [P, D] -> [Q, P]."""
        return queries @ passages.transpose(0, 1)

    # -- TrainableStudent -------------------------------------------------------------------
    def score_groups(self, queries: list[str], passages: list[list[str]]) -> torch.Tensor:
        """Differentiable scores of each query against its own passages.

        Shapes:
            queries: B strings; passages: B lists of K strings. returns: Tensor[B, K].
        """
        if len(queries) != len(passages):
            raise InputError(f"{len(queries)} queries but {len(passages)} passage groups")
        sizes = {len(group) for group in passages}
        if len(sizes) > 1:
            raise InputError(f"every group needs the same number of passages, got {sorted(sizes)}")
        k = sizes.pop() if sizes else 0
        q = self.encode_queries(queries)
        p = self.encode_passages([text for group in passages for text in group])
        return (q.unsqueeze(1) * p.view(len(queries), k, -1)).sum(-1)

    def score_all(
        self, queries: list[str], passages: list[str], gather: bool = False
    ) -> torch.Tensor:
        """Differentiable scores of every query against every passage.

        ``gather``: score against every process's passages (rank order, gradients kept;
        :mod:`retrieval_kd.training.distributed`), W = the number of processes.

        Shapes:
            queries: B strings; passages: N strings. returns: Tensor[B, N] (gather: [B, W*N]).
        """
        p = self.encode_passages(passages)
        if gather:
            from retrieval_kd.training.distributed import gather_vectors

            p = gather_vectors(p)
        return self.similarity(self.encode_queries(queries), p)

    def save(self, folder: str | Path) -> None:
        """Write a plain sentence-transformers folder plus ``rkd_student.json``."""
        folder = Path(folder)
        save_with_card(self.model, folder, hub_id_of(self.describe()))
        if self.pooler_removed:  # reload without the pooler head the student does not have
            config_path = folder / "sentence_bert_config.json"
            config = json.loads(config_path.read_text(encoding="utf-8"))
            config.setdefault("model_kwargs", {})["add_pooling_layer"] = False
            config_path.write_text(json.dumps(config, indent=4) + "\n", encoding="utf-8")
        record = {"kind": "bi-encoder", "format_version": FORMAT_VERSION, **self.describe()}
        (folder / SETTINGS_FILE).write_text(
            json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8"
        )

    def describe(self) -> dict[str, Any]:
        """What identifies the student: base model, pooling, similarity, prefixes, lengths."""
        return {
            "kind": "bi-encoder",
            "base_model": self.base_model,
            "settings": asdict(self.settings),
            "embedding_dim": self.model.get_embedding_dimension(),
        }


def read_saved_settings(folder: str | Path) -> dict[str, Any] | None:
    """``rkd_student.json`` of a saved student folder, or None when the folder has none.

    Raises:
        InputError: the file is unreadable or not a bi-encoder's.
    """
    path = Path(folder) / SETTINGS_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise InputError(f"corrupt student settings: {err.msg}", path, err.lineno) from None
    if record.get("kind") != "bi-encoder" or not isinstance(record.get("settings"), dict):
        raise InputError(f"not a bi-encoder student (kind {record.get('kind')!r})", path)
    known = {f.name for f in fields(BiEncoderSettings)}
    record["settings"] = {k: v for k, v in record["settings"].items() if k in known}
    return record


def _resolve(spec: str) -> tuple[Path, dict[str, Any]]:
    """A local folder for a model spec (hub id, short name or folder), and its identity."""
    from retrieval_kd.models import resolve_model

    resolved = resolve_model(spec)
    return Path(resolved.path), {k: str(v) for k, v in resolved.to_dict().items() if v is not None}
