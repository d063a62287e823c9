"""Corpora and queries from JSON-lines or TSV id-text files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from retrieval_kd.data.corpus import Corpus, corpus_cache_file
from retrieval_kd.data.textfiles import iter_jsonl, iter_tsv, require_field
from retrieval_kd.data.types import Queries
from retrieval_kd.errors import InputError

ID_KEYS = ("_id", "id", "doc_id", "query_id", "qid", "docid")


def _record_id(record: dict, path: Path, line: int) -> str:
    for key in ID_KEYS:
        if key in record:
            return require_field(record, key, path, line)
    raise InputError(f"missing id field (one of {', '.join(ID_KEYS)})", path, line)


def _iter_corpus_records(path: Path) -> Iterator[tuple[str, str, str, int]]:
    if path.suffix == ".jsonl" or path.name.endswith(".jsonl.gz"):
        for line, record in iter_jsonl(path):
            doc_id = _record_id(record, path, line)
            text = record.get("text", record.get("contents", record.get("body")))
            if text is None:
                raise InputError("missing field 'text'", path, line)
            yield doc_id, str(record.get("title") or ""), str(text), line
    elif path.suffix in (".tsv", ".txt"):
        for line, fields in iter_tsv(path):
            if len(fields) == 2:
                yield fields[0], "", fields[1], line
            elif len(fields) == 3:
                yield fields[0], fields[1], fields[2], line
            else:
                raise InputError(
                    f"corpus TSV line has {len(fields)} fields, expected 2 "
                    "(id, text) or 3 (id, title, text)",
                    path,
                    line,
                )
    else:
        raise InputError("unknown corpus format: expected .jsonl or .tsv", path)


def load_corpus_file(path: str | Path) -> Corpus:
    """Open a JSONL (``{"_id", "title", "text"}``) or TSV (id, [title,] text) corpus.

    The first call converts the file into a memory-mapped Arrow copy in the cache (see
    ``retrieval_kd.data.corpus``); later calls reuse it while the file is unchanged.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("corpus file not found", path)
    cache_file = corpus_cache_file(path, kind="corpus")
    if cache_file.is_file():
        return Corpus(cache_file, name=path.parent.name or path.stem)
    return Corpus.from_records(
        _iter_corpus_records(path), cache_file, source=path, name=path.parent.name or path.stem
    )


def read_queries(path: str | Path) -> Queries:
    """Read ``{query_id: text}`` from JSONL (``{"_id", "text"}``) or TSV (``qid<TAB>text``).

    Raises:
        InputError: malformed line, missing field, duplicate query id, or an empty file.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("queries file not found", path)
    queries: Queries = {}
    rows: Iterator[tuple[int, str, str]]
    if path.suffix == ".jsonl":
        rows = (
            (line, _record_id(rec, path, line), require_field(rec, "text", path, line))
            for line, rec in iter_jsonl(path)
        )
    elif path.suffix in (".tsv", ".txt"):
        rows = (_tsv_query(path, line, fields) for line, fields in iter_tsv(path))
    else:
        raise InputError("unknown queries format: expected .jsonl or .tsv", path)
    for line, query_id, text in rows:
        if query_id in queries:
            raise InputError(f"duplicate query id {query_id!r}", path, line)
        queries[query_id] = text
    if not queries:
        raise InputError("queries file is empty", path)
    return queries


def _tsv_query(path: Path, line: int, fields: list[str]) -> tuple[int, str, str]:
    if len(fields) != 2:
        raise InputError(
            f"queries TSV line has {len(fields)} fields, expected 2 (id, text)", path, line
        )
    return line, fields[0], fields[1]
