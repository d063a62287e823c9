"""Next-token logits of a causal LM at the end of each prompt, batched with left padding.

The pairwise and listwise LLM teachers and the instruction-distilled LLM student read their
answers from these logits (never from generated text). Prompts of one call that begin with the
same tokens (the pairwise prompts that show the same passage first) run those tokens once
(:mod:`retrieval_kd.llm.prefix_sharing`); the rest run whole.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
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
        params = inspect.signature(lm.model.forward).parameters
        self._position_ids = "position_ids" in params
        self._logits_to_keep = "logits_to_keep" in params

    @torch.inference_mode()
    def __call__(self, prompts: Sequence[list[int]], groups: Sequence[Sequence[int]]) -> np.ndarray:
        """``logsumexp`` of each token group's logits at the last position of each prompt.

        Shapes:
            prompts: N id lists; groups: G id lists -> float64 [N, G].
        """
        out = np.empty((len(prompts), len(groups)), dtype=np.float64)
        splits = [0] * len(prompts)
        if self.share_prefixes and len(prompts) > 1:
            splits = common_prefix_splits(prompts, [1] * len(prompts), self.min_shared)
        shared = [i for i, split in enumerate(splits) if split >= 1]
        alone = [i for i, split in enumerate(splits) if split < 1]
        order = sorted(alone, key=lambda i: -len(prompts[i]))
        device = torch.device(self.lm.device)
        if shared:
            longest = max(len(prompts[i]) for i in shared)
            for rows, logits in shared_prefix_logits(
                self.lm.model,
                [prompts[i] for i in shared],
                [splits[i] for i in shared],
                [1] * len(shared),
                pad_id=self.pad_id,
                device=device,
                row_tokens=max(1024, 2 * longest),
                batch_tokens=self.batch_size * longest,
            ):
                picked = [shared[r] for r in rows]
                self._fill(out, picked, logits[:, -1], groups)
        for start in range(0, len(order), self.batch_size):
            picked = order[start : start + self.batch_size]
            ids, mask = left_pad([prompts[i] for i in picked], self.pad_id)
            inputs: dict[str, Any] = {
                "input_ids": ids.to(device),
                "attention_mask": mask.to(device),
            }
            inputs["use_cache"] = False
            if self._position_ids:
                inputs["position_ids"] = positions(mask).to(device)
            if self._logits_to_keep:
                inputs["logits_to_keep"] = 1
            self._fill(out, picked, self.lm.model(**inputs).logits[:, -1].float(), groups)
        return out

    @staticmethod
    def _fill(
        out: np.ndarray, picked: list[int], last: torch.Tensor, groups: Sequence[Sequence[int]]
    ) -> None:
        """``out[picked[r], g] = logsumexp(last[r, groups[g]])``; last: [len(picked), V]."""
        for g, group in enumerate(groups):
            out[picked, g] = torch.logsumexp(last[:, list(group)], dim=-1).double().cpu().numpy()
