"""``rkd candidates``: BM25 top-k, or an external TREC run, as a TREC run file."""

from __future__ import annotations

from pathlib import Path

import typer

from retrieval_kd.data import load_dataset, read_run, run_fingerprint, truncate_run, write_run
from retrieval_kd.manifest import measure, sha256_file, write_json_atomic


def candidates(
    data: str = typer.Option(..., help="Collection: short name, BEIR folder or irds:<id>."),
    split: str = typer.Option(None, help="Split whose queries get candidates (e.g. test)."),
    k: int = typer.Option(100, help="Candidates per query."),
    out: Path = typer.Option(..., help="Output TREC run file."),
    run: Path = typer.Option(None, help="Take candidates from this TREC run instead of BM25."),
) -> None:
    """Write the top-``k`` candidates of each query to ``out`` (and ``out``.manifest.json)."""
    dataset = load_dataset(data, split)
    queries = dataset.queries
    with measure() as cost:
        if run is None:
            from retrieval_kd.candidates import bm25_candidates

            result, search_cost = bm25_candidates(dataset.corpus, queries, k)
            source = {"kind": "bm25", **search_cost}
            tag = "bm25"
        else:
            result = truncate_run(
                read_run(run, known_queries=queries, known_docs=dataset.corpus), k
            )
            source = {"kind": "run", "path": str(run), "sha256": sha256_file(run)}
            tag = run.stem
        write_run(result, out, tag=tag, depth=k)
    write_json_atomic(
        Path(f"{out}.manifest.json"),
        {
            "stage": "candidates",
            "data": dataset.label,
            "k": k,
            "source": source,
            "queries": len(result),
            "pairs": sum(len(docs) for docs in result.values()),
            "run_fingerprint": run_fingerprint(result),
            "cost": cost,
        },
    )
    typer.echo(f"wrote {out}: {len(result)} queries, top {k} ({source['kind']})")
