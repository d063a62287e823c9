"""A sentence-transformers bi-encoder as teacher: dot or cosine of query and passage vectors.

Useful as a teacher for smaller students (TCT-ColBERT-style, Lin et al. 2021, "In-Batch
Negatives for Knowledge Distillation with Tightly-Coupled Teachers for Dense Retrieval") and
as an ensemble member next to BM25.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np
import torch

from retrieval_kd.errors import RKDError
from retrieval_kd.models import resolve_with_identity as resolve


class BiEncoderTeacher:
    """Scores ``sim(encode(query), encode(passage))`` with a SentenceTransformer.

    Each distinct passage text is encoded once, however many queries list it: vectors are
    kept in a cache of up to ``cache_size`` passages across calls (candidate lists of different
    queries overlap heavily: SciFact's 30,000 BM25 top-100 pairs hold about 5,000 documents).

    Args:
        model: hub id, short name or local folder of a sentence-transformers model.
        similarity: ``"cosine"`` or ``"dot"``.
        batch_size: encoding batch size.
        max_length: token limit for both sides (None: the model's own).
        device: torch device (None: CUDA if available).
        cache_size: passages whose vectors are kept between calls (0: no cache).
        precision: ``"auto"`` (bf16 where the device computes it natively, fp16 on other GPUs,
            fp32 elsewhere: :func:`retrieval_kd.models.arithmetic.inference_dtype`) or
            ``"fp32"`` / ``"bf16"`` / ``"fp16"``; part of :meth:`describe`, so a store never
            mixes two arithmetics.
    """

    def __init__(
        self,
        model: str,
        similarity: str = "cosine",
        batch_size: int = 64,
        max_length: int | None = None,
        device: str | None = None,
        cache_size: int = 200_000,
        precision: str = "auto",
    ):
        from sentence_transformers import SentenceTransformer

        from retrieval_kd.models.arithmetic import inference_dtype

        if similarity not in ("cosine", "dot"):
            raise RKDError(f"similarity must be 'cosine' or 'dot', got {similarity!r}")
        path, self.identity = resolve(model)
        self.encoder = SentenceTransformer(path, device=device)
        if max_length is not None:
            self.encoder.max_seq_length = max_length
        dtype = inference_dtype(precision, self.encoder.device)
        if dtype != torch.float32:
            self.encoder.to(dtype)
        self.similarity = similarity
        self.batch_size = batch_size
        self.cache_size = cache_size
        self._cache: OrderedDict[str, torch.Tensor] = OrderedDict()

    def _encode(self, texts: list[str], query: bool) -> torch.Tensor:
        encode = self.encoder.encode_query if query else self.encoder.encode_document
        vectors = encode(
            texts,
            batch_size=self.batch_size,
            convert_to_tensor=True,
            normalize_embeddings=self.similarity == "cosine",
            show_progress_bar=False,
        )
        return vectors.float()

    def _passage_vectors(self, texts: list[str]) -> torch.Tensor:
        """Vectors of distinct ``texts`` [P, D], encoding only those not cached."""
        missing = [t for t in texts if t not in self._cache]
        if missing:
            fresh = self._encode(missing, query=False)
            for text, vector in zip(missing, fresh, strict=True):
                self._cache[text] = vector
        vectors = torch.stack([self._cache[t] for t in texts])
        for text in texts:
            self._cache.move_to_end(text)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return vectors

    def score(
        self,
        queries: list[str],
        passages: list[list[str]],
        *,
        query_ids: list[str] | None = None,
        doc_ids: list[list[str]] | None = None,
    ) -> list[np.ndarray]:
        """Shapes: Q queries, Q lists of K_i passages -> Q arrays [K_i]."""
        unique = list(dict.fromkeys(text for group in passages for text in group))
        position = {text: i for i, text in enumerate(unique)}
        with torch.inference_mode():
            query_vectors = self._encode(list(queries), query=True)
            passage_vectors = self._passage_vectors(unique) if unique else None
            out = []
            for row, group in enumerate(passages):
                if not group:
                    out.append(np.zeros(0))
                    continue
                rows = torch.tensor([position[text] for text in group], device=query_vectors.device)
                sims = passage_vectors[rows] @ query_vectors[row]
                out.append(sims.double().cpu().numpy())
        return out

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "bi-encoder",
            **self.identity,
            "similarity": self.similarity,
            "max_length": self.encoder.max_seq_length,
            # the arithmetic is part of the identity, so a store never mixes two of them
            "dtype": str(next(self.encoder.parameters()).dtype).replace("torch.", ""),
            "score_transform": "none",
        }
