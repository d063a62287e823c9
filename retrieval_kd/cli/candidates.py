"""``rkd candidates``: BM25, a dense retriever, an external run, or their fusion -> a TREC run."""

from __future__ import annotations

from pathlib import Path

import typer

from retrieval_kd.cli import own_data
from retrieval_kd.data import load_dataset, run_fingerprint, write_run
from retrieval_kd.data.own_files import data_from_options
from retrieval_kd.errors import InputError
from retrieval_kd.manifest import measure, write_json_atomic


def candidates(
    data: str = typer.Option(
        None, help="Collection: short name, BEIR folder or irds:<id> (or --corpus ...)."
    ),
    corpus: Path = own_data.CORPUS,
    queries_file: Path = own_data.QUERIES,
    qrels: Path = own_data.QRELS,
    split: str = typer.Option(None, help="Split whose queries get candidates (e.g. test)."),
    k: int = typer.Option(100, help="Candidates per query (each source's depth)."),
    out: Path = typer.Option(..., help="Output TREC run file."),
    run: Path = typer.Option(None, help="Take candidates from this TREC run instead of BM25."),
    retriever: str = typer.Option(
        None,
        help="Dense retriever: a bi-encoder spec or student folder; the corpus is encoded once "
        "into a cached FAISS index.",
    ),
    fuse: str = typer.Option(
        None, help="Fuse the dense run with BM25 (or --run): rrf or union. Needs --retriever."
    ),
) -> None:
    """Write the top-``k`` candidates of each query to ``out`` (and ``out``.manifest.json)."""
    from retrieval_kd.candidates import FUSIONS, parse_sources, retrieve_candidates

    if fuse is not None and fuse not in FUSIONS:
        raise InputError(f"--fuse must be one of {', '.join(FUSIONS)}, got {fuse!r}")
    if fuse is not None and retriever is None:
        raise InputError("--fuse fuses a dense run with BM25 (or --run): give --retriever")
    lexical = str(run) if run is not None else "bm25"
    specs = [f"dense:{retriever}"] if retriever else [lexical]
    if fuse is not None:
        specs = [lexical, *specs]
    sources = parse_sources(specs)  # a bad spec fails before any data is read
    data, split = data_from_options(data, corpus, queries_file, qrels, split)
    dataset = load_dataset(data, split)
    queries = dataset.queries
    with measure() as cost:
        result, records = retrieve_candidates(
            sources,
            dataset.corpus,
            queries,
            k,
            fusion=fuse or "rrf",
            known_queries=dataset.load_all_queries(),
        )
        tag = "+".join(s.name.replace(":", "-").replace("/", "_") for s in sources)
        write_run(result, out, tag=tag, depth=None if fuse == "union" else k)
    write_json_atomic(
        Path(f"{out}.manifest.json"),
        {
            "stage": "candidates",
            "data": dataset.label,
            "k": k,
            "sources": records,
            "fusion": fuse,
            "queries": len(result),
            "pairs": sum(len(docs) for docs in result.values()),
            "run_fingerprint": run_fingerprint(result),
            "cost": cost,
        },
    )
    kinds = " + ".join(s.name for s in sources) + (f" ({fuse})" if fuse else "")
    typer.echo(f"wrote {out}: {len(result)} queries, top {k} ({kinds})")
