"""A cross-encoder teacher: a sequence-classification model scoring (query, passage) jointly.

The standard teacher of Margin-MSE distillation (Hofstätter et al. 2020). Speed comes from
tokenising every pair once, sorting pairs by length so each batch pads only to its own longest
pair (dynamic padding), ``torch.inference_mode`` and half precision on GPU. Scores are the raw
logits (no sigmoid): higher = more relevant. A one-logit head's logit is the score; a two-class
head's score is ``logit[1] - logit[0]`` (the log-odds of "relevant", which its softmax ranks by);
a head with more labels must be told which logit to read (``label``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from retrieval_kd.interfaces import score_groups_by_pairs
from retrieval_kd.models import resolve_with_identity as resolve
from retrieval_kd.models.arithmetic import inference_dtype


class CrossEncoderTeacher:
    """Scores pairs with a sentence-transformers ``CrossEncoder`` / HF classification model.

    Args:
        model: hub id, short name or local folder.
        max_length: token limit of a (query, passage) pair (truncation ``longest_first``);
            None (default): the model's own, sentence-transformers' ``max_seq_length`` (the
            saved tokenizer's ``model_max_length``, capped at the model's position
            embeddings; a cross-encoder trained here saves its training length, so it scores
            pairs as long as those it learnt from), 512 where there is none.
        batch_size: pairs per forward pass.
        device: torch device (None: CUDA if available, else CPU).
        dtype: ``"auto"`` (bf16 where the device computes it natively: a bf16 GPU, a CPU with
            AVX512-BF16 / AMX; fp16 on other GPUs; fp32 elsewhere, the rule of
            :func:`retrieval_kd.models.arithmetic.inference_dtype`), or ``"float32"`` /
            ``"float16"`` / ``"bfloat16"``. ``scripts/bench_teacher.py`` prints the speed of
            each and their agreement with fp32. In a YAML / dict spec:
            ``{kind: cross-encoder, model: ..., dtype: float32}``.
        label: the logit to read as the score (index into the head's labels). None: the only
            logit of a one-logit head, ``logit[1] - logit[0]`` of a two-class head; a head with
            more labels needs it.

    Raises:
        RKDError: a head of more than two labels without ``label``, or ``label`` out of range.
    """

    def __init__(
        self,
        model: str,
        max_length: int | None = None,
        batch_size: int = 64,
        device: str | None = None,
        dtype: str = "auto",
        label: int | None = None,
    ):
        from sentence_transformers import CrossEncoder

        path, self.identity = resolve(model)
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.cross_encoder = CrossEncoder(path, device=device, max_length=max_length)
        self.model = self.cross_encoder.model.eval()
        self.tokenizer = self.cross_encoder.tokenizer
        self.max_length = self.cross_encoder.max_seq_length or 512  # max_length, if given, set it
        self.batch_size = batch_size
        self.device = torch.device(device)
        self.dtype = inference_dtype(dtype, self.device)
        self.model.to(self.device, self.dtype)
        self.label = label
        self._rule = _score_rule(int(self.model.config.num_labels), label)

    def score_pairs(self, pairs: list[tuple[str, str]]) -> np.ndarray:
        """Raw logits of ``pairs`` in input order.

        Shapes:
            pairs: N (query, passage) tuples -> float64 [N].
        """
        if not pairs:
            return np.zeros(0)
        encoded = self.tokenizer(
            [q for q, _ in pairs],
            [p for _, p in pairs],
            truncation="longest_first",
            max_length=self.max_length,
        )
        lengths = np.array([len(ids) for ids in encoded["input_ids"]])
        order = np.argsort(-lengths, kind="stable")  # longest first: OOM shows up at once
        scores = np.empty(len(pairs), dtype=np.float64)
        keys = list(encoded.keys())
        with torch.inference_mode():
            for start in range(0, len(pairs), self.batch_size):
                picked = order[start : start + self.batch_size]
                batch = self.tokenizer.pad(
                    {k: [encoded[k][i] for i in picked] for k in keys}, return_tensors="pt"
                )
                batch = {k: v.to(self.device) for k, v in batch.items()}
                logits = self.model(**batch).logits.float()
                read, minus = self._rule
                score = logits[:, read] if minus is None else logits[:, read] - logits[:, minus]
                scores[picked] = score.cpu().numpy()
        return scores

    def score(
        self,
        queries: list[str],
        passages: list[list[str]],
        *,
        query_ids: list[str] | None = None,
        doc_ids: list[list[str]] | None = None,
    ) -> list[np.ndarray]:
        """Shapes: Q queries, Q lists of K_i passages -> Q arrays [K_i] of raw logits."""
        return score_groups_by_pairs(self.score_pairs, queries, passages)

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "cross-encoder",
            **self.identity,
            "max_length": self.max_length,
            "dtype": str(self.dtype).replace("torch.", ""),
            "score_transform": "none (logit)",
            "score": _describe_rule(self._rule),
        }


def _score_rule(num_labels: int, label: int | None) -> tuple[int, int | None]:
    """Which logit is the score, and which one (if any) is subtracted from it.

    One logit: itself; two classes: ``logit[1] - logit[0]``; more: ``label`` must say.
    """
    from retrieval_kd.errors import RKDError

    if label is not None:
        if not 0 <= label < num_labels:
            raise RKDError(f"cross-encoder label {label} is out of range: the head has "
                           f"{num_labels} label(s)")  # fmt: skip
        return label, None
    if num_labels == 1:
        return 0, None
    if num_labels == 2:
        return 1, 0
    raise RKDError(
        f"the cross-encoder head has {num_labels} labels: say which logit is the relevance "
        "score, e.g. {kind: cross-encoder, model: ..., label: 2}"
    )


def _describe_rule(rule: tuple[int, int | None]) -> str:
    read, minus = rule
    return f"logit[{read}]" + ("" if minus is None else f" - logit[{minus}]")
