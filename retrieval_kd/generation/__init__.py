"""Queries for a corpus that has none: sample documents, generate queries, clean and filter them.

The label-free half of the pipeline (GPL, Wang et al. 2022; InPars, Bonifacio et al. 2022):

    sampled documents -> generated queries (LLM or spans) -> cleaning, length, de-duplication
    -> (later stages) candidates -> teacher scores -> round-trip / teacher-score filters

A generated query set is a folder that every other stage reads like a collection split
(:mod:`.query_set`). Generator specs (:func:`build_generator`)::

    llm:<model>         a causal LM with a prompt template (default SmolLM2-135M-Instruct)
    <model>             the same
    span[:<kind>]       no LLM: a ``sentence`` (default), a ``span`` of words, or the ``title``
"""

from __future__ import annotations

from typing import Any

from retrieval_kd.errors import InputError
from retrieval_kd.generation.cleaning import QueryFilter, clean_query
from retrieval_kd.generation.generate import QueryGenerator, generate_queries
from retrieval_kd.generation.llm_generator import DEFAULT_GENERATOR, LLMQueryGenerator
from retrieval_kd.generation.query_set import read_sources, write_query_set
from retrieval_kd.generation.span_generator import SPAN_KINDS, SpanQueryGenerator
from retrieval_kd.generation.templates import KINDS, MIXED, PromptTemplate, read_examples

__all__ = [
    "DEFAULT_GENERATOR",
    "KINDS",
    "SPAN_KINDS",
    "LLMQueryGenerator",
    "PromptTemplate",
    "QueryFilter",
    "QueryGenerator",
    "SpanQueryGenerator",
    "build_generator",
    "clean_query",
    "generate_queries",
    "read_examples",
    "read_sources",
    "write_query_set",
]


def build_template(
    kind: str = "question", template_file: str | None = None, examples_file: str | None = None
) -> PromptTemplate | list[PromptTemplate]:
    """A prompt template: the built-in ``kind`` or a file, with few-shot examples if given;
    ``mixed`` is the list of the question, claim and keyword templates (one per document)."""
    examples = read_examples(examples_file) if examples_file else None
    if template_file:
        return PromptTemplate.from_file(template_file, examples)
    if kind == "mixed":
        if examples:
            raise InputError("few-shot examples go with the few-shot kind, not mixed")
        return [PromptTemplate.for_kind(k) for k in MIXED]
    return PromptTemplate.for_kind(kind, examples)


def build_generator(
    spec: str = f"llm:{DEFAULT_GENERATOR}",
    *,
    kind: str = "question",
    template_file: str | None = None,
    examples_file: str | None = None,
    seed: int = 0,
    **options: Any,
) -> QueryGenerator:
    """The generator a spec names (module docstring); the template is checked before any model
    loads, and an LLM that cannot be resolved fails here.

    Args:
        spec: ``llm:<model>``, ``<model>`` or ``span[:sentence|span|title]``.
        kind / template_file / examples_file: the LLM's prompt (ignored by span generators).
        seed: sampling seed.
        **options: the generator's own settings (``batch_size``, ``max_new_tokens``, ...;
            ``min_words`` / ``max_words`` for spans).

    Raises:
        InputError: an empty spec, unknown span kind, or a bad template.
        RKDError: an LLM that cannot be resolved or loaded.
    """
    spec = (spec or "").strip()
    if not spec:
        raise InputError("empty generator spec; use llm:<model> or span[:kind]")
    head, _, tail = spec.partition(":")
    if head == "span":
        return SpanQueryGenerator(tail or "sentence", seed=seed, **options)
    template = build_template(kind, template_file, examples_file)
    model = tail if head == "llm" else spec
    if not model:
        raise InputError("generator spec llm: needs a model (llm:<hub id or folder>)")
    return LLMQueryGenerator(model, template, seed=seed, **options)
