"""Late-interaction (ColBERT) retrieval: ANN candidates from token vectors, exact MaxSim after.

ColBERT (Khattab & Zaharia 2020, "ColBERT: Efficient and Effective Passage Search via
Contextualized Late Interaction over BERT", SIGIR, section 3.6) retrieves end to end in two
stages, a scheme ColBERTv2 and PLAID keep with compressed vectors (Santhanam et al. 2022,
"ColBERTv2: Effective and Efficient Retrieval via Lightweight Late Interaction", NAACL; "PLAID:
An Efficient Engine for Late Interaction Retrieval", CIKM):

1. **Candidate generation.** Every query token vector searches a FAISS index (IVF-PQ by
   default) over *all* document token vectors for its ``candidates_per_token`` nearest tokens,
   visiting ``nprobe`` lists; the documents owning those tokens are the candidates.
2. **Exact re-scoring.** The candidates' token matrices are read back (float16, memory-mapped)
   and scored with exact MaxSim ``s(q, d) = sum_i max_j <q_i, d_j>``; the top ``k`` are kept.

:meth:`LateInteractionIndex.exhaustive_search` scores every document with exact MaxSim, the
ground truth that :mod:`~retrieval_kd.index.late_report` measures stage 1's recall against.

Folder layout, written by :mod:`~retrieval_kd.index.late_build` (the manifest, written last,
lists each file's size and SHA-256; loading checks them before anything reads the files):

- ``tokens.f16``: raw float16 ``[total_tokens, D]``, C order, memory-mapped when searching;
- ``offsets.npy``: int64 ``[n_docs + 1]``; doc ``i`` owns token rows ``offsets[i]:offsets[i+1]``
  (every doc has at least one token);
- ``ids.json``: the doc ids, in offset order;
- ``token_index.faiss``: the FAISS index over every token row (label = row number);
- ``manifest.json``: student hash, dim, doc and token counts, factory string, nlist, search
  defaults, build timings, size on disk.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from retrieval_kd.errors import InputError, RKDError
from retrieval_kd.index.storage import _check_expected, _checked_file, read_faiss
from retrieval_kd.manifest import read_manifest
from retrieval_kd.ranking import order, tie_ranks

KIND = "late_interaction_index"
TOKENS_FILE, OFFSETS_FILE, IDS_FILE, INDEX_FILE = (
    "tokens.f16",
    "offsets.npy",
    "ids.json",
    "token_index.faiss",
)
FILE_ROLES = ("tokens", "offsets", "ids", "token_index")  # manifest["files"] keys, in that order
DEFAULT_CANDIDATES_PER_TOKEN = 64
BLOCK_TOKENS = 1 << 16  # token rows per read / add block
MAX_SCORE_CELLS = 1 << 24  # cells of one [doc tokens, query tokens] similarity block (64 MB)
SEARCH_BATCH_TOKENS = 4096  # query tokens per FAISS search call


def token_matrix(matrix: Any, dim: int | None = None, what: str = "token matrix") -> np.ndarray:
    """One text's token vectors as a checked float32 ``[n, D]`` matrix (numpy or torch)."""
    if hasattr(matrix, "detach"):
        matrix = matrix.detach().float().cpu().numpy()
    array = np.ascontiguousarray(np.asarray(matrix, dtype=np.float32))
    if array.ndim != 2 or len(array) == 0 or (dim is not None and array.shape[1] != dim):
        want = f"[n >= 1, {dim or 'D'}]"
        raise RKDError(f"{what} must be a {want} matrix, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise RKDError(f"{what} holds NaN or infinite values")
    return array


def maxsim(
    doc_tokens: np.ndarray, doc_starts: np.ndarray, query_tokens: np.ndarray, query_starts: Any
) -> np.ndarray:
    """Exact MaxSim of several queries against several documents, all tokens concatenated.

    ``scores[d, q] = sum_{i in q} max_{j in d} <q_i, d_j>`` (Khattab & Zaharia 2020, eq. 3),
    with ``np.maximum.reduceat`` over document segments and ``np.add.reduceat`` over queries.

    Shapes:
        doc_tokens: [T, D]; doc_starts: [N] first row of each (non-empty) doc, ascending from 0;
        query_tokens: [S, D]; query_starts: [Q] likewise -> returns [N, Q] float32.
    """
    similarity = doc_tokens @ query_tokens.T  # [T, S]
    best = np.maximum.reduceat(similarity, doc_starts, axis=0)  # [N, S]
    return np.add.reduceat(best, np.asarray(query_starts), axis=1)


def _stack(queries: Sequence[Any], dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Query token matrices -> (all tokens [S, D], start row of each query [Q + 1])."""
    mats = [token_matrix(q, dim, f"query {n} token matrix") for n, q in enumerate(queries)]
    starts = np.cumsum([0] + [len(m) for m in mats])
    return np.concatenate(mats) if mats else np.empty((0, dim), np.float32), starts


def _top_k(
    scores: np.ndarray, positions: np.ndarray, k: int, ties: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best by the project's rule (:mod:`retrieval_kd.ranking`: score desc, then doc
    id desc), ``ties`` being every position's :func:`~retrieval_kd.ranking.tie_ranks`.

    Shapes: [n], [n] -> [<= k], [<= k].
    """
    if len(scores) > k:
        keep = np.argpartition(-scores, k - 1)[:k]
        cut = scores[keep].min()  # every tie at the cut stays in: the rule picks among them
        keep = np.concatenate([np.flatnonzero(scores > cut), np.flatnonzero(scores == cut)])
        scores, positions = scores[keep], positions[keep]
    picked = order(scores, ties=ties[positions])[:k]
    return scores[picked], positions[picked]


class LateInteractionIndex:
    """A saved late-interaction index: memory-mapped token matrices + a FAISS token index.

    Open one with :meth:`load` (``late_build.build_late_interaction_index`` makes them).

    Attributes:
        ids: doc ids in offset order; offsets: int64 [N + 1]; tokens: float16 memmap [T, D];
        token_index: the FAISS index over the T token rows; manifest: the manifest fields.
        nprobe, candidates_per_token: search defaults (saved with the index).
    """

    def __init__(
        self,
        manifest: dict[str, Any],
        ids: list[str],
        offsets: np.ndarray,
        tokens: np.ndarray,
        token_index: faiss.Index,
    ) -> None:
        self.manifest, self.ids, self.offsets = manifest, ids, offsets
        self.tokens, self.token_index = tokens, token_index
        self.dim, self.student_hash = int(manifest["dim"]), manifest.get("student_hash")
        defaults = manifest.get("search_defaults") or {}
        self.nprobe: int | None = defaults.get("nprobe")
        self.candidates_per_token = int(
            defaults.get("candidates_per_token") or DEFAULT_CANDIDATES_PER_TOKEN
        )
        self._ivf = faiss.try_extract_index_ivf(token_index)
        self._ties: np.ndarray | None = None

    @property
    def ties(self) -> np.ndarray:
        """Each document position's place in doc id descending order (ties of the top k)."""
        if self._ties is None:
            self._ties = tie_ranks(self.ids)
        return self._ties

    @property
    def ntotal(self) -> int:
        """Number of documents."""
        return len(self.ids)

    @property
    def ntokens(self) -> int:
        """Number of token vectors."""
        return int(self.offsets[-1])

    @property
    def nlist(self) -> int | None:
        """Inverted lists of the token index (``None`` when it has none)."""
        return None if self._ivf is None else int(self._ivf.nlist)

    @property
    def size_bytes(self) -> int:
        """Bytes on disk of the folder's files (token matrices included)."""
        return int(self.manifest.get("size_on_disk_bytes", 0))

    @classmethod
    def load(
        cls,
        folder: str | Path,
        expected_student_hash: str | None = None,
        verify: bool | str = "sample",
    ) -> LateInteractionIndex:
        """Check a folder against its manifest, then open it (tokens memory-mapped).

        Args:
            folder: an index folder.
            expected_student_hash: refuse the index unless built from this checkpoint.
            verify: ``"sample"`` (default), ``"full"`` / True or ``"size"`` / False, as for
                dense indexes (``retrieval_kd.index.storage``); shapes are always checked.

        Raises:
            InputError: no manifest, another kind, a missing, truncated or corrupted file.
            IndexMismatchError: built from another student checkpoint.
        """
        folder = Path(folder)
        manifest = read_manifest(folder)
        if manifest.get("kind") != KIND:
            kind = manifest.get("kind")
            raise InputError(f"not a late-interaction index (kind={kind!r})", folder)
        _check_expected(manifest, expected_student_hash, None, folder)
        try:
            files = manifest["files"]
            paths = [_checked_file(folder, files[r], verify) for r in FILE_ROLES]
            dim, count, ntokens = int(manifest["dim"]), manifest["count"], manifest["tokens"]
        except (KeyError, TypeError) as err:
            raise InputError(f"manifest.json lacks or mangles field {err}", folder) from None
        tokens_path, offsets_path, ids_path, index_path = paths
        if tokens_path.stat().st_size != ntokens * dim * 2:
            what = f"{tokens_path.stat().st_size} bytes, not {ntokens} x {dim} float16"
            raise InputError(f"holds {what}: truncated or replaced", tokens_path)
        offsets = np.load(offsets_path).astype(np.int64)
        ids = json.loads(ids_path.read_text(encoding="utf-8"))
        if offsets.shape != (count + 1,) or len(ids) != count or offsets[0] != 0:
            raise InputError(f"offsets / ids do not describe {count} docs", offsets_path)
        if offsets[-1] != ntokens or (np.diff(offsets) < 1).any():
            raise InputError(f"offsets do not split {ntokens} tokens into docs", offsets_path)
        index, _ = read_faiss(index_path)  # memory-mapped where FAISS can
        if (index.d, index.ntotal) != (dim, ntokens):
            found = f"{index.ntotal} {index.d}-d vectors"
            raise InputError(f"holds {found}, manifest says {ntokens} {dim}-d", index_path)
        tokens = np.memmap(tokens_path, dtype=np.float16, mode="r", shape=(ntokens, dim))
        return cls(manifest, ids, offsets, tokens, index)

    # ------------------------------------------------------------------ searching
    def doc_tokens(self, docs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The token matrices of ``docs`` read from the memmap, concatenated, as float32.

        Shapes:
            docs: [C] ascending doc positions -> (tokens [sum n_d, D], first row of each [C]).
        """
        starts, lengths = self.offsets[docs], self.offsets[docs + 1] - self.offsets[docs]
        first = np.cumsum(lengths) - lengths
        rows = np.arange(lengths.sum()) + np.repeat(starts - first, lengths)
        return np.asarray(self.tokens[rows], np.float32), first

    def candidates(
        self,
        query_tokens: np.ndarray,
        starts: np.ndarray,
        nprobe: int | None = None,
        candidates_per_token: int | None = None,
        rescore_depth: int | None = None,
    ) -> list[np.ndarray]:
        """Stage 1: for each query, the docs owning one of its tokens' nearest token rows.

        With ``rescore_depth``, only that many are kept: the best by an approximate MaxSim
        from the token hits alone, a token's score for a doc it did not reach imputed as its
        weakest hit (Lee et al. 2023, "Rethinking the Role of Token Retrieval in Multi-Vector
        Retrieval", NeurIPS; PLAID prunes candidates before exact scoring in the same spirit).

        Shapes:
            query_tokens: [S, D]; starts: [Q + 1] -> Q arrays of ascending doc positions.
        """
        wanted = min(candidates_per_token or self.candidates_per_token, self.ntokens)
        if self._ivf is not None:
            nlist = self._ivf.nlist
            self._ivf.nprobe = max(1, min(nlist, nprobe or self.nprobe or nlist))
        labels = np.empty((len(query_tokens), wanted), np.int64)
        sims = np.empty((len(query_tokens), wanted), np.float32)
        for lo in range(0, len(query_tokens), SEARCH_BATCH_TOKENS):
            block = query_tokens[lo : lo + SEARCH_BATCH_TOKENS]
            sims[lo : lo + len(block)], labels[lo : lo + len(block)] = self.token_index.search(
                block, wanted
            )
        out = []
        for q in range(len(starts) - 1):
            hits, hit_sims = labels[starts[q] : starts[q + 1]], sims[starts[q] : starts[q + 1]]
            found = hits >= 0
            owners = np.searchsorted(self.offsets, hits[found], side="right") - 1
            docs, column = np.unique(owners, return_inverse=True)
            if rescore_depth is not None and len(docs) > rescore_depth:
                weakest = np.where(found, hit_sims, np.inf).min(axis=1)
                approx = np.repeat(np.where(np.isinf(weakest), 0, weakest)[:, None], len(docs), 1)
                np.maximum.at(approx, (np.nonzero(found)[0], column), hit_sims[found])
                _, docs = _top_k(approx.sum(axis=0), docs, rescore_depth, self.ties)
                docs = np.sort(docs)
            out.append(docs)
        return out

    def search_positions(
        self,
        queries: Sequence[Any],
        k: int = 10,
        *,
        nprobe: int | None = None,
        candidates_per_token: int | None = None,
        rescore_depth: int | None = None,
    ) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
        """Both stages; per query the top-k (scores, doc positions), and candidates re-scored.

        Shapes:
            queries: Q matrices [n_q, D] -> Q score arrays [<= k], Q position arrays [<= k],
            candidate counts [Q].
        """
        _check_k(k)
        all_tokens, starts = _stack(queries, self.dim)
        found = self.candidates(all_tokens, starts, nprobe, candidates_per_token, rescore_depth)
        scores_out, docs_out = [], []
        for q, docs in enumerate(found):
            query = all_tokens[starts[q] : starts[q + 1]]
            tokens, first = self.doc_tokens(docs)
            scores = maxsim(tokens, first, query, [0])[:, 0]
            top_scores, top_docs = _top_k(scores, docs, k, self.ties)
            scores_out.append(top_scores)
            docs_out.append(top_docs)
        return scores_out, docs_out, np.array([len(d) for d in found], np.int64)

    def search(
        self,
        queries: Sequence[Any],
        k: int = 10,
        *,
        nprobe: int | None = None,
        candidates_per_token: int | None = None,
        rescore_depth: int | None = None,
    ) -> tuple[np.ndarray, list[list[str]]]:
        """ANN candidates re-scored with exact MaxSim: the ``k`` best docs of each query.

        Args:
            queries: one token matrix per query (numpy arrays or torch tensors).
            k: results per query.
            nprobe: IVF lists each query token visits (default: the index's).
            candidates_per_token: token hits per query token (default: the index's).
            rescore_depth: re-score at most this many candidates per query, the best by the
                approximate score of :meth:`candidates` (default: every candidate).

        Returns:
            ``(scores, ids)``, best first; a query with fewer than ``k`` candidates has a
            shorter ``ids`` row and ``-inf`` scores after it.

        Shapes:
            queries: Q matrices [n_q, D] -> scores [Q, k] float32, ids: Q lists of <= k.
        """
        scores, docs, _ = self.search_positions(
            queries,
            k,
            nprobe=nprobe,
            candidates_per_token=candidates_per_token,
            rescore_depth=rescore_depth,
        )
        return self._as_ids(scores, docs, k)

    def exhaustive_search(
        self, queries: Sequence[Any], k: int = 10, block_tokens: int = BLOCK_TOKENS
    ) -> tuple[np.ndarray, list[list[str]]]:
        """Exact MaxSim of every query against every doc, the memmap read block by block.

        Memory is bounded by a block of ``block_tokens`` rows times a group of query tokens
        (``MAX_SCORE_CELLS`` similarities), whatever the corpus size.

        Shapes:
            queries: Q matrices [n_q, D] -> scores [Q, k] float32, ids: Q lists of <= k.
        """
        _check_k(k)
        all_tokens, starts = _stack(queries, self.dim)
        best = [(np.empty(0, np.float32), np.empty(0, np.int64)) for _ in range(len(starts) - 1)]
        width, groups, a = max(1, MAX_SCORE_CELLS // block_tokens), [], 0
        for q in range(1, len(best) + 1):  # query groups of <= width tokens (or one query)
            if q == len(best) or starts[q + 1] - starts[a] > width:
                groups.append((a, q))
                a = q
        first_doc = 0
        while first_doc < self.ntotal:
            end = int(
                np.searchsorted(self.offsets, self.offsets[first_doc] + block_tokens, "right")
            )
            last_doc = min(self.ntotal, max(first_doc + 1, end - 1))
            lo, hi = self.offsets[first_doc], self.offsets[last_doc]
            block = np.asarray(self.tokens[lo:hi], np.float32)
            doc_starts, positions = (
                self.offsets[first_doc:last_doc] - lo,
                np.arange(first_doc, last_doc),
            )
            for a, b in groups:
                scores = maxsim(
                    block, doc_starts, all_tokens[starts[a] : starts[b]], starts[a:b] - starts[a]
                )
                for j, q in enumerate(range(a, b)):
                    merged = (
                        np.concatenate([best[q][0], scores[:, j]]),
                        np.concatenate([best[q][1], positions]),
                    )
                    best[q] = _top_k(*merged, k, self.ties)
            first_doc = last_doc
        return self._as_ids([s for s, _ in best], [d for _, d in best], k)

    def _as_ids(
        self, scores: list[np.ndarray], docs: list[np.ndarray], k: int
    ) -> tuple[np.ndarray, list[list[str]]]:
        table = np.full((len(scores), k), -np.inf, np.float32)
        for row, values in zip(table, scores, strict=True):
            row[: len(values)] = values
        return table, [[self.ids[p] for p in positions] for positions in docs]


def _check_k(k: int) -> None:
    if k < 1:
        raise RKDError(f"k must be >= 1, got {k}")
