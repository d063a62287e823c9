"""The scoring loop: content, manifest, kill -9 resume, depth increase, errors, distributed."""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from retrieval_kd.errors import InputError, RKDError
from retrieval_kd.store import ScoreStore, plan_candidates, resolve_rank, score_candidates

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
sys.path.insert(0, str(TESTS))
worker = importlib.import_module("_score_worker")
ToyScorer, toy_data, toy_score, corpus_lookup = (
    worker.ToyScorer,
    worker.toy_data,
    worker.toy_score,
    worker.corpus_lookup,
)
QUERIES, CANDIDATES, CORPUS = toy_data()
TEXT = corpus_lookup(CORPUS)
DEPTH = 6
N_PAIRS = len(QUERIES) * DEPTH


def _content(store: ScoreStore) -> dict[str, dict[str, float]]:
    return store.to_run()


def _expected(depth: int = DEPTH) -> dict[str, dict[str, float]]:
    plan = plan_candidates(CANDIDATES, depth)
    return {
        q: {d: float(toy_score(QUERIES[q], CORPUS[d])) for d in docs} for q, docs in plan.items()
    }


def _score(out, scorer=None, **kwargs):
    kwargs = {"depth": DEPTH, "queries_per_shard": 2, "queries_per_call": 2, **kwargs}
    scorer = scorer or ToyScorer()
    return score_candidates(scorer, QUERIES, CANDIDATES, TEXT, out, **kwargs)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["RKD_QUIET"] = "1"
    env.update(extra)
    return env


def _worker(tmp_path: Path, name: str, **config) -> Path:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(config))
    return path


def _logged_pairs(log: Path) -> list[tuple[str, str]]:
    if not log.exists():
        return []
    return [tuple(line.split("\t")) for line in log.read_text().splitlines()]


def _stored_pairs(folder: Path) -> set[tuple[str, str]]:
    run = ScoreStore(folder).to_run()
    return {(QUERIES[q], CORPUS[d]) for q, docs in run.items() for d in docs}


def _wait_for(condition, proc: subprocess.Popen, what: str) -> None:
    """Poll until ``condition()``; fail if the worker exits first (failsafe, not a timing test)."""
    deadline = time.monotonic() + 300
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"worker exited with {proc.returncode} before {what}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"worker never reached {what}")
        time.sleep(0.02)


def test_scores_and_manifest(tmp_path):
    scorer = ToyScorer()
    store = _score(tmp_path / "s", scorer, candidate_source={"name": "toy", "run_sha256": "ab"})
    assert _content(store) == _expected()
    assert len(store) == len(QUERIES) and store.num_pairs == N_PAIRS
    assert len(list((tmp_path / "s").glob("shard-r00-*.parquet"))) == len(QUERIES) // 2
    manifest = store.manifest
    assert manifest["teacher"] == scorer.describe()
    source = manifest["candidate_source"]
    assert source["name"] == "toy" and source["run_sha256"] == "ab" and source["depth"] == DEPTH
    assert len(source["candidates_sha256"]) == 64
    assert manifest["counts"] == {
        "queries": len(QUERIES),
        "pairs": N_PAIRS,
        "shards": len(QUERIES) // 2,
        "empty_passages": 0,
    }
    cost = manifest["cost"]
    assert cost["pairs_scored"] == N_PAIRS and cost["sessions"] == 1
    assert cost["peak_memory_mb"] > 0 and cost["wall_s_summed_over_processes"] >= 0
    # labels absent without qrels; the top-DEPTH candidates by candidate score were scored
    assert store.get("q0").labels is None
    top = sorted(CANDIDATES["q0"].items(), key=lambda x: (-x[1], x[0]))[:DEPTH]
    assert set(store.get("q0").doc_ids) == {d for d, _ in top}


def test_rerun_of_a_complete_store_does_nothing(tmp_path):
    _score(tmp_path / "s")
    before = (tmp_path / "s" / "manifest.json").read_text()
    again = ToyScorer()
    store = _score(tmp_path / "s", again)
    assert again.calls == [] and _content(store) == _expected()
    assert (tmp_path / "s" / "manifest.json").read_text() == before


def test_kill_9_at_a_shard_boundary_then_resume_scores_each_pair_once(tmp_path):
    out, log = tmp_path / "s", tmp_path / "pairs.log"
    config = _worker(tmp_path, "w", out_dir=str(out), log=str(log), block_at_shards=3)
    proc = subprocess.Popen(
        [sys.executable, str(TESTS / "_score_worker.py"), str(config)], env=_env()
    )
    _wait_for((tmp_path / "ready").exists, proc, "3 shards")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = _logged_pairs(log)
    assert len(first) == 3 * 2 * DEPTH  # 3 shards of 2 queries, all committed
    assert ScoreStore(out).manifest is None  # unfinished: no manifest

    resumed = ToyScorer(log=log)
    store = _score(out, resumed)
    second = _logged_pairs(log)[len(first) :]
    assert _content(store) == _expected()
    assert len(first) + len(second) == N_PAIRS  # nothing scored twice
    assert set(first).isdisjoint(second)
    cost = store.manifest["cost"]
    assert cost["sessions"] == 2 and cost["pairs_scored"] == N_PAIRS


def test_kill_9_anywhere_then_resume_rescores_only_uncommitted_pairs(tmp_path):
    out, log = tmp_path / "s", tmp_path / "pairs.log"
    config = _worker(tmp_path, "w", out_dir=str(out), log=str(log), sleep=0.03, queries_per_shard=4)
    proc = subprocess.Popen(
        [sys.executable, str(TESTS / "_score_worker.py"), str(config)], env=_env()
    )
    # kill once a shard exists and more pairs were scored since (likely still in the buffer)
    _wait_for(lambda: len(_logged_pairs(log)) > 4 * DEPTH, proc, "a shard and more pairs")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = _logged_pairs(log)
    committed = _stored_pairs(out)  # complete shards only, whatever the kill interrupted
    assert committed <= set(first) and len(committed) >= 4 * DEPTH

    store = _score(out, ToyScorer(log=log), queries_per_shard=4)
    second = _logged_pairs(log)[len(first) :]
    assert _content(store) == _expected()
    assert committed.isdisjoint(second)  # a stored pair is never scored again
    assert committed | set(second) == _stored_pairs(out)
    # the only pairs scored twice are those scored but not yet in a shard at the kill
    assert len(first) + len(second) == N_PAIRS + len(set(first) - committed)
    assert not list(out.glob(".*.tmp"))


def test_depth_increase_scores_only_new_pairs(tmp_path):
    _score(tmp_path / "s", depth=3)
    deeper = ToyScorer()
    store = _score(tmp_path / "s", deeper, depth=DEPTH)
    sent = sum(len(p) for _, passages in deeper.calls for p in passages)
    assert sent == N_PAIRS - 3 * len(QUERIES)
    assert _content(store) == _expected(DEPTH)
    assert store.manifest["candidate_source"]["depth"] == DEPTH


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 1e39])
def test_non_finite_scores_fail_without_a_partial_shard(tmp_path, bad):
    out = tmp_path / "s"
    scorer = ToyScorer(bad_query=QUERIES["q5"], bad_value=bad)
    with pytest.raises(RKDError, match=r"non-finite score .*'q5'") as info:
        _score(out, scorer)
    assert "toy-teacher" in str(info.value)
    store = ScoreStore(out)
    assert "q5" not in store and "q4" not in store  # q4 shared the failing shard
    # sorted ids q0 q1 | q10 q11 | q2 q3 | q4 q5: three committed shards
    assert store.query_ids() == ["q0", "q1", "q10", "q11", "q2", "q3"]
    assert not list(out.glob(".*.tmp")) and store.manifest is None
    resumed = _score(out)  # fixed teacher: resumes after the committed shards
    assert _content(resumed) == _expected()


class _WrongCount(ToyScorer):
    def __init__(self, mode: str):
        super().__init__()
        self.mode = mode

    def score(self, queries, passages, **ids):
        out = super().score(queries, passages)
        return out[:-1] if self.mode == "arrays" else [s[:-1] for s in out]


@pytest.mark.parametrize(
    ("mode", "message"),
    [("arrays", "returned 1 score arrays for 2 queries"), ("scores", "returned 5 scores")],
)
def test_wrong_number_of_scores_fails(tmp_path, mode, message):
    with pytest.raises(RKDError, match=message):
        _score(tmp_path / "s", _WrongCount(mode))
    assert len(ScoreStore(tmp_path / "s")) == 0


def test_candidate_query_missing_from_queries_is_an_input_error(tmp_path):
    candidates = {**CANDIDATES, "q99": {"d1": 1.0}}
    with pytest.raises(InputError, match="'q99'"):
        score_candidates(ToyScorer(), QUERIES, candidates, TEXT, tmp_path / "s")
    assert not (tmp_path / "s").exists()


def test_unknown_doc_id_is_an_input_error(tmp_path):
    candidates = {"q0": {"nowhere": 1.0}}
    with pytest.raises(InputError, match="'nowhere'"):
        score_candidates(ToyScorer(), QUERIES, candidates, TEXT, tmp_path / "s")


def test_empty_passages_are_not_sent_and_rank_last(tmp_path):
    corpus = {**CORPUS}
    plan = plan_candidates(CANDIDATES, DEPTH)
    empty_doc = plan["q0"][0]  # q0's top candidate has no text
    corpus[empty_doc] = "   "
    candidates = {**CANDIDATES, "q1": {empty_doc: 1.0}}  # q1's only candidate is empty
    n_empty = sum(empty_doc in docs for docs in plan_candidates(candidates, DEPTH).values())
    scorer = ToyScorer()
    store = score_candidates(
        scorer, QUERIES, candidates, corpus_lookup(corpus), tmp_path / "s", depth=DEPTH
    )
    assert all("   " not in p for _, passages in scorer.calls for p in passages)
    q0 = store.get("q0")
    assert q0.doc_ids[-1] == empty_doc  # ranks last ...
    others = q0.scores[:-1]
    assert q0.scores[-1] < others.min()  # ... just below the lowest other score
    assert q0.scores[-1] == np.nextafter(others.min(), np.float32(-np.inf))
    assert store.get("q1").scores.tolist() == [0.0]
    assert store.manifest["counts"]["empty_passages"] == n_empty >= 2


def test_labels_from_qrels_and_added_positives(tmp_path):
    plan = plan_candidates(CANDIDATES, DEPTH)
    outside = next(d for d in CANDIDATES["q0"] if d not in plan["q0"])
    qrels = {"q0": {plan["q0"][1]: 2, outside: 1}}
    store = _score(tmp_path / "s", qrels=qrels, add_qrels_positives=True)
    q0 = store.get("q0")
    labels = dict(zip(q0.doc_ids, q0.labels.tolist(), strict=True))
    assert labels[plan["q0"][1]] == 2 and labels[outside] == 1
    assert sum(labels.values()) == 3 and len(q0.doc_ids) == DEPTH + 1
    assert store.get("q3").labels.tolist() == [0] * DEPTH


def test_another_teacher_is_refused(tmp_path):
    _score(tmp_path / "s", depth=2)
    with pytest.raises(RKDError, match="another teacher"):
        _score(tmp_path / "s", ToyScorer(name="other-teacher"))


def test_resolve_rank_from_environment(monkeypatch):
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    assert resolve_rank() == (0, 1)
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "2")
    assert resolve_rank() == (2, 4)
    monkeypatch.setenv("RANK", "3")
    assert resolve_rank() == (3, 4) and resolve_rank(rank=1) == (1, 4)
    with pytest.raises(RKDError, match="rank 5"):
        resolve_rank(rank=5)


def _check_distributed_store(out: Path, reference: Path) -> None:
    store = ScoreStore(out)
    assert _content(store) == _content(ScoreStore(reference))
    assert {p.name[:9] for p in out.glob("shard-*.parquet")} == {"shard-r00", "shard-r01"}
    assert sorted(p.name for p in out.glob("manifest*.json")) == [
        "manifest-r00.json",
        "manifest-r01.json",
        "manifest.json",
    ]
    manifest = store.manifest
    assert manifest["world_size"] == 2
    assert manifest["counts"]["pairs"] == N_PAIRS and manifest["cost"]["pairs_scored"] == N_PAIRS


def test_two_ranks_from_environment_read_as_one_store(tmp_path):
    reference = tmp_path / "single"
    _score(reference)
    out = tmp_path / "s"
    config = _worker(tmp_path, "w", out_dir=str(out))
    procs = [
        subprocess.Popen(
            [sys.executable, str(TESTS / "_score_worker.py"), str(config)],
            env=_env(RANK=str(r), WORLD_SIZE="2"),
        )
        for r in range(2)
    ]
    assert [p.wait() for p in procs] == [0, 0]
    _check_distributed_store(out, reference)


def test_torchrun_two_processes_read_as_one_store(tmp_path):
    pytest.importorskip("torch.distributed")
    reference = tmp_path / "single"
    _score(reference)
    out = tmp_path / "s"
    config = _worker(tmp_path, "w", out_dir=str(out), dist=True)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc_per_node", "2", str(TESTS / "_score_worker.py"), str(config)]
    env = _env(OMP_NUM_THREADS="1")
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    _check_distributed_store(out, reference)
