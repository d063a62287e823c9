"""Next-token logits of a causal LM at the end of each prompt, batched with left padding.

The pairwise and listwise LLM teachers and the instruction-distilled LLM student read their
answers from these logits (never from generated text).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from retrieval_kd.llm.loading import LoadedLM


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
    """

    def __init__(self, lm: LoadedLM, batch_size: int = 8):
        self.lm = lm
        self.batch_size = batch_size
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
        order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
        device = torch.device(self.lm.device)
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
            last = self.lm.model(**inputs).logits[:, -1].float()
            for g, group in enumerate(groups):
                out[picked, g] = (
                    torch.logsumexp(last[:, list(group)], dim=-1).double().cpu().numpy()
                )
        return out
