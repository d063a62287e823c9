"""BM25 candidates with bm25s (Lù 2024), English stemming and stop words, index saved and reused.

The index of a corpus is built once per (corpus, settings) and kept under
``$RKD_CACHE_DIR/bm25/``; a later call with the same corpus and settings loads it instead.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from retrieval_kd.data.corpus import Corpus, cache_root
from retrieval_kd.data.types import Queries, Run
from retrieval_kd.errors import InputError
from retrieval_kd.manifest import fingerprint, measure, read_manifest, write_manifest
from retrieval_kd.progress import is_quiet, progress


@dataclass(frozen=True)
class BM25Settings:
    """BM25 parameters. Defaults are bm25s' own: k1 = 1.5, b = 0.75, Lucene's BM25 variant,
    Snowball English stemming (PyStemmer) and English stop words."""

    k1: float = 1.5
    b: float = 0.75
    method: str = "lucene"
    stemmer: str = "english"
    stopwords: str = "en"


def _tokenizer(settings: BM25Settings):
    import bm25s.tokenization
    import Stemmer

    stemmer = Stemmer.Stemmer(settings.stemmer).stemWord if settings.stemmer else None
    return bm25s.tokenization.Tokenizer(stemmer=stemmer, stopwords=settings.stopwords)


class BM25Index:
    """A bm25s index over a ``Corpus`` with its tokenizer and doc-id map.

    Use ``BM25Index.open(corpus)`` to build-or-load, then ``search(queries, k)``.
    """

    def __init__(self, folder: Path, retriever, tokenizer, doc_ids: np.ndarray):
        self.folder = folder
        self.retriever = retriever
        self.tokenizer = tokenizer
        self.doc_ids = doc_ids
        self._sorted: np.ndarray | None = None  # doc ids sorted, for score_documents
        self._order: np.ndarray | None = None

    @classmethod
    def open(
        cls, corpus: Corpus, settings: BM25Settings | None = None, folder: Path | None = None
    ) -> BM25Index:
        """Load the saved index for this corpus and settings, building it first if needed."""
        settings = settings or BM25Settings()
        key = fingerprint({"corpus": corpus.fingerprint(), **asdict(settings)})
        folder = folder or cache_root() / "bm25" / f"{corpus.name.replace('/', '_')}-{key}"
        if not (folder / "manifest.json").is_file():
            cls._build(corpus, settings, folder)
        return cls._load(folder, settings)

    @staticmethod
    def _build(corpus: Corpus, settings: BM25Settings, folder: Path) -> None:
        import bm25s

        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
        try:
            with measure() as cost:
                tokenizer = _tokenizer(settings)
                doc_ids: list[str] = []
                token_ids: list[list[int]] = []
                for ids, texts in progress(
                    corpus.iter_batches(4096),
                    desc="BM25 tokenising",
                    total=-(-len(corpus) // 4096),
                    unit="batch",
                ):
                    doc_ids.extend(ids)
                    token_ids.extend(
                        tokenizer.tokenize(texts, update_vocab=True, show_progress=False)
                    )
                retriever = bm25s.BM25(k1=settings.k1, b=settings.b, method=settings.method)
                vocab = tokenizer.get_vocab_dict()
                retriever.index(
                    bm25s.tokenization.Tokenized(ids=token_ids, vocab=vocab),
                    show_progress=not is_quiet(),
                )
                retriever.save(tmp, show_progress=False)
                tokenizer.save_vocab(tmp)
                tokenizer.save_stopwords(tmp)
                np.save(tmp / "doc_ids.npy", np.array(doc_ids, dtype=np.str_))
            write_manifest(
                tmp,
                {
                    "stage": "bm25-index",
                    "corpus": corpus.fingerprint(),
                    "corpus_name": corpus.name,
                    "documents": len(doc_ids),
                    "vocabulary": len(vocab),
                    "settings": asdict(settings),
                    "cost": cost,
                },
            )
            if folder.exists():
                shutil.rmtree(folder)
            os.replace(tmp, folder)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    @classmethod
    def _load(cls, folder: Path, settings: BM25Settings) -> BM25Index:
        import bm25s

        read_manifest(folder)
        retriever = bm25s.BM25.load(folder, mmap=True, show_progress=False)
        tokenizer = _tokenizer(settings)
        tokenizer.load_vocab(folder)
        tokenizer.load_stopwords(folder)
        doc_ids = np.load(folder / "doc_ids.npy")
        return cls(folder, retriever, tokenizer, doc_ids)

    def search(self, queries: Queries, k: int = 100) -> Run:
        """Top-``k`` BM25 documents for each query.

        Queries whose every term is unknown to the corpus get an empty ranking.

        Shapes:
            queries: Q texts -> a run of Q queries with at most k documents each.
        """
        if k < 1:
            raise InputError(f"k must be >= 1, got {k}")
        k = min(k, len(self.doc_ids))
        query_ids = list(queries)
        tokens = self.tokenizer.tokenize(
            [queries[q] for q in query_ids], update_vocab=False, show_progress=False
        )
        run: Run = {}
        batch = 256
        for start in progress(
            range(0, len(query_ids), batch),
            desc="BM25 search",
            total=-(-len(query_ids) // batch),
            unit="batch",
        ):
            chunk = tokens[start : start + batch]
            rows, scores = self.retriever.retrieve(chunk, k=k, show_progress=False, n_threads=0)
            for offset, query_id in enumerate(query_ids[start : start + batch]):
                keep = scores[offset] > 0
                run[query_id] = {
                    str(self.doc_ids[row]): float(score)
                    for row, score in zip(rows[offset][keep], scores[offset][keep], strict=True)
                }
        return run

    def score_documents(self, query: str, doc_ids: list[str]) -> np.ndarray:
        """Exact BM25 scores of one query against any documents of the index (not only its
        top k): the scores ``search`` would give them, 0 for documents sharing no term.

        Shapes:
            doc_ids: K ids -> float32 [K].

        Raises:
            InputError: a doc id that is not in the index.
        """
        rows = self._rows(doc_ids)
        tokens = self.tokenizer.tokenize([query], update_vocab=False, show_progress=False)[0]
        if len(tokens) == 0:
            return np.zeros(len(doc_ids), dtype=np.float32)
        return np.asarray(self.retriever.get_scores_from_ids(tokens)[rows], dtype=np.float32)

    def _rows(self, doc_ids: list[str]) -> np.ndarray:
        if self._sorted is None:
            self._order = np.argsort(self.doc_ids, kind="stable")
            self._sorted = self.doc_ids[self._order]
        wanted = np.asarray(doc_ids, dtype=self._sorted.dtype)
        pos = np.minimum(np.searchsorted(self._sorted, wanted), len(self._sorted) - 1)
        found = self._sorted[pos] == wanted
        if not found.all():
            unknown = [doc_ids[i] for i in np.flatnonzero(~found)[:5]]
            raise InputError(f"{int((~found).sum())} doc id(s) not in the BM25 index: {unknown}")
        return self._order[pos]


def bm25_candidates(
    corpus: Corpus, queries: Queries, k: int = 100, settings: BM25Settings | None = None
) -> tuple[Run, dict]:
    """BM25 top-``k`` for ``queries``; returns the run and a cost record for the manifest."""
    start = time.perf_counter()
    index = BM25Index.open(corpus, settings)
    loaded = time.perf_counter()
    run = index.search(queries, k)
    done = time.perf_counter()
    return run, {
        "index": str(index.folder),
        "index_open_s": round(loaded - start, 3),
        "search_s": round(done - loaded, 3),
        "queries_per_s": round(len(queries) / max(done - loaded, 1e-9), 1),
    }
