"""The examples in the docstrings of the newer modules run as written (doctest)."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "retrieval_kd.candidates.fusion",
    "retrieval_kd.candidates.sources",
    "retrieval_kd.generation.cleaning",
    "retrieval_kd.generation.query_set",
    "retrieval_kd.generation.sampling",
    "retrieval_kd.generation.span_generator",
    "retrieval_kd.generation.templates",
    "retrieval_kd.pipeline.config",
    "retrieval_kd.training.false_negatives",
    "retrieval_kd.training.interpolation",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
