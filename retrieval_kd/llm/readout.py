"""Next-token logits of a causal LM at the end of each prompt, batched with left padding.

The pairwise and listwise LLM teachers and the instruction-distilled LLM student read their
answers from these logits (never from generated text). Prompts of one call that begin with the
same tokens (the pairwise prompts that show the same passage first) run those tokens once
(:mod:`retrieval_kd.llm.prefix_sharing`); the rest run whole.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from retrieval_kd.llm.loading import LoadedLM
from retrieval_kd.llm.prefix_sharing import (
    common_prefix_splits,
    shared_prefix_logits,
    supports_prefix_sharing,
)


def left_pad(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids and attention mask ``[B, L]`` (L = the longest row), each row right-aligned."""
    length = max(len(r) for r in rows)
    ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), length), dtype=torch.long)
    for i, row in enumerate(rows):
        if len(row):
            ids[i, length - len(row) :] = torch.tensor(list(row), dtype=torch.long)
            mask[i, length - len(row) :] = 1
    return ids, mask


def positions(mask: torch.Tensor) -> torch.Tensor:
    """Position ids of a left-padded batch: 0 at each row's first real token (pads get 0)."""
    return (mask.cumsum(-1) - 1).clamp(min=0)


@torch.inference_mode()
def trailing_logits(
    model: Any,
    prompts: Sequence[Sequence[int]],
    splits: Sequence[int],
    keeps: Sequence[int],
    *,
    pad_id: int,
    device: torch.device | str,
    batch_size: int,
    row_tokens: int,
    batch_tokens: int,
    on_batch: Any = None,
) -> Iterator[tuple[list[int], torch.Tensor]]:
    """The last ``keeps[i]`` positions' logits of every prompt: prompts with ``splits[i] >= 1``
    share their first ``splits[i]`` tokens in packed rows
    (:func:`~retrieval_kd.llm.prefix_sharing.shared_prefix_logits`), the rest run whole in
    left-padded batches of ``batch_size``, longest first (each batch pads only to its own
    longest prompt; positions count from each row's first real token).

    Yields:
        (rows, logits): prompt indices and float32 logits ``[len(rows), keep, V]`` whose last
        position is each prompt's last token (``keep`` = the largest ``keeps`` of the pass).
    """
    shared = [i for i, split in enumerate(splits) if split >= 1]
    alone = [i for i, split in enumerate(splits) if split < 1]
    alone.sort(key=lambda i: -len(prompts[i]))
    params = inspect.signature(model.forward).parameters
    device = torch.device(device)
    for start in range(0, len(alone), batch_size):
        picked = alone[start : start + batch_size]
        ids, mask = left_pad([prompts[i] for i in picked], pad_id)
        keep = max(keeps[i] for i in picked)
        inputs: dict[str, Any] = {
            "input_ids": ids.to(device),
            "attention_mask": mask.to(device),
            "use_cache": False,
        }
        if "position_ids" in params:
            inputs["position_ids"] = positions(mask).to(device)
        if "logits_to_keep" in params:  # the LM head only at the positions read
            inputs["logits_to_keep"] = keep
        yield picked, model(**inputs).logits[:, -keep:].float()
        if on_batch is not None:
            on_batch(len(picked))
    if shared:
        for rows, logits in shared_prefix_logits(
            model,
            [prompts[i] for i in shared],
            [splits[i] for i in shared],
            [keeps[i] for i in shared],
            pad_id=pad_id,
            device=device,
            row_tokens=row_tokens,
            batch_tokens=batch_tokens,
            on_batch=on_batch,
        ):
            yield [shared[r] for r in rows], logits


class Readout:
    """Batched next-token logits of a causal LM at the end of each prompt.

    Args:
        lm: the loaded model, tokenizer, device and dtype.
        batch_size: prompts per forward pass.
        share_prefixes: run a prefix that prompts of one call share (at least ``min_shared``
            tokens) once (:func:`~retrieval_kd.llm.prefix_sharing.common_prefix_splits`); same
            logits up to rounding.
        min_shared: the shortest prefix worth sharing.
    """

    def __init__(
        self,
        lm: LoadedLM,
        batch_size: int = 8,
        *,
        share_prefixes: bool = True,
        min_shared: int = 32,
    ):
        self.lm = lm
        self.batch_size = batch_size
        self.min_shared = min_shared
        self.share_prefixes = share_prefixes and supports_prefix_sharing(lm.model)
        pad = lm.tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else (lm.tokenizer.eos_token_id or 0))

    @torch.inference_mode()
    def __call__(self, prompts: Sequence[list[int]], groups: Sequence[Sequence[int]]) -> np.ndarray:
        """``logsumexp`` of each token group's logits at the last position of each prompt.

        Shapes:
            prompts: N id lists; groups: G id lists -> float64 [N, G].
        """
        out = np.empty((len(prompts), len(groups)), dtype=np.float64)
        if not prompts:
            return out
        splits = [0] * len(prompts)
        if self.share_prefixes and len(prompts) > 1:
            splits = common_prefix_splits(prompts, [1] * len(prompts), self.min_shared)
        longest = max(len(p) for p in prompts)
        for rows, logits in trailing_logits(
            self.lm.model,
            prompts,
            splits,
            [1] * len(prompts),
            pad_id=self.pad_id,
            device=self.lm.device,
            batch_size=self.batch_size,
            row_tokens=max(1024, 2 * longest),
            batch_tokens=self.batch_size * longest,
        ):
            self._fill(out, rows, logits[:, -1], groups)
        return out

    @staticmethod
    def _fill(
        out: np.ndarray, picked: list[int], last: torch.Tensor, groups: Sequence[Sequence[int]]
    ) -> None:
        """``out[picked[r], g] = logsumexp(last[r, groups[g]])``; last: [len(picked), V]."""
        for g, group in enumerate(groups):
            out[picked, g] = torch.logsumexp(last[:, list(group)], dim=-1).double().cpu().numpy()
