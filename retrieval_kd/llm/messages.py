"""Prompts as chat messages: a user message rendered to token ids, and text cut to a token budget.

Used by the pairwise and listwise LLM teachers (PRP, Qin et al. 2024; RankGPT, Sun et al. 2023),
whose prompts are whole messages rather than the pointwise templates of :mod:`.prompts`.
"""

from __future__ import annotations

from typing import Any

from retrieval_kd.errors import InputError


def truncate_tokens(tokenizer: Any, text: str, max_tokens: int) -> str:
    """``text`` cut at a token boundary to at most ``max_tokens`` tokens (no special tokens)."""
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    if len(enc["input_ids"]) <= max_tokens:
        return text
    return text[: enc["offset_mapping"][max_tokens][0]].rstrip()


def render_prompt(
    tokenizer: Any, user: str, *, system: str | None, chat: bool | None, answer_prefix: str
) -> tuple[list[int], bool]:
    """Token ids of a user message (chat-formatted when possible) followed by ``answer_prefix``.

    With a chat template (``chat`` None or True) the message is rendered with the generation
    prompt and the prefix opens the assistant turn; a system message the template rejects is
    prepended to the user message. Without one, the text is ``system + user + "\\n" + prefix``
    tokenised with the tokenizer's special tokens.

    Returns:
        The ids and whether the chat template was used.
    """
    has_chat = getattr(tokenizer, "chat_template", None) is not None
    if chat and not has_chat:
        raise InputError("chat=True but the tokenizer has no chat template")
    if has_chat and chat is not False:
        messages = [{"role": "user", "content": user}]
        try:
            text = tokenizer.apply_chat_template(
                ([{"role": "system", "content": system}] if system else []) + messages,
                tokenize=False,
                add_generation_prompt=True,
            )
        except Exception:  # templates that refuse a system turn
            messages[0]["content"] = f"{system}\n\n{user}" if system else user
            text = tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
        return tokenizer.encode(text + answer_prefix, add_special_tokens=False), True
    text = (f"{system}\n\n" if system else "") + user + "\n" + answer_prefix
    return tokenizer.encode(text, add_special_tokens=True), False
