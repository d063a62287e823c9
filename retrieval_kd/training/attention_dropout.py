"""Attention-probability dropout during training, set apart from the checkpoint's own.

PyTorch's fused attention kernels (``scaled_dot_product_attention``'s flash kernel on CPU, and
the fused kernels of most GPUs) take no dropout on the attention probabilities; a training step
of a BERT-style student whose config asks for it (``attention_probs_dropout_prob: 0.1``) falls
back to the unfused "math" path, which materialises, masks and drops every [L, L] attention
matrix. On the demo's student (MiniLM-L3, 64 passages x 192 tokens, bf16 autocast, 2 CPU
cores) a forward + backward took 7.9 s with attention dropout and 3.8 s without; the math path
was 46% of a profiled training step. ``training.attention_dropout: 0.0`` turns it off for
training only: hidden-state dropout stays, and the saved model's config keeps the checkpoint's
value, so a later fine-tuning of the saved student gets the usual default.

The rate is set on the modules the forward pass reads it from: every ``nn.Dropout`` child named
``dropout``, ``attn_dropout`` or ``attention_dropout`` of a module whose class name contains
``Attention`` but not ``Output`` (BERT, RoBERTa, MPNet, XLM-R, DistilBERT, ... read
``self.dropout.p`` there), and float attributes named ``attention_dropout`` of such modules
(Llama-, ModernBERT-style attention).
"""

from __future__ import annotations

import logging

from torch import nn

logger = logging.getLogger(__name__)

_DROPOUT_NAMES = ("dropout", "attn_dropout", "attention_dropout")


def _attention_modules(model: nn.Module):
    for module in model.modules():
        name = type(module).__name__
        if "Attention" in name and "Output" not in name:
            yield module


def set_attention_dropout(model: nn.Module, rate: float) -> int:
    """Set the attention-probability dropout of every attention module of ``model`` to
    ``rate``; returns how many places were set (0: the model has none this recognises).

    Example:
        >>> from transformers import BertConfig, BertModel
        >>> bert = BertModel(BertConfig(hidden_size=8, num_hidden_layers=2,
        ...                             num_attention_heads=2, intermediate_size=8))
        >>> set_attention_dropout(bert, 0.0)
        2
        >>> bert.encoder.layer[0].attention.self.dropout.p
        0.0
    """
    if not 0.0 <= rate < 1.0:
        from retrieval_kd.errors import RKDError

        raise RKDError(f"attention_dropout must be in [0, 1), got {rate}")
    changed = 0
    for module in _attention_modules(model):
        for child_name in _DROPOUT_NAMES:
            child = getattr(module, child_name, None)
            if isinstance(child, nn.Dropout):
                child.p = rate
                changed += 1
            elif isinstance(child, float) and child_name == "attention_dropout":
                setattr(module, child_name, rate)
                changed += 1
    if not changed:
        logger.warning(
            "training.attention_dropout: no attention dropout found in %s; nothing changed",
            type(model).__name__,
        )
    return changed
