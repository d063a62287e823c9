"""Moving FAISS indexes to and from GPUs, when this FAISS build has GPU support.

Everything here is guarded: on a CPU-only FAISS (``faiss-cpu``) or with no visible GPU, the
index simply stays on the CPU. Index types FAISS cannot run on a GPU (HNSW, OPQ rotations in
some builds) also stay on the CPU, with a warning.
"""

from __future__ import annotations

import logging

import faiss

from retrieval_kd.errors import RKDError

log = logging.getLogger(__name__)


def num_gpus() -> int:
    """GPUs FAISS can use (0 on ``faiss-cpu``)."""
    getter = getattr(faiss, "get_num_gpus", None)
    return int(getter()) if getter is not None else 0


def want_gpu(use_gpu: bool | None) -> bool:
    """Resolve ``use_gpu``: ``None`` = when available, ``True`` = required, ``False`` = never."""
    if use_gpu is False:
        return False
    available = num_gpus() > 0
    if use_gpu and not available:
        raise RKDError("use_gpu=True but this FAISS build sees no GPU (install faiss-gpu)")
    return available


def to_gpu(index: faiss.Index) -> tuple[faiss.Index, bool]:
    """Copy ``index`` onto all GPUs; returns ``(index, on_gpu)``, the CPU one when it cannot."""
    try:
        return faiss.index_cpu_to_all_gpus(index), True
    except (RuntimeError, AttributeError) as err:
        log.warning("index stays on the CPU: FAISS cannot move it to the GPU (%s)", err)
        return index, False


def to_cpu(index: faiss.Index, on_gpu: bool) -> faiss.Index:
    """A CPU copy of a GPU index (the index itself when it is already on the CPU)."""
    return faiss.index_gpu_to_cpu(index) if on_gpu else index


def parameter_space(on_gpu: bool) -> faiss.ParameterSpace:
    """The object that sets ``nprobe`` / ``efSearch`` on this kind of index."""
    if on_gpu and hasattr(faiss, "GpuParameterSpace"):
        return faiss.GpuParameterSpace()
    return faiss.ParameterSpace()
