"""Index types by name, the rules that size them, and the FAISS index they become.

Named types and the FAISS factory string each one resolves to (``n`` = vectors to index,
``D`` = dimension):

========== ===================================== ==============================================
name       factory string                        what it is
========== ===================================== ==============================================
flat       ``Flat``                              exact search, no training
ivf        ``IVF{nlist},Flat``                   inverted lists of full vectors (IVF-Flat)
ivfpq      ``IVF{nlist},PQ{m}x{nbits}``          inverted lists of product-quantised residuals
opq-ivfpq  ``OPQ{m},IVF{nlist},PQ{m}x{nbits}``   the same after a learnt rotation (OPQ)
hnsw       ``HNSW{hnsw_m}``                      graph index over full vectors, no training
sq8        ``SQ8``                               exact scan of 8-bit scalar-quantised vectors
========== ===================================== ==============================================

Any other string is handed to ``faiss.index_factory`` as is, after filling the placeholders
``{nlist}``, ``{m}`` and ``{nbits}`` with the values below (e.g. ``"IVF{nlist},SQ8"``).

Sizing rules, used when the caller leaves a value out:

- ``nlist = round(4 * sqrt(n))``, at most ``n // 39`` (FAISS wants >= 39 training points per
  list, and warns below that) and at least 1. 10k vectors -> 256 lists (capped), 1M -> 4000.
- training sample ``train_size = min(n, max(39 * nlist, min(256 * nlist, 500_000)))``: k-means
  samples at most 256 points per centroid anyway; the 500k cap bounds the sample's memory
  (``train_size * D * 4`` bytes, 1.5 GB at D = 768) unless 39 per list needs more. Flat and HNSW
  need no training (``train_size = 0``).
- PQ sub-quantisers ``m``: the largest divisor of ``D`` that is at most ``max(1, D // 8)``, so
  each sub-quantiser codes about 8 dimensions (384 -> 48, 768 -> 96). ``nbits = 8`` (256
  centroids per sub-quantiser) unless the sample is too small for 39 points per centroid, then
  ``floor(log2(train_size / 39))`` (at least 1).
- default search settings, stored with the index and overridable per search:
  ``nprobe = min(nlist, max(16, nlist // 64))`` for IVF types, ``efSearch = 128`` for HNSW.
  On 200k MiniLM vectors (``scripts/bench_index.py``) both give recall@10 >= 0.98 against
  exact search; the ANN report finds faster settings for a target recall.

Metrics: ``ip`` (inner product, the default), ``cosine`` (vectors and queries are L2-normalised,
then inner product) and ``l2`` (FAISS returns squared distances; :class:`DenseIndex` negates
them so that higher is always better).
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from typing import Any

import faiss

from retrieval_kd.errors import RKDError

INDEX_TYPES = ("flat", "ivf", "ivfpq", "opq-ivfpq", "hnsw", "sq8")
METRICS = {"ip": "ip", "inner_product": "ip", "dot": "ip", "cosine": "cosine", "cos": "cosine"}
METRICS.update({"l2": "l2", "euclidean": "l2"})

MIN_POINTS_PER_CENTROID = 39
MAX_POINTS_PER_CENTROID = 256
TRAIN_SIZE_CAP = 500_000
DEFAULT_HNSW_M = 32
DEFAULT_EF_SEARCH = 128

_IVF_TYPES = ("ivf", "ivfpq", "opq-ivfpq")
_PQ_TYPES = ("ivfpq", "opq-ivfpq")


def canonical_metric(metric: str) -> str:
    """``"ip"``, ``"cosine"`` or ``"l2"`` for any accepted spelling; else an ``RKDError``."""
    try:
        return METRICS[metric.lower()]
    except KeyError:
        raise RKDError(f"unknown metric {metric!r}; use ip, cosine or l2") from None


def faiss_metric(metric: str) -> int:
    """The FAISS metric constant behind a metric name (cosine searches by inner product)."""
    return faiss.METRIC_L2 if canonical_metric(metric) == "l2" else faiss.METRIC_INNER_PRODUCT


def default_nlist(n: int) -> int:
    """Inverted lists for ``n`` vectors: ``4 * sqrt(n)``, keeping >= 39 points per list."""
    return max(1, min(round(4 * math.sqrt(max(n, 1))), n // MIN_POINTS_PER_CENTROID))


def default_train_size(n: int, nlist: int | None) -> int:
    """Training sample size for ``n`` vectors and ``nlist`` lists (``None``: no IVF)."""
    if nlist is None:
        return min(n, TRAIN_SIZE_CAP)
    wanted = min(MAX_POINTS_PER_CENTROID * nlist, TRAIN_SIZE_CAP)
    return min(n, max(MIN_POINTS_PER_CENTROID * nlist, wanted))


def default_pq_m(dim: int) -> int:
    """PQ sub-quantisers: the largest divisor of ``dim`` that is at most ``max(1, dim // 8)``."""
    limit = max(1, dim // 8)
    return max(m for m in range(1, limit + 1) if dim % m == 0)


def default_pq_nbits(train_size: int) -> int:
    """Bits per PQ code: 8 unless ``train_size`` is too small for 39 points per centroid."""
    if train_size >= MIN_POINTS_PER_CENTROID * 256:
        return 8
    return max(1, int(math.log2(max(train_size, 1) / MIN_POINTS_PER_CENTROID)))


def default_nprobe(nlist: int) -> int:
    """Lists visited per query by default: ``min(nlist, max(16, nlist // 64))``."""
    return min(nlist, max(16, nlist // 64))


@dataclass(frozen=True)
class IndexPlan:
    """Everything that decides how an index is made, resolved from a name and a corpus size.

    Attributes:
        index_type: the name asked for (one of ``INDEX_TYPES``) or ``"factory"``.
        factory: the FAISS factory string.
        metric: ``"ip"``, ``"cosine"`` or ``"l2"``.
        dim: vector dimension.
        n: vectors the plan was sized for.
        nlist: inverted lists, ``None`` when the index has none (or they are unknown).
        pq_m: PQ sub-quantisers, ``None`` without PQ.
        pq_nbits: bits per PQ code, ``None`` without PQ.
        train_size: training sample size, 0 when the index needs no training.
        nprobe: default lists visited per query (IVF), else ``None``.
        ef_search: default HNSW search breadth, else ``None``.
    """

    index_type: str
    factory: str
    metric: str
    dim: int
    n: int
    nlist: int | None = None
    pq_m: int | None = None
    pq_nbits: int | None = None
    train_size: int = 0
    nprobe: int | None = None
    ef_search: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy, for manifests."""
        return asdict(self)


def plan_index(
    index_type: str,
    dim: int,
    n: int,
    metric: str = "ip",
    *,
    nlist: int | None = None,
    pq_m: int | None = None,
    pq_nbits: int | None = None,
    hnsw_m: int = DEFAULT_HNSW_M,
    train_size: int | None = None,
) -> IndexPlan:
    """Resolve an index name (or factory string) for ``n`` vectors of dimension ``dim``.

    Args:
        index_type: one of ``INDEX_TYPES`` or a FAISS factory string (placeholders ``{nlist}``,
            ``{m}``, ``{nbits}`` are filled in).
        dim: vector dimension.
        n: number of vectors that will be indexed (sizes nlist and the training sample).
        metric: ``ip`` (default), ``cosine`` or ``l2``.
        nlist, pq_m, pq_nbits, hnsw_m, train_size: override the rules in the module docstring.

    Returns:
        The resolved :class:`IndexPlan`.

    Raises:
        RKDError: bad dimension, metric, or a PQ ``m`` that does not divide ``dim``.
    """
    if dim < 1:
        raise RKDError(f"vector dimension must be >= 1, got {dim}")
    metric = canonical_metric(metric)
    name = index_type.strip()
    key = name.lower()
    if key not in INDEX_TYPES:
        return _plan_factory(name, dim, n, metric, nlist, pq_m, pq_nbits, train_size)
    if key == "flat":
        return IndexPlan(key, "Flat", metric, dim, n)
    if key == "hnsw":
        return IndexPlan(key, f"HNSW{hnsw_m}", metric, dim, n, ef_search=DEFAULT_EF_SEARCH)
    if key == "sq8":
        size = train_size if train_size is not None else default_train_size(n, None)
        return IndexPlan(key, "SQ8", metric, dim, n, train_size=size)
    nlist = nlist or default_nlist(n)
    size = train_size if train_size is not None else default_train_size(n, nlist)
    common = {"nlist": nlist, "train_size": size, "nprobe": default_nprobe(nlist)}
    if key == "ivf":
        return IndexPlan(key, f"IVF{nlist},Flat", metric, dim, n, **common)
    m = pq_m or default_pq_m(dim)
    if dim % m:
        raise RKDError(f"PQ m={m} must divide the vector dimension {dim}")
    nbits = pq_nbits or default_pq_nbits(size)
    factory = f"IVF{nlist},PQ{m}x{nbits}"
    if key == "opq-ivfpq":
        factory = f"OPQ{m}," + factory
    return IndexPlan(key, factory, metric, dim, n, pq_m=m, pq_nbits=nbits, **common)


def _plan_factory(
    factory: str,
    dim: int,
    n: int,
    metric: str,
    nlist: int | None,
    pq_m: int | None,
    pq_nbits: int | None,
    train_size: int | None,
) -> IndexPlan:
    """Plan for a FAISS factory string passed through (placeholders filled in)."""
    if "{nlist}" in factory:
        nlist = nlist or default_nlist(n)
    if "{m}" in factory:
        pq_m = pq_m or default_pq_m(dim)
    match = re.search(r"IVF(\d+)", factory)
    if nlist is None and match:
        nlist = int(match.group(1))
    size = train_size if train_size is not None else default_train_size(n, nlist)
    if "{nbits}" in factory:
        pq_nbits = pq_nbits or default_pq_nbits(size)
    try:
        filled = factory.format(nlist=nlist, m=pq_m, nbits=pq_nbits)
    except (KeyError, IndexError, ValueError) as err:
        raise RKDError(f"bad placeholder in index factory string {factory!r}: {err}") from None
    is_ivf = "IVF" in filled
    return IndexPlan(
        "factory",
        filled,
        metric,
        dim,
        n,
        nlist=nlist if is_ivf else None,
        pq_m=pq_m,
        pq_nbits=pq_nbits,
        train_size=size,
        nprobe=default_nprobe(nlist) if is_ivf and nlist else None,
        ef_search=DEFAULT_EF_SEARCH if "HNSW" in filled else None,
    )


def create_index(plan: IndexPlan) -> faiss.Index:
    """An empty FAISS index for ``plan``; an ``RKDError`` when FAISS cannot parse the string."""
    try:
        index = faiss.index_factory(plan.dim, plan.factory, faiss_metric(plan.metric))
    except RuntimeError as err:
        reason = str(err).strip().splitlines()[-1]
        raise RKDError(
            f"FAISS cannot make index {plan.factory!r} (d={plan.dim}): {reason}"
        ) from None
    _match_opq_bits(index, plan.pq_nbits)
    ivf = faiss.try_extract_index_ivf(index)
    ivf = None if ivf is None else faiss.downcast_index(ivf)
    if isinstance(ivf, faiss.IndexIVFPQ):
        # The factory turns on polysemous training (simulated annealing over the codes), which
        # only serves polysemous search; we never use it, and it dominates small builds.
        ivf.do_polysemous_training = False
    return index


def _match_opq_bits(index: faiss.Index, nbits: int | None) -> None:
    """Let an OPQ rotation train with ``nbits``-bit codes, not FAISS's fixed 8 bits.

    FAISS trains OPQ with an 8-bit product quantiser of its own; on a small sample that is
    too few points per centroid (and slow). Give it one with the PQ's own bit count.
    """
    if nbits is None or nbits >= 8:
        return
    index = faiss.downcast_index(index)
    if not isinstance(index, faiss.IndexPreTransform):
        return
    for i in range(index.chain.size()):
        transform = faiss.downcast_VectorTransform(index.chain.at(i))
        if isinstance(transform, faiss.OPQMatrix) and transform.pq is None:
            pq = faiss.ProductQuantizer(transform.d_out, transform.M, nbits)
            transform.pq = pq
            index.referenced_objects = [*getattr(index, "referenced_objects", []), pq]
