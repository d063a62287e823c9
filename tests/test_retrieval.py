"""Index a corpus with a (tiny) student, search it, and refuse another student's index."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tiny_models import save_tiny_sentence_transformer

from retrieval_kd.data import load_dataset
from retrieval_kd.errors import RKDError
from retrieval_kd.retrieval import StudentEncoder, index_corpus, search_index


def test_flat_index_search_equals_brute_force(toy_beir: Path, tmp_path: Path) -> None:
    student = save_tiny_sentence_transformer(tmp_path / "student")
    dataset = load_dataset(str(toy_beir), "test")
    index = index_corpus(str(student), dataset.corpus, tmp_path / "index", "flat", chunk_size=2)
    assert index.ntotal == 5
    run = search_index(tmp_path / "index", dataset.queries, k=3)

    encoder = StudentEncoder(str(student))
    doc_ids = dataset.corpus.ids
    docs = encoder.encode_passages(dataset.corpus.texts(doc_ids))
    for query_id, text in dataset.queries.items():
        scores = docs @ encoder.encode_queries([text])[0]
        expected = [doc_ids[i] for i in np.argsort(-scores, kind="stable")[:3]]
        assert list(run[query_id]) == expected
        # chunks are stored in fp16 before the index is built: scores agree to ~1e-4 relative
        assert list(run[query_id].values()) == pytest.approx(sorted(scores)[::-1][:3], rel=1e-3)


def test_index_of_another_student_is_refused(toy_beir: Path, tmp_path: Path) -> None:
    first = save_tiny_sentence_transformer(tmp_path / "a", seed=0)
    second = save_tiny_sentence_transformer(tmp_path / "b", seed=1)
    dataset = load_dataset(str(toy_beir), "test")
    index_corpus(str(first), dataset.corpus, tmp_path / "index")
    with pytest.raises(RKDError, match="student"):
        search_index(tmp_path / "index", dataset.queries, encoder=StudentEncoder(str(second)))


def test_cli_index_and_search(toy_beir: Path, tmp_path: Path) -> None:
    import json
    import os
    import subprocess
    import sys

    student = save_tiny_sentence_transformer(tmp_path / "student")
    env = {**os.environ, "RKD_DATA_DIR": str(toy_beir.parent)}
    cli = [sys.executable, "-m", "retrieval_kd.cli", "-q"]
    out = subprocess.run(
        [
            *cli,
            "index",
            "--student",
            str(student),
            "--data",
            "toy",
            "--index",
            "flat",
            "--out",
            str(tmp_path / "idx"),
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    out = subprocess.run(
        [
            *cli,
            "search",
            "--index",
            str(tmp_path / "idx"),
            "--queries",
            "toy/test",
            "--k",
            "2",
            "--out",
            str(tmp_path / "run.trec"),
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    lines = (tmp_path / "run.trec").read_text().splitlines()
    assert len(lines) == 6  # 3 judged queries x top 2
    manifest = json.loads((tmp_path / "run.trec.manifest.json").read_text())
    assert manifest["cost"]["queries_per_s"] > 0


def test_encoder_backend_is_checked_and_recorded(tmp_path: Path) -> None:
    import importlib.util

    student = save_tiny_sentence_transformer(tmp_path / "student")
    with pytest.raises(RKDError, match="backend must be one of"):
        StudentEncoder(str(student), backend="tensorrt")
    assert "backend" not in StudentEncoder(str(student)).settings  # torch: settings as before
    if importlib.util.find_spec("optimum") is None:  # the project's environment
        with pytest.raises(RKDError, match="backend 'onnx' could not load"):
            StudentEncoder(str(student), backend="onnx")
    else:
        assert StudentEncoder(str(student), backend="onnx").settings["backend"] == "onnx"
