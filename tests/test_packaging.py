"""The top-level packages import from this repository, not from look-alike installed ones."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["retrieval_kd", "teachers", "students", "evaluation"])
def test_package_comes_from_this_repository(name: str) -> None:
    module = importlib.import_module(name)
    assert Path(module.__file__).resolve().is_relative_to(REPO / name)


def test_console_script_is_declared() -> None:
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["rkd"] == "retrieval_kd.cli:main"
    assert set(project["optional-dependencies"]) >= {"gpu", "llm", "dev"}
