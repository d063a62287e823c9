"""Distillation on the Hugging Face ``Trainer``: a student, a loss spec, groups of teacher scores.

The Trainer brings mixed precision, gradient accumulation, warm-up and schedules, checkpoints and
``resume_from_checkpoint``, best-checkpoint selection, logging integrations and DDP under
``torchrun`` / ``accelerate launch``. This module adds what is specific to distillation:

- :class:`StudentModule`, the ``nn.Module`` the Trainer (and DDP) wraps: it holds the student's
  model and dispatches ``forward(mode=...)`` to the student's protocol methods, so that every
  forward pass goes through the DDP wrapper and gradients are synchronised;
- :class:`DistillTrainer`, whose ``compute_loss`` scores each batch's groups with the student
  (``score_groups``, or ``score_all`` when a loss term wants in-batch negatives), evaluates the
  loss spec and logs **every term** (``loss/<name>``, averaged over the logging interval and the
  processes); whose ``evaluate`` re-ranks the dev set (nDCG@10); and whose ``training_step``
  implements gradient caching when asked (:mod:`retrieval_kd.training.grad_cache`). Under DDP,
  in-batch negatives are every process's passages, gathered with gradients
  (:mod:`retrieval_kd.training.distributed`; ``training.gather_across_devices``).

Only the ``TrainableStudent`` protocol is used (plus ``encode_queries`` / ``encode_passages`` /
``similarity`` for gradient caching), so the same trainer trains every student kind.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import nn
from transformers import Trainer

from retrieval_kd.losses import WeightedSum
from retrieval_kd.training.callbacks import TERM_PREFIX
from retrieval_kd.training.dev import DevSet, evaluate_student
from retrieval_kd.training.distributed import gather_groups, gather_vectors, world
from retrieval_kd.training.grad_cache import (
    backward_through_chunks,
    chunks,
    embed_without_graph,
)
from retrieval_kd.training.groups import collate_groups

MODES = ("groups", "all", "queries", "passages")


class StudentModule(nn.Module):
    """The module the Trainer optimises: the student's model, called through the student.

    ``forward(mode, ...)``: ``"groups"`` -> ``score_groups(queries, passages)`` [B, K];
    ``"all"`` -> ``score_all(queries, passages, gather)`` [B, N] ([B, W*N] when gathering
    across W processes); ``"queries"`` / ``"passages"`` ->
    ``encode_queries(texts)`` / ``encode_passages(texts)`` [n, D].
    """

    def __init__(self, student: Any) -> None:
        super().__init__()
        self.student_model = student.model  # registers every trainable parameter
        self.student = student  # a plain attribute: the student is not an nn.Module

    def forward(
        self,
        mode: str,
        queries: list[str] | None = None,
        passages: list[Any] | None = None,
        texts: list[str] | None = None,
        gather: bool = False,
    ) -> torch.Tensor:
        if mode == "groups":
            return self.student.score_groups(queries, passages)
        if mode == "all":
            if gather:
                return self.student.score_all(queries, passages, gather=True)
            return self.student.score_all(queries, passages)
        if mode == "queries":
            return self.student.encode_queries(texts)
        if mode == "passages":
            return self.student.encode_passages(texts)
        raise ValueError(f"unknown mode {mode!r}; expected one of {MODES}")


def group_block(scores_all: torch.Tensor, group_size: int, offset: int = 0) -> torch.Tensor:
    """Each query's scores against its own group, out of the scores against all passages.

    ``offset``: the index of this process's first group among all gathered groups (0 on one
    process).

    Shapes:
        scores_all: [B, G * K] (passage ``g * K + k`` is candidate ``k`` of group ``g``; G = B
        on one process, W * B gathered over W) -> [B, K].
    """
    batch = scores_all.shape[0]
    rows = torch.arange(batch, device=scores_all.device)
    groups = scores_all.shape[1] // group_size
    return scores_all.view(batch, groups, group_size)[rows, rows + offset]


def in_batch_targets(
    doc_ids: list[list[str]],
    labels: torch.Tensor,
    group_mask: torch.Tensor | None = None,
    offset: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Labels and mask of every query against every passage of the batch.

    A query's own group keeps its labels (and its ``group_mask``: a masked suspected false
    negative stays out of its own query's row); other queries' passages are negatives (label
    0), except those whose doc id is also in the query's own group (masked out: a duplicate must
    not be a negative of itself, nor a positive counted twice).

    ``doc_ids`` are every group of the (gathered) batch; this process's B queries own groups
    ``offset .. offset + B - 1`` (``offset`` 0 and G = B on one process).

    Shapes:
        doc_ids: G lists of K; labels: [B, K]; group_mask: [B, K] bool or None
        -> labels [B, G * K], mask [B, G * K] bool.
    """
    batch, k = labels.shape
    flat = [d for group in doc_ids for d in group]
    width = len(flat)
    out_labels = torch.zeros(batch, width, dtype=labels.dtype, device=labels.device)
    mask = torch.ones(batch, width, dtype=torch.bool, device=labels.device)
    for b in range(batch):
        g = offset + b
        own = set(doc_ids[g])
        for j, doc in enumerate(flat):
            if j // k != g and doc in own:
                mask[b, j] = False
        out_labels[b, g * k : (g + 1) * k] = labels[b]
        if group_mask is not None:
            mask[b, g * k : (g + 1) * k] = group_mask[b].to(mask.device)
    return out_labels, mask


class DistillTrainer(Trainer):
    """``transformers.Trainer`` for score distillation (see the module docstring).

    Args:
        student: a ``TrainableStudent``.
        group_loss: loss terms over each query's group ([B, K]); may be None.
        in_batch_loss: loss terms over every passage of the batch ([B, B*K]); may be None.
        dev: the dev set evaluated by ``evaluate()`` (None: no evaluation).
        eval_batch_size: texts per encoding call when re-ranking the dev set.
        grad_cache: use gradient caching (students with single-vector encoders only).
        grad_cache_chunk_size: texts per chunk with gradient caching.
        gather_across_devices: under DDP, in-batch negatives are every process's passages
            (:mod:`retrieval_kd.training.distributed`); False: each process's own only.
        **kwargs: ``transformers.Trainer`` arguments (``args``, ``train_dataset``, ``callbacks``).
    """

    def __init__(
        self,
        *,
        student: Any,
        group_loss: WeightedSum | None,
        in_batch_loss: WeightedSum | None = None,
        dev: DevSet | None = None,
        eval_batch_size: int = 64,
        grad_cache: bool = False,
        grad_cache_chunk_size: int = 32,
        gather_across_devices: bool = True,
        **kwargs: Any,
    ) -> None:
        if group_loss is None and in_batch_loss is None:
            raise ValueError("give a group loss, an in-batch loss, or both")
        kwargs.setdefault("data_collator", collate_groups)
        if kwargs.get("args") is not None:  # batches carry texts and ids the module never sees
            kwargs["args"].remove_unused_columns = False
        super().__init__(model=StudentModule(student), eval_dataset=dev, **kwargs)
        self.student = student
        self.group_loss = group_loss
        self.in_batch_loss = in_batch_loss
        self.dev = dev
        self.eval_batch_size = eval_batch_size
        self.grad_cache = grad_cache
        self.grad_cache_chunk_size = grad_cache_chunk_size
        self.gather_across_devices = gather_across_devices
        self._term_sums: dict[str, float] = {}
        self._term_count = 0

    # -- loss ---------------------------------------------------------------------------------
    def loss_terms(
        self,
        group_scores: torch.Tensor,
        all_scores: torch.Tensor | None,
        inputs: dict[str, Any],
        groups: tuple[list[list[str]], int] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Every loss term and the total ``"loss"`` from the student's scores.

        ``groups``: the doc ids of every gathered group and the index of this process's first
        (:func:`~retrieval_kd.training.distributed.gather_groups`); None: this batch's own.

        Shapes:
            group_scores: [B, K]; all_scores: [B, G * K] or None (G = B, or W * B gathered).
        """
        teacher = inputs["teacher_scores"].to(group_scores.device)
        labels = inputs["labels"].to(group_scores.device)
        mask = inputs.get("mask")
        mask = None if mask is None else mask.to(group_scores.device)
        out: dict[str, torch.Tensor] = {}
        total = group_scores.new_zeros((), dtype=torch.float32)
        if self.group_loss is not None:
            terms = self.group_loss(group_scores, teacher, labels, mask)
            total = total + terms.pop("loss")
            out.update(terms)
        if self.in_batch_loss is not None:
            assert all_scores is not None
            doc_ids, offset = groups if groups is not None else (inputs["doc_ids"], 0)
            ib_labels, ib_mask = in_batch_targets(doc_ids, labels, mask, offset)
            terms = self.in_batch_loss(all_scores, None, ib_labels, ib_mask)
            total = total + terms.pop("loss")
            out.update(terms)
        out["loss"] = total
        return out

    @property
    def gathering(self) -> bool:
        """Whether in-batch negatives come from every process (DDP with gathering on)."""
        return self.gather_across_devices and world()[1] > 1

    def _record(self, terms: dict[str, torch.Tensor]) -> None:
        for name, value in terms.items():
            if name != "loss":
                self._term_sums[name] = self._term_sums.get(name, 0.0) + float(value.detach())
        self._term_count += 1

    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, Any]:
        """Score the groups with the student and evaluate the loss spec (each term recorded)."""
        queries, passages = inputs["queries"], inputs["passages"]
        k = len(passages[0])
        groups = None
        if self.in_batch_loss is not None:
            flat = [text for group in passages for text in group]
            if self.gathering:
                groups = gather_groups(inputs["doc_ids"])
                all_scores = model(mode="all", queries=queries, passages=flat, gather=True)
            else:
                all_scores = model(mode="all", queries=queries, passages=flat)
            group_scores = group_block(all_scores, k, groups[1] if groups else 0)
        else:
            all_scores = None
            group_scores = model(mode="groups", queries=queries, passages=passages)
        terms = self.loss_terms(group_scores, all_scores, inputs, groups)
        if model.training:
            self._record(terms)
        return (terms["loss"], terms) if return_outputs else terms["loss"]

    def training_step(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> torch.Tensor:
        """The Trainer's step, or the three passes of gradient caching when enabled."""
        if not self.grad_cache:
            return super().training_step(model, inputs, num_items_in_batch)
        model.train()
        inputs = self._prepare_inputs(inputs)
        queries, passages = inputs["queries"], inputs["passages"]
        k = len(passages[0])
        size = self.grad_cache_chunk_size
        q_parts = chunks(list(queries), size)
        p_parts = chunks([text for group in passages for text in group], size)

        def encode_queries(texts: list[str]) -> torch.Tensor:
            return model(mode="queries", texts=texts)

        def encode_passages(texts: list[str]) -> torch.Tensor:
            return model(mode="passages", texts=texts)

        with self.compute_loss_context_manager():
            q_reps, q_states = embed_without_graph(encode_queries, q_parts)
            p_reps, p_states = embed_without_graph(encode_passages, p_parts)
        q = torch.cat(q_reps).float().requires_grad_()
        p = torch.cat(p_reps).float().requires_grad_()
        groups = None
        if self.in_batch_loss is not None and self.gathering:
            groups = gather_groups(inputs["doc_ids"])
            all_scores = self.student.similarity(q, gather_vectors(p))
        else:
            all_scores = self.student.similarity(q, p)
        terms = self.loss_terms(
            group_block(all_scores, k, groups[1] if groups else 0),
            all_scores if self.in_batch_loss else None,
            inputs,
            groups,
        )
        self._record(terms)
        loss = terms["loss"] / self.current_gradient_accumulation_steps
        q_grad, p_grad = torch.autograd.grad(loss, [q, p])

        def no_sync() -> Any:
            return self.accelerator.no_sync(model)

        with self.compute_loss_context_manager():
            backward_through_chunks(
                encode_queries, q_parts, q_states, q_grad, self.accelerator.backward, no_sync, False
            )
            backward_through_chunks(
                encode_passages, p_parts, p_states, p_grad, self.accelerator.backward, no_sync, True
            )
        return loss.detach()

    # -- logging and evaluation -------------------------------------------------------------------
    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Add the mean of every loss term since the last log (over all processes)."""
        if "loss" in logs and self._term_sums:
            names = sorted(self._term_sums)
            means = torch.tensor(
                [self._term_sums[n] / max(self._term_count, 1) for n in names],
                device=self.args.device,
            )
            if self.args.world_size > 1:
                means = self.accelerator.reduce(means, reduction="mean")
            for name, value in zip(names, means.tolist(), strict=True):
                logs[f"{TERM_PREFIX}{name}"] = value
            self._term_sums, self._term_count = {}, 0
        super().log(logs, start_time)

    def evaluate(
        self,
        eval_dataset: Any = None,
        ignore_keys: list[str] | None = None,
        metric_key_prefix: str = "eval",
    ) -> dict[str, float]:
        """Re-rank the dev set with the student; returns ``{"eval_<metric>": value, ...}``."""
        if self.dev is None:
            return {}
        start = time.perf_counter()
        with self.accelerator.autocast():  # the training arithmetic (bf16 autocast, fp32, ...)
            means = evaluate_student(self.student, self.dev, self.eval_batch_size)
        metrics = {f"{metric_key_prefix}_{name}": value for name, value in means.items()}
        metrics[f"{metric_key_prefix}_runtime"] = round(time.perf_counter() - start, 3)
        self.log(metrics)
        handler = self.callback_handler
        self.control = handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics
