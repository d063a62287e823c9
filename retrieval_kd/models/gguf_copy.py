"""Dequantise a GGUF causal LM into a plain safetensors folder that ``from_pretrained`` loads.

Loading a GGUF through transformers (``from_pretrained(folder, gguf_file=name)``) unpacks every
quantised block on each load (about 30 s for SmolLM2-135M on 2 cores). Doing it once and saving the
result makes later loads take well under a second. Needs the ``gguf`` and ``accelerate`` packages
(the ``llm`` extra).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from retrieval_kd.errors import RKDError

GGUF_REQUIREMENTS = ("gguf", "accelerate")


def _check_requirements() -> None:
    missing = [name for name in GGUF_REQUIREMENTS if importlib.util.find_spec(name) is None]
    if missing:
        raise RKDError(
            f"reading a GGUF file needs the packages {', '.join(missing)}: "
            "pip install 'gguf>=0.10' 'accelerate>=1.0' (or retrieval_kd[llm])"
        )


def dequantise_gguf(gguf_path: str | Path, out_dir: str | Path, *, dtype: str = "float32") -> Path:
    """Write a safetensors causal-LM folder (weights, config, tokenizer) from a GGUF file.

    The weights are dequantised into ``dtype`` (float32 by default: exactly the values the
    quantised blocks decode to). The model's quantiser and ``config.quantization_config`` are
    cleared before saving, so the folder loads as an ordinary dense model.

    Args:
        gguf_path: The ``.gguf`` file.
        out_dir: Folder to write (created; files in it are overwritten).
        dtype: Torch dtype name of the saved weights (``"float32"``, ``"bfloat16"``, ...).

    Returns:
        ``out_dir``, loadable with ``AutoModelForCausalLM.from_pretrained(out_dir)`` and
        ``AutoTokenizer.from_pretrained(out_dir)``.

    Raises:
        RKDError: ``gguf`` or ``accelerate`` is not installed.
    """
    _check_requirements()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_path = Path(gguf_path)
    out_dir = Path(out_dir)
    folder, name = str(gguf_path.parent), gguf_path.name
    kwargs: dict = {"gguf_file": name, "dtype": getattr(torch, dtype)}
    try:  # transformers >= 5 can keep GGUF blocks packed; ask for a dense model explicitly
        from transformers import GgufConfig

        kwargs["quantization_config"] = GgufConfig(gguf_file=name, dequantize=True)
    except ImportError:  # older transformers always dequantise GGUF weights
        pass
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, **kwargs)
    model.hf_quantizer = None
    if getattr(model.config, "quantization_config", None) is not None:
        del model.config.quantization_config
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir
