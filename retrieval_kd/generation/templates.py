"""Prompt templates for LLM query generation, one per kind of query, and few-shot examples.

A template is free text with the placeholder ``{passage}`` exactly once (a few-shot template also
takes ``{examples}`` once); other braces are kept as they are. The kinds follow the anchors:
``question`` as in doc2query / GPL (Nogueira et al. 2019; Wang et al. 2022), ``claim`` and
``keywords`` as two of the query styles of Tamber et al. 2025 ("Teaching Dense Retrieval Models to
Specialize with Listwise Distillation and LLM Data Augmentation"), and ``few-shot`` as InPars
(Bonifacio et al. 2022), which shows the model a few (passage, query) pairs of the target style.

Example:
    >>> t = PromptTemplate.for_kind("question")
    >>> "{passage}" in t.text and t.render("Aspirin thins blood.").count("Aspirin") == 1
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from retrieval_kd.errors import InputError

KINDS = ("question", "claim", "keywords", "few-shot", "mixed")
MIXED = ("question", "claim", "keywords")  # the kinds ``mixed`` draws from, one per document

# The instruction of UPR (Sachan et al. 2022) and of this project's query-likelihood teacher,
# sent as a chat turn: on 24 SciFact abstracts SmolLM2-135M-Instruct wrote a topical question
# for 20 of them with it, against 12 of 32 with a longer "Write one search question ... Reply
# with the question only." instruction, whose outputs were mostly preambles (a throwaway script).
TEMPLATES = {
    "question": "Passage: {passage}\nPlease write a question based on this passage.",
    "claim": "Passage: {passage}\nPlease write a short factual claim based on this passage.",
    "keywords": "Passage: {passage}\nPlease write a short keyword search query for this passage.",
    "few-shot": (
        "Each passage below is followed by a search query it answers.\n\n{examples}"
        "Passage: {passage}\nQuery:"
    ),
}


@dataclass(frozen=True)
class FewShotExample:
    """One (passage, query) pair shown to the model."""

    passage: str
    query: str


def read_examples(path: str | Path) -> list[FewShotExample]:
    """(passage, query) pairs from JSON lines (``{"passage", "query"}``) or TSV (passage, query).

    Raises:
        InputError: a missing file, a line without both fields, or no example at all.
    """
    from retrieval_kd.data.textfiles import iter_jsonl, iter_tsv, require_field

    path = Path(path)
    if not path.is_file():
        raise InputError("few-shot examples file not found", path)
    examples: list[FewShotExample] = []
    if path.suffix == ".jsonl":
        for line, record in iter_jsonl(path):
            examples.append(
                FewShotExample(
                    require_field(record, "passage", path, line),
                    require_field(record, "query", path, line),
                )
            )
    else:
        for line, fields in iter_tsv(path):
            if len(fields) != 2 or not fields[0].strip() or not fields[1].strip():
                raise InputError("expected two tab-separated fields: passage, query", path, line)
            examples.append(FewShotExample(fields[0].strip(), fields[1].strip()))
    if not examples:
        raise InputError("few-shot examples file holds no example", path)
    return examples


@dataclass(frozen=True)
class PromptTemplate:
    """A checked template (and its few-shot examples, for ``{examples}``).

    Raises:
        InputError: ``{passage}`` missing or repeated; ``{examples}`` repeated, or given without
            examples (or examples without the placeholder).
    """

    text: str
    kind: str = "custom"
    examples: tuple[FewShotExample, ...] = ()

    def __post_init__(self) -> None:
        if self.text.count("{passage}") != 1:
            raise InputError(
                "a query-generation template needs the placeholder {passage} exactly once, "
                f"found {self.text.count('{passage}')}: {self.text[:80]!r}"
            )
        uses_examples = self.text.count("{examples}")
        if uses_examples > 1:
            raise InputError("the placeholder {examples} may appear once in a template")
        if uses_examples and not self.examples:
            raise InputError("a template with {examples} needs few-shot examples (--examples)")
        if self.examples and not uses_examples:
            raise InputError("few-shot examples were given but the template has no {examples}")

    @classmethod
    def for_kind(cls, kind: str, examples: list[FewShotExample] | None = None) -> PromptTemplate:
        """The built-in template of ``kind`` (one of :data:`KINDS`)."""
        if kind not in TEMPLATES:
            raise InputError(f"unknown query kind {kind!r}; choose one of {', '.join(KINDS)}")
        return cls(TEMPLATES[kind], kind, tuple(examples or ()))

    @classmethod
    def from_file(
        cls, path: str | Path, examples: list[FewShotExample] | None = None
    ) -> PromptTemplate:
        """A template read from a text file."""
        path = Path(path)
        if not path.is_file():
            raise InputError("template file not found", path)
        return cls(path.read_text(encoding="utf-8").strip(), "custom", tuple(examples or ()))

    def render(self, passage: str) -> str:
        """The prompt for one passage (examples rendered as ``Passage: ...\\nQuery: ...``)."""
        shown = "".join(f"Passage: {e.passage}\nQuery: {e.query}\n\n" for e in self.examples)
        before, after = self.text.split("{passage}")
        return before.replace("{examples}", shown) + passage + after.replace("{examples}", shown)
