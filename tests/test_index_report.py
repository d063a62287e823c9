"""``rkd index-report``: an ANN index's sweep against exact search, through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import faiss
import numpy as np
import pytest
from conftest import write_beir_folder
from tiny_models import WORDS, save_tiny_sentence_transformer
from typer.testing import CliRunner

from retrieval_kd.cli import app
from retrieval_kd.errors import RKDError

N_DOCS, N_QUERIES = 200, 12


@pytest.fixture(autouse=True)
def one_faiss_thread():
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(previous)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 200-doc collection of random tiny-vocabulary texts, a tiny student, three indexes.

    (The 5-doc ``toy_beir`` is too small for IVF: its lists would hold one or two vectors.)
    """
    root = tmp_path_factory.mktemp("index-report")
    rng = np.random.default_rng(0)

    def text(n: int) -> str:
        return " ".join(rng.choice(WORDS, n))

    corpus = [{"_id": f"d{i}", "title": "", "text": text(8)} for i in range(N_DOCS)]
    queries = [{"_id": f"q{i}", "text": text(4)} for i in range(N_QUERIES)]
    qrels = {"test": [(f"q{i}", f"d{rng.integers(N_DOCS)}", 1) for i in range(N_QUERIES)]}
    data = write_beir_folder(root / "coll", corpus, queries, qrels)
    student = save_tiny_sentence_transformer(root / "student")
    paths = {"data": data, "student": student}
    for kind in ("ivf", "flat", "ivfpq"):
        paths[kind] = root / kind
        out = invoke(
            "index",
            "--student",
            str(student),
            "--data",
            str(data),
            "--index",
            kind,
            "--out",
            str(paths[kind]),
        )
        assert out.exit_code == 0, out.output
    return paths


def invoke(*args: str):
    return CliRunner().invoke(app, ["-q", *args])


def report(setup: dict[str, Path], index: str, out: Path, *extra: str):
    queries = f"{setup['data']}/test"
    return invoke(
        "index-report",
        "--index",
        str(setup[index]),
        "--queries",
        queries,
        "--out",
        str(out),
        *extra,
    )


@pytest.mark.parametrize("exact", [False, True])
def test_ivf_report_writes_files_and_reaches_recall_one(setup, tmp_path, exact) -> None:
    extra = ["--exact", str(setup["flat"])] if exact else []
    out = report(setup, "ivf", tmp_path / "rep", "--k", "10", "--values", "1,2,5", *extra)
    assert out.exit_code == 0, out.output
    for name in ("report.md", "report.png", "report.json"):
        assert (tmp_path / "rep" / name).stat().st_size > 0
    lines = (tmp_path / "rep" / "report.md").read_text().strip().splitlines()
    body = lines[2:]
    assert len(body) == 1 + 3  # the exact row, then one per nprobe
    assert [line.split("|")[2].strip() for line in body] == [
        "-",
        "nprobe=1",
        "nprobe=2",
        "nprobe=5",
    ]
    assert "nDCG@10 (qrels)" in lines[0] and "| nprobe=5 |" in out.output
    saved = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert saved["exact"] == (str(setup["flat"]) if exact else "the ANN index's own vectors")
    rows = saved["rows"]
    assert rows[0]["index"] == "exact" and rows[0]["recall"] == 1.0
    assert rows[-1]["value"] == 5 and rows[-1]["recall"] == 1.0
    assert rows[-1]["ndcg10"] == pytest.approx(rows[0]["ndcg10"])
    assert all(r["qps"] > 0 for r in rows)


def test_pq_index_without_exact_is_one_clear_error(setup, tmp_path) -> None:
    out = report(setup, "ivfpq", tmp_path / "rep")
    assert isinstance(out.exception, RKDError) and "--exact" in str(out.exception)
    assert not (tmp_path / "rep").exists()
    out = report(setup, "ivfpq", tmp_path / "rep", "--exact", str(setup["ivf"]))
    assert isinstance(out.exception, RKDError) and "not a flat" in str(out.exception)
    out = report(setup, "ivfpq", tmp_path / "rep", "--exact", str(setup["flat"]))
    assert out.exit_code == 0, out.output
