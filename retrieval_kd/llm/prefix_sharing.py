"""Prompts that start with the same tokens run those tokens once: prefix sharing for LLM scoring.

The default pointwise templates put the passage first (``"Passage: {passage}\\n...{query}"``),
so every query that lists a passage among its candidates shares the passage's forward pass. Over
SciFact's 809 training queries x BM25 top 30 (24,267 pairs) there are 4,818 distinct passages,
about 5 pairs per passage; the passage is most of each ~400-token prompt, the query ~20 tokens.

How (the "automatic prefix caching" of vLLM, Kwon et al. 2023, "Efficient Memory Management for
Large Language Model Serving with PagedAttention", done within one scoring call):

1. prompts are grouped by their exact first ``split`` tokens (the caller's split point; the
   token ids, not the text, so a passage cut differently for a longer query is another prefix);
2. distinct prefixes run in left-padded batches of ``prefix_batch``, keeping their keys and
   values (a transformers ``DynamicCache``; no logits but the last position's);
3. each prompt's own suffix (``ids[split:]``) runs on a copy of its prefix's keys and values,
   ``suffix_batch`` suffixes per pass, left-padded so that every row ends at its last token.

Every attention still sees exactly the tokens it would in one full forward pass (padding is
masked and positions are counted from each prompt's first real token), so scores equal the
unshared computation up to floating-point rounding (``tests/test_llm_prefix_sharing.py``).

Example:
    >>> for rows, logits in shared_prefix_logits(model, prompts, splits, keeps,
    ...                                          pad_id=0):  # doctest: +SKIP
    ...     ...  # logits[r, -1] = next-token logits after prompts[rows[r]]
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Sequence
from typing import Any

import torch

from retrieval_kd.llm.readout import left_pad, positions


def supports_prefix_sharing(model: Any) -> bool:
    """Whether ``model`` takes explicit positions and a plain (non-sliding) dynamic KV cache.

    Left-padded batches need ``position_ids``; the copy of a prefix's cache per suffix needs
    every layer to be transformers' plain ``DynamicLayer`` (no sliding window, no recurrent
    state), which :func:`shared_prefix_logits` checks again on the cache it gets.
    """
    try:
        from transformers.cache_utils import DynamicCache  # noqa: F401
    except ImportError:
        return False
    params = inspect.signature(model.forward).parameters
    return "position_ids" in params and _cache_argument(model) is not None


def _cache_argument(model: Any) -> str | None:
    """The forward argument that takes a KV cache: ``cache`` (transformers >= 5.2x) or
    ``past_key_values`` (earlier), or None."""
    params = inspect.signature(model.forward).parameters
    return next((name for name in ("cache", "past_key_values") if name in params), None)


def _plain_layers(cache: Any) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(keys, values) of every layer, ``[B, heads, L, d]``; refuses caches that are not plain."""
    from transformers.cache_utils import DynamicLayer

    layers = getattr(cache, "layers", None)
    if layers is None or any(type(layer) is not DynamicLayer for layer in layers):
        raise TypeError("prefix sharing needs a plain DynamicCache (no sliding/recurrent layers)")
    return [(layer.keys, layer.values) for layer in layers]


@torch.inference_mode()
def shared_prefix_logits(
    model: Any,
    prompts: Sequence[Sequence[int]],
    splits: Sequence[int],
    keeps: Sequence[int],
    *,
    pad_id: int,
    device: torch.device | str = "cpu",
    prefix_batch: int = 8,
    suffix_batch: int = 32,
    on_prefix_batch: Any = None,
) -> Iterator[tuple[list[int], torch.Tensor]]:
    """Trailing logits of every prompt, each distinct prefix computed once.

    Args:
        model: a transformers causal LM (see :func:`supports_prefix_sharing`).
        prompts: token ids of each prompt.
        splits: prompt ``i`` shares ``prompts[i][:splits[i]]`` (``1 <= split < len``).
        keeps: how many final positions of prompt ``i`` are read (``1 <= keep <= len - split``).
        pad_id: id written at padded positions (masked, never read).
        device: where the model runs.
        prefix_batch: distinct prefixes per forward pass.
        suffix_batch: suffixes per forward pass (each holds a copy of its prefix's cache).
        on_prefix_batch: called with the number of prompts finished after each prefix batch
            (a progress bar's ``update``).

    Yields:
        (rows, logits): prompt indices and float32 logits ``[len(rows), keep, V]`` whose last
        position is each prompt's last token (``keep`` = the largest ``keeps`` of the rows).

    Raises:
        ValueError: a split or keep outside its range.
    """
    from transformers.cache_utils import DynamicCache

    if not supports_prefix_sharing(model):
        raise TypeError("prefix sharing needs a model that takes position_ids and a KV cache")
    cache_arg = _cache_argument(model)
    trims_head = _takes(model, "logits_to_keep")  # LM head only at the positions kept
    for i, (ids, split, keep) in enumerate(zip(prompts, splits, keeps, strict=True)):
        if not 1 <= split < len(ids) or not 1 <= keep <= len(ids) - split:
            raise ValueError(
                f"prompt {i}: split {split} / keep {keep} out of range for {len(ids)} tokens"
            )
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, (ids, split) in enumerate(zip(prompts, splits, strict=True)):
        groups.setdefault(tuple(ids[:split]), []).append(i)
    prefixes = sorted(groups, key=len, reverse=True)
    device = torch.device(device)
    for start in range(0, len(prefixes), prefix_batch):
        batch = prefixes[start : start + prefix_batch]
        ids, mask = left_pad(batch, pad_id)
        cache = DynamicCache()
        model(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            position_ids=positions(mask).to(device),
            **{cache_arg: cache},
            use_cache=True,
            **({"logits_to_keep": 1} if trims_head else {}),
        )
        layers = _plain_layers(cache)
        prefix_length = mask.sum(-1)
        members = [(b, i) for b, prefix in enumerate(batch) for i in groups[prefix]]
        members.sort(key=lambda m: -(len(prompts[m[1]]) - splits[m[1]]))
        for sub_start in range(0, len(members), suffix_batch):
            sub = members[sub_start : sub_start + suffix_batch]
            owners = torch.tensor([b for b, _ in sub], dtype=torch.long)
            rows = [i for _, i in sub]
            s_ids, s_mask = left_pad([prompts[i][splits[i] :] for i in rows], pad_id)
            keep = max(keeps[i] for i in rows)
            copied = DynamicCache(
                ddp_cache_data=[
                    (k.index_select(0, owners.to(k.device)), v.index_select(0, owners.to(v.device)))
                    for k, v in layers
                ]
            )
            suffix_positions = prefix_length[owners, None] + positions(s_mask)
            out = model(
                input_ids=s_ids.to(device),
                attention_mask=torch.cat([mask[owners], s_mask], dim=1).to(device),
                position_ids=suffix_positions.to(device),
                **{cache_arg: copied},
                use_cache=True,
                **({"logits_to_keep": keep} if trims_head else {}),
            )
            yield rows, out.logits[:, -keep:].float()
            del copied, out
        if on_prefix_batch is not None:
            on_prefix_batch(len(members))


def _takes(model: Any, name: str) -> bool:
    return name in inspect.signature(model.forward).parameters
