"""A query-generation worker for the kill -9 test: ``python tests/_generate_worker.py CONFIG``.

It generates span queries for a BEIR folder into ``config["out"]`` with two documents a shard;
once ``config["hang_after"]`` shards are written it writes ``config["ready"]`` and hangs, so the
test can kill it with SIGKILL at a known point.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


class HangingGenerator:
    """A span generator that hangs (after signalling) once enough shards exist."""

    needs_cleaning = False

    def __init__(self, out: Path, ready: Path, hang_after: int):
        from retrieval_kd.generation import SpanQueryGenerator

        self.inner = SpanQueryGenerator("sentence", min_words=3, seed=0)
        self.shards, self.ready, self.hang_after = out / "shards", ready, hang_after

    def generate(self, doc_ids, titles, bodies, n):
        if len(list(self.shards.glob("shard-*.jsonl"))) >= self.hang_after:
            self.ready.write_text("ready")
            time.sleep(600)
        return self.inner.generate(doc_ids, titles, bodies, n)

    def describe(self):
        return self.inner.describe()


def main(config_path: str) -> None:
    from retrieval_kd.data import load_dataset
    from retrieval_kd.generation import generate_queries

    config = json.loads(Path(config_path).read_text())
    out = Path(config["out"])
    generator = HangingGenerator(out, Path(config["ready"]), config["hang_after"])
    corpus = load_dataset(config["data"]).corpus
    generate_queries(corpus, generator, out, corpus_ref={"data": config["data"]}, docs_per_shard=2)


if __name__ == "__main__":
    main(sys.argv[1])
