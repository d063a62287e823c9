"""Helpers for the training tests, and the per-process entry point of the torchrun test.

As a script (``torchrun --nproc_per_node 2 tests/_train_worker.py <config.json> <out_dir>``)
each process trains from the config and writes ``rank<r>.json`` with a hash of its final weights,
so the test can check that DDP kept the ranks' weights identical.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from conftest import write_beir_folder  # noqa: E402
from tiny_models import WORDS, tiny_bert_config, tiny_tokenizer  # noqa: E402

TOPICS = {
    "solar": "solar panels make electricity from sun light",
    "wind": "wind turbines turn air into power",
    "pasta": "boil pasta in water for cooking",
    "dams": "dams on rivers flow water into energy",
    "cells": "cells of the sun make energy",
}


def save_tiny_st(folder: Path, seed: int = 0, dropout: float = 0.0, pooling: str = "mean") -> Path:
    """A random 2-layer BERT sentence-transformers folder (dropout off unless asked)."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from transformers import BertModel

    torch.manual_seed(seed)
    raw = folder.parent / f".{folder.name}-raw"
    config = tiny_bert_config(hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    BertModel(config).save_pretrained(raw)
    tiny_tokenizer().save_pretrained(raw)
    transformer = Transformer(str(raw), max_seq_length=64)
    model = SentenceTransformer(modules=[transformer, Pooling(32, pooling_mode=pooling)])
    model.save(str(folder))
    return folder


def make_toy_collection(root: Path, n_queries: int = 12, docs_per_topic: int = 4) -> Path:
    """A BEIR folder: 5 topics x ``docs_per_topic`` docs, queries judged on one doc each."""
    corpus, queries, train = [], [], []
    words = sorted(set(WORDS))
    for t, (topic, text) in enumerate(sorted(TOPICS.items())):
        for i in range(docs_per_topic):
            extra = " ".join(words[(t * 7 + i * 3 + j) % len(words)] for j in range(3))
            corpus.append({"_id": f"{topic}-{i}", "title": topic, "text": f"{text} {extra}"})
    topics = sorted(TOPICS)
    for q in range(n_queries):
        topic = topics[q % len(topics)]
        queries.append({"_id": f"q{q}", "text": f"what is {topic} {words[q % len(words)]}"})
        train.append((f"q{q}", f"{topic}-{q % docs_per_topic}", 1))
    return write_beir_folder(root, corpus, queries, {"train": train})


class OverlapTeacher:
    """A toy teacher: word overlap between query and passage, plus a tiny length tie-break."""

    def score(self, queries, passages, *, query_ids=None, doc_ids=None):  # noqa: ANN001
        import numpy as np

        out = []
        for query, group in zip(queries, passages, strict=True):
            words = set(query.lower().split())
            out.append(
                np.array([len(words & set(p.lower().split())) - 0.01 * len(p) for p in group])
            )
        return out

    def describe(self) -> dict[str, Any]:
        return {"kind": "toy-overlap", "score_transform": "none"}


def make_toy_store(collection: Path, out: Path, depth: int = 10) -> Path:
    """Score every doc of the toy collection for every train query (plus qrels labels)."""
    from retrieval_kd.data import load_dataset
    from retrieval_kd.store import score_candidates

    dataset = load_dataset(str(collection), "train")
    ids = dataset.corpus.ids
    candidates = {
        q: {d: float(len(ids) - i) for i, d in enumerate(ids[(k * 3) % len(ids) :] + ids)}
        for k, q in enumerate(sorted(dataset.queries))
    }
    score_candidates(
        OverlapTeacher(),
        dataset.queries,
        candidates,
        dataset.corpus.texts,
        out,
        depth=depth,
        qrels=dataset.qrels,
        add_qrels_positives=True,
        candidate_source={"name": "toy"},
    )
    return out


def make_toy_training(root: Path) -> dict[str, Path]:
    """A toy collection, its score store and a tiny student under ``root`` (training tests)."""
    collection = make_toy_collection(root / "collection")
    return {
        "root": root,
        "collection": collection,
        "store": make_toy_store(collection, root / "store"),
        "model": save_tiny_st(root / "tiny-st"),
    }


def weights_sha256(model_dir: Path) -> str:
    """Hash of the float32 weights of a saved student folder."""
    from safetensors.torch import load_file

    tensors = load_file(str(model_dir / "model.safetensors"))
    digest = hashlib.sha256()
    for name in sorted(tensors):
        digest.update(name.encode())
        digest.update(tensors[name].float().numpy().tobytes())
    return digest.hexdigest()


class WeightsHash:
    """A Trainer callback that hashes this rank's final weights (``on_train_end``)."""

    def __init__(self) -> None:
        from transformers import TrainerCallback

        outer = self
        self.digest = ""
        self.logs: list[dict] = []

        class _Callback(TrainerCallback):
            def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001
                outer.logs.append(dict(logs or {}))

            def on_train_end(self, args, state, control, model=None, **kwargs):  # noqa: ANN001
                digest = hashlib.sha256()
                for name, tensor in sorted(model.state_dict().items()):
                    digest.update(name.encode())
                    digest.update(tensor.detach().float().cpu().numpy().tobytes())
                outer.digest = digest.hexdigest()

        self.callback = _Callback()


def train_and_record(config: dict, out: Path) -> dict:
    """Train from ``config``; write and return this rank's record (``rank<r>.json``): its step
    count, a hash of its final weights and the Trainer's log lines (loss, grad_norm)."""
    import os

    from retrieval_kd.training import train

    weights = WeightsHash()
    result = train(config, callbacks=[weights.callback])
    rank = int(os.environ.get("RANK", "0"))
    record = {
        "rank": rank,
        "world_size": int(os.environ.get("WORLD_SIZE", "1")),
        "global_step": result.global_step,
        "weights": weights.digest,
        "logs": weights.logs,
    }
    (out / f"rank{rank}.json").write_text(json.dumps(record))
    return record


def main() -> None:
    train_and_record(json.loads(Path(sys.argv[1]).read_text()), Path(sys.argv[2]))


if __name__ == "__main__":
    main()
