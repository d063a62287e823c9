"""A pointwise LLM teacher: any Hugging Face causal LM scores each (query, passage) on its own.

Two modes:

- ``"yes_no"``: the relevance logit ``log P(yes) - log P(no)`` of the token after a prompt that
  asks whether the passage answers the query (the prompting of HELM, Liang et al. 2022, and of
  Nogueira et al. 2020's monoT5 "true"/"false" readout, applied to a causal LM). "yes" is the
  ``logsumexp`` over the single-token variants ``yes``/`` yes``/``Yes``/`` Yes``/``YES``/
  `` YES`` (and likewise "no"): the tokenisation of the answer depends on the model and on
  whether the prompt ends in a space or a newline, and summing the probabilities of the variants
  is the probability of the word. The ids used are in ``describe()``.
- ``"query_likelihood"``: the mean log-probability of the query tokens given a prompt holding
  the passage (UPR, Sachan et al. 2022, "Improving Passage Retrieval with Zero-Shot Question
  Generation"; Zhuang et al. 2023, "Open-source LLMs are zero-shot query likelihood models"),
  in one forward pass over prompt + query with only the query positions read out.

Every pair is tokenised once. Pairs whose prompts begin with the same tokens (with the default
templates: the same passage, for every query that lists it) share that prefix's forward pass
(:mod:`retrieval_kd.llm.prefix_sharing`); the rest run whole, sorted by length so each batch pads
only to its own longest prompt (left padding, positions counted from each row's first real
token). Either way only the positions that are read reach the LM head, and the original order is
restored. On a CPU with native bf16 (AVX512-BF16 / AMX) the model runs in bf16 by default.

Long prompts lose the end of the PASSAGE, never the template or the query (see
:mod:`retrieval_kd.llm.prompts`). An empty passage is scored like any other text (the
prompt simply has nothing between its passage markers); an empty query cannot be scored in
``query_likelihood`` mode (no tokens to average) and is an error.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from retrieval_kd.errors import InputError, RKDError
from retrieval_kd.interfaces import check_groups, split_groups
from retrieval_kd.llm.loading import choose_batch_size, choose_device, load_causal_lm
from retrieval_kd.llm.prefix_sharing import supports_prefix_sharing
from retrieval_kd.llm.prompts import (
    DEFAULT_QUERY_LIKELIHOOD_TEMPLATE,
    DEFAULT_YES_NO_TEMPLATE,
    NO_VARIANTS,
    YES_VARIANTS,
    EncodedPrompt,
    answer_token_ids,
    build_frame,
    encode_prompt,
)
from retrieval_kd.llm.readout import trailing_logits
from retrieval_kd.progress import is_quiet

MODES = ("yes_no", "query_likelihood")
QUERIES_PER_CALL = 1000
QUERY_RESERVE = 32  # tokens; SmolLM2 tokens of SciFact's train queries: mean 18.9, 95th pct 32
_SCORE_FORMULA = {
    "yes_no": "logsumexp(logits[yes ids]) - logsumexp(logits[no ids]) at the next token",
    "query_likelihood": "mean over query tokens of log P(token | prompt, previous query tokens)",
}


class LLMPointwiseTeacher:
    """Scores (query, passage) pairs with a causal LM, one pair per prompt.

    Args:
        model: Hub id, registered short name, local folder, or a ``.gguf`` file.
        mode: ``"yes_no"`` or ``"query_likelihood"``.
        template: Prompt with ``{query}`` and ``{passage}`` (once each); default
            :data:`~retrieval_kd.llm.prompts.DEFAULT_YES_NO_TEMPLATE` or
            :data:`~retrieval_kd.llm.prompts.DEFAULT_QUERY_LIKELIHOOD_TEMPLATE`. In ``yes_no``
            mode it is the user message of the tokenizer's chat template (with the generation
            prompt); without a chat template ``"\\nAnswer:"`` is appended.
        max_length: Token limit of a prompt; the passage is cut to fit.
        batch_size: Prompts per forward pass; default 8 on the CPU, 64 on a GPU.
        device: Torch device; default CUDA when available, else CPU.
        dtype: Torch dtype or its name; default bf16 where the GPU or CPU computes it natively,
            else float32.
        gguf_file: GGUF file name inside the folder ``model`` (transformers' ``gguf_file=``).
        chat: Use the tokenizer's chat template in ``yes_no`` mode (None: when it has one).
        share_prefixes: Run the tokens that prompts share (everything before the query, in the
            default passage-first templates) once per distinct prefix
            (:mod:`retrieval_kd.llm.prefix_sharing`); same scores up to rounding.
        row_tokens: Most tokens in one packed row of a prefix and the suffixes that share it
            (default 2 x max_length); a pass takes about ``batch_size x max_length`` tokens.
        query_reserve: A long passage is cut to leave room for a query of this many tokens
            (longer queries cut it further), so that it is cut, and shared, alike under every
            query; 0 cuts each prompt just to fit.

    Attributes:
        queries_per_call: Queries the score store hands over per call (1000): a passage is
            shared only within a call, and the candidates of 16 queries (the store's default)
            overlap little (SciFact train, BM25 top 30: 1.3 pairs per passage in 16 queries,
            5.0 in all 809).

    Raises:
        InputError: Unknown mode, bad template, or non-positive sizes.
        RKDError: The model does not load, or "yes"/"no" are not single tokens.
    """

    def __init__(
        self,
        model: str,
        mode: str = "yes_no",
        template: str | None = None,
        max_length: int = 512,
        batch_size: int | None = None,
        device: str | None = None,
        dtype: Any = None,
        *,
        gguf_file: str | None = None,
        chat: bool | None = None,
        share_prefixes: bool = True,
        row_tokens: int | None = None,
        query_reserve: int = QUERY_RESERVE,
    ):
        if mode not in MODES:
            raise InputError(f"mode must be one of {MODES}, got {mode!r}")
        if max_length < 1:
            raise InputError("max_length must be positive")
        if query_reserve < 0:
            raise InputError("query_reserve must be >= 0")
        batch_size = choose_batch_size(batch_size, choose_device(device))  # before loading
        loaded = load_causal_lm(model, gguf_file=gguf_file, device=device, dtype=dtype)
        self.model = loaded.model
        self.tokenizer = loaded.tokenizer
        self.identity = loaded.identity
        self.device = torch.device(loaded.device)
        self.dtype = loaded.dtype
        self.mode = mode
        self.queries_per_call = QUERIES_PER_CALL
        self.max_length = max_length
        self.query_reserve = query_reserve
        self.batch_size = batch_size
        if template is None:
            template = (
                DEFAULT_YES_NO_TEMPLATE if mode == "yes_no" else DEFAULT_QUERY_LIKELIHOOD_TEMPLATE
            )
        self.template = template
        self.frame = build_frame(template, mode, self.tokenizer, chat)
        self.yes_ids: list[int] = []
        self.no_ids: list[int] = []
        if mode == "yes_no":
            self.yes_ids = answer_token_ids(self.tokenizer, YES_VARIANTS)
            self.no_ids = answer_token_ids(self.tokenizer, NO_VARIANTS)
            if set(self.yes_ids) & set(self.no_ids):
                raise RKDError("the yes and no answer tokens overlap")
        pad = self.tokenizer.pad_token_id
        if pad is None:
            pad = self.tokenizer.eos_token_id
        self.pad_id = int(pad) if pad is not None else 0
        if row_tokens is not None and row_tokens < 1:
            raise InputError("row_tokens must be positive")
        self.share_prefixes = share_prefixes
        self._sharing_supported = supports_prefix_sharing(self.model)
        self.row_tokens = row_tokens or 2 * max_length

    def encode(self, query: str, passage: str) -> EncodedPrompt:
        """The token ids of one pair's prompt (passage cut to ``max_length``), field positions.

        Shapes:
            returns input_ids [T <= max_length], query/passage positions into it.
        """
        return encode_prompt(
            self.frame, self.tokenizer, query, passage, self.max_length, self.query_reserve
        )

    def score(
        self,
        queries: list[str],
        passages: list[list[str]],
        *,
        query_ids: list[str] | None = None,
        doc_ids: list[list[str]] | None = None,
    ) -> list[np.ndarray]:
        """Raw scores of each query's passages (higher = more relevant); ids are not read.

        Shapes:
            queries: Q strings; passages: Q lists of K_i strings -> Q float32 arrays [K_i].

        Raises:
            InputError: ``queries`` and ``passages`` differ in length.
            RKDError: A score is NaN/inf, or a prompt cannot be built (names the query).
        """
        check_groups(queries, passages)
        owners = [i for i, group in enumerate(passages) for _ in group]
        encoded = [self._encode_checked(queries[i], p) for i, g in enumerate(passages) for p in g]
        flat = np.empty(len(encoded), dtype=np.float64)
        splits = [self._split(e) for e in encoded] if self.share_prefixes else [0] * len(encoded)
        bar = tqdm(total=len(encoded), desc=f"LLM {self.mode}", unit="pair", disable=is_quiet())
        for rows, trailing in trailing_logits(
            self.model,
            [e.input_ids for e in encoded],
            splits,
            [self._keep(e) for e in encoded],
            pad_id=self.pad_id,
            device=self.device,
            batch_size=self.batch_size,
            row_tokens=self.row_tokens,
            batch_tokens=self.batch_size * self.max_length,
            on_batch=bar.update,
        ):
            flat[rows] = self._read(rows, encoded, trailing)
        bar.close()
        bad = np.flatnonzero(~np.isfinite(flat))
        if bad.size:
            qi = owners[int(bad[0])]
            name = query_ids[qi] if query_ids is not None else queries[qi][:80]
            raise RKDError(
                f"LLM teacher gave a non-finite score ({flat[bad[0]]}) for query {name!r} "
                f"({bad.size} non-finite scores in this call)"
            )
        return split_groups(flat.astype(np.float32), passages)

    def _encode_checked(self, query: str, passage: str) -> EncodedPrompt:
        enc = self.encode(query, passage)
        if self.mode == "query_likelihood":
            if not enc.query_positions:
                raise RKDError(f"query {query[:80]!r} has no tokens: query likelihood undefined")
            if enc.query_positions[0] < 1:
                raise RKDError(f"query {query[:80]!r}: no prompt token before the query")
        return enc

    def _keep(self, enc: EncodedPrompt) -> int:
        """How many final positions of a prompt are read: the last one (yes/no), or from the
        position before the first query token to the end (query likelihood)."""
        if self.mode == "yes_no":
            return 1
        return len(enc.input_ids) - enc.query_positions[0] + 1

    def _split(self, enc: EncodedPrompt) -> int:
        """Where a prompt's shareable prefix ends: at the start of the field that comes second
        (the query, in the default templates) and before the first position read; 0 (nothing
        to share) when a field has no tokens or the model cannot take a cache."""
        if not (self._sharing_supported and enc.query_positions and enc.passage_positions):
            return 0
        second = max(enc.query_positions[0], enc.passage_positions[0])
        return min(second, len(enc.input_ids) - self._keep(enc))

    def _read(
        self, picked: list[int], encoded: list[EncodedPrompt], trailing: torch.Tensor
    ) -> np.ndarray:
        """Scores of prompts ``picked`` from their trailing logits (row r = ``picked[r]``).

        Shapes:
            trailing: [B, keep, V], position -1 at each prompt's last token -> float64 [B].
        """
        if self.mode == "yes_no":
            last = trailing[:, -1]
            yes = torch.logsumexp(last[:, self.yes_ids], dim=-1)
            no = torch.logsumexp(last[:, self.no_ids], dim=-1)
            return (yes - no).double().cpu().numpy()
        keep = trailing.shape[1]
        out = np.empty(len(picked), dtype=np.float64)
        for row, i in enumerate(picked):
            enc = encoded[i]
            # the logits predicting the token at position q sit at position q - 1
            at = torch.tensor([keep - len(enc.input_ids) + q - 1 for q in enc.query_positions])
            targets = torch.tensor([enc.input_ids[q] for q in enc.query_positions])
            logp = torch.log_softmax(trailing[row, at.to(trailing.device)], dim=-1)
            picked_logp = logp.gather(-1, targets.to(logp.device).unsqueeze(-1))
            out[row] = picked_logp.double().mean().item()
        return out

    def describe(self) -> dict[str, Any]:
        """Model identity, mode, template, rendered prompt, answer tokens, limits."""
        info: dict[str, Any] = {
            "kind": f"llm-{'yes-no' if self.mode == 'yes_no' else 'ql'}",
            "model": self.identity.get("spec"),
            **{k: v for k, v in self.identity.items() if k != "spec"},
            "mode": self.mode,
            "template": self.template,
            "prompt": self.frame.text(),
            "chat_template": self.frame.chat,
            "add_special_tokens": self.frame.add_special_tokens,
            "max_length": self.max_length,
            "truncation": "passage (end cut at a token boundary)",
            "query_reserve": self.query_reserve,
            "dtype": str(self.dtype).replace("torch.", ""),
            "score": _SCORE_FORMULA[self.mode],
            "score_transform": "none",
            "device": str(self.device),
            "batch_size": self.batch_size,
            "prefix_sharing": bool(self.share_prefixes and self._sharing_supported),
            "row_tokens": self.row_tokens,
        }
        if self.mode == "yes_no":
            info["yes_token_ids"] = self.yes_ids
            info["no_token_ids"] = self.no_ids
            info["yes_tokens"] = self.tokenizer.convert_ids_to_tokens(self.yes_ids)
            info["no_tokens"] = self.tokenizer.convert_ids_to_tokens(self.no_ids)
        return info
