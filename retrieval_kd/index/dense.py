"""``DenseIndex``: a FAISS index over string doc ids, saved as a folder with a manifest.

FAISS numbers vectors 0..n-1; the index keeps the string doc id of each position. A saved index
is a folder holding ``index.faiss`` (the FAISS index), ``ids.txt`` (one doc id a line, in
position order) and ``manifest.json`` (index type, factory string, metric, dimension, vector
count, student checkpoint hash, build timings, file sizes and SHA-256s). Loading checks the
files against the manifest before FAISS reads them, so a truncated or corrupted file is a clear
``InputError`` rather than a FAISS crash, and refuses an index built for another student or
dimension with an ``IndexMismatchError``.

Scores are always "higher is better": inner product for ``ip`` and ``cosine``, the negated
squared distance for ``l2``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from retrieval_kd.errors import InputError, RKDError
from retrieval_kd.index import gpu
from retrieval_kd.index.factory import (
    DEFAULT_HNSW_M,
    IndexPlan,
    canonical_metric,
    create_index,
    plan_index,
)
from retrieval_kd.index.storage import read_index_folder, write_index_folder
from retrieval_kd.index.vectors import as_matrix, normalised


class DenseIndex:
    """Dense vectors under string doc ids, searched with FAISS.

    Example:
        >>> index = DenseIndex(dim=4, index_type="flat")
        >>> index.add(["a", "b"], np.eye(2, 4, dtype=np.float32))
        >>> scores, ids = index.search(np.eye(1, 4, dtype=np.float32), k=2)
        >>> ids
        [['a', 'b']]

    Args:
        dim: vector dimension D.
        index_type: a name of ``factory.INDEX_TYPES`` or a FAISS factory string.
        metric: ``ip`` (default), ``cosine`` or ``l2``.
        nlist, pq_m, pq_nbits, hnsw_m, train_size: override the sizing rules of ``factory``.
        student_hash: hash of the student checkpoint whose vectors this index holds.
        use_gpu: ``None`` = GPU when FAISS has one, ``True`` = require one, ``False`` = CPU.
        seed: seed of the training sample drawn when more vectors than ``train_size`` are given.
    """

    def __init__(
        self,
        dim: int,
        index_type: str = "flat",
        metric: str = "ip",
        *,
        nlist: int | None = None,
        pq_m: int | None = None,
        pq_nbits: int | None = None,
        hnsw_m: int = DEFAULT_HNSW_M,
        train_size: int | None = None,
        student_hash: str | None = None,
        use_gpu: bool | None = None,
        seed: int = 0,
    ) -> None:
        self.dim = int(dim)
        self.index_type = index_type
        self.metric = canonical_metric(metric)
        self.student_hash = student_hash
        self.seed = seed
        self.build_info: dict[str, Any] = {"train_s": 0.0, "add_s": 0.0}
        self.plan: IndexPlan | None = None
        self.nprobe: int | None = None
        self.ef_search: int | None = None
        self._options = {"nlist": nlist, "pq_m": pq_m, "pq_nbits": pq_nbits, "hnsw_m": hnsw_m}
        self._options["train_size"] = train_size
        self._use_gpu = gpu.want_gpu(use_gpu)
        self._on_gpu = False
        self.memory_mapped = False  # loaded with IO_FLAG_MMAP_IFC: read-only
        self._index: faiss.Index | None = None
        self._ids: list[str] = []
        self._id_set: set[str] | None = set()
        self._id_array: np.ndarray | None = None
        self._applied: dict[str, int] = {}
        self._saved_bytes: int | None = None

    # ------------------------------------------------------------------ properties
    @property
    def ntotal(self) -> int:
        """Number of indexed vectors."""
        return 0 if self._index is None else int(self._index.ntotal)

    @property
    def factory(self) -> str | None:
        """The FAISS factory string, once the index exists (after ``train`` or ``add``)."""
        return None if self.plan is None else self.plan.factory

    @property
    def ids(self) -> list[str]:
        """Doc ids in position order (do not mutate)."""
        return self._ids

    @property
    def faiss_index(self) -> faiss.Index | None:
        """The underlying FAISS index (on the GPU when ``on_gpu``), ``None`` before training."""
        return self._index

    @property
    def on_gpu(self) -> bool:
        """Whether the FAISS index lives on GPUs."""
        return self._on_gpu

    def __len__(self) -> int:
        return self.ntotal

    # ------------------------------------------------------------------ building
    def _prepare(self, vectors: Any, what: str) -> np.ndarray:
        array = as_matrix(vectors, self.dim, what)
        return normalised(array) if self.metric == "cosine" else array

    def train(self, vectors: Any, n_total: int | None = None) -> None:
        """Create the FAISS index and train it on ``vectors`` (a sample of the corpus).

        Args:
            vectors: training vectors; at most ``plan.train_size`` of them are used (a seeded
                random subset when more are given).
            n_total: size of the whole corpus, which sizes ``nlist`` and the sample; defaults to
                ``len(vectors)``.

        Shapes:
            vectors: [n, D].
        """
        if self._index is not None:
            raise RKDError("the index is already trained; make a new DenseIndex to retrain")
        array = self._prepare(vectors, "training vectors")
        n = int(n_total) if n_total is not None else len(array)
        self.plan = plan_index(self.index_type, self.dim, n, self.metric, **self._options)
        index = create_index(self.plan)
        if self._use_gpu:
            index, self._on_gpu = gpu.to_gpu(index)
        start, used = time.perf_counter(), 0
        if not index.is_trained:
            if len(array) > self.plan.train_size > 0:
                rng = np.random.default_rng(self.seed)
                pick = np.sort(rng.choice(len(array), self.plan.train_size, replace=False))
                array = array[pick]
            try:
                index.train(array)
            except RuntimeError as err:
                reason = str(err).strip().splitlines()[-1]
                raise RKDError(
                    f"training {self.plan.factory} on {len(array)} vectors failed: {reason}"
                ) from None
            used = len(array)
        self.build_info["train_s"] = round(time.perf_counter() - start, 3)
        self.build_info["train_vectors"] = used
        self._index = index
        self.nprobe, self.ef_search = self.plan.nprobe, self.plan.ef_search

    def add(self, ids: Sequence[str], vectors: Any) -> None:
        """Append vectors under string doc ids; trains on them first if not trained yet.

        Raises:
            RKDError: ids and vectors differ in count, an id is empty, has a line break or
                is already in the index, or the index was loaded memory-mapped.
            IndexMismatchError: the vectors' dimension is not the index's.

        Shapes:
            ids: n strings; vectors: [n, D].
        """
        if self.memory_mapped:  # FAISS aborts the process on a write to mapped storage
            raise RKDError(
                "this index was loaded memory-mapped (read-only): load it with mmap=False "
                "to add vectors"
            )
        array = self._prepare(vectors, "vectors")
        ids = list(ids)
        if len(ids) != len(array):
            raise RKDError(f"{len(ids)} ids for {len(array)} vectors")
        self._check_new_ids(ids)
        if self._index is None:
            self.train(array)
        start = time.perf_counter()
        self._index.add(array)
        self.build_info["add_s"] = round(self.build_info["add_s"] + time.perf_counter() - start, 3)
        self._ids.extend(ids)
        self._id_set.update(ids)
        self._id_array = None
        self._saved_bytes = None

    def _check_new_ids(self, ids: list[str]) -> None:
        if self._id_set is None:  # loaded from disk: build the set on the first add
            self._id_set = set(self._ids)
        for doc_id in ids:
            if not isinstance(doc_id, str) or not doc_id or "\n" in doc_id or "\r" in doc_id:
                raise RKDError(f"doc ids must be non-empty one-line strings, got {doc_id!r}")
        fresh = set(ids)
        if len(fresh) != len(ids) or not fresh.isdisjoint(self._id_set):
            dup = next(i for n, i in enumerate(ids) if i in self._id_set or i in ids[:n])
            raise RKDError(f"doc id {dup!r} is added twice")

    # ------------------------------------------------------------------ searching
    def set_search_defaults(self, nprobe: int | None = None, ef_search: int | None = None) -> None:
        """Change the ``nprobe`` / ``efSearch`` used when a search names none (saved too).

        Raises:
            RKDError: the parameter does not apply to this index type.
        """
        if self._index is None:
            raise RKDError("train or fill the index before setting its search parameters")
        if nprobe is not None:
            self._apply("nprobe", nprobe)
            self.nprobe = nprobe
        if ef_search is not None:
            self._apply("efSearch", ef_search)
            self.ef_search = ef_search

    def _apply(self, name: str, value: int | None) -> None:
        if value is None or self._applied.get(name) == value:
            return
        if name == "nprobe" and self.plan is not None and self.plan.nlist:
            value = min(value, self.plan.nlist)
        try:
            gpu.parameter_space(self._on_gpu).set_index_parameter(self._index, name, value)
        except RuntimeError:
            raise RKDError(f"{name} does not apply to index {self.factory!r}") from None
        self._applied[name] = value

    def search(
        self,
        queries: Any,
        k: int = 10,
        nprobe: int | None = None,
        ef_search: int | None = None,
    ) -> tuple[np.ndarray, list[list[str]]]:
        """The ``k`` best doc ids of each query, best first.

        Args:
            queries: query vectors.
            k: results per query.
            nprobe: IVF lists to visit (default: ``self.nprobe``).
            ef_search: HNSW search breadth (default: ``self.ef_search``).

        Returns:
            ``(scores, ids)``. A query with fewer than ``k`` hits (``k`` > vectors, or an ANN
            index that found fewer) has a shorter ``ids`` row and ``-inf`` scores after it.

        Shapes:
            queries: [Q, D] -> scores: [Q, k] float32; ids: Q lists of <= k strings.
        """
        if self.ntotal == 0:
            raise RKDError("the index is empty: add vectors before searching")
        if k < 1:
            raise RKDError(f"k must be >= 1, got {k}")
        array = self._prepare(queries, "queries")
        self._apply("nprobe", nprobe if nprobe is not None else self.nprobe)
        self._apply("efSearch", ef_search if ef_search is not None else self.ef_search)
        distances, positions = self._index.search(array, k)
        scores = -distances if self.metric == "l2" else distances
        missing = positions < 0
        scores[missing] = -np.inf
        if self._id_array is None:
            self._id_array = np.asarray(self._ids, dtype=object)
        hits = self._id_array[np.where(missing, 0, positions)]
        counts = (~missing).sum(axis=1)
        return scores, [row[:c].tolist() for row, c in zip(hits, counts, strict=True)]

    # ------------------------------------------------------------------ saving / loading
    def size_bytes(self) -> int:
        """Size of the FAISS index file (serialised now when it was not saved or loaded)."""
        if self._saved_bytes is None:
            cpu = gpu.to_cpu(self._index, self._on_gpu)
            self._saved_bytes = int(faiss.serialize_index(cpu).nbytes)
        return self._saved_bytes

    def save(self, folder: str | Path, extra: dict[str, Any] | None = None) -> Path:
        """Write the index, its id map and ``manifest.json`` (last) into ``folder``.

        Args:
            folder: target folder (created; an index already there is replaced).
            extra: more manifest fields (e.g. the inputs the caller fingerprinted).

        Returns:
            The folder.
        """
        if self._index is None:
            raise RKDError("nothing to save: the index was never trained or filled")
        fields = {
            "index_type": self.index_type,
            "factory": self.factory,
            "metric": self.metric,
            "student_hash": self.student_hash,
            "plan": self.plan.to_dict(),
            "search_defaults": {"nprobe": self.nprobe, "ef_search": self.ef_search},
            "build": dict(self.build_info),
            **(extra or {}),
        }
        cpu = gpu.to_cpu(self._index, self._on_gpu)
        manifest = write_index_folder(folder, cpu, self._ids, fields)
        self._saved_bytes = manifest["files"]["index"]["bytes"]
        return Path(folder)

    @classmethod
    def load(
        cls,
        folder: str | Path,
        expected_student_hash: str | None = None,
        expected_dim: int | None = None,
        *,
        use_gpu: bool | None = None,
        verify: bool | str = "sample",
        mmap: bool = True,
    ) -> DenseIndex:
        """Load a saved index after checking it against its manifest.

        Args:
            folder: a folder written by :meth:`save`.
            expected_student_hash: refuse the index unless it was built from this checkpoint.
            expected_dim: refuse the index unless it holds vectors of this dimension.
            use_gpu: as in the constructor.
            verify: ``"sample"`` (default: size + a hash of 16 sampled 64 KiB blocks),
                ``"full"`` / True (the SHA-256 of every byte: seconds for a multi-GB index) or
                ``"size"`` / False (``retrieval_kd.index.storage``).
            mmap: memory-map the index where FAISS can (flat, IVF, HNSW); a mapped index is
                searched as usual but is read-only (:meth:`add` refuses; load with
                ``mmap=False`` to add to it).

        Raises:
            InputError: missing, truncated or corrupted files, or a manifest of another kind.
            IndexMismatchError: another student checkpoint or dimension than expected.
        """
        manifest, index, ids, mapped = read_index_folder(
            folder, expected_student_hash, expected_dim, verify, mmap
        )
        try:
            self = cls(
                manifest["dim"],
                manifest["index_type"],
                manifest["metric"],
                student_hash=manifest.get("student_hash"),
                use_gpu=use_gpu,
            )
            self.plan = IndexPlan(**manifest["plan"])
            defaults = manifest.get("search_defaults", {})
        except (KeyError, TypeError) as err:
            raise InputError(f"manifest.json lacks or mangles field {err}", folder) from None
        self.build_info = dict(manifest.get("build", {}))
        self._index, self._on_gpu = gpu.to_gpu(index) if self._use_gpu else (index, False)
        self._ids, self._id_set = ids, None
        self.memory_mapped = mapped and not self._on_gpu
        self._saved_bytes = manifest["files"]["index"]["bytes"]
        self.set_search_defaults(**defaults)
        return self
