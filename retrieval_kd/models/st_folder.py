"""Write the sentence-transformers files that turn a Hugging Face model folder into an ST folder.

The layout is the one the hub's sentence-transformers models use (``modules.json`` naming
``sentence_transformers.models.Transformer`` and ``Pooling``, ``sentence_bert_config.json`` with
``max_seq_length``), which every sentence-transformers release from 2.x to 6.x loads; a folder
saved by a recent release's ``save()`` uses module paths that older releases do not know.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

POOLING_MODES = ("mean", "cls", "max")


def _write(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2) + "\n", encoding="utf-8")


def installed_versions() -> dict[str, str]:
    """Versions of sentence-transformers, transformers and torch, for provenance records."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("sentence_transformers", "transformers", "torch"):
        try:
            out[name if name != "torch" else "pytorch"] = version(name.replace("_", "-"))
        except PackageNotFoundError:
            continue
    return out


def write_sentence_transformers_files(
    folder: str | Path,
    *,
    embedding_dim: int,
    max_seq_length: int,
    pooling: str = "mean",
    normalize: bool = False,
    model_args: dict[str, Any] | None = None,
) -> Path:
    """Add ``modules.json``, pooling and ST configs to a folder that holds a HF model + tokenizer.

    Args:
        folder: A folder ``transformers.AutoModel.from_pretrained`` loads (config, weights,
            tokenizer files).
        embedding_dim: The model's hidden size (the pooled embedding's width).
        max_seq_length: Longest input in tokens; longer inputs are truncated.
        pooling: ``"mean"``, ``"cls"`` or ``"max"`` over token embeddings.
        normalize: Append a ``Normalize`` module (unit-length embeddings).
        model_args: Keyword arguments sentence-transformers passes to the model's
            ``from_pretrained`` (e.g. ``{"add_pooling_layer": False}`` for a BERT saved
            without pooler, which otherwise logs the pooler as newly initialised).

    Returns:
        The folder, now loadable with ``sentence_transformers.SentenceTransformer(folder)``.

    Raises:
        ValueError: Unknown pooling mode.
    """
    if pooling not in POOLING_MODES:
        raise ValueError(f"pooling must be one of {POOLING_MODES}, got {pooling!r}")
    folder = Path(folder)
    kinds = ["Transformer", "Pooling"] + (["Normalize"] if normalize else [])
    paths = ["", "1_Pooling", "2_Normalize"]
    modules = [
        {"idx": i, "name": str(i), "path": paths[i], "type": f"sentence_transformers.models.{kind}"}
        for i, kind in enumerate(kinds)
    ]
    if normalize:
        (folder / "2_Normalize").mkdir(parents=True, exist_ok=True)
    _write(folder / "modules.json", modules)
    st_config: dict[str, Any] = {"max_seq_length": max_seq_length, "do_lower_case": False}
    if model_args:
        st_config["model_args"] = model_args
    _write(folder / "sentence_bert_config.json", st_config)
    _write(
        folder / "1_Pooling" / "config.json",
        {
            "word_embedding_dimension": embedding_dim,
            "pooling_mode_cls_token": pooling == "cls",
            "pooling_mode_mean_tokens": pooling == "mean",
            "pooling_mode_max_tokens": pooling == "max",
            "pooling_mode_mean_sqrt_len_tokens": False,
        },
    )
    _write(
        folder / "config_sentence_transformers.json",
        {
            "__version__": installed_versions(),
            "prompts": {},
            "default_prompt_name": None,
            "similarity_fn_name": "cosine",
        },
    )
    return folder
