"""``scores:<path>``: a teacher's stored scores served back by id, alone or in an ensemble."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from retrieval_kd.data import write_run
from retrieval_kd.errors import InputError, RKDError
from retrieval_kd.store import score_candidates
from teachers import build_teacher
from teachers.run_scores import RunScoreTeacher

QUERIES = {"q1": "tides and the moon", "q2": "bread"}
CANDIDATES = {"q1": {"a": 3.0, "b": 2.0, "c": 1.0}, "q2": {"b": 5.0, "d": 4.0}}
TEACHER = {"q1": {"a": 0.1, "b": 0.9, "c": 0.5}, "q2": {"b": -1.0, "d": 2.0}}


def _texts(ids: list[str]) -> list[str]:
    return [f"text of {i}" for i in ids]


def _store(tmp_path: Path) -> Path:
    score_candidates(
        RunScoreTeacher(TEACHER, name="expensive"), QUERIES, CANDIDATES, _texts, tmp_path / "s"
    )
    return tmp_path / "s"


def _score(teacher, query_ids=("q1", "q2")):
    docs = [list(CANDIDATES[q]) for q in query_ids]
    texts = [_texts(d) for d in docs]
    return teacher.score(
        [QUERIES[q] for q in query_ids], texts, query_ids=list(query_ids), doc_ids=docs
    )


@pytest.mark.parametrize("form", ["store", "stage", "trec"])
def test_stored_scores_are_served_back_by_id(tmp_path: Path, form: str) -> None:
    store = _store(tmp_path)
    if form == "stage":  # an rkd distill / rkd score stage folder holds its store in store/
        stage = tmp_path / "stage"
        stage.mkdir()
        store.rename(stage / "store")
        path = stage
    elif form == "trec":
        path = write_run(TEACHER, tmp_path / "teacher.trec")
    else:
        path = store
    teacher = build_teacher(f"scores:{path}")
    got = _score(teacher)
    # a score store keeps float32, a run file full precision
    np.testing.assert_allclose(got[0], [0.1, 0.9, 0.5], rtol=1e-6)
    np.testing.assert_allclose(got[1], [-1.0, 2.0], rtol=1e-6)
    described = teacher.describe()
    assert described["kind"] == "scores"
    if form != "trec":  # the stored teacher's own identity travels into the new store
        assert described["teacher"]["name"] == "expensive"


def test_stored_scores_combine_in_an_ensemble(tmp_path: Path) -> None:
    store = _store(tmp_path)
    ensemble = build_teacher(f"ensemble:zscore:run*1+scores:{store}*2", CANDIDATES)
    got = _score(ensemble)[0]

    def z(x):
        x = np.asarray(x, dtype=float)
        return (x - x.mean()) / x.std()

    expected = z([3.0, 2.0, 1.0]) + 2 * z([0.1, 0.9, 0.5])
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_a_pair_the_store_never_scored_is_an_error(tmp_path: Path) -> None:
    teacher = build_teacher(f"scores:{_store(tmp_path)}")
    with pytest.raises(InputError, match="no score for query .q1.*.zzz."):
        teacher.score(["x"], [["t"]], query_ids=["q1"], doc_ids=[["zzz"]])
    with pytest.raises(RKDError, match="by id"):
        teacher.score(["x"], [["t"]])


def test_missing_or_unfinished_stores_fail_before_anything_runs(tmp_path: Path) -> None:
    from retrieval_kd.pipeline.teacher_choice import check_resolvable

    with pytest.raises(RKDError, match="no such file"):
        check_resolvable(f"ensemble:zscore:run*1+scores:{tmp_path / 'nope'}*1")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="not a finished score store"):
        build_teacher(f"scores:{tmp_path / 'empty'}")
    with pytest.raises(RKDError, match="needs a path"):
        build_teacher({"kind": "scores"})
