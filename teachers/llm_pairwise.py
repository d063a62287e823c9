"""A pairwise LLM teacher: which of two passages is more relevant, read from two answer logits.

Pairwise ranking prompting (PRP: Qin et al. 2024, "Large Language Models are Effective Text
Rankers with Pairwise Ranking Prompting", NAACL) asks a chat LLM which of two passages answers a
query better; duoT5 (Pradeep, Nogueira, Lin 2021) reads the same preference from a seq2seq
model, and PairDistill (Huang, Hsu, Chen 2024, EMNLP) distills such preferences into a dense
retriever. The preference is read from the logits of the two answer tokens at the answer
position (``ℓ_A``, ``ℓ_B``: logsumexp over the single-token variants ``"A"``/``" A"``), never
from generated text, and both presentation orders are averaged to cancel position bias:

.. math::
    P(i > j) = \\tfrac12\\big[\\sigma(\\ell_A - \\ell_B \\mid i\\ \\text{first})
        + \\sigma(\\ell_B - \\ell_A \\mid j\\ \\text{first})\\big]

so ``P(i > j) + P(j > i) = 1`` by construction. Pairs come from a strategy over the first-stage
order (:func:`select_pairs`): all pairs of the top ``m``, adjacent pairs (sliding), or a seeded
budget of sampled pairs. Two forward passes per pair; prompts are batched (left padding).

Prompt rendering, truncation and the logit readout come from :mod:`retrieval_kd.llm`, shared with
:mod:`teachers.llm_listwise` and :mod:`students.instruction_distill`.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from retrieval_kd.errors import InputError, RKDError
from retrieval_kd.interfaces import check_groups
from retrieval_kd.llm.loading import LoadedLM, choose_batch_size, choose_device, load_causal_lm
from retrieval_kd.llm.messages import render_prompt, truncate_tokens
from retrieval_kd.llm.prompts import answer_token_ids
from retrieval_kd.llm.readout import Readout
from retrieval_kd.losses.preference import bradley_terry
from retrieval_kd.store.preferences import PreferenceRecord

PAIR_STRATEGIES = ("all", "sliding", "sampled")
DEFAULT_PAIRWISE_TEMPLATE = (
    'Given a query "{query}", which of the following two passages is more relevant to the '
    'query?\n\nPassage A: "{passage_a}"\n\nPassage B: "{passage_b}"\n\n'
    "Output Passage A or Passage B:"
)
DEFAULT_ANSWER_PREFIX = "Passage"
_FIELDS = re.compile(r"\{(query|passage_a|passage_b)\}")


def fill(template: str, values: dict[str, str]) -> str:
    """Replace ``{name}`` fields in one pass (a value holding ``{query}`` is left alone)."""
    return _FIELDS.sub(lambda m: values[m.group(1)], template)


def select_pairs(
    n: int,
    strategy: str = "all",
    *,
    top_m: int = 10,
    budget: int = 20,
    seed: int = 0,
    key: str = "",
) -> list[tuple[int, int]]:
    """Unordered pairs ``(i, j)``, ``i < j``, of positions in a first-stage order.

    Args:
        n: number of candidates.
        strategy: ``"all"`` pairs of the top ``top_m``; ``"sliding"`` adjacent pairs
            ``(i, i + 1)``; ``"sampled"``: ``budget`` pairs drawn without replacement from all
            pairs, seeded by ``seed`` and ``key`` (e.g. the query), sorted.

    Example:
        >>> select_pairs(4, "sliding")
        [(0, 1), (1, 2), (2, 3)]
        >>> len(select_pairs(10, "all", top_m=4)), len(select_pairs(10, "sampled", budget=7))
        (6, 7)
    """
    if strategy == "all":
        m = min(n, top_m)
        return [(i, j) for i in range(m) for j in range(i + 1, m)]
    if strategy == "sliding":
        return [(i, i + 1) for i in range(n - 1)]
    if strategy == "sampled":
        every = [(i, j) for i in range(n) for j in range(i + 1, n)]
        if budget >= len(every):
            return every
        return sorted(random.Random(f"{seed}\x00{key}").sample(every, budget))
    raise RKDError(f"pair strategy must be one of {PAIR_STRATEGIES}, got {strategy!r}")


class LLMPairwiseTeacher:
    """Pairwise preferences of a causal (chat) LM, debiased over both presentation orders.

    Args:
        model: hub id, registered short name, local folder, or ``.gguf`` file; or a
            :class:`~retrieval_kd.llm.loading.LoadedLM` already in memory.
        template: user message with ``{query}``, ``{passage_a}``, ``{passage_b}``.
        system: optional system message.
        answer_prefix: text that opens the answer, so the next token is the label.
        labels: the two answer labels the template names (each must be one token).
        pairs, top_m, budget, seed: pair selection (:func:`select_pairs`).
        passage_max_tokens, query_max_tokens: each field is cut to this many tokens.
        batch_size: prompts per forward pass; default 8 on the CPU, 64 on a GPU.
        device, dtype, gguf_file: as for :func:`~retrieval_kd.llm.loading.load_causal_lm`.
        chat: use the tokenizer's chat template (None: when it has one).
    """

    target = "pairwise"

    def __init__(
        self,
        model: str | LoadedLM,
        *,
        template: str = DEFAULT_PAIRWISE_TEMPLATE,
        system: str | None = None,
        answer_prefix: str = DEFAULT_ANSWER_PREFIX,
        labels: tuple[str, str] = ("A", "B"),
        pairs: str = "all",
        top_m: int = 10,
        budget: int = 20,
        seed: int = 0,
        passage_max_tokens: int = 128,
        query_max_tokens: int = 64,
        batch_size: int | None = None,
        device: str | None = None,
        dtype: Any = None,
        gguf_file: str | None = None,
        chat: bool | None = None,
    ):
        if sorted(_FIELDS.findall(template)) != ["passage_a", "passage_b", "query"]:
            raise InputError("template needs {query}, {passage_a} and {passage_b} once each")
        select_pairs(2, pairs)  # validates the strategy
        if min(passage_max_tokens, query_max_tokens, top_m, budget) < 1:
            raise InputError("token limits, top_m and budget must be positive")
        where = str(model.device) if isinstance(model, LoadedLM) else choose_device(device)
        batch_size = choose_batch_size(batch_size, where)  # checked before loading the model
        self.lm = model if isinstance(model, LoadedLM) else load_causal_lm(
            model, gguf_file=gguf_file, device=device, dtype=dtype
        )  # fmt: skip
        self.tokenizer = self.lm.tokenizer
        self.template, self.system, self.answer_prefix = template, system, answer_prefix
        self.labels = labels
        self.label_ids = [answer_token_ids(self.tokenizer, (x, " " + x)) for x in labels]
        if set(self.label_ids[0]) & set(self.label_ids[1]):
            raise RKDError(f"the answer labels {labels} share a token")
        self.pairs, self.top_m, self.budget, self.seed = pairs, top_m, budget, seed
        self.passage_max_tokens, self.query_max_tokens = passage_max_tokens, query_max_tokens
        self.chat = chat
        self.readout = Readout(self.lm, batch_size)

    def prompt_ids(self, query: str, first: str, second: str) -> list[int]:
        """Token ids of the prompt that shows ``first`` as passage A and ``second`` as B."""
        values = {"query": query, "passage_a": first, "passage_b": second}
        ids, _ = render_prompt(
            self.tokenizer, fill(self.template, values), system=self.system, chat=self.chat,
            answer_prefix=self.answer_prefix,
        )  # fmt: skip
        return ids

    def compare(
        self, query: str, passages: Sequence[str], pairs: Sequence[tuple[int, int]]
    ) -> tuple[np.ndarray, dict[str, int]]:
        """``P(passages[i] > passages[j])`` for each pair, and the cost of computing them.

        Each unordered pair is presented in both orders once (a pair asked for in both
        directions, or twice, costs two prompts); ``P(j > i)`` is ``1 - P(i > j)`` of the same
        readout, and a passage against itself is 0.5 without a prompt.

        Shapes:
            passages: K strings; pairs: P index pairs -> float64 [P] probabilities.
        """
        tok = self.tokenizer
        q = truncate_tokens(tok, query, self.query_max_tokens)
        cut = [truncate_tokens(tok, p, self.passage_max_tokens) for p in passages]
        unique = sorted({(min(i, j), max(i, j)) for i, j in pairs if i != j})
        prompts = [self.prompt_ids(q, cut[i], cut[j]) for i, j in unique]
        prompts += [self.prompt_ids(q, cut[j], cut[i]) for i, j in unique]
        logits = self.readout(prompts, self.label_ids) if prompts else np.zeros((0, 2))
        margin = logits[:, 0] - logits[:, 1]  # ℓ_A − ℓ_B
        forward, swapped = margin[: len(unique)], margin[len(unique) :]
        canonical = dict(zip(unique, 0.5 * (_sigmoid(forward) + _sigmoid(-swapped)), strict=True))
        probs = np.array(
            [
                0.5 if i == j else canonical[i, j] if i < j else 1.0 - canonical[j, i]
                for i, j in pairs
            ],
            dtype=np.float64,
        )
        cost = {"forward_passes": len(prompts), "tokens_in": sum(map(len, prompts))}
        return probs, {**cost, "tokens_out": 0}

    def judge(self, query: str, doc_ids: list[str], passages: list[str]) -> PreferenceRecord:
        """The query's pairwise record for a preference store (see :func:`select_pairs`)."""
        pairs = select_pairs(
            len(passages), self.pairs, top_m=self.top_m, budget=self.budget, seed=self.seed,
            key=query,
        )  # fmt: skip
        probs, cost = self.compare(query, passages, pairs)
        return PreferenceRecord(
            query_id="",
            doc_ids=list(doc_ids),
            pairs=np.asarray(pairs, dtype=np.int32).reshape(-1, 2),
            probs=probs.astype(np.float32),
            cost=cost,
        )

    def score(
        self,
        queries: list[str],
        passages: list[list[str]],
        *,
        query_ids: list[str] | None = None,
        doc_ids: list[list[str]] | None = None,
    ) -> list[np.ndarray]:
        """Bradley-Terry log-strengths of each query's passages (the ``Scorer`` protocol).

        Passages in no selected pair score below every compared one, in their given order.

        Shapes:
            queries: Q strings; passages: Q lists of K_i strings -> Q float32 arrays [K_i].
        """
        check_groups(queries, passages)
        out = []
        for query, group in zip(queries, passages, strict=True):
            n = len(group)
            pairs = select_pairs(
                n, self.pairs, top_m=self.top_m, budget=self.budget, seed=self.seed, key=query
            )
            probs, _ = self.compare(query, group, pairs)
            theta = bradley_terry(n, np.asarray(pairs).reshape(-1, 2), probs)
            seen = np.zeros(n, dtype=bool)
            seen[np.asarray(pairs, dtype=np.int64).reshape(-1)] = True
            floor = theta[seen].min() if seen.any() else 0.0
            theta[~seen] = floor - 1.0 - 0.01 * np.arange((~seen).sum())
            out.append(theta.astype(np.float32))
        return out

    def describe(self) -> dict[str, Any]:
        """Model identity, prompt, answer tokens, pair strategy and limits."""
        example = self.tokenizer.decode(self.prompt_ids("{query}", "{passage_a}", "{passage_b}"))
        return {
            "kind": "llm-pairwise",
            "model": self.lm.identity.get("spec"),
            **{k: v for k, v in self.lm.identity.items() if k != "spec"},
            "template": self.template,
            "system": self.system,
            "prompt": example,
            "answer_prefix": self.answer_prefix,
            "labels": list(self.labels),
            "label_token_ids": self.label_ids,
            "preference": "0.5*[sigmoid(lA-lB | i first) + sigmoid(lB-lA | j first)]",
            "pairs": self.pairs,
            "top_m": self.top_m,
            "budget": self.budget,
            "seed": self.seed,
            "passage_max_tokens": self.passage_max_tokens,
            "query_max_tokens": self.query_max_tokens,
            "dtype": str(self.lm.dtype).replace("torch.", ""),
            "score_transform": "none (pairwise probabilities)",
            "device": str(self.lm.device),
            "batch_size": self.readout.batch_size,
            "prefix_sharing": self.readout.share_prefixes,
        }


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=np.float64)))
