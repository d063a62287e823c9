"""``generate_queries``: sampled documents -> raw generations in shards -> a clean query set.

Resume:
    The sampled documents are cut into shards of ``docs_per_shard``; each shard's raw outputs go
    to ``shards/shard-NNNNNN.jsonl`` through a temporary file and an atomic rename, so a run
    killed at any point (``kill -9`` included) leaves only complete shards, and the re-run
    generates just the missing ones. ``shards/settings.json`` records what the shards were made
    with; a folder started with other settings (generator, template, seed, documents, per-doc)
    is refused rather than mixed.

Distributed:
    Under ``torchrun`` / ``accelerate launch`` rank ``r`` of ``w`` generates the shards
    ``i % w == r`` (the ``RANK`` / ``WORLD_SIZE`` rule of the score store). The outputs are
    written by whichever rank finds every shard present when it finishes.

Finishing (cheap, redone from the shards): clean, drop and de-duplicate
(:class:`~retrieval_kd.generation.cleaning.QueryFilter`, counts by reason), then write the query
set (:mod:`~retrieval_kd.generation.query_set`) with a manifest: generator identity and settings,
seed, the sample, counts, query-length statistics, docs/s, peak memory and ten examples.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from retrieval_kd.data.corpus import Corpus
from retrieval_kd.errors import InputError
from retrieval_kd.generation.cleaning import QueryFilter, word_count
from retrieval_kd.generation.query_set import query_id, write_query_set
from retrieval_kd.generation.sampling import plan_budget, sample_documents
from retrieval_kd.manifest import MANIFEST_NAME, fingerprint, peak_memory_mb, read_manifest
from retrieval_kd.progress import progress

SHARDS_DIR = "shards"
VOLATILE = ("device", "batch_size", "torch")  # do not change what is generated


class QueryGenerator(Protocol):
    """What ``generate_queries`` needs of a generator (LLM or span)."""

    needs_cleaning: bool

    def generate(
        self, doc_ids: list[str], titles: list[str], bodies: list[str], n: int
    ) -> list[list[str]]: ...

    def describe(self) -> dict[str, Any]: ...


def _shard_path(folder: Path, index: int) -> Path:
    return folder / SHARDS_DIR / f"shard-{index:06d}.jsonl"


def _write_shard(path: Path, doc_ids: list[str], outputs: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            for doc_id, raw in zip(doc_ids, outputs, strict=True):
                handle.write(json.dumps({"doc_id": doc_id, "outputs": raw}, ensure_ascii=False))
                handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_shard(path: Path) -> list[tuple[str, list[str]]]:
    with open(path, encoding="utf-8") as handle:
        return [(r["doc_id"], list(r["outputs"])) for r in map(json.loads, handle) if r]


def _check_settings(folder: Path, settings: dict[str, Any]) -> None:
    """Record the shards' settings, or refuse a folder started with other ones."""
    path = folder / SHARDS_DIR / "settings.json"
    if path.is_file():
        before = json.loads(path.read_text(encoding="utf-8"))
        if any(before.get(k) != settings[k] for k in ("fingerprint", "sample")):
            changed = sorted(
                k for k in set(before) | set(settings) if before.get(k) != settings.get(k)
            )
            raise InputError(
                "this folder holds query shards generated with other settings "
                f"({', '.join(changed)}); choose another output folder or delete it",
                folder,
            )
        return
    from retrieval_kd.manifest import write_json_atomic

    write_json_atomic(path, settings)


def generate_queries(
    corpus: Corpus,
    generator: QueryGenerator,
    out_dir: str | Path,
    *,
    corpus_ref: dict[str, str],
    per_doc: int = 1,
    docs: int | None = None,
    queries: int | None = None,
    seed: int = 0,
    docs_per_shard: int = 64,
    query_filter: QueryFilter | None = None,
    rank: int | None = None,
    world_size: int | None = None,
    examples: int = 10,
) -> dict[str, Any] | None:
    """Generate ``per_doc`` queries for each of a seeded sample of documents (resumable).

    Args:
        corpus: the documents.
        generator: an :class:`~retrieval_kd.generation.llm_generator.LLMQueryGenerator`, a
            :class:`~retrieval_kd.generation.span_generator.SpanQueryGenerator` or anything
            with their ``generate`` / ``describe``.
        out_dir: the query-set folder.
        corpus_ref: where later stages find the corpus (``{"data": spec}`` or
            ``{"corpus_file": path}``).
        per_doc: outputs asked for each document.
        docs / queries: how many documents to sample, or the total query budget (GPL's rule:
            ``ceil(queries / per_doc)`` documents); neither: every document.
        seed: the document sample's seed (the generator has its own).
        docs_per_shard: documents per shard (the unit of resume).
        query_filter: length bounds and de-duplication (default :class:`QueryFilter`).
        rank / world_size: this process's share (default: from ``torchrun``'s environment).
        examples: how many kept queries the manifest shows.

    Returns:
        The manifest, or None when other ranks still have shards to generate.

    Raises:
        InputError: an empty corpus, bad budget, a folder of other settings, or no query left
            after cleaning and filtering.
    """
    from retrieval_kd.store import resolve_rank

    folder = Path(out_dir)
    if docs_per_shard < 1:
        raise InputError(f"docs_per_shard must be >= 1, got {docs_per_shard}")
    query_filter = query_filter or QueryFilter()
    settings = {
        "generator": {k: v for k, v in generator.describe().items() if k not in VOLATILE},
        "corpus": corpus_ref,
        "per_doc": per_doc,
        "seed": seed,
        "docs": docs,
        "queries": queries,
        "docs_per_shard": docs_per_shard,
        "filter": vars(query_filter),
    }
    settings["fingerprint"] = fingerprint(settings)
    if (folder / MANIFEST_NAME).is_file():
        manifest = read_manifest(folder)
        if manifest.get("settings_fingerprint") == settings["fingerprint"]:
            return manifest  # already generated with these settings
    rank, world_size = resolve_rank(rank, world_size)
    doc_ids = sample_documents(corpus, plan_budget(len(corpus), per_doc, docs, queries), seed)
    _check_settings(folder, {**settings, "sample": fingerprint(doc_ids)})
    shards = [doc_ids[i : i + docs_per_shard] for i in range(0, len(doc_ids), docs_per_shard)]
    mine = [i for i in range(len(shards)) if i % world_size == rank]
    todo = [i for i in mine if not _shard_path(folder, i).is_file()]
    start = time.perf_counter()
    generated_docs = 0
    bar = progress(todo, desc="generating queries", total=len(todo), unit="shard")
    for index in bar:
        ids = shards[index]
        titles, bodies = corpus.fields(ids)
        outputs = generator.generate(ids, titles, bodies, per_doc)
        if len(outputs) != len(ids) or any(len(o) != per_doc for o in outputs):
            raise InputError(
                f"the generator returned {len(outputs)} output lists for {len(ids)} documents "
                f"(expected {per_doc} outputs each)"
            )
        _write_shard(_shard_path(folder, index), ids, outputs)
        generated_docs += len(ids)
    seconds = time.perf_counter() - start
    _write_cost(folder, rank, generated_docs, seconds)
    if not all(_shard_path(folder, i).is_file() for i in range(len(shards))):
        return None
    return _finish(folder, generator, shards, settings, query_filter, corpus_ref, examples)


def _write_cost(folder: Path, rank: int, docs: int, seconds: float) -> None:
    """Add this process's generation time to its cost record (summed over resumed runs)."""
    from retrieval_kd.manifest import write_json_atomic

    path = folder / SHARDS_DIR / f"cost-r{rank:02d}.json"
    before = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    write_json_atomic(
        path,
        {
            "docs": before.get("docs", 0) + docs,
            "seconds": round(before.get("seconds", 0.0) + seconds, 3),
            "peak_memory_mb": max(before.get("peak_memory_mb", 0.0), round(peak_memory_mb(), 1)),
            "runs": before.get("runs", 0) + 1,
        },
    )


def _finish(
    folder: Path,
    generator: QueryGenerator,
    shards: list[list[str]],
    settings: dict[str, Any],
    query_filter: QueryFilter,
    corpus_ref: dict[str, str],
    examples: int,
) -> dict[str, Any]:
    generated = [row for i in range(len(shards)) for row in _read_shard(_shard_path(folder, i))]
    kept, counts = query_filter.apply(generated, clean=generator.needs_cleaning)
    if not kept:
        raise InputError(
            f"no generated query is left: {counts.raw} raw outputs, dropped "
            + ", ".join(f"{k} {v}" for k, v in counts.to_dict().items() if k not in ("raw", "kept"))
            + " (check the generator, its template and the length bounds)",
            folder,
        )
    rows = [(query_id(doc_id, j), doc_id, text) for doc_id, j, text in kept]
    costs = [json.loads(p.read_text()) for p in sorted((folder / SHARDS_DIR).glob("cost-r*.json"))]
    seconds = sum(c["seconds"] for c in costs)
    docs_done = sum(c["docs"] for c in costs)
    lengths = np.array([word_count(text) for _, _, text in rows])
    rng = np.random.default_rng(settings["seed"])
    shown = [
        rows[int(i)] for i in rng.choice(len(rows), size=min(examples, len(rows)), replace=False)
    ]
    manifest = {
        "stage": "generate-queries",
        "settings_fingerprint": settings["fingerprint"],
        "generator": generator.describe(),
        "settings": {k: v for k, v in settings.items() if k != "fingerprint"},
        "corpus": corpus_ref,
        "counts": {
            "documents": sum(len(s) for s in shards),
            "shards": len(shards),
            **counts.to_dict(),
        },
        "query_words": {
            "mean": round(float(lengths.mean()), 2),
            "median": float(np.median(lengths)),
            "min": int(lengths.min()),
            "max": int(lengths.max()),
        },
        "examples": [{"query_id": q, "doc_id": d, "query": t} for q, d, t in shown],
        "cost": {
            "generation_s": round(seconds, 3),
            "docs_generated": docs_done,
            "docs_per_s": round(docs_done / seconds, 3) if seconds > 0 else None,
            "peak_memory_mb": max((c["peak_memory_mb"] for c in costs), default=None),
            "runs": max((c["runs"] for c in costs), default=0),
        },
    }
    write_query_set(folder, rows, corpus_ref, manifest)
    return read_manifest(folder)
