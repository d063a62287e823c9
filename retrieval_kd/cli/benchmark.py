"""``rkd benchmark``: students on several collections, exact search, one table beside BM25."""

from __future__ import annotations

from pathlib import Path

import typer


def benchmark(
    student: list[str] = typer.Option(
        ..., help="Student folder, hub id or short name; repeat to compare several."
    ),
    data: str = typer.Option(
        ..., help="Comma-separated collections, each with an optional /split (nfcorpus/dev)."
    ),
    split: str = typer.Option("test", help="Split of the collections named without one."),
    out: Path = typer.Option(..., help="Folder for benchmark.md, benchmark.json and the runs."),
    metrics: str = typer.Option("ndcg@10,mrr@10,recall@100", help="Comma-separated metrics."),
    conventions: str = typer.Option("beir", help="default | trec-dl | beir."),
    max_length: int = typer.Option(
        None, help="Passage token limit at index time (default: each student's own)."
    ),
    batch_size: int = typer.Option(64, help="Encoding batch size."),
) -> None:
    from retrieval_kd.benchmark import benchmark as run_benchmark

    result = run_benchmark(
        student,
        [c.strip() for c in data.split(",") if c.strip()],
        out,
        split=split,
        metrics=[m.strip() for m in metrics.split(",") if m.strip()],
        conventions=conventions,
        batch_size=batch_size,
        passage_max_length=max_length,
    )
    typer.echo(result["markdown"])
    typer.echo(f"\nwritten: {out / 'benchmark.md'}, {out / 'benchmark.json'}")
