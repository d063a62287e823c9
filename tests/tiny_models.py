"""Tiny random models built in milliseconds, with no files from any hub.

A word-level tokenizer over a small fixed vocabulary and a 2-layer, 32-wide BERT: enough to
exercise every code path (tokenisation, padding, pooling, saving, loading) at test speed.
"""

from __future__ import annotations

from pathlib import Path

WORDS = (
    "solar panels make electricity wind turbines turn air into cooking pasta water boil "
    "how do what is the a of in on and dams rivers flow energy power sun light cells "
    "yes no query passage document relevant question answer"
).split()
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def tiny_tokenizer():
    """A ``BertTokenizerFast``-compatible word-level tokenizer (lower-cased, whitespace split)."""
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(SPECIAL + sorted(set(WORDS)))}
    core = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    core.normalizer = normalizers.Lowercase()
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=64,
    )


def tiny_bert_config(**overrides):
    from transformers import BertConfig

    tokenizer_size = len(SPECIAL) + len(set(WORDS))
    settings = dict(
        vocab_size=tokenizer_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    settings.update(overrides)
    return BertConfig(**settings)


def save_tiny_cross_encoder(folder: Path, seed: int = 0, num_labels: int = 1) -> Path:
    """A random ``BertForSequenceClassification`` (``num_labels`` logits) + tokenizer saved in
    ``folder``."""
    import torch
    from transformers import BertForSequenceClassification

    torch.manual_seed(seed)
    model = BertForSequenceClassification(tiny_bert_config(num_labels=num_labels))
    model.save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return folder


def save_tiny_sentence_transformer(folder: Path, seed: int = 0, pooling: str = "mean") -> Path:
    """A random BERT with mean pooling as a sentence-transformers folder."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from transformers import BertModel

    torch.manual_seed(seed)
    raw = folder.parent / f".{folder.name}-raw"
    BertModel(tiny_bert_config()).save_pretrained(raw)
    tiny_tokenizer().save_pretrained(raw)
    transformer = Transformer(str(raw), max_seq_length=64)
    model = SentenceTransformer(modules=[transformer, Pooling(32, pooling_mode=pooling)])
    model.save(str(folder))
    return folder
