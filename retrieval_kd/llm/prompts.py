"""Pointwise LLM prompts (yes/no, query likelihood): templates, chat format, truncation.

A template is free text with the placeholders ``{query}`` and ``{passage}`` (each exactly once;
other braces are kept as they are). It is turned once into a :class:`PromptFrame`: the literal text
around the two fields after the tokenizer's chat template (if used) has been applied, so that
rendering a pair is a string concatenation whose field spans are known in characters.

A rendered prompt is tokenised as one string (the model sees the tokenisation it would see for
that text); the tokens of the passage and of the query are the tokens whose character offsets
overlap the field's span (a fast tokenizer's ``offset_mapping``). A prompt longer than
``max_length`` tokens is shortened by cutting the PASSAGE text at a token boundary and
re-tokenising; the template and the query are never cut.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from retrieval_kd.errors import InputError, RKDError

# HELM (Liang et al. 2022, "Holistic Evaluation of Language Models") MS MARCO prompt, phrased as
# an instruction for chat models; the answer is read from the next token's distribution.
DEFAULT_YES_NO_TEMPLATE = (
    "Passage: {passage}\nQuery: {query}\nDoes the passage answer the query? Answer 'Yes' or 'No'."
)
# Appended to a yes/no template when the tokenizer has no chat template (or chat is turned off).
PLAIN_ANSWER_SUFFIX = "\nAnswer:"
# UPR (Sachan et al. 2022, "Improving Passage Retrieval with Zero-Shot Question Generation");
# Zhuang et al. 2023 ("Open-source LLMs are zero-shot query likelihood models") score the query
# tokens after a plain instruction of this kind.
DEFAULT_QUERY_LIKELIHOOD_TEMPLATE = (
    "Passage: {passage}\nPlease write a question based on this passage.\nQuestion: {query}"
)
# Case and leading-space variants of the answers; those that are ONE token are used.
YES_VARIANTS = ("yes", " yes", "Yes", " Yes", "YES", " YES")
NO_VARIANTS = ("no", " no", "No", " No", "NO", " NO")

_FIELD = re.compile(r"\{(query|passage)\}")
_SENTINELS = {"query": "\ue000RKDQUERY\ue000", "passage": "\ue000RKDPASSAGE\ue000"}


@dataclass(frozen=True)
class PromptFrame:
    """A template after chat formatting: literal pieces around the two fields.

    Attributes:
        pieces: Literal strings and field names, e.g. ``("<user>Passage: ", "passage", ...)``;
            field names are the strings ``"query"`` and ``"passage"`` at odd positions.
        add_special_tokens: Whether tokenising adds the tokenizer's own special tokens (plain
            text: yes, e.g. a BOS; chat-rendered text already holds them: no).
        chat: Whether the tokenizer's chat template was applied.
    """

    pieces: tuple[str, ...]
    add_special_tokens: bool
    chat: bool

    def text(self) -> str:
        """The frame with ``{query}``/``{passage}`` placeholders: what the manifest records."""
        return "".join("{" + p + "}" if i % 2 else p for i, p in enumerate(self.pieces))

    def render(self, query: str, passage: str) -> tuple[str, dict[str, tuple[int, int]]]:
        """The prompt for one pair and the character span ``[start, end)`` of each field."""
        parts: list[str] = []
        spans: dict[str, tuple[int, int]] = {}
        pos = 0
        for i, piece in enumerate(self.pieces):
            value = piece if i % 2 == 0 else (query if piece == "query" else passage)
            if i % 2:
                spans[piece] = (pos, pos + len(value))
            parts.append(value)
            pos += len(value)
        return "".join(parts), spans


@dataclass(frozen=True)
class EncodedPrompt:
    """One tokenised (query, passage) prompt.

    Shapes:
        input_ids: [T] token ids, T <= max_length.
        query_positions / passage_positions: indices into ``input_ids`` of the tokens that overlap
            the field (contiguous, possibly empty).
    """

    input_ids: list[int]
    query_positions: list[int]
    passage_positions: list[int]
    truncated: bool


def split_template(template: str, mode: str) -> list[str]:
    """Check a template's placeholders; return the literal/field pieces (fields at odd indices).

    Raises:
        InputError: ``{query}`` or ``{passage}`` missing or repeated, or (query likelihood) the
            query placed before the passage, where its tokens could not see the passage.
    """
    pieces = _FIELD.split(template)
    fields = pieces[1::2]
    if sorted(fields) != ["passage", "query"]:
        raise InputError(
            f"template must contain {{query}} and {{passage}} exactly once each, got {fields}"
        )
    if mode == "query_likelihood" and fields != ["passage", "query"]:
        raise InputError("a query-likelihood template must place {passage} before {query}")
    return pieces


def build_frame(template: str, mode: str, tokenizer: Any, chat: bool | None) -> PromptFrame:
    """Turn a template into a :class:`PromptFrame` for ``tokenizer``.

    In ``yes_no`` mode the template is the user message: with a chat template (``chat`` True, or
    None and the tokenizer has one) it is rendered with ``add_generation_prompt=True``, else
    :data:`PLAIN_ANSWER_SUFFIX` is appended. In ``query_likelihood`` mode the template is used as
    plain text (write chat markup into the template yourself if wanted).

    Raises:
        InputError: Bad placeholders, or ``chat=True`` where it cannot apply.
    """
    split_template(template, mode)
    has_chat = getattr(tokenizer, "chat_template", None) is not None
    if mode == "query_likelihood":
        if chat:
            raise InputError("chat formatting applies to yes_no mode only")
        use_chat = False
    else:
        if chat and not has_chat:
            raise InputError("chat=True but the tokenizer has no chat template")
        use_chat = has_chat if chat is None else chat
    if not use_chat:
        body = template + (PLAIN_ANSWER_SUFFIX if mode == "yes_no" else "")
        return PromptFrame(tuple(_FIELD.split(body)), add_special_tokens=True, chat=False)
    marked = _FIELD.sub(lambda m: _SENTINELS[m.group(1)], template)
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": marked}], tokenize=False, add_generation_prompt=True
    )
    pattern = "(" + "|".join(re.escape(s) for s in _SENTINELS.values()) + ")"
    names = {s: n for n, s in _SENTINELS.items()}
    pieces = [names.get(p, p) for p in re.split(pattern, rendered)]
    if sorted(pieces[1::2]) != ["passage", "query"]:
        raise RKDError("the chat template dropped or repeated the {query}/{passage} fields")
    return PromptFrame(tuple(pieces), add_special_tokens=False, chat=True)


def answer_token_ids(tokenizer: Any, variants: tuple[str, ...]) -> list[int]:
    """Ids of the answer variants that the tokenizer encodes as ONE known token (deduplicated).

    Raises:
        RKDError: No variant is a single token.
    """
    ids: list[int] = []
    unknown = getattr(tokenizer, "unk_token_id", None)
    for word in variants:
        encoded = tokenizer.encode(word, add_special_tokens=False)
        if len(encoded) == 1 and encoded[0] != unknown and encoded[0] not in ids:
            ids.append(int(encoded[0]))
    if not ids:
        raise RKDError(f"none of {variants} is a single token of this tokenizer")
    return ids


def _overlapping(offsets: list[tuple[int, int]], span: tuple[int, int]) -> list[int]:
    start, end = span
    return [i for i, (s, e) in enumerate(offsets) if s < e and s < end and e > start]


def encode_prompt(
    frame: PromptFrame,
    tokenizer: Any,
    query: str,
    passage: str,
    max_length: int,
    query_reserve: int = 0,
) -> EncodedPrompt:
    """Tokenise one pair's prompt, cutting the passage (only) until it fits ``max_length``.

    Each round drops the passage tokens beyond the budget by cutting the passage text at the start
    offset of the first dropped token, then re-tokenises (a cut can change the tokens around it,
    so this repeats; the passage gets at least one character shorter each round).

    ``query_reserve``: the passage is cut as if the query had at least this many tokens, so a
    passage is cut the same way under every query up to that length (its prompt prefix is then
    the same, and shared: :mod:`retrieval_kd.llm.prefix_sharing`); 0 cuts each prompt to fit.

    Raises:
        RKDError: The prompt is too long with an empty passage (template + query > max_length),
            or the tokenizer gives no character offsets (not a fast tokenizer).
    """
    truncated = False
    while True:
        text, spans = frame.render(query, passage)
        try:
            enc = tokenizer(
                text,
                add_special_tokens=frame.add_special_tokens,
                return_offsets_mapping=True,
                truncation=False,
            )
        except NotImplementedError as err:
            raise RKDError("the LLM teacher needs a fast tokenizer (character offsets)") from err
        ids = list(enc["input_ids"])
        offsets = [tuple(o) for o in enc["offset_mapping"]]
        p_pos = _overlapping(offsets, spans["passage"])
        q_pos = _overlapping(offsets, spans["query"])
        limit = max_length - max(0, query_reserve - len(q_pos))
        if len(ids) <= limit or (len(ids) <= max_length and not p_pos):
            return EncodedPrompt(ids, q_pos, p_pos, truncated)
        excess = len(ids) - limit
        if not passage or not p_pos:
            raise RKDError(
                f"query {query[:80]!r}: template + query take {len(ids)} tokens, more than "
                f"max_length={max_length} even with an empty passage"
            )
        keep = max(0, len(p_pos) - excess)
        cut = offsets[p_pos[keep]][0] - spans["passage"][0] if keep < len(p_pos) else 0
        cut = min(max(cut, 0), len(passage) - 1)
        passage = passage[:cut]
        truncated = True
