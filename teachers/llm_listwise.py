"""A listwise LLM teacher: permutation ranking over sliding windows, generated or first-token.

Two ways to rank one window of ``w`` passages tagged ``[1]..[w]`` (or ``[A]..``):

- ``method="sliding"``: the model generates an order such as ``"[3] > [1] > [2]"`` (RankGPT:
  Sun et al. 2023, "Is ChatGPT Good at Search? Investigating Large Language Models as
  Re-Ranking Agents", EMNLP; RankZephyr: Pradeep, Sharifymoghaddam, Lin 2023), parsed and
  repaired by :func:`teachers.permutation.parse_permutation` (invalid and repeated identifiers
  dropped, missing ones appended in their current order; every repair counted);
- ``method="first"``: one forward pass; the logits of each identifier token at the first
  generated position (after the answer opens with ``"["``) give the whole order (FIRST: Reddy
  et al. 2024, "FIRST: Faster Improved Listwise Reranking with Single Token Decoding", EMNLP).
  Identifiers must then be single tokens: letters by default.

Lists longer than the window are ranked back to front with stride ``s``
(:func:`teachers.permutation.sliding_rank`); the top ``w - s`` are exact for an exact window
ranker. Cost: a readout is one forward pass per window; generation is one forward pass per
generated token (the first one processes the prompt), ``tokens_out`` counts generated tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from retrieval_kd.errors import InputError, RKDError
from retrieval_kd.interfaces import check_groups
from retrieval_kd.llm.loading import LoadedLM, load_causal_lm
from retrieval_kd.llm.messages import render_prompt, truncate_tokens
from retrieval_kd.llm.readout import Readout
from retrieval_kd.losses.preference import rank_scores
from retrieval_kd.store.preferences import PreferenceRecord
from teachers.permutation import (
    ParsedPermutation,
    format_permutation,
    identifier_labels,
    parse_permutation,
    sliding_rank,
)

METHODS = ("sliding", "first")
DEFAULT_LISTWISE_SYSTEM = (
    "You are RankLLM, an intelligent assistant that can rank passages based on their "
    "relevancy to the query."
)
PROMPT_HEAD = (
    "I will provide you with {num} passages, each indicated by a identifier []. Rank the "
    "passages based on their relevance to the search query: {query}.\n\n"
)
PROMPT_TAIL = (
    "\nSearch Query: {query}.\nRank the {num} passages above based on their relevance to the "
    "search query. All the passages should be included and listed using identifiers, in "
    "descending order of relevance. The output format should be [] > [], e.g., {example}. "
    "Only respond with the ranking results, do not say any word or explain."
)


class LLMListwiseTeacher:
    """Orders a query's candidates with a chat LM, window by window.

    Args:
        model: hub id, short name, local folder, ``.gguf`` file, or a loaded ``LoadedLM``.
        method: ``"sliding"`` (generate and parse) or ``"first"`` (first-token logits).
        window, stride, passes: the sliding window (:func:`~teachers.permutation.sliding_rank`).
        identifiers: ``"number"`` or ``"letter"`` (default: number for sliding, letter for
            FIRST, whose identifiers must be single tokens).
        system: system message (None: none).
        passage_max_tokens, query_max_tokens: each field is cut to this many tokens.
        max_new_tokens: generation limit (default: the tokens of a full answer, plus 8).
        device, dtype, gguf_file, chat: as for :class:`~teachers.llm_pairwise.LLMPairwiseTeacher`.
    """

    target = "ranking"

    def __init__(
        self,
        model: str | LoadedLM,
        *,
        method: str = "sliding",
        window: int = 20,
        stride: int = 10,
        passes: int = 1,
        identifiers: str | None = None,
        system: str | None = DEFAULT_LISTWISE_SYSTEM,
        passage_max_tokens: int = 100,
        query_max_tokens: int = 64,
        max_new_tokens: int | None = None,
        device: str | None = None,
        dtype: Any = None,
        gguf_file: str | None = None,
        chat: bool | None = None,
    ):
        if method not in METHODS:
            raise InputError(f"method must be one of {METHODS}, got {method!r}")
        if window < 2 or not 1 <= stride <= window or passes < 1:
            raise InputError("need window >= 2, 1 <= stride <= window, passes >= 1")
        if min(passage_max_tokens, query_max_tokens) < 1:
            raise InputError("token limits must be positive")
        self.lm = model if isinstance(model, LoadedLM) else load_causal_lm(
            model, gguf_file=gguf_file, device=device, dtype=dtype
        )  # fmt: skip
        self.tokenizer = self.lm.tokenizer
        self.method, self.window, self.stride, self.passes = method, window, stride, passes
        self.identifiers = identifiers or ("letter" if method == "first" else "number")
        self.labels = identifier_labels(window, self.identifiers)
        self.system, self.chat = system, chat
        self.passage_max_tokens, self.query_max_tokens = passage_max_tokens, query_max_tokens
        self.label_ids: list[list[int]] = []
        if method == "first":
            for label in self.labels:
                ids = self.tokenizer.encode(label, add_special_tokens=False)
                if len(ids) != 1 or ids[0] == self.tokenizer.unk_token_id:
                    raise RKDError(
                        f"FIRST needs single-token identifiers; {label!r} is {len(ids)} tokens "
                        "(use identifiers='letter' or a smaller window)"
                    )
                self.label_ids.append(ids)
        answer = self.tokenizer.encode(format_permutation(range(window), self.labels))
        self.max_new_tokens = max_new_tokens or len(answer) + 8
        self.readout = Readout(self.lm, batch_size=1)

    def window_prompt(self, query: str, passages: Sequence[str]) -> list[int]:
        """Token ids of the prompt for one window (fields already truncated)."""
        labels = self.labels[: len(passages)]
        example = format_permutation([1, 0] if len(passages) > 1 else [0], labels)
        values = {"num": str(len(passages)), "query": query, "example": example}
        body = "".join(f"[{label}] {p}\n" for label, p in zip(labels, passages, strict=True))
        user = _fill(PROMPT_HEAD, values) + body + _fill(PROMPT_TAIL, values)
        prefix = "[" if self.method == "first" else ""
        ids, _ = render_prompt(
            self.tokenizer, user, system=self.system, chat=self.chat, answer_prefix=prefix
        )
        return ids

    def rank_window(self, query: str, passages: Sequence[str]) -> tuple[ParsedPermutation, dict]:
        """Order one window (best first, window positions) and the cost of doing so."""
        prompt = self.window_prompt(query, passages)
        cost = {"forward_passes": 1, "tokens_in": len(prompt), "tokens_out": 0}
        if self.method == "first":
            logits = self.readout([prompt], self.label_ids[: len(passages)])[0]
            order = sorted(range(len(passages)), key=lambda i: (-logits[i], i))
            return ParsedPermutation(order), cost
        text, generated = self._generate(prompt)
        cost.update(forward_passes=max(generated, 1), tokens_out=generated)
        return parse_permutation(text, len(passages), self.labels[: len(passages)]), cost

    @torch.inference_mode()
    def _generate(self, prompt: list[int]) -> tuple[str, int]:
        """Greedy continuation of ``prompt``: its text and its token count."""
        device = torch.device(self.lm.device)
        ids = torch.tensor([prompt], device=device)
        pad = self.readout.pad_id
        out = self.lm.model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=self.max_new_tokens,
            do_sample=False,
            pad_token_id=pad,
        )[0, len(prompt) :]
        eos = self.tokenizer.eos_token_id
        ended = (out == eos).nonzero() if eos is not None else torch.empty(0)
        count = int(ended[0, 0]) + 1 if len(ended) else len(out)
        return self.tokenizer.decode(out[:count], skip_special_tokens=True), count

    def rank(self, query: str, passages: Sequence[str]) -> tuple[list[int], dict, dict]:
        """Order all ``passages`` (indices, best first) with the cost and repair counts."""
        query = truncate_tokens(self.tokenizer, query, self.query_max_tokens)
        cut = [truncate_tokens(self.tokenizer, p, self.passage_max_tokens) for p in passages]
        cost = {"forward_passes": 0, "tokens_in": 0, "tokens_out": 0}
        repairs = {"invalid_ids": 0, "duplicate_ids": 0, "missing_ids": 0, "unparsed_windows": 0}

        def rank_window(items: list[int]) -> list[int]:
            parsed, spent = self.rank_window(query, [cut[i] for i in items])
            for key, value in spent.items():
                cost[key] += value
            repairs["invalid_ids"] += parsed.invalid
            repairs["duplicate_ids"] += parsed.duplicate
            repairs["missing_ids"] += parsed.missing
            repairs["unparsed_windows"] += int(parsed.unparsed)
            return parsed.order

        order = sliding_rank(len(cut), self.window, self.stride, rank_window, self.passes)
        return order, cost, repairs

    def judge(self, query: str, doc_ids: list[str], passages: list[str]) -> PreferenceRecord:
        """The query's ranking record for a preference store (doc ids best first)."""
        order, cost, repairs = self.rank(query, passages)
        return PreferenceRecord(
            query_id="", doc_ids=[doc_ids[i] for i in order], cost=cost, repairs=repairs
        )

    def score(
        self,
        queries: list[str],
        passages: list[list[str]],
        *,
        query_ids: list[str] | None = None,
        doc_ids: list[list[str]] | None = None,
    ) -> list[np.ndarray]:
        """Rank-derived scores ``-rank`` of each query's passages (the ``Scorer`` protocol).

        Shapes:
            queries: Q strings; passages: Q lists of K_i strings -> Q float32 arrays [K_i].
        """
        check_groups(queries, passages)
        out = []
        for query, group in zip(queries, passages, strict=True):
            order = self.rank(query, group)[0]
            scores = np.empty(len(group), dtype=np.float32)
            scores[order] = rank_scores(len(group))
            out.append(scores)
        return out

    def describe(self) -> dict[str, Any]:
        """Model identity, method, window, prompt and limits."""
        example = self.tokenizer.decode(self.window_prompt("{query}", ["{passage}"] * 2))
        return {
            "kind": f"llm-listwise-{self.method}",
            "model": self.lm.identity.get("spec"),
            **{k: v for k, v in self.lm.identity.items() if k != "spec"},
            "method": self.method,
            "window": self.window,
            "stride": self.stride,
            "passes": self.passes,
            "identifiers": self.identifiers,
            "system": self.system,
            "prompt": example,
            "max_new_tokens": self.max_new_tokens if self.method == "sliding" else 0,
            "decoding": "greedy" if self.method == "sliding" else "first-token logits",
            "passage_max_tokens": self.passage_max_tokens,
            "query_max_tokens": self.query_max_tokens,
            "dtype": str(self.lm.dtype).replace("torch.", ""),
            "score_transform": "neg_rank (score = -rank) in score(); the store keeps the order",
            "device": str(self.lm.device),
        }


def _fill(template: str, values: dict[str, str]) -> str:
    out = template
    for key in ("num", "example", "query"):  # the query last: its text is never re-read
        out = out.replace("{" + key + "}", values[key])
    return out
