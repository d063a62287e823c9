"""``rkd score``: score candidates with a teacher into a score store (resumable, multi-process)."""

from __future__ import annotations

from pathlib import Path

import typer

from retrieval_kd.cli import own_data
from retrieval_kd.data import load_dataset, parse_data_split, read_run, truncate_run
from retrieval_kd.data.own_files import data_from_options
from retrieval_kd.errors import InputError
from retrieval_kd.manifest import sha256_file


def score(
    teacher: str = typer.Option(
        ...,
        help="Teacher spec, e.g. cross-encoder:<model>, "
        "bi-encoder:<model>, llm-yes-no:<model>, run, bm25, "
        "ensemble:zscore:bm25*1+bi-encoder:<model>*1, or a "
        "YAML file.",
    ),
    candidates: str = typer.Option(
        ..., help="A TREC run file, or data/split for BM25 candidates (e.g. scifact/train)."
    ),
    data: str = typer.Option(
        None, help="Collection the run's ids refer to (needed with a run file)."
    ),
    split: str = typer.Option(None, help="With a run file: split whose qrels become labels."),
    corpus: Path = own_data.CORPUS,
    queries_file: Path = own_data.QUERIES,
    qrels: Path = own_data.QRELS,
    depth: int = typer.Option(100, help="Candidates per query to score."),
    out: Path = typer.Option(..., help="Score store folder (an existing one is resumed)."),
    queries_per_shard: int = typer.Option(200, help="Queries per shard (the most a crash loses)."),
) -> None:
    """Score each query's top-``depth`` candidates; under torchrun each rank takes a slice."""
    from retrieval_kd.store import score_candidates
    from teachers import build_teacher, parse_teacher_spec

    parse_teacher_spec(teacher)  # a malformed spec fails before any data is read
    if corpus is not None:
        data, split = data_from_options(data, corpus, queries_file, qrels, split)
    if Path(candidates).is_file():
        if data is None:
            raise InputError(
                "--candidates is a run file: give --data, the collection its ids refer to"
            )
        dataset = load_dataset(data, split)
        all_queries = dataset.load_all_queries()
        run = truncate_run(read_run(candidates, known_queries=all_queries), depth)
        queries = all_queries
        source = {
            "name": Path(candidates).name,
            "path": candidates,
            "run_sha256": sha256_file(candidates),
        }
    else:
        name, data_split = parse_data_split(candidates)
        dataset = load_dataset(name, data_split)
        queries = dataset.queries
        from retrieval_kd.candidates import bm25_candidates

        run, _ = bm25_candidates(dataset.corpus, queries, k=depth)
        source = {"name": "bm25", "data": dataset.label}
    qrels = dataset.qrels if dataset.load_qrels is not None else None
    scorer = build_teacher(teacher, run, corpus=dataset.corpus)
    store = score_candidates(
        scorer,
        queries,
        run,
        dataset.corpus.texts,
        out,
        depth=depth,
        qrels=qrels,
        queries_per_shard=queries_per_shard,
        candidate_source=source,
    )
    manifest = store.manifest or {}
    cost = manifest.get("cost", {})
    typer.echo(
        f"score store {out}: {len(store.query_ids())} queries, {store.num_pairs} pairs"
        + (f", {cost.get('pairs_per_s_per_process')} pairs/s per process" if cost else "")
    )
