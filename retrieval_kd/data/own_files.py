"""A user's own files as a collection: ``--corpus``, ``--queries``, ``--qrels``.

The files (corpus JSONL or TSV, queries JSONL or TSV, qrels TREC or BEIR TSV: the formats
``retrieval_kd.data.files`` and ``retrieval_kd.data.qrels`` read) become a BEIR-layout folder
under ``$RKD_CACHE_DIR/own-data/`` whose ``corpus.ref.json`` points at the corpus file (it is
not copied) and which holds the queries and each split's qrels. Every stage then reads it as it
reads any collection, and manifests name it. Queries and qrels are read (and so checked) when
the folder is made: a bad record is an error naming the file and line, before any stage runs.
The folder's name is a hash of the files' paths, sizes and modification times, so a changed
file gives a new folder.

Example:
    >>> folder = own_data_folder("c.jsonl", "q.tsv", {"test": "qrels.tsv"})  # doctest: +SKIP
    >>> load_dataset(str(folder), "test")  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from retrieval_kd.data.corpus import cache_root
from retrieval_kd.data.files import read_queries
from retrieval_kd.data.qrels import read_qrels
from retrieval_kd.errors import InputError

DEFAULT_SPLIT = "qrels"


def _stamp(path: Path) -> str:
    stat = path.stat()
    return f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"


def own_data_folder(
    corpus: str | Path,
    queries: str | Path | None = None,
    qrels: Mapping[str, str | Path] | None = None,
) -> Path:
    """The collection folder of the user's files (made on first use; see the module docstring).

    Args:
        corpus: the corpus file.
        queries: the queries file (None: no queries, e.g. to index a corpus or generate
            queries for it).
        qrels: split name -> qrels file (e.g. ``{"train": ..., "test": ...}``).

    Raises:
        InputError: a missing file, or a bad record (file and line named).
    """
    files = {"corpus": Path(corpus)}
    if queries is not None:
        files["queries"] = Path(queries)
    for split, path in (qrels or {}).items():
        if not split or "/" in split:
            raise InputError(f"qrels split names must be plain words, got {split!r}")
        files[f"qrels/{split}"] = Path(path)
    for role, path in files.items():
        if not path.is_file():
            raise InputError(f"--{role.split('/')[0]} file not found", path)
    key = hashlib.sha256("\n".join(f"{r}={_stamp(p)}" for r, p in files.items()).encode())
    folder = cache_root() / "own-data" / f"{files['corpus'].stem}-{key.hexdigest()[:16]}"
    if (folder / "queries.jsonl").is_file():
        return folder
    query_texts = read_queries(files["queries"]) if "queries" in files else {}
    judged = {split: read_qrels(files[f"qrels/{split}"]) for split in qrels or {}}
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    (tmp / "corpus.ref.json").write_text(
        json.dumps({"corpus_file": str(files["corpus"].resolve())}) + "\n", encoding="utf-8"
    )
    with open(tmp / "queries.jsonl", "w", encoding="utf-8") as handle:
        for qid, text in query_texts.items():
            handle.write(json.dumps({"_id": qid, "text": text}, ensure_ascii=False) + "\n")
    (tmp / "qrels").mkdir()
    for split, table in judged.items():
        lines = ["query-id\tcorpus-id\tscore"]
        lines += [f"{q}\t{d}\t{g}" for q, docs in sorted(table.items()) for d, g in docs.items()]
        (tmp / "qrels" / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (tmp / "sources.json").write_text(
        json.dumps({r: str(p.resolve()) for r, p in files.items()}, indent=2) + "\n"
    )
    try:
        os.replace(tmp, folder)
    except OSError:  # another process made it first
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def data_from_options(
    data: str | None,
    corpus: str | Path | None,
    queries: str | Path | None,
    qrels: str | Path | None,
    split: str | None,
) -> tuple[str, str | None]:
    """``(data spec, split)`` from a command's ``--data`` or ``--corpus/--queries/--qrels``.

    With files, the split is ``--split`` (default ``qrels``) when ``--qrels`` is given.

    Raises:
        InputError: both or neither of ``--data`` and ``--corpus``; ``--queries`` or
            ``--qrels`` without ``--corpus``.
    """
    if corpus is None:
        if queries is not None or qrels is not None:
            raise InputError("--queries and --qrels go with --corpus (your own files)")
        if data is None:
            raise InputError("give --data (a collection) or --corpus (your own files)")
        return data, split
    if data is not None:
        raise InputError("give --data or --corpus, not both")
    name = split or DEFAULT_SPLIT
    folder = own_data_folder(corpus, queries, {name: qrels} if qrels is not None else None)
    return str(folder), name if qrels is not None else None
