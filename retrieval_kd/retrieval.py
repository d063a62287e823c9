"""Retrieval with a trained student: encode a corpus into a FAISS index, search it.

A bi-encoder student is a plain sentence-transformers folder, so encoding uses
``SentenceTransformer.encode_document`` / ``encode_query`` (the folder's own prompts, pooling
and normalisation apply). A ColBERT (multi-vector) student gets a late-interaction index
(``retrieval_kd.index.late_interaction``): token vectors in a FAISS index for candidates, exact
MaxSim over the stored token matrices. The index folder records the student's path and weights
hash; search loads the same student and refuses an index built by another one.

Example:
    >>> index = index_corpus("runs/student", load_dataset("scifact").corpus,
    ...                      "runs/index-flat")  # doctest: +SKIP
    >>> run = search_index("runs/index-flat", queries, k=100)  # doctest: +SKIP
    >>> late = index_corpus_late("runs/colbert", corpus, "runs/index-colbert")  # doctest: +SKIP
    >>> run = search_index("runs/index-colbert", queries, k=100)  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from retrieval_kd.data.corpus import Corpus
from retrieval_kd.data.types import Queries, Run
from retrieval_kd.errors import RKDError
from retrieval_kd.manifest import read_manifest

BACKENDS = ("torch", "onnx", "openvino")


class StudentEncoder:
    """A sentence-transformers student's query and passage encoders as numpy functions.

    Args:
        student: a student checkpoint folder, hub id or short name.
        batch_size: texts per forward pass.
        device: torch device (None: CUDA if available).
        passage_max_length: token limit of passages (None: the folder's own). A student
            trained on short passages may index long ones (positions up to the model's limit).
        backend: ``"torch"`` (default), or sentence-transformers' ``"onnx"`` / ``"openvino"``
            backend (exported on first load; needs ``optimum-onnx[onnxruntime]`` /
            ``optimum-intel[openvino]``, which today pin transformers < 4.58: install them in an
            environment of their own). Recorded in :attr:`settings`, so an index never mixes
            vectors of two backends.
        precision: the arithmetic of the torch backend (:func:`retrieval_kd.models.arithmetic.
            inference_dtype`): ``"auto"`` (default) runs bf16 where the device computes it
            natively (a CPU with AVX512-BF16 / AMX, a bf16 GPU), fp16 on other GPUs, fp32
            elsewhere; or ``"fp32"`` / ``"bf16"`` / ``"fp16"``. The weights are cast once and
            vectors come back as float32. Recorded in :attr:`settings` as ``dtype``.

    Raises:
        RKDError: an unknown backend, or its packages are missing.
    """

    def __init__(
        self,
        student: str | Path,
        batch_size: int = 64,
        device: str | None = None,
        passage_max_length: int | None = None,
        backend: str = "torch",
        precision: str = "auto",
    ):
        from sentence_transformers import SentenceTransformer

        from retrieval_kd.models import model_fingerprint, resolve_model
        from retrieval_kd.models.arithmetic import dtype_name, inference_dtype

        if backend not in BACKENDS:
            raise RKDError(f"backend must be one of {BACKENDS}, got {backend!r}")
        resolved = resolve_model(str(student))
        self.path = Path(resolved.path)
        self.hash = model_fingerprint(self.path)
        self.backend = backend
        try:
            self.model = SentenceTransformer(str(self.path), device=device, backend=backend)
        except Exception as err:  # sentence-transformers raises a bare Exception without optimum
            if backend == "torch":
                raise
            raise RKDError(f"backend {backend!r} could not load {self.path}: {err}") from err
        if passage_max_length is not None:
            first = self.model[0]
            if not hasattr(first, "document_length"):
                raise RKDError(f"{student}: its first module has no passage length to set")
            if first.query_length is None:  # queries keep the length they had
                first.query_length = self.model.max_seq_length
            first.document_length = passage_max_length
            self.model.max_seq_length = max(self.model.max_seq_length or 0, passage_max_length)
        if backend == "torch":
            dtype = inference_dtype(precision, self.model.device)
            self.dtype = dtype_name(dtype)
            if self.dtype != "float32":
                self.model.to(dtype)
        else:
            self.dtype = _backend_arithmetic(backend)
        self.batch_size = batch_size
        self.dim = self.model.get_embedding_dimension()

    @property
    def settings(self) -> dict[str, Any]:
        """What besides the weights decides the vectors: lengths, prompts, normalisation."""
        first = self.model[0]
        return {
            "max_seq_length": self.model.max_seq_length,
            "query_length": getattr(first, "query_length", None),
            "document_length": getattr(first, "document_length", None),
            "prompts": dict(self.model.prompts or {}),
            "modules": [type(module).__name__ for module in self.model],
            "dtype": self.dtype,
            **({"backend": self.backend} if self.backend != "torch" else {}),
        }

    def encode_passages(self, texts: list[str]) -> np.ndarray:
        """Shapes: P texts -> float32 [P, D]."""
        vectors = self.model.encode_document(
            texts, batch_size=self.batch_size, convert_to_numpy=True, show_progress_bar=False
        )
        return np.asarray(vectors, dtype=np.float32)

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        """Shapes: Q texts -> float32 [Q, D]."""
        vectors = self.model.encode_query(
            texts, batch_size=self.batch_size, convert_to_numpy=True, show_progress_bar=False
        )
        return np.asarray(vectors, dtype=np.float32)


class TokenEncoder:
    """A trained ColBERT checkpoint's query and passage token encoders, as numpy functions.

    Only a multi-vector checkpoint is accepted: from a plain backbone the student would draw a
    fresh random projection at every load, so the queries would not match the indexed tokens.

    Args:
        student: a multi-vector (ColBERT) checkpoint folder, hub id or short name.
        batch_size: texts per forward pass.
        device: torch device (None: CUDA if available).
    """

    def __init__(self, student: str | Path, batch_size: int = 32, device: str | None = None):
        from retrieval_kd.models import model_fingerprint, resolve_model
        from students.colbert import ColBERTStudent
        from students.multi_vector import is_multi_vector_checkpoint

        self.path = Path(resolve_model(str(student)).path)
        if not is_multi_vector_checkpoint(self.path):
            raise RKDError(
                f"{student}: not a trained late-interaction (ColBERT) checkpoint; its fresh "
                "projection would differ between indexing and search"
            )
        self.hash = model_fingerprint(self.path)
        self.student = ColBERTStudent(str(self.path), batch_size=batch_size, device=device)
        self.student.model.eval()
        self.dim = self.student.dim

    def encode_passages(self, texts: list[str]) -> list[np.ndarray]:
        """Shapes: P texts -> P float32 token matrices [n_i, D] (skiplisted tokens left out)."""
        return [m.float().cpu().numpy() for m in self.student.encode_passages(texts).unpad()]

    def encode_queries(self, texts: list[str]) -> list[np.ndarray]:
        """Shapes: Q texts -> Q float32 token matrices [Nq, D] (with [MASK] expansion)."""
        return [m.float().cpu().numpy() for m in self.student.encode_queries(texts).unpad()]


def _backend_arithmetic(backend: str) -> str:
    """What a non-torch backend computes in: ONNX Runtime's CPU provider runs the exported
    float32 graph; OpenVINO's CPU plugin picks its own precision (bf16 on CPUs with native
    bf16), read from the plugin."""
    if backend == "openvino":
        try:
            import openvino

            hint = openvino.Core().get_property("CPU", "INFERENCE_PRECISION_HINT")
            return f"openvino:{getattr(hint, 'get_type_name', lambda: str(hint))()}"
        except Exception:  # noqa: BLE001 - an unreadable hint is recorded as such
            return "openvino:unknown"
    return "float32"


def index_encoder(manifest: dict[str, Any], batch_size: int = 64) -> StudentEncoder:
    """The student of a dense index's ``manifest``, with the backend and arithmetic its passages
    were encoded with (an index built before they were recorded: the defaults)."""
    built = manifest.get("encoder") or {}
    backend = built.get("backend", "torch")
    precision = built.get("dtype", "auto") if backend == "torch" else "auto"
    return StudentEncoder(
        manifest["student"], batch_size=batch_size, backend=backend, precision=precision
    )


def is_late_interaction_student(student: str | Path) -> bool:
    """Whether ``student`` resolves to a multi-vector (ColBERT) checkpoint."""
    from retrieval_kd.models import resolve_model
    from students.multi_vector import is_multi_vector_checkpoint

    return is_multi_vector_checkpoint(resolve_model(str(student)).path)


def index_corpus(
    student: str | Path | StudentEncoder,
    corpus: Corpus,
    out_dir: str | Path,
    index_type: str = "flat",
    *,
    chunk_size: int = 10_000,
    batch_size: int = 64,
    precision: str = "auto",
    **options: Any,
):
    """Encode ``corpus`` with ``student`` and build a FAISS index in ``out_dir`` (resumable).

    Chunks already encoded by an interrupted run are reused; an index already built with the
    same student, corpus and settings is returned as is.

    Args:
        student: checkpoint folder (or an already loaded ``StudentEncoder``).
        corpus: the documents.
        out_dir: the index folder.
        index_type: flat, ivf, ivfpq, opq-ivfpq, hnsw, sq8 or a FAISS factory string.
        chunk_size: documents per encoded chunk (memory is bounded by a chunk).
        batch_size: encoding batch size.
        precision: the encoder's arithmetic when ``student`` is a folder (``StudentEncoder``'s
            ``precision``); recorded in the index manifest, and search encodes queries with it.
        **options: FAISS sizing (nlist, pq_m, hnsw_m, train_size, use_gpu, ...).

    Returns:
        The ``DenseIndex``.
    """
    from retrieval_kd.index import build_index

    encoder = (
        student
        if isinstance(student, StudentEncoder)
        else StudentEncoder(student, batch_size=batch_size, precision=precision)
    )
    return build_index(
        out_dir,
        corpus.ids,
        corpus.texts,
        encoder.encode_passages,
        chunk_size=chunk_size,
        index_type=index_type,
        student_hash=encoder.hash,
        # the vectors' settings (lengths, prompts, dtype) key the encoded chunks and the index,
        # so a resumed build never mixes vectors of two arithmetics
        extra={**_index_provenance(encoder.path, corpus), "encoder": encoder.settings},
        **options,
    )


def index_corpus_late(
    student: str | Path | TokenEncoder,
    corpus: Corpus,
    out_dir: str | Path,
    index_type: str = "ivfpq",
    *,
    chunk_size: int = 1000,
    batch_size: int = 32,
    **options: Any,
):
    """Encode ``corpus`` with a ColBERT student into a late-interaction index (resumable).

    Args:
        student: multi-vector checkpoint folder (or a loaded ``TokenEncoder``).
        corpus: the documents.
        out_dir: the index folder.
        index_type: FAISS type of the token index (ivfpq, ivf, flat, ... or a factory string).
        chunk_size: documents per encoded chunk (memory is bounded by a chunk).
        batch_size: encoding batch size.
        **options: nlist, pq_m, pq_nbits, train_size, candidates_per_token, seed, force.

    Returns:
        The ``LateInteractionIndex``.
    """
    from retrieval_kd.index.late_build import build_late_interaction_index

    encoder = (
        student
        if isinstance(student, TokenEncoder)
        else TokenEncoder(student, batch_size=batch_size)
    )
    return build_late_interaction_index(
        out_dir,
        corpus.ids,
        corpus.texts,
        encoder.encode_passages,
        chunk_size=chunk_size,
        index_type=index_type,
        student_hash=encoder.hash,
        extra=_index_provenance(encoder.path, corpus),
        **options,
    )


def _index_provenance(student_path: Path, corpus: Corpus) -> dict[str, Any]:
    """Manifest fields naming what an index was built from (student folder and corpus)."""
    return {
        "student": str(student_path),
        "corpus": corpus.fingerprint(),
        "corpus_name": corpus.name,
        "documents": len(corpus),
    }


def search_index(
    index_dir: str | Path,
    queries: Queries,
    k: int = 1000,
    *,
    nprobe: int | None = None,
    ef_search: int | None = None,
    candidates_per_token: int | None = None,
    encoder: StudentEncoder | TokenEncoder | None = None,
    batch_size: int = 64,
) -> Run:
    """Search ``index_dir`` with its own student's query encoder.

    A late-interaction index is searched in two stages (token-index candidates, exact MaxSim;
    ``nprobe`` and ``candidates_per_token`` tune the first); run scores are exact MaxSim.

    Raises:
        RKDError: the index was built by another student (weights hash differs) or with
            vectors of another dimension.
    """
    from retrieval_kd.index import DenseIndex
    from retrieval_kd.index.late_interaction import KIND, LateInteractionIndex

    manifest = read_manifest(index_dir)
    late = manifest.get("kind") == KIND
    if encoder is None:
        if "student" not in manifest:
            raise RKDError(f"index {index_dir} does not name its student: pass an encoder")
        if late:
            encoder = TokenEncoder(manifest["student"], batch_size=batch_size)
        else:
            encoder = index_encoder(manifest, batch_size=batch_size)
    query_ids = list(queries)
    if late:
        tokens = LateInteractionIndex.load(index_dir, expected_student_hash=encoder.hash)
        matrices = encoder.encode_queries([queries[q] for q in query_ids])
        limit = min(k, tokens.ntotal)
        scores, ids = tokens.search(
            matrices, limit, nprobe=nprobe, candidates_per_token=candidates_per_token
        )
        return _as_run(query_ids, scores, ids)
    index = DenseIndex.load(index_dir, expected_student_hash=encoder.hash, expected_dim=encoder.dim)
    vectors = encoder.encode_queries([queries[q] for q in query_ids])
    scores, ids = index.search(vectors, k=min(k, index.ntotal), nprobe=nprobe, ef_search=ef_search)
    return _as_run(query_ids, scores, ids)


def _as_run(query_ids: list[str], scores: np.ndarray, ids: list[list[str]]) -> Run:
    return {
        q: {d: float(s) for d, s in zip(hits, row, strict=False)}
        for q, hits, row in zip(query_ids, ids, scores, strict=True)
    }
