"""Every shipped distillation config validates (and its --quick variant), without data or models."""

from __future__ import annotations

from pathlib import Path

import pytest

from retrieval_kd.pipeline import load_distill_config

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))
DISTILL = [p for p in CONFIGS if "output_dir:" in p.read_text() and "name:" in p.read_text()]


def test_the_shipped_distill_configs_are_found() -> None:
    assert {p.name for p in DISTILL} >= {
        "demo-scifact.yaml",
        "nfcorpus.yaml",
        "msmarco-margin-mse.yaml",
    }


@pytest.mark.parametrize("path", DISTILL, ids=lambda p: p.name)
@pytest.mark.parametrize("quick", [False, True])
def test_distill_config_validates(path: Path, quick: bool) -> None:
    config = load_distill_config(path, quick=quick)
    assert config.output_dir.endswith("-quick") == quick
    assert config.train_config("out", "store").student.model


# `rkd train` configs: one student trained on a score store (the LLM preference configs are
# another schema, validated by their own tests)
TRAIN = [p for p in CONFIGS if p not in DISTILL and "score_store:" in p.read_text()]


def test_the_shipped_train_configs_are_found() -> None:
    assert {p.name for p in TRAIN} >= {
        "teacher-bi-encoder-scifact.yaml",
        "teacher-cross-encoder-scifact.yaml",
    }


@pytest.mark.parametrize("path", TRAIN, ids=lambda p: p.name)
def test_train_config_validates(path: Path) -> None:
    from retrieval_kd.training.config import as_config

    config = as_config(path)  # strict: an unknown key or a value out of range raises
    assert config.student.model and config.training.output_dir
