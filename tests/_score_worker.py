"""Toy teacher, toy data and a scoring worker for the score-store tests.

Run as a script (``python tests/_score_worker.py CONFIG.json``, alone, as one of several ranks
with ``RANK`` / ``WORLD_SIZE`` set, or under ``torchrun``) it scores the toy candidates into
``config["out_dir"]`` with :func:`retrieval_kd.store.score_candidates`. Config keys:
``out_dir``, ``depth``, ``queries_per_shard``, ``queries_per_call``, ``log`` (file the toy
teacher appends every scored pair to), ``sleep`` (seconds per teacher call), ``block_at_shards``
(before a teacher call, once that many shards exist, write ``ready`` beside the log and hang),
``dist`` (initialise torch.distributed with gloo first).
"""

from __future__ import annotations

import json
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np

N_QUERIES = 12
N_DOCS = 40
N_CANDIDATES = 10


def toy_data() -> tuple[dict[str, str], dict[str, dict[str, float]], dict[str, str]]:
    """12 queries, 10 candidates each out of 40 documents: (queries, candidates, corpus)."""
    queries = {f"q{i}": f"query {i}" for i in range(N_QUERIES)}
    corpus = {f"d{j}": f"passage {j}" for j in range(N_DOCS)}
    candidates = {}
    for i in range(N_QUERIES):
        docs = [f"d{(i * 7 + k * 3) % N_DOCS}" for k in range(N_CANDIDATES)]
        candidates[f"q{i}"] = {d: float(_hash(f"cand {i} {d}") % 100) for d in docs}
    return queries, candidates, corpus


def _hash(text: str) -> int:
    return zlib.crc32(text.encode("utf-8"))


def toy_score(query: str, passage: str) -> np.float32:
    """Deterministic teacher score in [-5, 5)."""
    return np.float32(_hash(f"{query}|{passage}") / 2**32 * 10 - 5)


class ToyScorer:
    """Deterministic teacher that can log pairs, sleep, hang, or return bad scores."""

    def __init__(
        self,
        log: str | Path | None = None,
        sleep: float = 0.0,
        bad_query: str | None = None,
        bad_value: float = float("nan"),
        block_at_shards: int | None = None,
        store_dir: str | Path | None = None,
        name: str = "toy-teacher",
    ):
        self.log = None if log is None else Path(log)
        self.sleep = sleep
        self.bad_query = bad_query
        self.bad_value = bad_value
        self.block_at_shards = block_at_shards
        self.store_dir = None if store_dir is None else Path(store_dir)
        self.name = name
        self.calls: list[tuple[list[str], list[list[str]]]] = []

    def describe(self) -> dict[str, Any]:
        return {"model_id": self.name, "revision": "v1", "max_length": 64, "device": "cpu"}

    def score(
        self, queries: list[str], passages: list[list[str]], **ids: object
    ) -> list[np.ndarray]:
        if self.block_at_shards is not None and self.store_dir is not None:
            if len(list(self.store_dir.glob("shard-*.parquet"))) >= self.block_at_shards:
                assert self.log is not None
                (self.log.parent / "ready").write_text("blocked\n")
                time.sleep(600)
        self.calls.append((list(queries), [list(p) for p in passages]))
        if self.sleep:
            time.sleep(self.sleep)
        out = []
        for query, texts in zip(queries, passages, strict=True):
            scores = np.array([toy_score(query, t) for t in texts], dtype=np.float64)
            if query == self.bad_query:
                scores[len(scores) // 2] = self.bad_value
            out.append(scores)
        if self.log is not None:
            with open(self.log, "a", encoding="utf-8") as handle:
                for query, texts in zip(queries, passages, strict=True):
                    handle.writelines(f"{query}\t{t}\n" for t in texts)
                handle.flush()
        return out


def corpus_lookup(corpus: dict[str, str]):
    """``passage_text`` for a dict corpus."""
    return lambda ids: [corpus[d] for d in ids]


def main(config_path: str) -> None:
    from retrieval_kd.store import score_candidates

    config = json.loads(Path(config_path).read_text())
    if config.get("dist"):
        import torch.distributed as dist

        dist.init_process_group("gloo")
    queries, candidates, corpus = toy_data()
    scorer = ToyScorer(
        log=config.get("log"),
        sleep=config.get("sleep", 0.0),
        block_at_shards=config.get("block_at_shards"),
        store_dir=config["out_dir"],
    )
    score_candidates(
        scorer,
        queries,
        candidates,
        corpus_lookup(corpus),
        config["out_dir"],
        depth=config.get("depth", 6),
        queries_per_shard=config.get("queries_per_shard", 2),
        queries_per_call=config.get("queries_per_call", 2),
        candidate_source={"name": "toy"},
    )
    if config.get("dist"):
        import torch.distributed as dist

        dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
