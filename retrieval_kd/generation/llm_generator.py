"""Queries written by a causal LM: doc2query / InPars-style generation for any Hugging Face LM.

Each passage (title + text, cut to ``passage_max_tokens`` tokens) is put into a
:class:`~retrieval_kd.generation.templates.PromptTemplate`, rendered with the tokenizer's chat
template when the model has one, and ``n`` continuations are sampled (nucleus sampling, Holtzman
et al. 2020; doc2query-T5 and GPL sample with top-p too). Prompts are sorted by length and
left-padded into batches, so a batch wastes little on padding; a continuation stops at the end of
the model's turn, at a newline, or at ``max_new_tokens``.

Sampling is seeded per call from ``seed`` and the first doc id, so generating the same shard of
documents twice gives the same text on the same hardware (a resumed run regenerates only
unfinished shards, which then match what an uninterrupted run would have written).

Precision: bf16 where the hardware computes it natively (``training.precision``'s ``auto`` rule:
a bf16 GPU, or a CPU with AVX512-BF16 / AMX), else fp32. On a CPU without bf16 units it is
slower, not faster: SmolLM2-135M generating for SciFact abstracts (batch 16, 256-token passages,
32 new tokens) on an AVX2-only 2-core AMD EPYC ran at 0.20 documents/s in bf16 against 0.74 in
fp32 (a throwaway timing script).
"""

from __future__ import annotations

import zlib
from typing import Any

from retrieval_kd.data.corpus import join_title
from retrieval_kd.errors import InputError
from retrieval_kd.generation.templates import PromptTemplate

DEFAULT_GENERATOR = "HuggingFaceTB/SmolLM2-135M-Instruct"


def line_tokens(tokenizer: Any) -> tuple[Any, Any, Any]:
    """Token-id masks over the vocabulary: text (not only whitespace), newline, and newline
    after text in the same token (``".\n"``), read off each token's decoded string.

    Shapes:
        returns three bool tensors [V].
    """
    import torch

    pieces = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
    text = torch.tensor([bool(p.strip()) for p in pieces])
    newline = torch.tensor(["\n" in p for p in pieces])
    ends_text = torch.tensor(["\n" in p and bool(p.split("\n", 1)[0].strip()) for p in pieces])
    return text, newline, ends_text


class FirstLineDone:
    """``generate``'s stopping criterion for one-line queries: a row is done at the first
    newline that follows some text (a leading blank line does not stop it), so a batch stops
    as soon as every row has written its line instead of running to ``max_new_tokens``.

    Args:
        prompt_length: the (padded) prompt length; only tokens after it are looked at.
        text / newline / ends_text: the masks of :func:`line_tokens`.
    """

    def __init__(self, prompt_length: int, text: Any, newline: Any, ends_text: Any):
        self.prompt_length = prompt_length
        self.text, self.newline, self.ends_text = text, newline, ends_text

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        new = input_ids[:, self.prompt_length :]
        if new.shape[1] == 0:
            return new.new_zeros(input_ids.shape[0], dtype=bool)
        ids = new.clamp(max=len(self.text) - 1).cpu()
        text = self.text[ids]
        text_before = (text.long().cumsum(dim=1) - text.long()) > 0
        done = (self.newline[ids] & text_before) | self.ends_text[ids]
        return done.any(dim=1).to(input_ids.device)


class LLMQueryGenerator:
    """Generates queries for passages with a causal LM (see the module docstring).

    Args:
        model: hub id, short name, local folder or ``.gguf`` file of a causal LM.
        template: the prompt (default: the ``question`` kind), or several: each document then
            gets one of them, drawn from ``seed`` and its id (the ``mixed`` kind: questions,
            claims and keyword queries, as Tamber et al. 2025 mix query styles).
        batch_size: prompts per ``generate`` call (each expands to ``n`` sequences).
        max_new_tokens: longest continuation.
        temperature / top_p: sampling settings (``temperature: 0`` is greedy decoding).
        passage_max_tokens: passages are cut to this many tokens (at a token boundary).
        chat: use the tokenizer's chat template: None = when it has one.
        seed: seeds sampling (with each call's first doc id).
        device / dtype: torch device and dtype (default: CUDA if there; bf16 where native).

    Raises:
        RKDError: the model cannot be resolved or loaded.
        InputError: a bad setting.
    """

    needs_cleaning = True

    def __init__(
        self,
        model: str = DEFAULT_GENERATOR,
        template: PromptTemplate | list[PromptTemplate] | None = None,
        *,
        batch_size: int | None = None,
        max_new_tokens: int = 32,
        temperature: float = 0.8,
        top_p: float = 0.95,
        passage_max_tokens: int = 256,
        chat: bool | None = None,
        seed: int = 0,
        device: str | None = None,
        dtype: Any = None,
    ):
        from retrieval_kd.llm.loading import choose_batch_size, choose_device, load_causal_lm

        if max_new_tokens < 1 or passage_max_tokens < 1:
            raise InputError("max_new_tokens and passage_max_tokens must be >= 1")
        if temperature < 0 or not 0 < top_p <= 1:
            raise InputError(
                f"need temperature >= 0 and 0 < top_p <= 1, got {temperature}, {top_p}"
            )
        device = choose_device(device)
        templates = template if isinstance(template, list) else [template]
        self.templates = [t for t in templates if t is not None] or [
            PromptTemplate.for_kind("question")
        ]
        self.lm = load_causal_lm(model, device=device, dtype=dtype)  # bf16 where native
        self.tokenizer = self.lm.tokenizer
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.tokenizer.padding_side = "left"
        self.batch_size = choose_batch_size(batch_size, device)
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.top_p = top_p
        self.passage_max_tokens = passage_max_tokens
        has_chat = getattr(self.tokenizer, "chat_template", None) is not None
        if chat and not has_chat:
            raise InputError("chat=True but the generator's tokenizer has no chat template")
        self.chat = has_chat if chat is None else chat
        self.seed = seed
        self._line_tokens: tuple[Any, Any, Any] | None = None

    def _first_line(self, prompt_length: int) -> Any:
        """A stopping criterion: a row is done once a line with text in it has ended."""
        if self._line_tokens is None:
            self._line_tokens = line_tokens(self.tokenizer)
        return FirstLineDone(prompt_length, *self._line_tokens)

    def template_for(self, doc_id: str) -> PromptTemplate:
        """The template of one document (the only one, or a seeded draw among several)."""
        if len(self.templates) == 1:
            return self.templates[0]
        return self.templates[zlib.crc32(f"{self.seed}:{doc_id}".encode()) % len(self.templates)]

    def prompt(self, passage: str, doc_id: str = "") -> str:
        """The full prompt text for one passage (chat-rendered when ``chat``)."""
        from retrieval_kd.llm.messages import truncate_tokens

        user = self.template_for(doc_id).render(
            truncate_tokens(self.tokenizer, passage, self.passage_max_tokens)
        )
        if not self.chat:
            return user
        return self.tokenizer.apply_chat_template(
            [{"role": "user", "content": user}], tokenize=False, add_generation_prompt=True
        )

    def generate(
        self, doc_ids: list[str], titles: list[str], bodies: list[str], n: int
    ) -> list[list[str]]:
        """``n`` raw continuations per document (cleaning is the caller's: see ``cleaning``).

        Shapes:
            doc_ids, titles, bodies: P each -> P lists of n strings.
        """
        import torch

        if not doc_ids:
            return []
        torch.manual_seed(zlib.crc32(f"{self.seed}:{doc_ids[0]}".encode()))
        prompts = [
            self.prompt(join_title(t, b), d)
            for d, t, b in zip(doc_ids, titles, bodies, strict=True)
        ]
        lengths = [
            len(self.tokenizer(p, add_special_tokens=not self.chat)["input_ids"]) for p in prompts
        ]
        order = sorted(range(len(prompts)), key=lambda i: -lengths[i])
        out: list[list[str]] = [[] for _ in prompts]
        sample = self.temperature > 0
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            enc = self.tokenizer(
                [prompts[i] for i in rows],
                return_tensors="pt",
                padding=True,
                add_special_tokens=not self.chat,
            ).to(self.lm.device)
            with torch.inference_mode():
                generated = self.lm.model.generate(
                    **enc,
                    max_new_tokens=self.max_new_tokens,
                    do_sample=sample,
                    temperature=self.temperature if sample else None,
                    top_p=self.top_p if sample else None,
                    top_k=None,
                    num_return_sequences=n,
                    pad_token_id=self.tokenizer.pad_token_id,
                    stopping_criteria=[self._first_line(enc["input_ids"].shape[1])],
                )
            texts = self.tokenizer.batch_decode(
                generated[:, enc["input_ids"].shape[1] :], skip_special_tokens=True
            )
            for offset, row in enumerate(rows):
                out[row] = texts[offset * n : (offset + 1) * n]
        return out

    def describe(self) -> dict[str, Any]:
        import torch

        return {
            "kind": "llm",
            **{k: v for k, v in self.lm.identity.items() if k != "path"},
            "template": [t.text for t in self.templates]
            if len(self.templates) > 1
            else self.templates[0].text,
            "template_kind": "mixed" if len(self.templates) > 1 else self.templates[0].kind,
            "few_shot_examples": sum(len(t.examples) for t in self.templates),
            "chat": self.chat,
            "max_new_tokens": self.max_new_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "passage_max_tokens": self.passage_max_tokens,
            "seed": self.seed,
            "dtype": str(self.lm.dtype).removeprefix("torch."),
            "device": str(self.lm.device),
            "batch_size": self.batch_size,
            "torch": torch.__version__,
        }
