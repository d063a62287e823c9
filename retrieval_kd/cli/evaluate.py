"""``rkd evaluate``: metrics of one or more TREC runs, with paired significance tests."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from retrieval_kd.data import load_dataset, parse_data_split, read_qrels, read_run
from retrieval_kd.errors import InputError


def _load_qrels(spec: str):
    """(qrels, known query ids or None) from a qrels file or ``data/split``."""
    if Path(spec).is_file():
        return read_qrels(spec), None
    name, split = parse_data_split(spec)
    if split is None and not name.startswith("irds:"):
        raise InputError(f"--qrels {spec!r}: give a qrels file or data/split (e.g. scifact/test)")
    dataset = load_dataset(name, split)
    return dataset.qrels, set(dataset.load_all_queries())


def _run_names(paths: list[Path]) -> list[str]:
    names = [p.stem for p in paths]
    if len(set(names)) < len(names):  # same stems in different folders: use the paths
        names = [str(p) for p in paths]
    return names


def evaluate(
    run: list[Path] = typer.Option(..., help="TREC run file; repeat for several runs."),
    qrels: str = typer.Option(..., help="Qrels file (TREC or BEIR TSV) or data/split."),
    metrics: str = typer.Option(
        "ndcg@10,mrr@10,recall@100",
        help="Comma-separated: ndcg@k, mrr@k, recall@k, map@k, precision@k.",
    ),
    conventions: str = typer.Option("default", help="default | trec-dl | beir."),
    baseline: str = typer.Option(
        None, help="Run name (file stem) the others are tested against; default: the first run."
    ),
    per_query: Path = typer.Option(None, help="Write per-query metrics to this CSV."),
    as_json: bool = typer.Option(
        False, "--json", help="Print the metrics as one JSON object on the last line."
    ),
) -> None:
    """Evaluate runs; with several runs, one table plus Student-t and Fisher tests."""
    from evaluation import compare_runs

    judged, known_queries = _load_qrels(qrels)
    names = _run_names(run)
    runs = {
        name: read_run(path, known_queries=known_queries)
        for name, path in zip(names, run, strict=True)
    }
    metric_list = [m.strip() for m in metrics.split(",") if m.strip()]
    comparison = compare_runs(runs, judged, metric_list, baseline=baseline, conventions=conventions)
    typer.echo(comparison.to_markdown())
    first = next(iter(comparison.results.values()))
    notes = []
    if first.excluded_queries:
        notes.append(
            f"{len(first.excluded_queries)} queries without a relevant document were "
            f"excluded: {', '.join(first.excluded_queries[:10])}"
        )
    for name, result in comparison.results.items():
        if result.missing_queries:
            notes.append(
                f"{name}: {len(result.missing_queries)} judged queries missing from the "
                "run count as 0"
            )
    for note in notes:
        typer.echo(f"note: {note}")
    if per_query is not None:
        comparison.write_per_query_csv(per_query)
        typer.echo(f"wrote per-query metrics to {per_query}")
    if as_json:
        if len(runs) == 1:
            payload = dict(first.means)
        else:
            payload = {name: dict(res.means) for name, res in comparison.results.items()}
        typer.echo(json.dumps(payload, sort_keys=False))
