"""Every code block of README.md runs, so the user guide cannot rot.

The blocks run in README order, in one scratch folder (``configs/`` linked in, ``runs/``
written there), against toy collections named like the real ones (``scifact`` with train and
test splits, ``nfcorpus`` dev, ``cranfield`` test: short synthetic passages, so every command
finishes in seconds) and the pip-installed real models the README names. Bash blocks run with
``bash -euo pipefail``, Python blocks in a fresh interpreter. The first block, the two commands,
is what CI itself runs (``.ci/run`` calls ``scripts/test.sh``; ``scripts/demo.sh`` is the main
job), so here it is checked, not run: running the test suite from inside the test suite would
recurse.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import write_beir_folder

REPO = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"^```(bash|python)\n(.*?)^```", re.M | re.S)
WORDS = (
    "protein cell gene tumor virus immune brain heart blood drug dose trial patient risk diet "
    "sleep vitamin insulin obesity cancer therapy receptor enzyme membrane neuron muscle bone "
    "liver kidney lung skin infection vaccine antibody mutation signal pathway stress growth "
    "aging memory oxygen glucose lipid hormone stem tissue marker screen cohort outcome"
).split()


def blocks() -> list[tuple[str, str]]:
    """(language, code) of every fenced bash / python block, in README order."""
    return [(m.group(1), m.group(2)) for m in BLOCK.finditer((REPO / "README.md").read_text())]


def toy_collection(root: Path, name: str, splits: dict[str, int], seed: int) -> Path:
    """150 short passages; each query is 3 words of one passage, judged on it."""
    rng = random.Random(seed)
    docs = [
        {"_id": f"{name}-d{i}", "title": "", "text": " ".join(rng.sample(WORDS, 10))}
        for i in range(150)
    ]
    queries, qrels, n = [], {}, 0
    for split, count in splits.items():
        qrels[split] = []
        for _ in range(count):
            doc = docs[rng.randrange(len(docs))]
            queries.append({"_id": f"q{n}", "text": " ".join(doc["text"].split()[:3])})
            qrels[split].append((f"q{n}", doc["_id"], 1))
            n += 1
    return write_beir_folder(root / name, docs, queries, qrels)


@pytest.fixture
def sandbox(tmp_path: Path) -> dict:
    data = tmp_path / "data"
    scifact = toy_collection(data, "scifact", {"train": 80, "test": 20}, seed=0)
    toy_collection(data, "nfcorpus", {"dev": 20}, seed=1)
    toy_collection(data, "cranfield", {"test": 20}, seed=2)
    work = tmp_path / "work"
    work.mkdir()
    (work / "configs").symlink_to(REPO / "configs")
    (work / "my_docs.jsonl").write_bytes((scifact / "corpus.jsonl").read_bytes())
    (work / "my_queries.tsv").write_text(
        "".join(
            f"{q['_id']}\t{q['text']}\n"
            for q in map(json.loads, (scifact / "queries.jsonl").read_text().splitlines())
        )
    )
    (work / "my_qrels.tsv").write_bytes((scifact / "qrels" / "test.tsv").read_bytes())
    cache = tmp_path / "cache"
    cache.mkdir()
    real_models = Path(os.environ.get("HOME", "~")) / ".cache" / "retrieval_kd" / "models"
    if real_models.is_dir():  # the rebuilt offline copies: no need to rebuild them here
        (cache / "models").symlink_to(real_models)
    env = {
        **os.environ,
        "RKD_DATA_DIR": str(data),
        "RKD_CACHE_DIR": str(cache),
        "RKD_QUIET": "1",
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "2",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    env.pop("RKD_TEACHER", None)
    return {"work": work, "env": env}


def test_the_two_commands_are_what_ci_runs() -> None:
    language, code = blocks()[0]
    assert language == "bash"
    assert [line.split("#")[0].strip() for line in code.strip().splitlines()] == [
        "bash scripts/demo.sh",
        "bash scripts/test.sh",
    ]
    assert "bash scripts/test.sh" in (REPO / ".ci" / "run").read_text()
    assert (
        "rkd distill --config configs/demo-scifact.yaml"
        in (REPO / "scripts" / "demo.sh").read_text()
    )


@pytest.mark.real_model
def test_every_readme_block_runs(sandbox: dict) -> None:
    from retrieval_kd.models import resolve_model

    try:
        resolve_model("sentence-transformers/paraphrase-MiniLM-L3-v2")
        resolve_model("sentence-transformers/all-MiniLM-L6-v2")
    except Exception as err:  # noqa: BLE001
        pytest.skip(f"the README's models cannot be had here: {err}")
    found = blocks()[1:]
    assert len(found) >= 10, "the README lost its examples"
    for number, (language, code) in enumerate(found, start=2):
        command = ["bash", "-euo", "pipefail", "-c", code]
        if language == "python":
            command = [sys.executable, "-c", code]
        done = subprocess.run(
            command, cwd=sandbox["work"], env=sandbox["env"], capture_output=True, text=True
        )
        assert done.returncode == 0, (
            f"README block {number} ({language}) failed:\n{code}\n--- stderr ---\n"
            f"{done.stderr[-3000:]}"
        )
    work = sandbox["work"]
    assert (work / "runs" / "benchmark" / "benchmark.md").is_file()
    assert "How this model was made" in (work / "runs/train-scifact-l3/model/README.md").read_text()
