"""Shared fixtures: an isolated cache, the real-data folder (or a skip), toy collections."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def real_data_dir() -> Path | None:
    """``$RKD_DATA_DIR``, else ``<repo>/../shared/data``, if it exists."""
    candidate = Path(os.environ.get("RKD_DATA_DIR") or REPO.parent / "shared" / "data")
    return candidate if candidate.is_dir() else None


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Every test writes caches under its own temp folder, never in $HOME."""
    monkeypatch.setenv("RKD_CACHE_DIR", str(tmp_path / "rkd-cache"))
    monkeypatch.setenv("RKD_QUIET", "1")


@pytest.fixture
def data_dir(monkeypatch: pytest.MonkeyPatch) -> Path:
    """The real collections (``../shared/data``); skips the test where they are absent."""
    found = real_data_dir()
    if found is None:
        pytest.skip("real collections not found: set RKD_DATA_DIR or put them in ../shared/data")
    monkeypatch.setenv("RKD_DATA_DIR", str(found))
    return found


def write_beir_folder(
    root: Path,
    corpus: list[dict],
    queries: list[dict],
    qrels: dict[str, list[tuple[str, str, int]]],
) -> Path:
    """Write a BEIR-layout folder (corpus.jsonl, queries.jsonl, qrels/<split>.tsv)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in corpus))
    (root / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    (root / "qrels").mkdir(exist_ok=True)
    for split, rows in qrels.items():
        lines = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t{g}" for q, d, g in rows]
        (root / "qrels" / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    return root


TOY_CORPUS = [
    {
        "_id": "d1",
        "title": "Solar power",
        "text": "Solar panels convert sunlight into electricity.",
    },
    {"_id": "d2", "title": "Wind power", "text": "Wind turbines turn moving air into electricity."},
    {"_id": "d3", "title": "Cooking", "text": "Boil the pasta for ten minutes in salted water."},
    {"_id": "d4", "title": "", "text": "Photovoltaic cells and solar panels on rooftops."},
    {"_id": "d5", "title": "Rivers", "text": "Hydroelectric dams use flowing water."},
]
TOY_QUERIES = [
    {"_id": "q1", "text": "how do solar panels make electricity"},
    {"_id": "q2", "text": "cooking pasta in water"},
    {"_id": "q3", "text": "wind turbines"},
    {"_id": "q4", "text": "an unjudged query about dams"},
]
TOY_QRELS = {
    "test": [("q1", "d1", 2), ("q1", "d4", 1), ("q2", "d3", 1), ("q3", "d2", 1), ("q3", "d5", 0)],
    "train": [("q4", "d5", 1)],
}


@pytest.fixture
def toy_beir(tmp_path: Path) -> Path:
    """A 5-document BEIR folder with test and train splits."""
    return write_beir_folder(tmp_path / "toy", TOY_CORPUS, TOY_QUERIES, TOY_QRELS)
