"""A generated query set on disk: a BEIR folder that borrows its corpus.

Layout (every later stage reads it as it reads any collection, split ``train``)::

    queries.jsonl      {"_id": query id, "text": query}
    sources.tsv        query-id <TAB> corpus-id: the document each query was generated from
    qrels/train.tsv    the same pairs as synthetic judgements (grade 1): the source is the positive
    corpus.ref.json    where the documents are (see retrieval_kd.data.sources)
    manifest.json      how the set was made (generator, settings, counts, cost); written last

Query ids are ``gen-<doc id>-<n>``: the n-th output generated for that document.

Example:
    >>> import tempfile
    >>> from retrieval_kd.data import load_dataset
    >>> with tempfile.TemporaryDirectory() as d:
    ...     _ = write_query_set(d, [("gen-d1-0", "d1", "what is x")], {"data": "/x"}, {"n": 1})
    ...     read_sources(d)
    {'gen-d1-0': 'd1'}
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from retrieval_kd.data.textfiles import iter_tsv
from retrieval_kd.errors import InputError
from retrieval_kd.manifest import write_manifest

SPLIT = "train"
SOURCES_FILE = "sources.tsv"
SOURCES_HEADER = "query-id\tcorpus-id"


def query_id(doc_id: str, index: int) -> str:
    """The id of the ``index``-th query generated from ``doc_id``."""
    return f"gen-{doc_id}-{index}"


def _write_lines(path: Path, lines: Iterable[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            for line in lines:
                handle.write(line + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_query_set(
    folder: str | Path,
    rows: list[tuple[str, str, str]],
    corpus_ref: dict[str, str],
    manifest: dict[str, Any],
    splits: dict[str, list[str]] | None = None,
) -> Path:
    """Write ``rows`` of ``(query id, source doc id, text)`` as a query-set folder.

    ``splits`` names the query ids of each ``qrels/<split>.tsv`` (default: every row in
    ``train``). Every file is written atomically and ``manifest.json`` last, so a folder with a
    manifest is complete.

    Raises:
        InputError: no rows (nothing to train on), or a query id given twice.
    """
    from retrieval_kd.data.sources import write_corpus_ref

    folder = Path(folder)
    if not rows:
        raise InputError("no generated query is left to write", folder)
    ids = [q for q, _, _ in rows]
    if len(set(ids)) != len(ids):
        raise InputError("a generated query id appears twice", folder)
    _write_lines(
        folder / "queries.jsonl",
        (json.dumps({"_id": q, "text": text}, ensure_ascii=False) for q, _, text in rows),
    )
    _write_lines(folder / SOURCES_FILE, [SOURCES_HEADER, *(f"{q}\t{d}" for q, d, _ in rows)])
    source_of = {q: d for q, d, _ in rows}
    for split, members in (splits or {SPLIT: ids}).items():
        _write_lines(
            folder / "qrels" / f"{split}.tsv",
            ["query-id\tcorpus-id\tscore", *(f"{q}\t{source_of[q]}\t1" for q in members)],
        )
    write_corpus_ref(folder, **corpus_ref)
    write_manifest(folder, manifest)
    return folder


def iter_sources(folder: str | Path) -> Iterator[tuple[str, str]]:
    """``(query id, source doc id)`` pairs of a query-set folder, in file order."""
    path = Path(folder) / SOURCES_FILE
    if not path.is_file():
        raise InputError("not a generated query set: sources.tsv is missing", folder)
    for line, fields in iter_tsv(path, skip_header="query-id"):
        if len(fields) != 2:
            raise InputError("expected two fields: query-id, corpus-id", path, line)
        yield fields[0], fields[1]


def read_sources(folder: str | Path) -> dict[str, str]:
    """Query id -> the doc id it was generated from."""
    return dict(iter_sources(folder))
