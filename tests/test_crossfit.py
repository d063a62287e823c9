"""scripts/crossfit_teacher.py: K teachers trained here, each scoring only queries it never saw."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import yaml
from _train_worker import make_toy_training

from retrieval_kd.data import load_dataset, read_run
from retrieval_kd.store import ScoreStore
from teachers import build_teacher

REPO = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location(
        "crossfit_teacher", REPO / "scripts" / "crossfit_teacher.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_folds_are_disjoint_cover_everything_and_are_seeded() -> None:
    folds = _script().folds_of([f"q{i}" for i in range(7)], 3, seed=1)
    flat = [q for fold in folds for q in fold]
    assert sorted(flat) == sorted(f"q{i}" for i in range(7)) and len(set(flat)) == 7
    assert sorted(len(f) for f in folds) == [2, 2, 3]
    assert folds == _script().folds_of([f"q{i}" for i in range(7)][::-1], 3, seed=1)


def test_every_query_is_scored_by_a_teacher_that_never_trained_on_it(
    tmp_path: Path, monkeypatch
) -> None:
    toy = make_toy_training(tmp_path / "toy")
    config = {
        "data": {"collection": str(toy["collection"]), "score_store": str(toy["store"])},
        "student": {"model": str(toy["model"]), "similarity": "cosine",
                    "query_max_length": 16, "passage_max_length": 32},
        "groups": {"size": 4, "strategy": "top", "depth": 8},
        "loss": {"info_nce": {"weight": 1.0, "temperature": 0.05, "in_batch": True}},
        "training": {"output_dir": str(tmp_path / "unused"), "max_steps": 2, "batch_size": 3,
                     "learning_rate": 1e-3, "warmup": 0.0, "logging_steps": 1},
    }  # fmt: skip
    path = tmp_path / "teacher.yaml"
    path.write_text(yaml.safe_dump(config))
    out = tmp_path / "cf"
    argv = ["crossfit_teacher.py", "--config", str(path), "--folds", "2", "--out", str(out)]
    monkeypatch.setattr(sys, "argv", argv)
    _script().main()

    oof = read_run(out / "oof.trec")
    source = ScoreStore(toy["store"]).to_run()
    assert set(oof) == set(source)  # every training query, each scored once
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["teacher_spec"] == f"scores:{out / 'oof.trec'}"
    for k, record in enumerate(manifest["per_fold"]):
        trained_on = set(ScoreStore(out / f"fold-{k}" / "store").query_ids())
        scored = set(ScoreStore(out / f"fold-{k}" / "scores").query_ids())
        assert scored and trained_on and not scored & trained_on
        assert trained_on | scored == set(source)
        query = sorted(scored)[0]  # the out-of-fold scores are teacher k's own
        docs = list(oof[query])
        teacher = build_teacher(f"bi-encoder:{record['teacher']}")
        data = load_dataset(str(toy["collection"]), "train")
        again = teacher.score([data.queries[query]], [data.corpus.texts(docs)])[0]
        np.testing.assert_allclose([oof[query][d] for d in docs], again, atol=1e-6)
