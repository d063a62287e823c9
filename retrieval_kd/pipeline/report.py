"""The distillation report: one table, significance, agreement, training curves and costs.

Written to ``<run>/report/report.md`` with ``metrics.json``, ``per_query.csv`` and the PNGs,
and printed. Every figure in it is computed from the run's own artefacts.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from retrieval_kd.data import read_run
from retrieval_kd.manifest import read_manifest

ROWS = (  # (label, stage, note)
    ("BM25", "candidates-eval", "re-ranking depth = candidates"),
    ("teacher", "teacher-eval", "re-ranks the BM25 candidates"),
    ("student (untrained)", "retrieve-untrained", "full-corpus dense retrieval"),
    ("student (distilled)", "retrieve-distilled", "full-corpus dense retrieval"),
    ("baseline (InfoNCE, no teacher)", "retrieve-baseline", "full-corpus dense retrieval"),
)
GENERATED_LABELS = {  # the same rows when the training queries are generated
    "student (untrained)": "student (zero-shot)",
    "baseline (InfoNCE, no teacher)": "QGen (InfoNCE on generated queries, no teacher)",
}


def row_labels(config: Any) -> list[tuple[str, str, str]]:
    """The report's rows for this config: candidates named by their sources, generated-query
    runs labelled as such."""
    sources = list(config.candidates.eval_sources)
    first = "BM25" if sources == ["bm25"] else "candidates (" + " + ".join(sources) + ")"
    rows = []
    for label, stage, note in ROWS:
        if stage == "candidates-eval":
            label = first
        elif stage == "teacher-eval":
            note = f"re-ranks the {first} candidates" if first != "BM25" else note
        if config.generates:
            label = GENERATED_LABELS.get(label, label)
        rows.append((label, stage, note))
    return rows


THROUGHPUT_KEYS = ("pairs_per_s", "examples_per_s", "docs_per_s", "queries_per_s")


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:,.1f}" if isinstance(value, float) else str(value)


def write_report(pipeline: Any, folder: Path) -> dict[str, Any]:
    """Build the report of ``pipeline`` (a ``DistillRun``) into ``folder``; print it."""
    from evaluation import compare_runs
    from evaluation.agreement import agreement

    root, config = pipeline.root, pipeline.config
    eval_queries = set(pipeline._queries(pipeline.eval_data, config.data.max_eval_queries))
    qrels = {q: docs for q, docs in pipeline.eval_data.qrels.items() if q in eval_queries}
    runs, notes = {}, {}
    rows = row_labels(config)
    for label, stage, note in rows:
        path = root / stage / "run.trec"
        if path.is_file():
            runs[label] = read_run(path)
            notes[label] = note
            reranked = read_manifest(root / stage)["outputs"].get("reranked")
            if stage.startswith("retrieve-") and reranked:
                notes[label] = f"re-ranks {reranked} (a cross-encoder student does not index)"
            elif stage.startswith("retrieve-") and config.search.corpus == "candidates":
                docs = read_manifest(root / stage)["outputs"].get("corpus_docs")
                notes[label] = (
                    f"dense retrieval from the candidate pool only ({docs} docs: the "
                    "evaluation candidates + judged docs), not the full corpus"
                )
    untrained = rows[2][0]
    baseline_row = untrained if untrained in runs else next(iter(runs))
    comparison = compare_runs(
        runs,
        qrels,
        config.search.metrics,
        baseline=baseline_row,
        conventions=config.data.conventions,
    )
    comparison.write_per_query_csv(folder / "per_query.csv")

    lines = [f"# Distillation report: {config.name}", ""]
    teacher = (
        read_manifest(root / "teacher-train")["outputs"]
        if (root / "teacher-train" / "manifest.json").is_file()
        else {}
    )
    trained_on = (
        "queries generated from its corpus (no split's queries or qrels)"
        if config.data.train_queries == "generate"
        else f"train split `{config.data.train_split}`"
    )
    lines += [
        f"- data: `{config.data.collection}` {trained_on} -> evaluation split "
        f"`{config.data.eval_split}` ({len(qrels)} judged queries, "
        f"conventions `{config.data.conventions}`)",
        f"- teacher: `{teacher.get('teacher', pipeline.teacher_spec)}`",
    ]
    lines += [f"  - skipped: {reason}" for reason in teacher.get("teacher_skipped") or []]
    lines += [
        f"- student: `{config.train['student']['model']}`, loss "
        f"`{json.dumps(config.train.get('loss'))}`; baseline loss "
        f"`{json.dumps(config.baseline.loss)}`",
        "",
        "## Retrieval quality",
        "",
        comparison.to_markdown(),
        "",
    ]
    lines += [f"- {label}: {note}" for label, note in notes.items()]
    if config.generates:
        lines += generated_section(pipeline)

    agreements = {}
    teacher_run = root / "teacher-eval" / "run.trec"
    if teacher_run.is_file():
        teacher_scores = {q: d for q, d in read_run(teacher_run).items() if q in eval_queries}
        lines += [
            "",
            f"## Teacher-student agreement (held-out {config.data.eval_split} "
            "queries, on the teacher's candidates)",
            "",
            f"| student | Kendall τ | top-{config.search.agreement_depth} overlap | queries |",
            "|---|---|---|---|",
        ]
        for name in ("untrained", "distilled", "baseline"):
            path = root / f"retrieve-{name}" / "candidates_rescored.trec"
            if not path.is_file():
                continue
            result = agreement(teacher_scores, read_run(path), k=config.search.agreement_depth)
            agreements[name] = result.to_json()
            lines.append(
                f"| {name} | {result.kendall_tau:.4f} | {result.top_k_overlap:.4f} | "
                f"{result.n_queries} |"
            )

    plots = _plot_training(root, folder)
    if plots:
        lines += ["", "## Training curves", ""] + [f"![{p.stem}]({p.name})" for p in plots]
        for name in ("distilled", "baseline"):
            manifest = root / f"train-{name}" / "manifest.json"
            if manifest.is_file():
                curve = _one_point_per_step(read_manifest(manifest.parent)["outputs"])
                shown = ", ".join(f"{int(s)}: {v:.4f}" for s, v in curve)
                lines.append(f"- {name} dev curve (step: value): {shown or 'not evaluated'}")

    lines += [
        "",
        "## Cost per stage",
        "",
        "| stage | wall s | peak memory MiB | throughput |",
        "|---|---|---|---|",
    ]
    for stage_dir in sorted(p for p in root.iterdir() if (p / "manifest.json").is_file()):
        manifest = read_manifest(stage_dir)
        outputs, cost = manifest.get("outputs", {}), manifest.get("cost", {})
        rate = ", ".join(
            f"{k.replace('_per_s', '')}/s {_fmt(outputs[k])}"
            for k in THROUGHPUT_KEYS
            if outputs.get(k) is not None
        )
        resumed = " (resumed)" if manifest.get("resumed") else ""
        lines.append(
            f"| {stage_dir.name}{resumed} | {_fmt(cost.get('wall_s'))} | "
            f"{_fmt(cost.get('peak_memory_mb'))} | {rate or '–'} |"
        )
    text = "\n".join(lines) + "\n"
    (folder / "report.md").write_text(text, encoding="utf-8")
    metrics = {
        "means": comparison.means,
        "p_values": comparison.p_values,
        "agreement": agreements,
        "teacher": teacher.get("teacher", pipeline.teacher_spec),
    }
    (folder / "metrics.json").write_text(
        json.dumps(metrics, indent=2, default=str) + "\n", encoding="utf-8"
    )
    update_model_cards(pipeline, rows, comparison.means, len(qrels))
    pipeline.echo(text)
    return {"report": "report.md", "metrics": comparison.means, "agreement": agreements}


def update_model_cards(
    pipeline: Any, rows: list[tuple[str, str, str]], means: dict[str, dict[str, float]], n: int
) -> None:
    """Put the report's figures into each trained student's model card (its row first, then
    the reference rows: BM25, teacher, the untrained student)."""
    from retrieval_kd.models.model_card import write_model_card

    root, config = pipeline.root, pipeline.config
    labels = {stage: label for label, stage, _ in rows}
    reference = [labels[s] for s in ("candidates-eval", "teacher-eval", "retrieve-untrained")]
    evaluated_on = f"`{config.data.collection}` {config.data.eval_split} ({n} judged queries)"
    for name in ("distilled", "baseline"):
        train_dir, label = root / f"train-{name}", labels.get(f"retrieve-{name}")
        if not (train_dir / "manifest.json").is_file() or label not in means:
            continue
        model_dir = train_dir / read_manifest(train_dir)["outputs"]["model"]
        if not (model_dir / "manifest.json").is_file():
            continue
        metrics = {label: means[label]} | {r: means[r] for r in reference if r in means}
        whose = "the teacher's" if config.baseline.negatives == "teacher" else "the candidates'"
        teacher = (
            pipeline.teacher_spec
            if name == "distilled"
            else f"none: the labels, negatives in {whose} order (baseline)"
        )
        write_model_card(model_dir, read_manifest(model_dir), metrics, evaluated_on, teacher)


def _plot_training(root: Path, folder: Path) -> list[Path]:
    """``losses.png`` (every logged loss term) and ``dev.png`` (dev metric) per training."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = {}
    for name in ("distilled", "baseline"):
        path = root / f"train-{name}" / "manifest.json"
        if path.is_file():
            curves[name] = read_manifest(path.parent)["outputs"]
    if not curves:
        return []
    out = []
    fig, axes = plt.subplots(1, len(curves), figsize=(6 * len(curves), 4), squeeze=False)
    for ax, (name, outputs) in zip(axes[0], curves.items(), strict=True):
        rows = outputs.get("loss_curve") or []
        terms = sorted({k for row in rows for k in row if k == "loss" or k.startswith("loss/")})
        for term in terms:
            points = [(row["step"], row[term]) for row in rows if term in row]
            if points:
                ax.plot(*zip(*points, strict=True), label=term, marker=".")
        ax.set_title(f"{name}: training loss terms")
        ax.set_xlabel("step")
        ax.legend()
    fig.tight_layout()
    fig.savefig(folder / "losses.png", dpi=100)
    plt.close(fig)
    out.append(folder / "losses.png")
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, outputs in curves.items():
        curve = _one_point_per_step(outputs)
        if curve:
            ax.plot([s for s, _ in curve], [v for _, v in curve], marker="o", label=name)
    ax.set_xlabel("step")
    ax.set_ylabel("dev nDCG@10")
    ax.set_title("dev nDCG@10 during training")
    if ax.lines:
        ax.legend()
    fig.tight_layout()
    fig.savefig(folder / "dev.png", dpi=100)
    plt.close(fig)
    out.append(folder / "dev.png")
    return out


def generated_section(pipeline: Any) -> list[str]:
    """Report lines on the generated training queries: generator, what each filter dropped,
    length and duplicate statistics, the source's rank under the teacher, ten examples."""
    root = pipeline.root
    if not (root / "generate" / "queries" / "manifest.json").is_file():
        return []
    generated = read_manifest(root / "generate" / "queries")
    counts, words = generated["counts"], generated["query_words"]
    g = generated["generator"]
    name = g.get("hub_id") or g.get("spec") or g.get("span_kind") or g.get("kind")
    lines = [
        "",
        "## Generated training queries",
        "",
        f"- generator: `{g.get('kind')}` {name}"
        + (f", template kind `{g.get('template_kind')}`" if g.get("template_kind") else "")
        + (f", {g.get('dtype')}" if g.get("dtype") else "")
        + f"; {generated['cost'].get('docs_per_s')} documents/s",
        f"- {counts['documents']} sampled documents, {counts['raw']} raw outputs; dropped: "
        + ", ".join(f"{k} {counts[k]}" for k in ("empty", "meta", "too_short", "too_long"))
        + f", duplicates {counts['duplicate']}; kept {counts['kept']}",
        f"- query length (words): mean {words['mean']}, median {words['median']}, "
        f"min {words['min']}, max {words['max']}",
    ]
    if (root / "filter" / "queries" / "manifest.json").is_file():
        filtered = read_manifest(root / "filter" / "queries")
        c, ranks = filtered["counts"], filtered["teacher_rank_of_source"]
        f = filtered["settings"]
        lines += [
            f"- filters (round trip: {f['round_trip']} top-{f['round_trip_k']}, teacher floor "
            f"{f['teacher_floor']}): round trip dropped {c['dropped_round_trip']}, teacher floor "
            f"dropped {c['dropped_teacher_floor']}; the distilled student trains on "
            f"{c['kept']} queries, the QGen baseline on {c['kept_teacher-free']}",
            f"- the teacher ranks the source document first for {ranks['first']} of "
            f"{ranks['scored']} generated queries (top 3: {ranks['top3']}, top 10: "
            f"{ranks['top10']})",
        ]
    examples = generated.get("examples") or []
    if examples:
        titles, bodies = pipeline.corpus.fields([e["doc_id"] for e in examples])
        lines += [
            "",
            "| generated query | source document (title, or start of text) |",
            "|---|---|",
        ]
        for e, title, body in zip(examples, titles, bodies, strict=True):
            shown = (title or body[:100]).replace("|", "/").replace("\n", " ")
            lines.append(f"| {e['query'].replace('|', '/')} | {shown} |")
    return lines


def _one_point_per_step(outputs: dict[str, Any]) -> list[tuple[int, float]]:
    """The dev curve with one value per step (a resumed run evaluates its checkpoint again)."""
    return sorted({int(step): value for step, value in outputs.get("dev_curve") or []}.items())
