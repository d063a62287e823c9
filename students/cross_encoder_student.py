"""Cross-encoder student: a sequence-classification model that reads query and passage together.

The reranker that rerankers are distilled into: a small cross-encoder (e.g. MiniLM-L6 with a fresh
one-logit head) learns from a bigger teacher's scores, as in Hofstätter et al. (2020),
"Improving Efficient Neural Ranking Models with Cross-Architecture Knowledge Distillation"
(Margin-MSE), and Nogueira & Cho (2019), "Passage Re-ranking with BERT" for the architecture
(``[CLS] q [SEP] p [SEP]`` -> linear head on the pooled output -> one logit).

The model is a ``sentence_transformers.CrossEncoder`` (one label, identity activation) around a
Hugging Face ``*ForSequenceClassification`` model, so a saved student loads both with
``CrossEncoder(folder)`` (raw logits: the identity activation is saved with it) and with
``AutoModelForSequenceClassification.from_pretrained(folder)``. It is both a ``TrainableStudent``
and a ``Scorer``: a trained student can teach the next one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from retrieval_kd.errors import InputError
from retrieval_kd.interfaces import score_groups_by_pairs
from retrieval_kd.models import resolve_with_identity
from retrieval_kd.models.model_card import hub_id_of, save_with_card
from students.base import group_size


class CrossEncoderStudent:
    """A trainable one-logit cross-encoder: ``TrainableStudent`` and ``Scorer``.

    From a backbone (a plain HF BERT/MiniLM folder or a bi-encoder ST folder) it adds a fresh
    classification head with one label; from a one-label cross-encoder it keeps the head.

    Args:
        model: hub id, short name or local folder (resolved by ``retrieval_kd.models``), or a
            ``sentence_transformers.CrossEncoder`` to wrap.
        max_length: token limit of a (query, passage) pair, truncating the longest side first
            (None: the model's own).
        batch_size: pairs per forward pass in ``score``.
        device: torch device (None: CUDA if available).

    Attributes:
        model: the ``CrossEncoder`` (an ``nn.Module`` holding every parameter).
        hf_model: the Hugging Face ``*ForSequenceClassification`` inside it.

    Example:
        >>> student = CrossEncoderStudent("minilm-l6")  # doctest: +SKIP
        >>> student.score_groups(["solar power"], [["sun cells", "pasta"]]).shape  # doctest: +SKIP
        torch.Size([1, 2])
    """

    def __init__(
        self,
        model: str | Path | Any,
        *,
        max_length: int | None = None,
        batch_size: int = 64,
        device: str | None = None,
    ):
        from sentence_transformers import CrossEncoder

        self.batch_size = batch_size
        if isinstance(model, CrossEncoder):
            self.model = model
            self.identity: dict[str, Any] = {"model": "<in-memory CrossEncoder>"}
            if model.num_labels != 1:
                raise InputError(f"a cross-encoder student needs 1 label, got {model.num_labels}")
            model.activation_fn = torch.nn.Identity()
            if max_length is not None:
                model.max_seq_length = max_length
        else:
            path, self.identity = resolve_with_identity(model)
            self.model = CrossEncoder(
                path,
                num_labels=1,
                max_length=max_length,
                activation_fn=torch.nn.Identity(),
                device=device,
                local_files_only=True,
            )

    @property
    def hf_model(self) -> torch.nn.Module:
        """The Hugging Face sequence-classification model."""
        return self.model.model

    @property
    def max_length(self) -> int | None:
        """Token limit of a pair."""
        return self.model.max_seq_length

    def describe(self) -> dict[str, Any]:
        """Settings that identify the student (for manifests)."""
        return {
            "kind": "cross-encoder",
            **self.identity,
            "architecture": type(self.hf_model).__name__,
            "num_labels": 1,
            "max_length": self.max_length,
            "score_transform": "none (logit)",
        }

    def score_groups(self, queries: list[str], passages: list[list[str]]) -> Tensor:
        """Logit of each (query, passage) pair, read jointly (differentiable).

        Shapes:
            queries: B strings; passages: B lists of K strings. returns: [B, K].
        """
        from sentence_transformers.util import batch_to_device

        k = group_size(queries, passages)
        pairs = [(q, p) for q, group in zip(queries, passages, strict=True) for p in group]
        features = batch_to_device(self.model.preprocess(pairs), self.model.device)
        logits = self.model(features)["scores"]
        return logits.reshape(len(queries), k)

    def score_all(self, queries: list[str], passages: list[str], gather: bool = False) -> Tensor:
        """Not offered: a cross-encoder would need a forward pass for each of the B x N pairs.

        Raises:
            NotImplementedError: always; train cross-encoders on groups (``score_groups``).
        """
        raise NotImplementedError(
            "a cross-encoder scores pairs jointly, so in-batch negatives cost B x N forward "
            "passes: train it on query groups (score_groups) instead"
        )

    def save(self, folder: str | Path) -> None:
        """Save so ``CrossEncoder(folder)`` (raw logits) and ``AutoModelFor...`` load it."""
        save_with_card(self.model, folder, hub_id_of(self.describe()))

    def score_pairs(
        self, pairs: list[tuple[str, str]], batch_size: int | None = None
    ) -> np.ndarray:
        """Raw logits of ``pairs`` in input order (inference mode, length-sorted batches).

        Shapes:
            pairs: N (query, passage) tuples -> float64 [N].
        """
        if not pairs:
            return np.zeros(0)
        was_training = self.model.training
        try:
            scores = self.model.predict(
                pairs,
                batch_size=batch_size or self.batch_size,
                activation_fn=torch.nn.Identity(),
                show_progress_bar=False,
                convert_to_numpy=True,
            )
        finally:
            self.model.train(was_training)
        return np.asarray(scores, dtype=np.float64)

    def score(
        self,
        queries: list[str],
        passages: list[list[str]],
        *,
        query_ids: list[str] | None = None,
        doc_ids: list[list[str]] | None = None,
    ) -> list[np.ndarray]:
        """Raw logits of each query's candidates (``Scorer``; ids are ignored).

        Shapes:
            queries: Q strings; passages: Q lists of K_i strings -> Q float64 arrays [K_i].
        """
        return score_groups_by_pairs(self.score_pairs, queries, passages)
