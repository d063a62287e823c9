"""``rkd index`` and ``rkd search``: a student's FAISS index of a corpus, and runs from it."""

from __future__ import annotations

from pathlib import Path

import typer

from retrieval_kd.data import load_dataset, parse_data_split, write_run
from retrieval_kd.manifest import measure, write_json_atomic


def index(
    student: str = typer.Option(
        ...,
        help="Student checkpoint folder (a sentence-transformers folder), hub id or short name.",
    ),
    data: str = typer.Option(..., help="Collection to index: short name, BEIR folder or irds:."),
    index_type: str = typer.Option(
        "flat",
        "--index",
        help="flat | ivf | ivfpq | opq-ivfpq | hnsw | sq8 | a FAISS factory string.",
    ),
    out: Path = typer.Option(..., help="Index folder (an interrupted build resumes)."),
    chunk_size: int = typer.Option(10_000, help="Documents per encoded chunk."),
    batch_size: int = typer.Option(64, help="Encoding batch size."),
    nlist: int = typer.Option(None, help="IVF lists (default: from the corpus size)."),
) -> None:
    """Encode the corpus with the student and save a FAISS index + id map + manifest."""
    from retrieval_kd.retrieval import index_corpus

    corpus = load_dataset(data).corpus
    options = {} if nlist is None else {"nlist": nlist}
    built = index_corpus(
        student, corpus, out, index_type, chunk_size=chunk_size, batch_size=batch_size, **options
    )
    typer.echo(
        f"index {out}: {built.ntotal} vectors, {index_type}, {built.size_bytes() / 2**20:.1f} MiB"
    )


def search(
    index: Path = typer.Option(..., "--index", help="Index folder made by rkd index."),
    queries: str = typer.Option(..., help="data/split whose queries to search (scifact/test)."),
    k: int = typer.Option(1000, help="Results per query."),
    out: Path = typer.Option(..., help="Output TREC run."),
    nprobe: int = typer.Option(None, help="IVF lists to visit."),
    ef_search: int = typer.Option(None, help="HNSW search breadth."),
) -> None:
    """Encode the queries with the index's own student, search, write a TREC run."""
    from retrieval_kd.retrieval import search_index

    name, split = parse_data_split(queries)
    dataset = load_dataset(name, split)
    with measure() as cost:
        run = search_index(index, dataset.queries, k=k, nprobe=nprobe, ef_search=ef_search)
        write_run(run, out, tag=index.name)
    cost["queries_per_s"] = round(len(run) / max(cost["wall_s"], 1e-9), 1)
    write_json_atomic(
        Path(f"{out}.manifest.json"),
        {
            "stage": "search",
            "index": str(index),
            "queries": dataset.label,
            "k": k,
            "nprobe": nprobe,
            "ef_search": ef_search,
            "cost": cost,
        },
    )
    typer.echo(f"wrote {out}: {len(run)} queries, top {k}")
