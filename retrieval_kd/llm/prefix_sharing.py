"""Prompts that start with the same tokens run those tokens once: prefix sharing for LLM scoring.

The default pointwise templates put the passage first (``"Passage: {passage}\\n...{query}"``),
so every query that lists a passage among its candidates shares the passage's forward pass. Over
SciFact's 809 training queries x BM25 top 30 (24,267 pairs) there are 4,818 distinct passages,
about 5 pairs per passage; the passage is most of each ~400-token prompt, the query ~20 tokens.

How: each distinct prefix is *packed* with the suffixes that follow it into one row, and one
forward pass of the model's decoder runs the row under a tree-shaped attention mask (the
"topology-aware causal mask" that SpecInfer, Miao et al. 2024, uses to verify a token tree in one
pass)::

    row:      [ prefix P (p tokens) | suffix 1 (s1) | suffix 2 (s2) | ... | pad ]
    position:   0 .. p-1              p .. p+s1-1     p .. p+s2-1
    attends:    P causally            P + its own     P + its own
                                      tokens causally tokens causally

Each suffix token therefore sees exactly the tokens it would see at the end of its own whole
prompt (the prefix, then its own earlier tokens) at the same positions, so its hidden state, and
the logits read from it, equal the unshared computation up to floating-point rounding
(``tests/test_llm_pointwise.py``). Unlike copying the prefix's KV cache once per suffix, nothing
is copied, and every matrix product runs on rows as long as whole prompts. A prefix with more
suffixes than ``row_tokens`` holds is packed into several rows, each with its own copy of the
prefix; rows are sorted by length and batched up to ``batch_tokens`` tokens per pass.

The LM head runs only at the positions read (the last ``keep`` tokens of each prompt), on the
decoder's hidden states. Models whose logits are not ``output_embeddings(decoder(x))`` (a final
soft-cap, a logit scale) are detected by :func:`supports_prefix_sharing`, which compares the two
on a short input once, and run their prompts whole.

Example:
    >>> for rows, logits in shared_prefix_logits(model, prompts, splits, keeps,
    ...                                          pad_id=0):  # doctest: +SKIP
    ...     ...  # logits[r, -1] = next-token logits after prompts[rows[r]]
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

MASK_ATTENTION = ("sdpa", "eager")  # attention implementations that take a custom 4D mask


@dataclass
class PackedBatch:
    """Rows of prefixes and their suffixes for one forward pass.

    Shapes:
        input_ids, position_ids: [B, T] (right-padded); allowed: bool [B, T, T], True where
        query position i may attend key position j; prompts: N prompt indices, each read at
        ``read_cols[n]`` (its last ``keep`` positions, right-aligned: column -1 is its last
        token; left entries beyond the prompt's own ``keep`` repeat its first read position)
        of row ``read_rows[n]``; read_rows [N], read_cols [N, keep].
    """

    input_ids: torch.Tensor
    position_ids: torch.Tensor
    allowed: torch.Tensor
    prompts: list[int]
    read_rows: torch.Tensor
    read_cols: torch.Tensor
    tokens: int  # real (unpadded) tokens in the batch


def real_tokens(input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> int:
    """Unpadded tokens of one decoder pass (what a benchmark or test counts): the ones of a 2D
    padding mask, or, for packed rows' 4D additive mask ``[B, 1, T, T]`` (0 = attend), every
    position but the pads, which attend only to themselves (so does a row's first token, which
    is real)."""
    if attention_mask is None:
        return input_ids.numel()
    if attention_mask.ndim == 2:
        return int(attention_mask[:, -input_ids.shape[1] :].sum())
    pads = (attention_mask[:, 0] == 0).sum(-1) == 1
    pads[:, 0] = False
    return input_ids.numel() - int(pads.sum())


def supports_prefix_sharing(model: Any) -> bool:
    """Whether ``model`` can run packed rows: a decoder that takes ``position_ids`` and a custom
    4D mask (SDPA or eager attention), and logits that are its output embeddings applied to the
    decoder's last hidden states (checked once, here, on a short input)."""
    parts = _decoder_and_head(model)
    return parts is not None and _head_reproduces_logits(model, *parts)


def _decoder_and_head(model: Any) -> tuple[Any, Any] | None:
    """The model's decoder and output embeddings when packed rows can run on them, else None."""
    config = getattr(model, "config", None)
    if getattr(config, "_attn_implementation", None) not in MASK_ATTENTION:
        return None
    try:
        decoder, head = model.get_decoder(), model.get_output_embeddings()
    except (AttributeError, NotImplementedError):
        return None
    if decoder is None or head is None:
        return None
    if "position_ids" not in inspect.signature(decoder.forward).parameters:
        return None
    return decoder, head


@torch.inference_mode()
def _head_reproduces_logits(model: Any, decoder: Any, head: Any) -> bool:
    """Whether ``head(decoder(x))`` equals ``model(x).logits`` on a 4-token input."""
    device = next(model.parameters()).device
    vocab = int(getattr(model.config, "vocab_size", 2))
    ids = torch.arange(4, device=device).remainder(vocab).unsqueeze(0)
    full = model(input_ids=ids, use_cache=False).logits.float()
    ours = head(decoder(input_ids=ids, use_cache=False).last_hidden_state).float()
    return full.shape == ours.shape and torch.allclose(full, ours, rtol=1e-3, atol=1e-3)


def common_prefix_splits(
    prompts: Sequence[Sequence[int]],
    keeps: Sequence[int],
    min_shared: int = 32,
    min_fraction: float = 0.25,
) -> list[int]:
    """Where each prompt's shareable prefix ends when the caller knows no field boundaries: its
    longest common prefix with another prompt of the call (its neighbours in sorted order),
    at most ``len - keep``; 0 (run whole) when that is under ``min_shared`` tokens or under
    ``min_fraction`` of the prompt (a shared chat header alone is not worth a packed row).

    With the pairwise template, the prompts showing passage ``i`` first share the chat header,
    the query and passage ``i``: those tokens then run once for all of ``i``'s partners.

    Shapes:
        prompts: N id lists; keeps: N ints -> N ints.
    """
    order = sorted(range(len(prompts)), key=lambda i: list(prompts[i]))
    splits = [0] * len(prompts)
    for a, b in zip(order, order[1:], strict=False):
        x, y = prompts[a], prompts[b]
        n = 0
        limit = min(len(x), len(y))
        while n < limit and x[n] == y[n]:
            n += 1
        splits[a], splits[b] = max(splits[a], n), max(splits[b], n)
    out = []
    for i, split in enumerate(splits):
        split = min(split, len(prompts[i]) - keeps[i])
        worth = split >= min_shared and split >= min_fraction * len(prompts[i])
        out.append(split if worth else 0)
    return out


def pack_shared_prefixes(
    prompts: Sequence[Sequence[int]],
    splits: Sequence[int],
    keeps: Sequence[int],
    *,
    pad_id: int,
    row_tokens: int = 1024,
    batch_tokens: int = 4096,
) -> list[PackedBatch]:
    """Plan the packed forward passes: each distinct prefix once per row, its suffixes after it.

    Args:
        prompts: token ids of each prompt.
        splits: prompt ``i`` shares ``prompts[i][:splits[i]]`` (``1 <= split < len``).
        keeps: how many final positions of prompt ``i`` are read (``1 <= keep <= len - split``).
        pad_id: id written at padded positions (they attend only to themselves; never read).
        row_tokens: most tokens in a row (a row always takes its prefix and one suffix).
        batch_tokens: most tokens (rows x the longest row) in one forward pass.

    Raises:
        ValueError: a split or keep outside its range, or a non-positive budget.
    """
    if row_tokens < 1 or batch_tokens < 1:
        raise ValueError("row_tokens and batch_tokens must be positive")
    for i, (ids, split, keep) in enumerate(zip(prompts, splits, keeps, strict=True)):
        if not 1 <= split < len(ids) or not 1 <= keep <= len(ids) - split:
            raise ValueError(
                f"prompt {i}: split {split} / keep {keep} out of range for {len(ids)} tokens"
            )
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, (ids, split) in enumerate(zip(prompts, splits, strict=True)):
        groups.setdefault(tuple(ids[:split]), []).append(i)
    rows: list[tuple[tuple[int, ...], list[int], int]] = []  # (prefix, members, length)
    for prefix, members in groups.items():
        current: list[int] = []
        length = len(prefix)
        for i in members:
            suffix = len(prompts[i]) - splits[i]
            if current and length + suffix > row_tokens:
                rows.append((prefix, current, length))
                current, length = [], len(prefix)
            current.append(i)
            length += suffix
        rows.append((prefix, current, length))
    rows.sort(key=lambda row: -row[2])
    batches, start = [], 0
    while start < len(rows):
        longest = rows[start][2]
        count = max(1, min(len(rows) - start, batch_tokens // longest))
        batches.append(_build_batch(rows[start : start + count], prompts, splits, keeps, pad_id))
        start += count
    return batches


def _build_batch(
    rows: list[tuple[tuple[int, ...], list[int], int]],
    prompts: Sequence[Sequence[int]],
    splits: Sequence[int],
    keeps: Sequence[int],
    pad_id: int,
) -> PackedBatch:
    width = max(length for _, _, length in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    pos = torch.zeros((len(rows), width), dtype=torch.long)
    allowed = torch.zeros((len(rows), width, width), dtype=torch.bool)
    keep = max(keeps[i] for _, members, _ in rows for i in members)
    read_rows, read_cols, order = [], [], []
    for r, (prefix, members, length) in enumerate(rows):
        p = len(prefix)
        ids[r, :p] = torch.tensor(prefix, dtype=torch.long)
        pos[r, :p] = torch.arange(p)
        allowed[r, :p, :p] = torch.ones(p, p, dtype=torch.bool).tril()
        at = p
        for i in members:
            suffix = prompts[i][splits[i] :]
            s = len(suffix)
            ids[r, at : at + s] = torch.tensor(list(suffix), dtype=torch.long)
            pos[r, at : at + s] = torch.arange(p, p + s)
            allowed[r, at : at + s, :p] = True
            allowed[r, at : at + s, at : at + s] = torch.ones(s, s, dtype=torch.bool).tril()
            end = at + s
            cols = torch.arange(end - keep, end).clamp(min=end - keeps[i])
            read_rows.append(r)
            read_cols.append(cols)
            order.append(i)
            at = end
        padded = torch.arange(length, width)
        allowed[r, padded, padded] = True  # a pad sees itself only: no all-masked row
    return PackedBatch(
        input_ids=ids,
        position_ids=pos,
        allowed=allowed,
        prompts=order,
        read_rows=torch.tensor(read_rows, dtype=torch.long),
        read_cols=torch.stack(read_cols),
        tokens=sum(length for _, _, length in rows),
    )


@torch.inference_mode()
def shared_prefix_logits(
    model: Any,
    prompts: Sequence[Sequence[int]],
    splits: Sequence[int],
    keeps: Sequence[int],
    *,
    pad_id: int,
    device: torch.device | str = "cpu",
    row_tokens: int = 1024,
    batch_tokens: int = 4096,
    on_batch: Any = None,
) -> Iterator[tuple[list[int], torch.Tensor]]:
    """Trailing logits of every prompt, each distinct prefix computed once per packed row.

    Args:
        model: a transformers causal LM (see :func:`supports_prefix_sharing`).
        prompts, splits, keeps, pad_id, row_tokens, batch_tokens: as
            :func:`pack_shared_prefixes`.
        device: where the model runs.
        on_batch: called with the number of prompts finished after each pass (a progress
            bar's ``update``).

    Yields:
        (rows, logits): prompt indices and float32 logits ``[len(rows), keep, V]`` whose last
        position is each prompt's last token (``keep`` = the largest ``keeps`` of the pass).

    Raises:
        ValueError: a split or keep outside its range.
        TypeError: a model that cannot run packed rows.
    """
    batches = pack_shared_prefixes(
        prompts, splits, keeps, pad_id=pad_id, row_tokens=row_tokens, batch_tokens=batch_tokens
    )
    parts = _decoder_and_head(model)
    if parts is None:
        raise TypeError("prefix sharing needs a decoder that takes position_ids and a 4D mask")
    decoder, head = parts
    dtype = next(model.parameters()).dtype
    device = torch.device(device)
    for batch in batches:
        mask = torch.zeros(batch.allowed.shape, dtype=dtype)
        mask.masked_fill_(~batch.allowed, torch.finfo(dtype).min)
        hidden = decoder(
            input_ids=batch.input_ids.to(device),
            attention_mask=mask[:, None].to(device),  # [B, 1, T, T], added to the scores
            position_ids=batch.position_ids.to(device),
            use_cache=False,
        ).last_hidden_state
        read = hidden[batch.read_rows.to(device)[:, None], batch.read_cols.to(device)]
        yield batch.prompts, head(read).float()
        if on_batch is not None:
            on_batch(len(batch.prompts))
