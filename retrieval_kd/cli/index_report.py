"""``rkd index-report``: recall and speed of an ANN index, setting by setting, against exact search.

The queries are encoded with the index's own student (its manifest names it; another student's
hash is refused). The exact results come from:

- ``--exact``: a flat index of the same student over the same documents; or, without it,
- a flat index of the vectors the ANN index itself stores, reconstructed from it. That works
  for indexes that keep full vectors (IVF-Flat, HNSW, flat); an index of compressed codes
  (PQ, SQ) cannot give them back, so it needs ``--exact`` (a clear error says so).

A ColBERT (late-interaction) index is compared with exhaustive MaxSim over its own stored token
matrices instead: ``--values`` sweeps ``nprobe`` and ``--candidates-per-token`` sets stage 1's
depth (see ``retrieval_kd.index.late_report``).

Writes ``report.md``, ``report.png`` (queries/s against recall) and ``report.json`` in
``--out`` and prints the table. With judged queries (``data/split``), the table's nDCG@10 is
against the qrels; otherwise against the exact top 10.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from retrieval_kd.data import load_dataset, parse_data_split
from retrieval_kd.errors import RKDError
from retrieval_kd.manifest import read_manifest, write_json_atomic

LOSSY_CODES = ("PQ", "SQ", "LSH", "RaBitQ")


def index_report(
    index: Path = typer.Option(..., "--index", help="ANN index folder made by rkd index."),
    queries: str = typer.Option(..., help="data/split whose queries to search (scifact/test)."),
    exact: Path = typer.Option(
        None,
        help="Flat index of the same student and documents (default: the ANN index's own "
        "vectors; required for PQ / SQ indexes).",
    ),
    k: int = typer.Option(10, help="Recall depth."),
    values: str = typer.Option(
        None,
        help="Comma-separated nprobe (IVF) or efSearch (HNSW) values (default: 1, 2, 4, ... "
        "up to nlist).",
    ),
    candidates_per_token: int = typer.Option(
        None, help="ColBERT index: token hits per query token (default: the index's)."
    ),
    out: Path = typer.Option(..., help="Folder for report.md, report.png and report.json."),
) -> None:
    """Sweep an ANN index's search setting; recall@k, nDCG@10 and queries/s against exact."""
    from retrieval_kd.index import plot_report
    from retrieval_kd.index.late_interaction import KIND

    name, split = parse_data_split(queries)
    dataset = load_dataset(name, split)
    query_ids = list(dataset.queries)
    texts = [dataset.queries[q] for q in query_ids]
    swept = _parse_values(values)
    manifest = read_manifest(index)
    if "student" not in manifest:
        raise RKDError(f"index {index} does not name its student: cannot encode the queries")
    qrels = dataset.qrels if dataset.load_qrels is not None else None
    judged = {"query_ids": query_ids, "qrels": qrels, "metric_fn": _ndcg10} if qrels else {}
    if manifest.get("kind") == KIND:
        table, rows, plot_rows = _late_report(
            index, manifest, texts, swept, candidates_per_token, k, judged
        )
        exact_from = "exhaustive MaxSim over the stored token matrices"
    else:
        dense = _dense_report(index, manifest, texts, exact, k, swept, judged)
        table, rows, plot_rows, exact_from = dense
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.md").write_text(table, encoding="utf-8")
    plot_report(plot_rows, out / "report.png", title=f"{index.name} on {dataset.label}")
    write_json_atomic(
        out / "report.json",
        {
            "index": str(index),
            "queries": dataset.label,
            "n_queries": len(query_ids),
            "k": k,
            "exact": exact_from,
            "ndcg10": "qrels" if qrels else "exact top 10",
            "rows": rows,
        },
    )
    typer.echo(table, nl=False)
    typer.echo(f"wrote {out / 'report.md'}, report.png and report.json (exact: {exact_from})")


def _parse_values(values: str | None) -> list[int] | None:
    if not values:
        return None
    try:
        parsed = [int(v) for v in values.split(",") if v.strip()]
    except ValueError:
        raise RKDError(f"--values must be comma-separated integers, got {values!r}") from None
    if not parsed or min(parsed) < 1:
        raise RKDError(f"--values must be positive integers, got {values!r}")
    return parsed


def _ndcg10(run: dict, qrels: dict) -> float:
    from evaluation.metrics import evaluate

    return evaluate(run, qrels, ["ndcg@10"]).means["ndcg@10"]


def _dense_report(
    folder: Path,
    manifest: dict[str, Any],
    texts: list[str],
    exact: Path | None,
    k: int,
    values: list[int] | None,
    judged: dict[str, Any],
) -> tuple[str, list[dict], list, str]:
    """(table, JSON rows, rows to plot, where the exact results came from) of a dense index."""
    from retrieval_kd.index import DenseIndex, ann_report, report_markdown
    from retrieval_kd.retrieval import index_encoder

    encoder = index_encoder(manifest)
    ann = DenseIndex.load(folder, expected_student_hash=encoder.hash, expected_dim=encoder.dim)
    if exact is not None:
        flat = DenseIndex.load(exact, expected_student_hash=encoder.hash, expected_dim=encoder.dim)
        if flat.factory != "Flat":
            raise RKDError(f"--exact {exact}: a {flat.factory} index, not a flat (exact) one")
        if set(flat.ids) != set(ann.ids):
            raise RKDError(f"--exact {exact} does not index the same documents as {folder}")
        exact_from = str(exact)
    else:
        flat, exact_from = _flat_of_stored_vectors(ann), "the ANN index's own vectors"
    vectors = encoder.encode_queries(texts)
    rows = ann_report(ann, vectors, flat, k=k, values=values, label=ann.factory, **judged)
    label = "nDCG@10 (qrels)" if judged else "nDCG@10 vs exact"
    return report_markdown(rows, label), [r.to_dict() for r in rows], rows, exact_from


def _flat_of_stored_vectors(ann: Any) -> Any:
    """A flat ``DenseIndex`` of the vectors ``ann`` stores, when it stores them in full."""
    import faiss

    from retrieval_kd.index import DenseIndex
    from retrieval_kd.index.gpu import to_cpu

    factory = ann.factory or ""
    if any(code in factory for code in LOSSY_CODES):
        raise RKDError(
            f"index {factory} keeps compressed codes, not the vectors: exact results need "
            "--exact <a flat index of the same student> (rkd index --index flat)"
        )
    cpu = to_cpu(ann.faiss_index, ann.on_gpu)
    ivf = faiss.try_extract_index_ivf(cpu)
    if ivf is not None:
        ivf.make_direct_map()
    try:
        vectors = cpu.reconstruct_n(0, cpu.ntotal)
    except RuntimeError:
        raise RKDError(f"index {factory} cannot give its vectors back: pass --exact") from None
    flat = DenseIndex(ann.dim, "flat", ann.metric, student_hash=ann.student_hash, use_gpu=False)
    flat.add(ann.ids, vectors)
    return flat


def _late_report(
    folder: Path,
    manifest: dict[str, Any],
    texts: list[str],
    values: list[int] | None,
    candidates_per_token: int | None,
    k: int,
    judged: dict[str, Any],
) -> tuple[str, list[dict], list]:
    """(table, JSON rows, rows to plot) of a late-interaction index against exhaustive MaxSim."""
    from retrieval_kd.index import SweepRow
    from retrieval_kd.index.late_interaction import LateInteractionIndex
    from retrieval_kd.index.late_report import late_interaction_report, late_report_markdown
    from retrieval_kd.retrieval import TokenEncoder

    encoder = TokenEncoder(manifest["student"])
    late = LateInteractionIndex.load(folder, expected_student_hash=encoder.hash)
    nlist = late.nlist or 1
    values = values or [v for v in (2**i for i in range(12)) if v < nlist] + [nlist]
    settings = [(v, candidates_per_token) for v in values]
    matrices = encoder.encode_queries(texts)
    rows = late_interaction_report(late, matrices, settings, ks=(k,), **judged)
    label = f"colbert {late.manifest.get('factory')}"
    plot_rows = [
        SweepRow(
            "exact" if r.nprobe is None else label,
            r.setting,
            None if r.nprobe is None else "nprobe",
            r.nprobe,
            k,
            r.recall[k],
            r.ndcg10 or 0.0,
            r.qps,
            late.size_bytes,
            late.manifest.get("build", {}).get("build_s"),
        )
        for r in rows
    ]
    return late_report_markdown(rows), [r.to_dict() for r in rows], plot_rows
