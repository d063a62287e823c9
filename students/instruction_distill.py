"""Instruction distillation: a pointwise student learns from pairwise (or listwise) LLM targets.

Sun, Yan, Chen, Wang, Zhu, Ren, Chen, Yin, Ren (2023), "Instruction Distillation Makes Large
Language Models Efficient Zero-shot Rankers", arXiv:2311.01555: the ranking an LLM gives under
an expensive pairwise instruction is distilled, with RankNet, into the same LLM under a cheap
pointwise instruction (one forward pass per passage instead of two per pair).

- :class:`PointwiseLLMStudent`: a causal LM scored by its relevance logit ``log P(yes) −
  log P(no)`` under a pointwise yes/no prompt (the prompts of :mod:`retrieval_kd.llm.prompts`),
  differentiable, with only the last ``trainable_layers`` decoder blocks trained by default;
  it is a ``TrainableStudent`` and a ``Scorer``.
- :func:`distill_preferences`: a minimal loop that trains ANY ``TrainableStudent`` (this one,
  ``BiEncoderStudent``, ``CrossEncoderStudent``) on stored preference records through the
  project's losses: ``ranknet_from_pairs`` on pairwise probabilities, or ``listmle`` / ``cprd`` /
  ``kl`` on an order (the teacher's ranking, or the Bradley-Terry order of pairwise targets).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from retrieval_kd.errors import InputError, RKDError
from retrieval_kd.interfaces import check_groups, split_groups
from retrieval_kd.llm.loading import LoadedLM, load_causal_lm
from retrieval_kd.llm.prompts import (
    DEFAULT_YES_NO_TEMPLATE,
    NO_VARIANTS,
    YES_VARIANTS,
    answer_token_ids,
    build_frame,
    encode_prompt,
)
from retrieval_kd.llm.readout import Readout, left_pad, positions
from retrieval_kd.losses import get_loss, ranknet_from_pairs
from retrieval_kd.losses.preference import bradley_terry, pairwise_targets, ranking_targets

PREFERENCE_LOSSES = ("ranknet_pairs", "listmle", "cprd", "kl")


class PointwiseLLMStudent:
    """A causal LM as a pointwise reranker: score = ``logsumexp ℓ_yes − logsumexp ℓ_no``.

    Args:
        model: hub id, short name, local folder, ``.gguf`` file, or a loaded ``LoadedLM``
            (its weights are then trained in place).
        template: pointwise prompt with ``{query}`` and ``{passage}``.
        max_length: prompt token limit (the passage is cut).
        trainable_layers: train only the last N decoder blocks and the final norm (None: all).
        batch_size: prompts per forward pass in :meth:`score`.
        device, dtype, chat: as for the pointwise teacher.
    """

    def __init__(
        self,
        model: str | LoadedLM,
        *,
        template: str = DEFAULT_YES_NO_TEMPLATE,
        max_length: int = 256,
        trainable_layers: int | None = 2,
        batch_size: int = 8,
        device: str | None = None,
        dtype: Any = "float32",
        chat: bool | None = None,
    ):
        self.lm = model if isinstance(model, LoadedLM) else load_causal_lm(
            model, device=device, dtype=dtype
        )  # fmt: skip
        self.model = self.lm.model
        self.tokenizer = self.lm.tokenizer
        self.template, self.max_length = template, max_length
        self.frame = build_frame(template, "yes_no", self.tokenizer, chat)
        self.yes_ids = answer_token_ids(self.tokenizer, YES_VARIANTS)
        self.no_ids = answer_token_ids(self.tokenizer, NO_VARIANTS)
        self.trainable_layers = trainable_layers
        self._readout = Readout(self.lm, batch_size)
        layers = getattr(getattr(self.model, "model", None), "layers", None)
        if trainable_layers is not None and layers is not None:
            for param in self.model.parameters():
                param.requires_grad_(False)
            trained = list(layers[len(layers) - trainable_layers :])
            trained.append(getattr(self.model.model, "norm", torch.nn.Identity()))
            for module in trained:
                for param in module.parameters():
                    param.requires_grad_(True)

    def _prompts(
        self, queries: Sequence[str], passages: Sequence[Sequence[str]]
    ) -> list[list[int]]:
        return [
            encode_prompt(self.frame, self.tokenizer, q, p, self.max_length).input_ids
            for q, group in zip(queries, passages, strict=True)
            for p in group
        ]

    def score_groups(self, queries: list[str], passages: list[list[str]]) -> torch.Tensor:
        """Differentiable relevance logits of each query's group (one forward for all pairs).

        Shapes:
            queries: B strings; passages: B lists of K strings -> Tensor[B, K].
        """
        widths = {len(g) for g in passages}
        if len(widths) > 1 or len(queries) != len(passages):
            raise InputError("score_groups needs B queries and B groups of the same size K")
        prompts = self._prompts(queries, passages)
        device = torch.device(self.lm.device)
        ids, mask = left_pad(prompts, self._readout.pad_id)
        out = self.model(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            position_ids=positions(mask).to(device),
            use_cache=False,
            logits_to_keep=1,
        ).logits[:, -1]
        out = out.float()
        score = torch.logsumexp(out[:, self.yes_ids], -1) - torch.logsumexp(out[:, self.no_ids], -1)
        return score.view(len(queries), widths.pop() if widths else 0)

    def score_all(
        self, queries: list[str], passages: list[str], gather: bool = False
    ) -> torch.Tensor:
        raise NotImplementedError("an LLM pointwise student scores groups, not cross products")

    def score(
        self,
        queries: list[str],
        passages: list[list[str]],
        *,
        query_ids: list[str] | None = None,
        doc_ids: list[list[str]] | None = None,
    ) -> list[np.ndarray]:
        """The ``Scorer`` protocol: relevance logits, no gradient, batched by length.

        Shapes:
            queries: Q strings; passages: Q lists of K_i strings -> Q float32 arrays [K_i].
        """
        check_groups(queries, passages)
        self.model.eval()
        logits = self._readout(self._prompts(queries, passages), [self.yes_ids, self.no_ids])
        flat = (logits[:, 0] - logits[:, 1]).astype(np.float32)
        return split_groups(flat, passages)

    def save(self, folder: str | Path) -> None:
        """A plain transformers folder plus ``rkd_student.json`` (prompt and answer tokens)."""
        folder = Path(folder)
        self.model.save_pretrained(folder)
        self.tokenizer.save_pretrained(folder)
        (folder / "rkd_student.json").write_text(json.dumps(self.describe(), indent=2, default=str))

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "llm-pointwise-student",
            "base": self.lm.identity,
            "prompt": self.frame.text(),
            "yes_token_ids": self.yes_ids,
            "no_token_ids": self.no_ids,
            "max_length": self.max_length,
            "trainable_layers": self.trainable_layers,
            "score": "logsumexp(logits[yes ids]) - logsumexp(logits[no ids])",
        }


def _batch_targets(records: Sequence[Any], loss: str) -> tuple[list[list[str]], Any]:
    """Columns (doc ids per row) and the loss inputs for a batch of records."""
    if loss == "ranknet_pairs":
        targets = pairwise_targets(records)
        return targets.doc_ids, targets
    orders = []
    for record in records:
        pairs = np.asarray(record.pairs).reshape(-1, 2)
        if len(pairs):  # a pairwise record: its Bradley-Terry order over the compared docs
            seen = sorted(set(pairs.reshape(-1).tolist()))
            theta = bradley_terry(len(record.doc_ids), pairs, record.probs)
            orders.append([record.doc_ids[i] for i in sorted(seen, key=lambda i: -theta[i])])
        else:
            orders.append(list(record.doc_ids))
    targets = ranking_targets(orders)
    return targets.doc_ids, targets


def distill_preferences(
    student: Any,
    records: Sequence[Any],
    queries: dict[str, str],
    passage_text: Callable[[list[str]], Sequence[str]],
    *,
    loss: str = "ranknet_pairs",
    steps: int = 20,
    batch_queries: int = 2,
    lr: float = 1e-5,
    seed: int = 0,
    loss_kwargs: dict[str, Any] | None = None,
    log: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Train ``student`` on preference records with AdamW for ``steps`` steps.

    Each step takes ``batch_queries`` records (a seeded shuffle, epoch after epoch), scores the
    rows' documents with ``student.score_groups`` (ragged rows are padded with empty passages
    and masked) and applies the loss: ``"ranknet_pairs"`` (``ranknet_from_pairs`` against
    ``P(i > j)``) or a registered listwise loss (``"listmle"``, ``"cprd"``, ``"kl"``) on the
    teacher's order with rank-derived teacher scores.

    Args:
        student: a ``TrainableStudent`` (``model`` and ``score_groups``).
        records: ``PreferenceRecord``-like objects (``query_id``, ``doc_ids``, ``pairs``,
            ``probs``); rows with fewer than two documents are ignored.
        queries: query id -> text.
        passage_text: doc ids -> texts.
        loss, steps, batch_queries, lr, seed: the training settings.
        loss_kwargs: hyper-parameters of the listwise loss.
        log: called with (step, loss value) after each step.

    Returns:
        The loss value of every step.
    """
    if loss not in PREFERENCE_LOSSES:
        raise RKDError(f"loss must be one of {PREFERENCE_LOSSES}, got {loss!r}")
    usable = [r for r in records if len(r.doc_ids) >= 2]
    if not usable:
        raise RKDError("no preference record with at least two documents to train on")
    bound = None if loss == "ranknet_pairs" else get_loss(loss, **(loss_kwargs or {}))
    params = [p for p in student.model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr)
    rng = random.Random(seed)
    queue: list[Any] = []
    history = []
    student.model.train()
    for step in range(steps):
        if len(queue) < batch_queries:
            queue += rng.sample(usable, len(usable))
        batch, queue = queue[:batch_queries], queue[batch_queries:]
        columns, targets = _batch_targets(batch, loss)
        width = max(len(c) for c in columns)
        texts = [list(passage_text(c)) + [""] * (width - len(c)) for c in columns]
        scores = student.score_groups([queries[r.query_id] for r in batch], texts)
        if bound is None:
            value = ranknet_from_pairs(
                scores, targets.pair_index, targets.target_prob, targets.mask
            )
        else:
            out = bound(scores, targets.teacher_scores, None, targets.mask)
            value = out["loss"] if isinstance(out, dict) else out
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
        history.append(float(value.detach()))
        if log is not None:
            log(step, history[-1])
    student.model.eval()
    return history
