"""A document collection kept in a memory-mapped Arrow file, usable at MS MARCO size.

Texts are never all held in a Python dict: the corpus is converted once into an Arrow IPC file
(columns ``doc_id``, ``title``, ``text``) in the cache, then memory-mapped, so opening an 8.8M
passage collection costs almost no memory and a lookup touches only the rows it needs. Ids are
looked up by binary search over a sorted copy of the id column, built on first use.

A document's text is ``title + " " + text`` (the BEIR convention), or ``text`` without title.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

from retrieval_kd.errors import InputError
from retrieval_kd.manifest import fingerprint, sha256_file
from retrieval_kd.progress import progress

SCHEMA = pa.schema([("doc_id", pa.string()), ("title", pa.string()), ("text", pa.string())])
BATCH_ROWS = 20_000


def cache_root() -> Path:
    """``$RKD_CACHE_DIR`` or ``~/.cache/retrieval_kd``."""
    return Path(os.environ.get("RKD_CACHE_DIR", Path.home() / ".cache" / "retrieval_kd"))


def join_title(title: str | None, text: str | None) -> str:
    """BEIR's document text: ``title + " " + text``, or whichever of the two exists."""
    title, text = (title or "").strip(), (text or "").strip()
    return f"{title} {text}" if title and text else title or text


class Corpus:
    """Read-only document collection over a memory-mapped Arrow file.

    Build one with ``Corpus.from_records`` (or the loaders in ``retrieval_kd.data.sources``).

    Example:
        >>> corpus = Corpus.from_records([("d1", "Title", "Body."), ("d2", "", "Other.")],
        ...                              cache_file=tmp / "toy.arrow")  # doctest: +SKIP
        >>> corpus.texts(["d2", "d1"])  # doctest: +SKIP
        ['Other.', 'Title Body.']
    """

    def __init__(self, arrow_path: str | Path, name: str = "corpus"):
        self.path = Path(arrow_path)
        self.name = name
        try:
            self._table = pa.ipc.open_file(pa.memory_map(str(self.path), "r")).read_all()
        except (OSError, pa.ArrowInvalid) as err:
            raise InputError(
                f"unreadable corpus cache ({err}); delete it to rebuild", self.path
            ) from None
        self._sorted_ids: np.ndarray | None = None
        self._order: np.ndarray | None = None

    # -- building ---------------------------------------------------------------------------
    @classmethod
    def from_records(
        cls,
        records: Iterable[tuple[str, str, str]],
        cache_file: str | Path,
        source: str | Path | None = None,
        name: str = "corpus",
        total: int | None = None,
    ) -> Corpus:
        """Stream ``(doc_id, title, text)`` records into ``cache_file`` and open it.

        Args:
            records: the documents; a record may carry a 4th item, its line number, used in
                error messages.
            cache_file: where the Arrow file goes; written to a temp file and renamed at the
                end, so a failure leaves nothing behind.
            source: the file the records come from, named in error messages.
            name: a display name.
            total: number of records if known (for the progress bar).

        Raises:
            InputError: an empty corpus, an empty id, or a duplicate document id.
        """
        cache_file = Path(cache_file)
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache_file.parent, prefix=".corpus.", suffix=".tmp")
        os.close(fd)
        lines: list[int] = []
        try:
            with pa.OSFile(tmp, "wb") as sink, pa.ipc.new_file(sink, SCHEMA) as writer:
                ids: list[str] = []
                titles: list[str] = []
                texts: list[str] = []
                for record in progress(records, desc=f"reading {name}", total=total, unit="doc"):
                    doc_id, title, text = record[0], record[1], record[2]
                    line = record[3] if len(record) > 3 else len(lines) + 1
                    if not doc_id:
                        raise InputError("empty document id", source, line)
                    ids.append(doc_id)
                    titles.append(title or "")
                    texts.append(text or "")
                    lines.append(line)
                    if len(ids) >= BATCH_ROWS:
                        writer.write_batch(_batch(ids, titles, texts))
                        ids, titles, texts = [], [], []
                if ids:
                    writer.write_batch(_batch(ids, titles, texts))
            if not lines:
                raise InputError("corpus is empty", source)
            corpus = cls(tmp, name=name)
            corpus._check_unique_ids(source, np.asarray(lines, dtype=np.int64))
            corpus._table = None  # release the map of the temp file before renaming it
            os.replace(tmp, cache_file)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return cls(cache_file, name=name)

    def _check_unique_ids(self, source: str | Path | None, lines: np.ndarray) -> None:
        sorted_ids, order = self._id_index()
        same = np.flatnonzero(sorted_ids[1:] == sorted_ids[:-1])
        if same.size:
            first, second = sorted(order[[same[0], same[0] + 1]])
            doc_id = sorted_ids[same[0]].decode("utf-8")
            raise InputError(
                f"duplicate document id {doc_id!r} (first at line {lines[first]})",
                source,
                int(lines[second]),
            )

    # -- reading ----------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._table.num_rows

    def __contains__(self, doc_id: object) -> bool:
        return isinstance(doc_id, str) and bool(self.contains([doc_id])[0])

    def contains(self, doc_ids: Sequence[str]) -> np.ndarray:
        """Whether each id is in the corpus, in one sorted-array lookup.

        Shapes:
            doc_ids: N strings -> [N] bool.
        """
        return self._lookup(doc_ids)[1]

    def _lookup(self, doc_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Positions of ``doc_ids`` in the sorted id index (clipped) and whether each matched."""
        sorted_ids, _ = self._id_index()
        wanted = np.array([doc_id.encode("utf-8") for doc_id in doc_ids], dtype=np.bytes_)
        if wanted.size == 0 or sorted_ids.size == 0:
            return np.zeros(wanted.size, dtype=np.int64), np.zeros(wanted.size, dtype=bool)
        pos = np.minimum(np.searchsorted(sorted_ids, wanted), len(sorted_ids) - 1)
        return pos, sorted_ids[pos] == wanted

    @property
    def ids(self) -> list[str]:
        """All document ids in file order (a Python list: fine for tests, costly at 8.8M)."""
        return self._table.column("doc_id").to_pylist()

    def _id_index(self) -> tuple[np.ndarray, np.ndarray]:
        if self._sorted_ids is None:
            ids = self._table.column("doc_id").to_numpy(zero_copy_only=False)
            encoded = np.array([doc_id.encode("utf-8") for doc_id in ids], dtype=np.bytes_)
            self._order = np.argsort(encoded, kind="stable")
            self._sorted_ids = encoded[self._order]
        return self._sorted_ids, self._order  # type: ignore[return-value]

    def rows_of(self, doc_ids: Sequence[str], missing: str = "raise") -> np.ndarray:
        """Row numbers of ``doc_ids``. ``missing``: "raise" (InputError) or "skip"."""
        _, order = self._id_index()
        pos_clipped, found = self._lookup(doc_ids)
        if not found.all():
            if missing == "raise":
                unknown = [doc_ids[i] for i in np.flatnonzero(~found)[:5]]
                raise InputError(
                    f"{int((~found).sum())} document id(s) not in corpus "
                    f"{self.name!r}, e.g. {unknown}"
                )
            pos_clipped = pos_clipped[found]
        return order[pos_clipped]

    def texts(self, doc_ids: Sequence[str]) -> list[str]:
        """Texts (title + text) of ``doc_ids``, in the given order.

        Raises:
            InputError: an id that is not in the corpus.
        """
        titles, bodies = self.fields(doc_ids)
        return [join_title(t, x) for t, x in zip(titles, bodies, strict=True)]

    def fields(self, doc_ids: Sequence[str]) -> tuple[list[str], list[str]]:
        """Titles and texts (bodies) of ``doc_ids``, kept apart, in the given order.

        Raises:
            InputError: an id that is not in the corpus.
        """
        rows = self.rows_of(doc_ids)
        picked = self._table.take(pa.array(rows, type=pa.int64()))
        return picked.column("title").to_pylist(), picked.column("text").to_pylist()

    def text(self, doc_id: str) -> str:
        """The text of one document."""
        return self.texts([doc_id])[0]

    def iter_batches(self, batch_size: int = 1024) -> Iterator[tuple[list[str], list[str]]]:
        """Yield ``(doc_ids, texts)`` batches in file order, streaming from the map."""
        for batch in self._table.to_batches(max_chunksize=batch_size):
            titles = batch.column("title").to_pylist()
            texts = batch.column("text").to_pylist()
            yield (
                batch.column("doc_id").to_pylist(),
                [join_title(t, x) for t, x in zip(titles, texts, strict=True)],
            )

    def fingerprint(self) -> str:
        """Identity of the corpus content for manifests (cache file name, which hashes source)."""
        return self.path.stem


def _batch(ids: list[str], titles: list[str], texts: list[str]) -> pa.RecordBatch:
    return pa.record_batch(
        [pa.array(ids, pa.string()), pa.array(titles, pa.string()), pa.array(texts, pa.string())],
        schema=SCHEMA,
    )


def corpus_cache_file(source: Path, kind: str) -> Path:
    """Cache path of the Arrow copy of ``source``: keyed by its path, size and mtime."""
    stat = source.stat()
    key = fingerprint([str(source.resolve()), stat.st_size, stat.st_mtime_ns, kind, SCHEMA_VERSION])
    return cache_root() / "corpora" / f"{source.stem}-{key}.arrow"


def content_id(source: Path) -> str:
    """``<stem>-<first 16 hex of the file's SHA-256>``: the file's identity by content.

    Unlike :func:`corpus_cache_file`'s key (path, size, mtime), it survives a copy, a re-mount or
    a touched mtime, so pipeline stages keyed by it stay done. The hash is computed once per
    (path, size, mtime) and remembered under the cache root.
    """
    stat = source.stat()
    key = fingerprint([str(source.resolve()), stat.st_size, stat.st_mtime_ns])
    memo = cache_root() / "content-ids" / f"{source.stem}-{key}.txt"
    if memo.is_file():
        return memo.read_text(encoding="utf-8").strip()
    identity = f"{source.stem}-{sha256_file(source)[:16]}"
    memo.parent.mkdir(parents=True, exist_ok=True)
    tmp = memo.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(identity, encoding="utf-8")
    os.replace(tmp, memo)
    return identity


SCHEMA_VERSION = 1
