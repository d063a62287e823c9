"""``rkd index`` and ``rkd search``: a student's FAISS index of a corpus, and runs from it.

A bi-encoder student gets a dense index. A ColBERT (multi-vector) checkpoint, or ``--index
colbert``, gets a late-interaction index: its token vectors in a FAISS index of the ``--index``
type (``ivfpq`` by default) for candidates, its token matrices stored for exact MaxSim.
"""

from __future__ import annotations

from pathlib import Path

import typer

from retrieval_kd.cli import own_data
from retrieval_kd.data import load_dataset, parse_data_split, read_queries, write_run
from retrieval_kd.data.own_files import data_from_options
from retrieval_kd.manifest import measure, write_json_atomic


def index(
    student: str = typer.Option(
        ...,
        help="Student checkpoint folder (sentence-transformers or ColBERT), hub id or short name.",
    ),
    data: str = typer.Option(
        None, help="Collection to index: short name, BEIR folder or irds: (or --corpus)."
    ),
    corpus: Path = own_data.CORPUS,
    index_type: str = typer.Option(
        None,
        "--index",
        help="flat | ivf | ivfpq | opq-ivfpq | hnsw | sq8 | a FAISS factory string | colbert. "
        "Default flat; for a ColBERT checkpoint (or 'colbert') the token index type, default "
        "ivfpq.",
    ),
    out: Path = typer.Option(..., help="Index folder (an interrupted build resumes)."),
    chunk_size: int = typer.Option(
        None, help="Documents per encoded chunk (default 10000; ColBERT 1000)."
    ),
    batch_size: int = typer.Option(None, help="Encoding batch size (default 64; ColBERT 32)."),
    nlist: int = typer.Option(None, help="IVF lists (default: from the vector / token count)."),
    precision: str = typer.Option(
        "auto",
        help="Encoder arithmetic: auto (bf16 where the CPU/GPU computes it natively, else fp32 "
        "on CPU, fp16 on GPU) | fp32 | bf16 | fp16. Recorded in the index; search uses it.",
    ),
) -> None:
    """Encode the corpus with the student and save a FAISS index + id map + manifest."""
    from retrieval_kd.retrieval import index_corpus, index_corpus_late, is_late_interaction_student

    data, _ = data_from_options(data, corpus, None, None, None)
    corpus = load_dataset(data).corpus
    options = {} if nlist is None else {"nlist": nlist}
    if index_type == "colbert" or is_late_interaction_student(student):
        token_type = "ivfpq" if index_type in (None, "colbert") else index_type
        late = index_corpus_late(
            student,
            corpus,
            out,
            token_type,
            chunk_size=chunk_size or 1000,
            batch_size=batch_size or 32,
            **options,
        )
        typer.echo(
            f"late-interaction index {out}: {late.ntotal} docs, {late.ntokens} token vectors, "
            f"{late.manifest['factory']}, {late.size_bytes / 2**20:.1f} MiB"
        )
        return
    index_type = index_type or "flat"
    built = index_corpus(
        student,
        corpus,
        out,
        index_type,
        chunk_size=chunk_size or 10_000,
        batch_size=batch_size or 64,
        precision=precision,
        **options,
    )
    typer.echo(
        f"index {out}: {built.ntotal} vectors, {index_type}, {built.size_bytes() / 2**20:.1f} MiB"
    )


def search(
    index: Path = typer.Option(..., "--index", help="Index folder made by rkd index."),
    queries: str = typer.Option(
        ..., help="data/split whose queries to search (scifact/test), or a queries file."
    ),
    k: int = typer.Option(1000, help="Results per query."),
    out: Path = typer.Option(..., help="Output TREC run."),
    nprobe: int = typer.Option(None, help="IVF lists to visit."),
    ef_search: int = typer.Option(None, help="HNSW search breadth."),
    candidates_per_token: int = typer.Option(
        None, help="ColBERT index: token hits per query token (default: the index's)."
    ),
) -> None:
    """Encode the queries with the index's own student, search, write a TREC run.

    A ColBERT index returns exact MaxSim scores of the candidates its token index finds.
    """
    from retrieval_kd.retrieval import search_index

    if Path(queries).is_file():  # your own queries (.jsonl / .tsv)
        query_texts, label = read_queries(queries), str(Path(queries).resolve())
    else:
        name, split = parse_data_split(queries)
        dataset = load_dataset(name, split)
        query_texts, label = dataset.queries, dataset.label
    with measure() as cost:
        run = search_index(
            index,
            query_texts,
            k=k,
            nprobe=nprobe,
            ef_search=ef_search,
            candidates_per_token=candidates_per_token,
        )
        write_run(run, out, tag=index.name)
    cost["queries_per_s"] = round(len(run) / max(cost["wall_s"], 1e-9), 1)
    write_json_atomic(
        Path(f"{out}.manifest.json"),
        {
            "stage": "search",
            "index": str(index),
            "queries": label,
            "k": k,
            "nprobe": nprobe,
            "ef_search": ef_search,
            "candidates_per_token": candidates_per_token,
            "cost": cost,
        },
    )
    typer.echo(f"wrote {out}: {len(run)} queries, top {k}")
