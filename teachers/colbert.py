"""A ColBERT teacher: MaxSim over the token vectors of a trained late-interaction model.

ColBERT's score (Khattab & Zaharia 2020) ``s(q, d) = sum_i max_j <q_i, d_j>`` as the teacher of
a smaller student: the TCT-ColBERT recipe (Lin, Yang & Lin 2021, "In-Batch Negatives for
Knowledge Distillation with Tightly-Coupled Teachers for Dense Retrieval") distils a ColBERT
into a bi-encoder. Any sentence-transformers ``MultiVectorEncoder`` checkpoint works (native
saves, PyLate, Stanford-NLP ColBERT such as ``colbert-ir/colbertv2.0``), including a ColBERT
student trained by this package. Encoding and scoring are the ColBERT student's own
(``students.colbert.ColBERTStudent``); this class adds the checks and the manifest record.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from retrieval_kd.errors import RKDError
from retrieval_kd.models import resolve_with_identity as resolve
from retrieval_kd.models.arithmetic import inference_dtype
from students.colbert import ColBERTStudent
from students.multi_vector import is_multi_vector_checkpoint


class ColBERTTeacher:
    """Scores candidates with raw MaxSim (no normalisation beyond ColBERT's unit token vectors).

    Each distinct passage of a ``score`` call is encoded once, whatever number of queries list it.

    Args:
        model: hub id, short name or local folder of a trained multi-vector model.
        batch_size: encoding batch size.
        query_length: query tokens (None: the checkpoint's own).
        document_length: passage token limit (None: the checkpoint's own).
        device: torch device (None: CUDA if available).
        dtype: ``"auto"`` (bf16 where the device computes it natively, fp16 on other GPUs, fp32
            elsewhere: :func:`retrieval_kd.models.arithmetic.inference_dtype`) or
            ``"float32"`` / ``"float16"`` / ``"bfloat16"``; MaxSim is accumulated in float32
            either way.

    Raises:
        RKDError: the folder is a backbone, not a trained late-interaction model (its projection
            would be random).
    """

    def __init__(
        self,
        model: str,
        batch_size: int = 32,
        query_length: int | None = None,
        document_length: int | None = None,
        device: str | None = None,
        dtype: str = "auto",
    ):
        path, self.identity = resolve(model)
        if not is_multi_vector_checkpoint(path):
            raise RKDError(
                f"{model!r} is not a late-interaction (ColBERT / MultiVectorEncoder) checkpoint: "
                "its token projection would be random. Train a ColBERT student first "
                "(students.colbert.ColBERTStudent) and pass its saved folder, or use a "
                "bi-encoder teacher for this model."
            )
        from sentence_transformers import MultiVectorEncoder

        encoder = MultiVectorEncoder(path, device=device, local_files_only=True).eval()
        self.student = ColBERTStudent(
            encoder,
            query_length=query_length,
            document_length=document_length,
            batch_size=batch_size,
        )
        self.dtype = inference_dtype(dtype, encoder.device)
        encoder.to(self.dtype)

    def score(
        self,
        queries: list[str],
        passages: list[list[str]],
        *,
        query_ids: list[str] | None = None,
        doc_ids: list[list[str]] | None = None,
    ) -> list[np.ndarray]:
        """Raw MaxSim scores; ids are ignored.

        Shapes:
            queries: Q strings; passages: Q lists of K_i strings -> Q float64 arrays [K_i].
        """
        return self.student.score(queries, passages)

    def describe(self) -> dict[str, Any]:
        settings = self.student.describe()
        keep = ("dim", "query_length", "document_length", "query_expansion", "skiplist", "prompts")
        return {
            "kind": "colbert",
            **self.identity,
            **{key: settings[key] for key in keep},
            "similarity": "maxsim",
            "dtype": str(self.dtype).replace("torch.", ""),
            "score_transform": "none (MaxSim)",
        }
