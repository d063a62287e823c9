"""The arithmetic of inference: one rule for every encoder and scorer.

Students at index time (:class:`retrieval_kd.retrieval.StudentEncoder`), bi-encoder,
cross-encoder and LLM teachers, and the LLM query generator all run their forward passes in the
dtype :func:`inference_dtype` picks. ``"auto"`` takes the fastest arithmetic the hardware
computes natively:

- a CUDA GPU: bf16 where it supports it, else fp16;
- a CPU with AVX512-BF16 or AMX (``/proc/cpuinfo`` flags): bf16, whose matrix products run at
  about 4x fp32 there (405.8 against ~100 GFLOP/s measured by ``scripts/bench_teacher.py``);
- any other CPU: fp32, because bf16 is emulated there and far slower (0.85 against 58 GFLOP/s
  on an AVX2 machine).

bf16 keeps fp32's range with 8 bits of mantissa, so scores and vectors move by about 1e-2
relative; ``scripts/bench_encode.py`` prints what that does to nDCG@10 and
``scripts/bench_teacher.py`` to an LLM teacher's scores. The dtype that ran is part of every
index's settings and every teacher's description, so a store or an index never mixes two
arithmetics silently.

Example:
    >>> import torch
    >>> inference_dtype("fp32", "cpu")
    torch.float32
    >>> dtype_name(torch.bfloat16)
    'bfloat16'
"""

from __future__ import annotations

from typing import Any

from retrieval_kd.errors import RKDError

#: Accepted names, short and torch's own, for each dtype (and "auto").
PRECISION_NAMES = {
    "fp32": "float32",
    "float32": "float32",
    "bf16": "bfloat16",
    "bfloat16": "bfloat16",
    "fp16": "float16",
    "float16": "float16",
    "half": "float16",
}


def native_bf16(device: Any) -> bool:
    """Whether ``device`` computes bf16 natively: a CUDA GPU that supports it, or a CPU with
    AVX512-BF16 / AMX."""
    import torch

    kind = torch.device(device).type
    if kind == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if kind == "cpu":
        from retrieval_kd.training.precision import cpu_has_native_bf16

        return cpu_has_native_bf16()
    return False


def inference_dtype(precision: Any = "auto", device: Any = "cpu") -> Any:
    """The torch dtype a forward pass on ``device`` runs in.

    Args:
        precision: ``"auto"`` (or None): bf16 where ``device`` computes it natively, fp16 on a
            CUDA GPU without bf16, fp32 elsewhere; or a dtype / its name (``"fp32"``,
            ``"bfloat16"``, ``torch.float16``, ...), taken as it is.
        device: a torch device or its name.

    Raises:
        RKDError: an unknown precision name.
    """
    import torch

    if isinstance(precision, torch.dtype):
        return precision
    if precision is None or precision == "auto":
        if native_bf16(device):
            return torch.bfloat16
        return torch.float16 if torch.device(device).type == "cuda" else torch.float32
    name = PRECISION_NAMES.get(str(precision).removeprefix("torch.").lower())
    if name is None:
        raise RKDError(
            f"unknown precision {precision!r}; use auto, {', '.join(sorted(PRECISION_NAMES))}"
        )
    return getattr(torch, name)


def dtype_name(dtype: Any) -> str:
    """``torch.bfloat16`` -> ``"bfloat16"``: how manifests and descriptions name a dtype."""
    return str(dtype).removeprefix("torch.")
