"""Collections from ``ir_datasets`` ids (``irds:beir/scifact/test``), loaded lazily.

Nothing is downloaded until the corpus, queries or qrels are first used. When the download
fails (no network), the error says so and suggests a local BEIR folder instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from retrieval_kd.data.corpus import Corpus, cache_root
from retrieval_kd.data.types import Qrels, Queries
from retrieval_kd.errors import InputError
from retrieval_kd.manifest import fingerprint

PREFIX = "irds:"
T = TypeVar("T")


def load_irds(dataset_id: str) -> Any:
    """``ir_datasets.load`` with a clear error for an unknown id."""
    import ir_datasets

    try:
        return ir_datasets.load(dataset_id)
    except KeyError:
        raise InputError(f"unknown ir_datasets id {dataset_id!r} (see ir-datasets.com)") from None


def _offline_guard(dataset_id: str, what: str, fn: Callable[[], T]) -> T:
    try:
        return fn()
    except (OSError, ConnectionError, RuntimeError) as err:
        short = dataset_id.split("/")[1] if dataset_id.startswith("beir/") else dataset_id
        raise InputError(
            f"ir_datasets could not get the {what} of {dataset_id!r} ({type(err).__name__}: "
            f"{err}). If this machine is offline, point --data at a local BEIR folder "
            f"(corpus.jsonl, queries.jsonl, qrels/<split>.tsv) or a short name under "
            f"$RKD_DATA_DIR, e.g. --data {short}"
        ) from None


def _doc_records(dataset: Any) -> Iterator[tuple[str, str, str]]:
    for doc in dataset.docs_iter():
        title = getattr(doc, "title", "") or ""
        text = getattr(doc, "text", None)
        if text is None:
            text = doc.default_text()
            title = ""
        yield doc.doc_id, title, text


def irds_corpus(dataset_id: str) -> Corpus:
    """The documents of ``dataset_id`` as a memory-mapped ``Corpus`` (converted once)."""
    dataset = load_irds(dataset_id)
    if not dataset.has_docs():
        raise InputError(f"ir_datasets id {dataset_id!r} has no documents")
    docs_handler = dataset.docs_handler()
    cache_file = cache_root() / "corpora" / f"irds-{fingerprint(repr(docs_handler))}.arrow"
    if cache_file.is_file():
        return Corpus(cache_file, name=dataset_id)

    def build() -> Corpus:
        return Corpus.from_records(
            _doc_records(dataset),
            cache_file,
            source=PREFIX + dataset_id,
            name=dataset_id,
            total=dataset.docs_count(),
        )

    return _offline_guard(dataset_id, "documents", build)


def irds_queries(dataset_id: str) -> Queries:
    """``{query_id: text}`` of ``dataset_id`` (the query's ``text`` field or default text)."""
    dataset = load_irds(dataset_id)
    if not dataset.has_queries():
        raise InputError(f"ir_datasets id {dataset_id!r} has no queries")

    def read() -> Queries:
        return {
            q.query_id: getattr(q, "text", None) or q.default_text() for q in dataset.queries_iter()
        }

    return _offline_guard(dataset_id, "queries", read)


def irds_qrels(dataset_id: str) -> Qrels:
    """``{query_id: {doc_id: grade}}`` of ``dataset_id``."""
    dataset = load_irds(dataset_id)
    if not dataset.has_qrels():
        raise InputError(
            f"ir_datasets id {dataset_id!r} has no qrels (pick a split, e.g. {dataset_id}/test)"
        )

    def read() -> Qrels:
        qrels: Qrels = {}
        for qrel in dataset.qrels_iter():
            qrels.setdefault(qrel.query_id, {})[qrel.doc_id] = int(qrel.relevance)
        return qrels

    return _offline_guard(dataset_id, "qrels", read)
