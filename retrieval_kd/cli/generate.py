"""``rkd generate-queries``: queries for a corpus that has none (a resumable query set)."""

from __future__ import annotations

from pathlib import Path

import typer

from retrieval_kd.errors import InputError


def _corpus(data: str):
    """The corpus of ``data`` (a collection spec or a corpus file) and how to refer to it."""
    from retrieval_kd.data import load_corpus_file, load_dataset

    path = Path(data).expanduser()
    if path.is_file():
        return load_corpus_file(path), {"corpus_file": str(path.resolve())}
    return load_dataset(data).corpus, {"data": data}


def generate_queries(
    data: str = typer.Option(
        ..., help="Collection (short name, BEIR folder, irds:<id>) or a corpus file (.jsonl/.tsv)."
    ),
    out: Path = typer.Option(..., help="Query-set folder (an interrupted run resumes)."),
    generator: str = typer.Option(
        "llm:HuggingFaceTB/SmolLM2-135M-Instruct",
        help="llm:<model> (any Hugging Face causal LM) or span[:sentence|span|title] (no LLM).",
    ),
    per_doc: int = typer.Option(1, help="Queries generated per sampled document."),
    docs: int = typer.Option(None, help="Documents to sample (default: all, or --queries)."),
    queries: int = typer.Option(None, help="Total query budget: ceil(queries / per-doc) docs."),
    kind: str = typer.Option("question", help="Prompt kind: question, claim, keywords, few-shot."),
    template: Path = typer.Option(None, help="A prompt template file with {passage}."),
    examples: Path = typer.Option(None, help="Few-shot (passage, query) pairs: JSONL or TSV."),
    seed: int = typer.Option(0, help="Seed of the document sample and of sampling."),
    batch_size: int = typer.Option(None, help="LLM prompts per batch (default 8 CPU, 64 GPU)."),
    max_new_tokens: int = typer.Option(32, help="LLM: longest query in tokens."),
    temperature: float = typer.Option(0.8, help="LLM sampling temperature (0: greedy)."),
    top_p: float = typer.Option(0.95, help="LLM nucleus sampling."),
    passage_max_tokens: int = typer.Option(256, help="LLM: passages are cut to this many tokens."),
    min_words: int = typer.Option(3, help="Drop shorter queries."),
    max_words: int = typer.Option(64, help="Drop longer queries."),
    docs_per_shard: int = typer.Option(64, help="Documents per shard (the unit of resume)."),
) -> None:
    """Sample documents, generate queries, clean / filter / de-duplicate them; write
    ``queries.jsonl``, ``sources.tsv``, ``qrels/train.tsv`` and a manifest. Under torchrun each
    process generates its own shards."""
    from retrieval_kd.generation import QueryFilter, build_generator
    from retrieval_kd.generation import generate_queries as generate

    query_filter = QueryFilter(min_words, max_words)  # bad bounds fail before a model loads
    options = {}
    if not generator.startswith("span"):
        options = {
            "batch_size": batch_size,
            "max_new_tokens": max_new_tokens,
            "temperature": temperature,
            "top_p": top_p,
            "passage_max_tokens": passage_max_tokens,
        }
    elif template or examples:
        raise InputError("--template and --examples are LLM prompts; a span generator has none")
    model = build_generator(
        generator,
        kind=kind,
        template_file=str(template) if template else None,
        examples_file=str(examples) if examples else None,
        seed=seed,
        **options,
    )
    corpus, corpus_ref = _corpus(data)
    manifest = generate(
        corpus,
        model,
        out,
        corpus_ref=corpus_ref,
        per_doc=per_doc,
        docs=docs,
        queries=queries,
        seed=seed,
        docs_per_shard=docs_per_shard,
        query_filter=query_filter,
    )
    if manifest is None:
        typer.echo(f"{out}: this process's shards are done; other processes are still generating")
        return
    counts, cost = manifest["counts"], manifest["cost"]
    dropped = ", ".join(
        f"{k} {counts[k]}" for k in ("empty", "meta", "too_short", "too_long", "duplicate")
    )
    typer.echo(
        f"wrote {out}: {counts['kept']} queries from {counts['documents']} documents "
        f"({counts['raw']} generated; dropped {dropped}); {cost['docs_per_s']} documents/s"
    )
