"""ColBERT student: late interaction (MaxSim) over token vectors, on sentence-transformers.

ColBERT (Khattab & Zaharia 2020, "ColBERT: Efficient and Effective Passage Search via
Contextualized Late Interaction over BERT", SIGIR) encodes query and passage into one vector per
token and scores ``sum_i max_j <q_i, d_j>``; ColBERTv2 (Santhanam et al. 2022, "ColBERTv2:
Effective and Efficient Retrieval via Lightweight Late Interaction", NAACL) trains it by
distillation from a cross-encoder, which is what this package does.

The model *is* a ``sentence_transformers.MultiVectorEncoder`` (ST >= 5.4), so a saved student
loads in plain sentence-transformers (``MultiVectorEncoder(folder)``) and in PyLate-style
tooling. What the installed MultiVectorEncoder already covers, read from its source
(``multi_vector_encoder/model.py``, ``modules/multi_vector_mask.py``,
``base/modules/transformer.py``, ``util/similarity.py``):

- **Linear projection**: a token-level ``Dense(hidden, 128, bias=False, Identity)`` on
  ``token_embeddings``; appended fresh (default init) when a plain HF or bi-encoder ST folder is
  loaded (``_load_default_modules`` / ``_load_converted_modules``, which also drops the pooling).
  Only 128-d is built that way, so for another width this module builds the Dense itself.
- **L2-normalised token vectors**: ``Normalize(module_input_name="token_embeddings")`` closes
  the pipeline.
- **Query augmentation** with ``[MASK]``: ``Transformer.query_expansion = {"strategy": "fixed",
  "length": Nq, "attend": False}`` pads every query to ``Nq`` tokens, swaps the pads for the
  mask token, keeps them out of the encoder's attention (classic ColBERT) and
  ``MultiVectorMask`` scores them. It is **off** when a plain backbone is loaded (only
  Stanford-NLP / PyLate checkpoints turn it on), so this module turns it on.
- **Punctuation skiplist** for passages: ``MultiVectorMask(skiplist_words=...)`` drops listed
  token ids from the *document* scoring mask; **empty** for plain backbones (ColBERT's
  ``string.punctuation`` is applied only to legacy checkpoints), so this module sets it.
- **Per-side lengths**: ``Transformer.query_length`` / ``document_length``.
- **MaxSim**: ``util.similarity.maxsim`` (all pairs) and ``scoring.colbert_kd_scores``
  (``[B, K]`` groups), chunked, float32 output, differentiable; used here as they are.
- **[Q]/[D] markers**: through the model's ``prompts`` (passed through; none by default: BERT's
  ``[unused0]``/``[unused1]`` would be split into pieces unless registered as special tokens).

What this module adds: the choice of ColBERT defaults for a fresh student (128-d, ``Nq = 32``
with ``[MASK]`` expansion, passages cut at 180 tokens as in the ColBERT paper, punctuation
skiplist), a projection of any width, the ``TrainableStudent`` methods (differentiable scores of
text groups), padded token matrices + masks for indexing, and the ``Scorer`` method so a trained
ColBERT can teach the next student.
"""

from __future__ import annotations

import logging
import string
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from retrieval_kd.errors import InputError, RKDError
from retrieval_kd.interfaces import check_groups
from retrieval_kd.models import resolve_with_identity
from retrieval_kd.models.model_card import hub_id_of, save_with_card
from students.base import group_size
from students.multi_vector import TokenEmbeddings, is_multi_vector_checkpoint

logger = logging.getLogger("retrieval_kd.students")

PUNCTUATION: tuple[str, ...] = tuple(string.punctuation)
DEFAULTS: dict[str, Any] = {
    "dim": 128,
    "query_length": 32,
    "document_length": 180,
    "query_expansion": True,
    "attend": False,
    "skiplist": PUNCTUATION,
}


class ColBERTStudent:
    """A trainable ColBERT (MaxSim) retriever: ``TrainableStudent``, ``Encoder`` and ``Scorer``.

    From a backbone (a plain HF BERT/MiniLM folder or a bi-encoder ST folder) it builds
    ``Transformer -> Dense(hidden, dim) -> MultiVectorMask -> Normalize`` with a fresh projection
    and ColBERT's defaults; from a multi-vector checkpoint it keeps the checkpoint's projection
    and settings. Settings left at None mean "the checkpoint's own, else ColBERT's default"
    (``DEFAULTS``); settings given override a checkpoint's.

    Args:
        model: hub id, short name or local folder (resolved by ``retrieval_kd.models``), or a
            ``MultiVectorEncoder`` to wrap.
        dim: projection width of a fresh student (must match a checkpoint's if given).
        query_length: query tokens ``Nq`` (the [MASK]-padded width when expansion is on).
        document_length: passage token limit.
        query_expansion: pad queries to ``query_length`` with ``[MASK]`` tokens (ColBERT's
            query augmentation).
        attend_to_expansion: let the encoder attend to the [MASK] tokens (False: classic
            ColBERT; True: PyLate's ``attend_to_expansion_tokens``).
        skiplist: tokens dropped from passage vectors (default: ``string.punctuation``).
        prompts: ``{"query": ..., "document": ...}`` texts prepended (e.g. ``[Q] ``/``[D] ``).
        batch_size: encoding batch size of ``encode_*`` and ``score``.
        device: torch device (None: CUDA if available).

    Example:
        >>> student = ColBERTStudent("sentence-transformers/all-MiniLM-L6-v2")  # doctest: +SKIP
        >>> student.score_groups(["solar power"], [["sun cells", "pasta"]]).shape  # doctest: +SKIP
        torch.Size([1, 2])
    """

    def __init__(
        self,
        model: str | Path | Any,
        *,
        dim: int | None = None,
        query_length: int | None = None,
        document_length: int | None = None,
        query_expansion: bool | None = None,
        attend_to_expansion: bool | None = None,
        skiplist: Sequence[str] | None = None,
        prompts: dict[str, str] | None = None,
        batch_size: int = 32,
        device: str | None = None,
    ):
        from sentence_transformers import MultiVectorEncoder

        self.batch_size = batch_size
        if isinstance(model, MultiVectorEncoder):
            self.model = model
            self.identity: dict[str, Any] = {"model": "<in-memory MultiVectorEncoder>"}
            fresh = False
        else:
            path, self.identity = resolve_with_identity(model)
            fresh = not is_multi_vector_checkpoint(path)
            loaded = MultiVectorEncoder(path, device=device, local_files_only=True)
            self.model = _rebuild(loaded, dim or DEFAULTS["dim"], prompts) if fresh else loaded
        if not fresh and dim is not None and dim != self.dim:
            raise RKDError(f"dim={dim} asked, but the checkpoint's projection is {self.dim}-d")
        if prompts is not None and not fresh:
            self.model.prompts.update(prompts)
        settings = {
            "query_length": query_length,
            "document_length": document_length,
            "query_expansion": query_expansion,
            "attend": attend_to_expansion,
            "skiplist": skiplist,
        }
        if fresh:
            settings = {k: DEFAULTS[k] if v is None else v for k, v in settings.items()}
        self._configure(**settings)
        self.fresh_projection = fresh

    # ----------------------------------------------------------------------------- settings
    @property
    def transformer(self) -> Any:
        """The ``Transformer`` module (holds lengths and query expansion)."""
        return self.model[0]

    @property
    def dim(self) -> int:
        """Width D of the token vectors."""
        return int(self.model.get_embedding_dimension())

    def _mask_module(self) -> Any:
        from sentence_transformers.multi_vector_encoder.modules import MultiVectorMask

        return next((m for m in self.model if isinstance(m, MultiVectorMask)), None)

    def _configure(
        self,
        query_length: int | None,
        document_length: int | None,
        query_expansion: bool | None,
        attend: bool | None,
        skiplist: Sequence[str] | None,
    ) -> None:
        """Apply the settings given (None: leave the model's own)."""
        t = self.transformer
        if document_length is not None:
            t.document_length = _fit(document_length, t.max_seq_length, "document_length")
        if any(v is not None for v in (query_length, query_expansion, attend)):
            current = t.query_expansion
            if query_expansion is None:
                query_expansion = current is not None
            if query_length is None:
                query_length = current["length"] if current else t.query_length
            if attend is None:
                attend = bool(current and current["attend"])
            if query_expansion and query_length is None:
                raise InputError("query_expansion needs a query_length (ColBERT uses 32)")
            if query_length is not None:
                query_length = _fit(query_length, t.max_seq_length, "query_length")
            t.query_expansion = None  # so a shorter query_length never clashes with the old one
            t.query_length = query_length
            if query_expansion:
                t.query_expansion = {"strategy": "fixed", "length": query_length, "attend": attend}
        if skiplist is not None:
            mask = self._mask_module()
            if mask is None:
                raise RKDError("this model has no MultiVectorMask module to hold a skiplist")
            mask.skiplist_words = list(skiplist)
            mask.resolve_with_tokenizer(self.model.tokenizer)

    def describe(self) -> dict[str, Any]:
        """Settings that identify the student (for manifests)."""
        t = self.transformer
        mask = self._mask_module()
        words = list(mask.skiplist_words) if mask is not None else []
        return {
            "kind": "colbert",
            **self.identity,
            "fresh_projection": self.fresh_projection,
            "dim": self.dim,
            "query_length": t.query_length,
            "document_length": t.document_length,
            "query_expansion": dict(t.query_expansion) if t.query_expansion else None,
            "skiplist": "punctuation" if tuple(words) == PUNCTUATION else words,
            "prompts": {k: v for k, v in self.model.prompts.items() if v},
            "similarity": self.model.similarity_fn_name,
        }

    # ------------------------------------------------------------------ differentiable path
    def _prompt(self, task: str) -> str | None:
        names = ("query",) if task == "query" else ("document", "passage", "corpus")
        return next((self.model.prompts[n] for n in names if self.model.prompts.get(n)), None)

    def embed(self, texts: list[str], task: str) -> tuple[Tensor, Tensor]:
        """Differentiable token vectors of one padded batch (what training runs).

        Args:
            texts: the texts.
            task: ``"query"`` (expansion, query length) or ``"document"`` (skiplist, length).

        Shapes:
            returns: vectors [N, T, D] (unit norm), mask [N, T] bool (True = scored token).
        """
        from sentence_transformers.util import batch_to_device

        features = self.model.preprocess(texts, prompt=self._prompt(task), task=task)
        features = batch_to_device(features, self.model.device)
        out = self.model(features, task=task)
        return out["token_embeddings"], out["attention_mask"].bool()

    def score_groups(self, queries: list[str], passages: list[list[str]]) -> Tensor:
        """MaxSim of each query against its own K passages (differentiable).

        ``s(q, d) = sum_i max_j <q_i, d_j>`` over the query's scored tokens i (expansion tokens
        included) and the passage's scored tokens j (Khattab & Zaharia 2020, eq. 3).

        Shapes:
            queries: B strings; passages: B lists of K strings. returns: [B, K] float32.
        """
        from sentence_transformers.multi_vector_encoder.scoring import colbert_kd_scores

        k = group_size(queries, passages)
        q, q_mask = self.embed(queries, "query")
        d, d_mask = self.embed([p for group in passages for p in group], "document")
        d = d.reshape(len(queries), k, *d.shape[1:])
        d_mask = d_mask.reshape(len(queries), k, -1)
        return colbert_kd_scores(q, d, queries_mask=q_mask, documents_mask=d_mask)

    def score_all(self, queries: list[str], passages: list[str], gather: bool = False) -> Tensor:
        """MaxSim of every query against every passage (in-batch negatives; differentiable).

        ``gather``: against every process's passages (token vectors padded to the longest
        process's length, gradients kept; :mod:`retrieval_kd.training.distributed`).

        Shapes:
            queries: B strings; passages: N strings. returns: [B, N] float32 (gather: [B, W*N]).
        """
        from sentence_transformers.util.similarity import maxsim

        q, q_mask = self.embed(queries, "query")
        d, d_mask = self.embed(passages, "document")
        if gather:
            from retrieval_kd.training.distributed import gather_tokens

            d, d_mask = gather_tokens(d, d_mask)
        return maxsim(q, d, a_mask=q_mask, b_mask=d_mask)

    def save(self, folder: str | Path) -> None:
        """Save as a sentence-transformers folder that ``MultiVectorEncoder(folder)`` loads."""
        save_with_card(self.model, folder, hub_id_of(self.describe()))

    # ------------------------------------------------------------------ inference (Encoder)
    def _encode(self, texts: list[str], task: str, batch_size: int | None) -> list[Tensor]:
        was_training = self.model.training
        try:
            return self.model.encode(
                texts,
                prompt=self._prompt(task),
                task=task,
                batch_size=batch_size or self.batch_size,
                show_progress_bar=False,
            )
        finally:
            self.model.train(was_training)

    def encode_queries(self, texts: list[str], batch_size: int | None = None) -> TokenEmbeddings:
        """Token vectors of queries (inference mode, length-sorted batches).

        Shapes:
            texts: Q strings -> vectors [Q, Nq, D], mask [Q, Nq] (all True with expansion).
        """
        return TokenEmbeddings.pad(self._encode(texts, "query", batch_size))

    def encode_passages(self, texts: list[str], batch_size: int | None = None) -> TokenEmbeddings:
        """Token vectors of passages, skiplisted tokens left out (what an index stores).

        Shapes:
            texts: P strings -> vectors [P, T, D], mask [P, T]; ``unpad()`` gives [n_i, D] each.
        """
        return TokenEmbeddings.pad(self._encode(texts, "document", batch_size))

    def similarity(self, queries: TokenEmbeddings, passages: TokenEmbeddings) -> Tensor:
        """MaxSim of every encoded query against every encoded passage.

        Shapes:
            queries: Q texts; passages: P texts. returns: [Q, P] float32.
        """
        from sentence_transformers.util.similarity import maxsim

        return maxsim(queries.vectors, passages.vectors, a_mask=queries.mask, b_mask=passages.mask)

    # -------------------------------------------------------------------- Scorer protocol
    def score(
        self,
        queries: list[str],
        passages: list[list[str]],
        *,
        query_ids: list[str] | None = None,
        doc_ids: list[list[str]] | None = None,
    ) -> list[np.ndarray]:
        """Raw MaxSim scores of each query's candidates (no normalisation).

        Each distinct passage text is encoded once per call, however many queries list it.

        Shapes:
            queries: Q strings; passages: Q lists of K_i strings -> Q float64 arrays [K_i].
        """
        from sentence_transformers.util.similarity import maxsim

        check_groups(queries, passages)
        unique = list(dict.fromkeys(p for group in passages for p in group))
        position = {text: i for i, text in enumerate(unique)}
        docs = self._encode(unique, "document", None) if unique else []
        query_vectors = self._encode(queries, "query", None) if queries else []
        out = []
        for q, group in zip(query_vectors, passages, strict=True):
            if not group:
                out.append(np.zeros(0))
                continue
            row = maxsim([q], [docs[position[p]] for p in group])[0]
            out.append(row.double().cpu().numpy())
        return out


def _rebuild(loaded: Any, dim: int, prompts: dict[str, str] | None) -> Any:
    """The ColBERT pipeline on ``loaded``'s backbone with a fresh ``dim``-d projection.

    Shapes:
        Dense: [hidden] -> [dim] per token, no bias, no activation (Khattab & Zaharia 2020).
    """
    from sentence_transformers import MultiVectorEncoder
    from sentence_transformers.base.modules import Dense, Normalize, Transformer
    from sentence_transformers.multi_vector_encoder.modules import MultiVectorMask

    backbone = [m for m in loaded if not isinstance(m, (Dense, MultiVectorMask, Normalize))]
    if not backbone or not isinstance(backbone[0], Transformer):
        raise RKDError("cannot build a ColBERT student: the model has no Transformer module")
    hidden = backbone[0].get_embedding_dimension()
    projection = Dense(
        in_features=hidden,
        out_features=dim,
        bias=False,
        activation_function=torch.nn.Identity(),
        module_input_name="token_embeddings",
    )
    modules = [*backbone, projection, MultiVectorMask(), Normalize("token_embeddings")]
    return MultiVectorEncoder(
        modules=modules,
        device=str(loaded.device),
        prompts=prompts,
        similarity_fn_name="maxsim",
    )


def _fit(length: int, limit: int | None, name: str) -> int:
    if limit is not None and length > limit:
        logger.warning("%s=%d cut to the model's max_seq_length %d", name, length, limit)
        return limit
    return length
