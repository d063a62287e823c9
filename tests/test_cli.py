"""The ``rkd`` command line end to end: help, candidates, evaluate, errors, pending commands."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

RKD = [sys.executable, "-m", "retrieval_kd.cli"]


def rkd(
    *args: str, env_data_dir: Path | None = None, cache_dir: Path | None = None
) -> subprocess.CompletedProcess:
    import os

    env = dict(os.environ)
    if env_data_dir is not None:
        env["RKD_DATA_DIR"] = str(env_data_dir)
    if cache_dir is not None:
        env["RKD_CACHE_DIR"] = str(cache_dir)
    return subprocess.run([*RKD, *args], capture_output=True, text=True, env=env, timeout=600)


def test_help_lists_every_command() -> None:
    out = rkd("--help")
    assert out.returncode == 0
    for command in ("candidates", "score", "train", "index", "search", "evaluate", "distill"):
        assert command in out.stdout


@pytest.mark.parametrize(
    "command",
    [
        "candidates",
        "score",
        "train",
        "index",
        "search",
        "evaluate",
        "distill",
        "generate-queries",
        "push",
        "benchmark",
    ],
)
def test_every_command_has_help(command: str) -> None:
    out = rkd(command, "--help")
    assert out.returncode == 0, out.stderr
    assert "--" in out.stdout and "Usage" in out.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [(["retrieve"], "No such command"), (["evaluate", "--runs", "x"], "No such option")],
)
def test_usage_errors_are_a_message_not_a_traceback(args: list[str], message: str) -> None:
    out = rkd(*args)
    assert out.returncode == 2
    assert message in out.stderr and "Traceback" not in out.stderr


def test_a_normal_run_prints_no_library_debug_lines(toy_beir: Path, tmp_path: Path) -> None:
    for verbose, cache in ((False, tmp_path / "c1"), (True, tmp_path / "c2")):
        flags = ["--quiet", "-v"] if verbose else ["--quiet"]
        out = rkd(*flags, "candidates", "--data", str(toy_beir), "--split", "test", "--k", "3",
                  "--out", str(tmp_path / f"run{verbose}.trec"), cache_dir=cache)  # fmt: skip
        assert out.returncode == 0, out.stderr
        # bm25s sets its logger to DEBUG when imported and logs while building an index
        assert ("DEBUG bm25s" in out.stderr) is verbose, out.stderr


def test_candidates_then_evaluate_on_toy_folder(toy_beir: Path, tmp_path: Path) -> None:
    run_path = tmp_path / "bm25.trec"
    out = rkd(
        "--quiet",
        "candidates",
        "--data",
        "toy",
        "--split",
        "test",
        "--k",
        "3",
        "--out",
        str(run_path),
        env_data_dir=toy_beir.parent,
    )
    assert out.returncode == 0, out.stderr
    assert run_path.read_text().splitlines()[0].startswith("q1 Q0 d1 1 ")
    manifest = json.loads(Path(f"{run_path}.manifest.json").read_text())
    assert manifest["k"] == 3 and manifest["queries"] == 3
    assert manifest["sources"]["bm25"]["kind"] == "bm25"

    out = rkd(
        "--quiet",
        "evaluate",
        "--run",
        str(run_path),
        "--qrels",
        "toy/test",
        "--metrics",
        "ndcg@10,mrr@10",
        "--json",
        env_data_dir=toy_beir.parent,
    )
    assert out.returncode == 0, out.stderr
    metrics = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(metrics) == {"ndcg@10", "mrr@10"}
    assert metrics["mrr@10"] == pytest.approx(1.0)  # every query's relevant doc ranks first
    assert "| bm25 |" in out.stdout.replace("  ", " ") or "bm25" in out.stdout


def test_external_run_is_a_candidate_source(toy_beir: Path, tmp_path: Path) -> None:
    external = tmp_path / "ext.trec"
    external.write_text("q1 Q0 d4 1 9 x\nq1 Q0 d1 2 8 x\nq1 Q0 d2 3 7 x\nq2 Q0 d3 1 1 x\n")
    out_path = tmp_path / "cand.trec"
    out = rkd(
        "-q",
        "candidates",
        "--data",
        str(toy_beir),
        "--split",
        "test",
        "--k",
        "2",
        "--run",
        str(external),
        "--out",
        str(out_path),
    )
    assert out.returncode == 0, out.stderr
    assert [line.split()[2] for line in out_path.read_text().splitlines()] == ["d4", "d1", "d3"]


def test_bad_input_gives_one_line_and_no_output(toy_beir: Path, tmp_path: Path) -> None:
    external = tmp_path / "ext.trec"
    external.write_text("q1 Q0 d1 1 9 x\nq77 Q0 d1 1 9 x\n")
    out_path = tmp_path / "cand.trec"
    out = rkd(
        "-q",
        "candidates",
        "--data",
        str(toy_beir),
        "--split",
        "test",
        "--run",
        str(external),
        "--out",
        str(out_path),
    )
    assert out.returncode == 2
    assert out.stderr.strip() == f"error: {external}:2: run names unknown query 'q77'"
    assert not out_path.exists()


def test_unknown_metric_is_one_clear_error(toy_beir: Path, tmp_path: Path) -> None:
    run_path = tmp_path / "r.trec"
    run_path.write_text("q1 Q0 d1 1 9 x\n")
    out = rkd(
        "evaluate",
        "--run",
        str(run_path),
        "--qrels",
        str(toy_beir / "qrels/test.tsv"),
        "--metrics",
        "ndcg@10,bleu@4",
    )
    assert out.returncode == 2
    assert out.stderr.startswith("error:") and "bleu@4" in out.stderr
    assert "Traceback" not in out.stderr


def test_several_runs_give_table_significance_and_csv(toy_beir: Path, tmp_path: Path) -> None:
    good = tmp_path / "good.trec"
    bad = tmp_path / "bad.trec"
    good.write_text("q1 Q0 d1 1 3 x\nq1 Q0 d4 2 2 x\nq2 Q0 d3 1 1 x\nq3 Q0 d2 1 1 x\n")
    bad.write_text("q1 Q0 d3 1 3 x\nq1 Q0 d1 2 2 x\nq2 Q0 d1 1 1 x\nq3 Q0 d2 1 1 x\n")
    csv_path = tmp_path / "per_query.csv"
    out = rkd(
        "evaluate",
        "--run",
        str(bad),
        "--run",
        str(good),
        "--qrels",
        str(toy_beir / "qrels/test.tsv"),
        "--metrics",
        "ndcg@10,mrr@10",
        "--per-query",
        str(csv_path),
        "--json",
    )
    assert out.returncode == 0, out.stderr
    assert "bad" in out.stdout and "good" in out.stdout
    payload = json.loads(out.stdout.strip().splitlines()[-1])
    assert payload["good"]["mrr@10"] == pytest.approx(1.0)
    assert payload["bad"]["mrr@10"] == pytest.approx((0.5 + 0 + 1) / 3)
    assert csv_path.read_text().count("\n") > 1


@pytest.mark.real_data
def test_cli_end_to_end_on_cranfield(data_dir: Path, tmp_path: Path) -> None:
    run_path = tmp_path / "cranfield.trec"
    out = rkd(
        "-q",
        "candidates",
        "--data",
        "cranfield",
        "--split",
        "test",
        "--k",
        "100",
        "--out",
        str(run_path),
    )
    assert out.returncode == 0, out.stderr
    out = rkd(
        "-q",
        "evaluate",
        "--run",
        str(run_path),
        "--qrels",
        "cranfield/test",
        "--metrics",
        "ndcg@10,mrr@10,recall@100,map@100,precision@10",
        "--json",
    )
    assert out.returncode == 0, out.stderr
    metrics = json.loads(out.stdout.strip().splitlines()[-1])
    # BM25 on Cranfield scores well above chance; published nDCG@10 is around 0.3-0.45.
    assert 0.25 < metrics["ndcg@10"] < 0.6
    assert metrics["recall@100"] > metrics["precision@10"] > 0


@pytest.mark.real_data
def test_cli_matches_trec_eval_on_dl19(data_dir: Path) -> None:
    runs = data_dir / "msmarco-trecdl" / "runs"
    out = rkd(
        "evaluate",
        "--run",
        str(runs / "dl19.BM25.trec"),
        "--qrels",
        str(data_dir / "msmarco-trecdl/qrels/dl19.tsv"),
        "--metrics",
        "ndcg@10,mrr@10,recall@100",
        "--conventions",
        "trec-dl",
        "--json",
    )
    assert out.returncode == 0, out.stderr
    metrics = json.loads(out.stdout.strip().splitlines()[-1])
    assert metrics["ndcg@10"] == pytest.approx(0.5071, abs=5e-4)
    assert metrics["mrr@10"] == pytest.approx(0.7024, abs=5e-4)
    assert metrics["recall@100"] == pytest.approx(0.5521, abs=5e-4)


def test_push_uploads_a_student_folder_with_its_card(tmp_path: Path) -> None:
    from _train_worker import save_tiny_st

    from retrieval_kd.errors import InputError
    from retrieval_kd.models.push import push_to_hub

    class FakeHub:
        def __init__(self) -> None:
            self.calls: list[tuple[str, dict]] = []

        def create_repo(self, repo_id: str, **kwargs) -> str:
            self.calls.append(("create_repo", {"repo_id": repo_id, **kwargs}))
            return f"https://huggingface.co/{repo_id}"

        def upload_folder(self, **kwargs) -> None:
            self.calls.append(("upload_folder", kwargs))

    folder = save_tiny_st(tmp_path / "student")
    hub = FakeHub()
    url = push_to_hub(folder, "me/tiny-student", private=True, api=hub)
    assert url == "https://huggingface.co/me/tiny-student"
    (create, created), (upload, uploaded) = hub.calls
    assert (create, created["private"], created["exist_ok"]) == ("create_repo", True, True)
    assert upload == "upload_folder" and uploaded["repo_id"] == "me/tiny-student"
    assert Path(uploaded["folder_path"]) == folder and "checkpoint-*" in uploaded["ignore_patterns"]
    with pytest.raises(InputError, match="org/name"):
        push_to_hub(folder, "no-slash", api=hub)
    with pytest.raises(InputError, match="not a saved model"):
        push_to_hub(tmp_path, "me/x", api=hub)
    out = rkd("push", "--model", str(tmp_path / "nowhere"), "--repo", "me/x")
    assert out.returncode == 2 and "no such student folder" in out.stderr


def test_your_own_files_from_the_cli(toy_beir: Path, tmp_path: Path) -> None:
    import shutil

    corpus = shutil.copy(toy_beir / "corpus.jsonl", tmp_path / "docs.jsonl")
    queries = tmp_path / "questions.tsv"
    queries.write_text(
        "".join(
            f"{json.loads(line)['_id']}\t{json.loads(line)['text']}\n"
            for line in (toy_beir / "queries.jsonl").read_text().splitlines()
        )
    )
    qrels = shutil.copy(toy_beir / "qrels" / "test.tsv", tmp_path / "judged.tsv")
    cache = tmp_path / "cache"
    own = ("--corpus", str(corpus), "--queries", str(queries), "--qrels", str(qrels))
    out = rkd("--quiet", "candidates", *own, "--split", "test", "--k", "3",
              "--out", str(tmp_path / "own.trec"), cache_dir=cache)  # fmt: skip
    assert out.returncode == 0, out.stderr
    same = rkd("--quiet", "candidates", "--data", str(toy_beir), "--split", "test", "--k", "3",
               "--out", str(tmp_path / "folder.trec"), cache_dir=cache)  # fmt: skip
    assert same.returncode == 0, same.stderr
    lines = lambda p: [line.split()[:5] for line in p.read_text().splitlines()]  # noqa: E731
    assert lines(tmp_path / "own.trec") == lines(tmp_path / "folder.trec")
    # a bad record names its file and line, before anything runs
    queries.write_text(queries.read_text() + "broken-line-without-a-tab\n")
    bad = rkd("--quiet", "candidates", *own, "--k", "3", "--out", str(tmp_path / "x.trec"),
              cache_dir=cache)  # fmt: skip
    assert bad.returncode == 2 and "questions.tsv" in bad.stderr, bad.stderr
    assert f":{len(queries.read_text().splitlines())}" in bad.stderr, bad.stderr
    both = rkd("candidates", "--data", str(toy_beir), "--corpus", str(corpus), "--k", "3",
               "--out", str(tmp_path / "y.trec"))  # fmt: skip
    assert both.returncode == 2 and "not both" in both.stderr


def test_your_own_files_in_a_distill_config(
    toy_beir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from retrieval_kd.data import load_dataset

    monkeypatch.setenv("RKD_CACHE_DIR", str(tmp_path / "cache"))
    from retrieval_kd.errors import RKDError
    from retrieval_kd.pipeline.config import distill_config_from_dict

    data = {"corpus": str(toy_beir / "corpus.jsonl"), "queries": str(toy_beir / "queries.jsonl"),
            "qrels": {"train": str(toy_beir / "qrels" / "train.tsv"),
                      "test": str(toy_beir / "qrels" / "test.tsv")}}  # fmt: skip
    config = distill_config_from_dict(
        {
            "name": "own",
            "output_dir": str(tmp_path / "run"),
            "data": data,
            "student": {"model": "minilm-l3"},
        }  # fmt: skip
    )
    assert config.data.collection.startswith(str(tmp_path / "cache"))
    own = load_dataset(config.data.collection, "test")
    folder = load_dataset(str(toy_beir), "test")
    assert own.qrels == folder.qrels and own.queries == folder.queries
    assert own.corpus.ids == folder.corpus.ids
    with pytest.raises(RKDError, match="not both"):
        distill_config_from_dict(
            {"name": "x", "output_dir": "x", "data": {**data, "collection": "scifact"}}
        )
