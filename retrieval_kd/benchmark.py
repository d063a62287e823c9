"""``rkd benchmark``: one or more students on several collections, one table.

Each collection's corpus is indexed exactly (flat FAISS) by each student and searched with the
collection's judged queries; BM25 runs beside them. The table holds nDCG@10, MRR@10 and
Recall@100 per collection and their mean over collections; with several students, each is
tested against the first, query by query, on every collection (paired t-test and Fisher's
randomization test, ``evaluation.compare_runs``). Written as ``benchmark.md`` and
``benchmark.json`` in ``--out``, with each run as a TREC file; indexes are kept under ``--out``
so a rerun reuses them.

Collections are data specs (``scifact``, a BEIR folder, ``irds:beir/scifact/test``) with an
optional ``/split`` (``nfcorpus/dev``); ``--split`` is the split of those without one.

Example:
    >>> result = benchmark(["runs/demo-scifact/train-distilled/model"],
    ...                    ["scifact/test", "nfcorpus/dev"], out="runs/bench")  # doctest: +SKIP
    >>> print(result["markdown"])  # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from retrieval_kd.data import load_dataset, parse_data_split, write_run
from retrieval_kd.errors import InputError
from retrieval_kd.progress import progress

METRICS = ("ndcg@10", "mrr@10", "recall@100")


def _student_names(students: Sequence[str]) -> list[str]:
    """Short unique names: the folder name, or more of the path when names clash."""
    names = []
    for student in students:
        path = Path(student)
        name = path.name if path.name not in ("model", "") else "/".join(path.parts[-3:-1])
        names.append(name or str(student))
    if len(set(names)) < len(names):
        names = [str(s) for s in students]
    return names


def benchmark(
    students: Sequence[str],
    collections: Sequence[str],
    out: str | Path,
    split: str = "test",
    metrics: Sequence[str] = METRICS,
    conventions: str = "beir",
    k: int = 100,
    batch_size: int = 64,
    passage_max_length: int | None = None,
    bm25: bool = True,
) -> dict[str, Any]:
    """Benchmark ``students`` on ``collections``; returns means, p-values and the Markdown.

    Raises:
        InputError: no student or collection, or a collection without judged queries.
    """
    from evaluation import compare_runs
    from retrieval_kd.candidates import bm25_candidates
    from retrieval_kd.retrieval import StudentEncoder, index_corpus, search_index

    if not students or not collections:
        raise InputError("rkd benchmark needs at least one --student and one collection")
    out = Path(out)
    names = _student_names(students)
    encoders = {
        name: StudentEncoder(s, batch_size=batch_size, passage_max_length=passage_max_length)
        for name, s in zip(names, students, strict=True)
    }
    results: dict[str, Any] = {}
    for spec in progress(list(collections), desc="collections", unit="collection"):
        name, own_split = parse_data_split(spec)
        use_split = own_split or (None if name.startswith("irds:") else split)
        dataset = load_dataset(name, use_split)
        if dataset.load_qrels is None:
            raise InputError(f"{spec}: no qrels, nothing to benchmark on")
        label = f"{name}/{use_split}" if use_split else name
        folder = out / label.replace("/", "_").replace(":", "_")
        queries = dataset.queries
        runs = {}
        if bm25:
            runs["BM25"], _ = bm25_candidates(dataset.corpus, queries, k=k)
        for student, encoder in encoders.items():
            index_dir = folder / f"index-{student.replace('/', '_')}"
            index_corpus(encoder, dataset.corpus, index_dir, "flat")
            runs[student] = search_index(index_dir, queries, k=k, encoder=encoder)
        for run_name, run in runs.items():
            write_run(run, folder / f"{run_name.replace('/', '_')}.trec", tag=run_name)
        comparison = compare_runs(
            runs, dataset.qrels, list(metrics), baseline=names[0], conventions=conventions
        )
        results[label] = {
            "means": comparison.means,
            "p_values": comparison.p_values,
            "queries": comparison.n_queries,
        }
    table = to_markdown(results, list(metrics), names)
    out.mkdir(parents=True, exist_ok=True)
    record = {
        "students": dict(zip(names, map(str, students), strict=True)),
        "metrics": list(metrics),
        "conventions": conventions,
        "passage_max_length": passage_max_length,
        "collections": results,
    }
    (out / "benchmark.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
    (out / "benchmark.md").write_text(table + "\n", encoding="utf-8")
    return {**record, "markdown": table}


def to_markdown(results: dict[str, Any], metrics: list[str], students: list[str]) -> str:
    """One row per model, one column per (collection, metric), then the mean over collections;
    a student's figure is marked * where it differs from the first student's (paired t-test,
    p < 0.05)."""
    labels = list(results)
    models = list(next(iter(results.values()))["means"]) if results else []
    head = [f"{c} {m}" for c in labels for m in metrics] + [f"mean {m}" for m in metrics]
    lines = ["| model | " + " | ".join(head) + " |", "|---|" + "---:|" * len(head)]
    for model in models:
        cells = []
        for c in labels:
            for m in metrics:
                value = results[c]["means"][model][m]
                p = (results[c]["p_values"].get(model) or {}).get(m, {}).get("student")
                mark = "*" if model != students[0] and p is not None and p < 0.05 else ""
                cells.append(f"{value:.4f}{mark}")
        for m in metrics:
            values = [results[c]["means"][model][m] for c in labels]
            cells.append(f"{sum(values) / len(values):.4f}" if values else "–")
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    queries = ", ".join(f"{c}: {results[c]['queries']}" for c in labels)
    lines += ["", f"Judged queries: {queries}. * p < 0.05 against {students[0]} (paired t-test)."]
    return "\n".join(lines)
