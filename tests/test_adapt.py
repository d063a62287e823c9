"""``rkd distill`` on a corpus with no training queries: generate -> candidates -> teacher ->
filter -> distilled + QGen students -> report, on tiny models in seconds."""

from __future__ import annotations

import copy
import os
import shutil
from pathlib import Path

import pytest
from test_pipeline import toy_collection
from tiny_models import save_tiny_sentence_transformer

from retrieval_kd.data import load_dataset, read_qrels
from retrieval_kd.errors import InputError, RKDError
from retrieval_kd.manifest import read_manifest
from retrieval_kd.pipeline import DistillRun
from retrieval_kd.pipeline.config import distill_config_from_dict


@pytest.fixture
def adapt_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    collection = toy_collection(tmp_path)
    (collection / "qrels" / "train.tsv").unlink()  # the corpus is the only training input
    monkeypatch.setenv("RKD_DATA_DIR", str(collection.parent))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    student = save_tiny_sentence_transformer(tmp_path / "student", seed=0)
    teacher = save_tiny_sentence_transformer(tmp_path / "teacher", seed=1)
    return {
        "name": "toy-adapt",
        "output_dir": str(tmp_path / "run"),
        "data": {"collection": "toy", "eval_split": "test", "train_queries": "generate"},
        "generate": {"generator": "span:sentence", "per_doc": 2, "min_words": 2},
        "filters": {"round_trip": "teacher", "round_trip_k": 3},
        "candidates": {
            "sources": ["bm25", f"dense:{student}"],
            "fusion": "union",
            "train_depth": 4,
            "eval_depth": 10,
        },
        "teacher": {
            "model": f"ensemble:zscore:bm25*1+bi-encoder:{teacher}*1",
            "fallbacks": [],
        },
        "student": {"model": str(student), "query_max_length": 16, "passage_max_length": 32},
        "groups": {"size": 4, "depth": 5, "short_queries": "skip"},
        "loss": {"margin_mse": 1.0, "kl": 1.0},
        "baseline": {"enabled": True},
        "training": {"epochs": 1, "batch_size": 4, "logging_steps": 1, "use_cpu": True},
        "evaluation": {"every_steps": None},
        "search": {"k": 10},
    }


def test_adapt_runs_end_to_end_from_the_corpus_alone(adapt_config: dict) -> None:
    run = DistillRun(distill_config_from_dict(adapt_config), echo=lambda line: None)
    names = [stage.name for stage in run.plan()]
    assert names[:3] == ["generate", "candidates-train", "candidates-eval"]
    assert names.index("filter") < names.index("train-distilled")
    run.run()
    root = Path(adapt_config["output_dir"])
    generated = load_dataset(str(root / "generate" / "queries"), "train")
    assert all(q.startswith("gen-") for q in generated.queries)
    filtered = read_manifest(root / "filter" / "queries")
    counts = filtered["counts"]
    assert counts["in"] == len(generated.queries) == counts["kept"] + counts["dropped_round_trip"]
    assert counts["kept_teacher-free"] == counts["in"]  # the teacher's filter spares the baseline
    qrels = read_qrels(root / "filter" / "queries" / "qrels" / "train.tsv")
    assert len(qrels) == counts["kept"]
    # every training query is a generated one, with its source scored by the teacher
    distilled = read_manifest(root / "train-distilled" / "model")
    assert distilled["inputs"]["collection"].endswith("filter/queries/train")
    baseline = read_manifest(root / "train-baseline" / "model")
    assert baseline["inputs"]["collection"].endswith("filter/queries/teacher-free")
    from retrieval_kd.store import ScoreStore

    store = ScoreStore(root / "teacher-train" / "store")
    sources = {q: next(iter(d)) for q, d in generated.qrels.items()}
    assert all(sources[q] in store.get(q).doc_ids for q in sources)
    report = (root / "report" / "report.md").read_text()
    for row in ("BM25", "teacher", "student (zero-shot)", "student (distilled)", "QGen"):
        assert row in report
    assert "queries generated from its corpus (no split's queries or qrels)" in report
    assert "## Generated training queries" in report and "| generated query |" in report
    assert "the teacher ranks the source document first for" in report
    assert "round trip dropped" in report and "generate" in report  # the cost table


def test_rerun_is_a_no_op_and_a_filter_change_reruns_from_the_filter(adapt_config: dict):
    config = distill_config_from_dict(adapt_config)
    DistillRun(config, echo=lambda line: None).run()
    again = DistillRun(config, echo=lambda line: None)
    assert all(state.startswith("   done") for state in again.describe_plan()[2:])
    changed = copy.deepcopy(adapt_config)
    changed["filters"]["round_trip_k"] = 1
    plan = DistillRun(distill_config_from_dict(changed)).describe_plan()
    states = {line.split()[1]: line.split()[0] for line in plan[2:]}
    assert states["generate"] == states["teacher-train"] == states["candidates-train"] == "done"
    assert states["filter"] == "stale" and states["train-distilled"] == "stale"


def test_a_generation_interrupted_mid_way_resumes(adapt_config: dict) -> None:
    config = distill_config_from_dict(adapt_config)
    DistillRun(config, echo=lambda line: None).run(until="generate")
    root = Path(adapt_config["output_dir"])
    shards = sorted((root / "generate" / "queries" / "shards").glob("shard-*.jsonl"))
    reference = (root / "generate" / "queries" / "queries.jsonl").read_text()
    # as if killed after the first shard: the stage has no manifest, one shard is missing
    (root / "generate" / "manifest.json").unlink()
    (root / "generate" / "queries" / "manifest.json").unlink()
    for shard in shards[1:]:
        shard.unlink()
    first = shards[0].stat().st_mtime_ns
    DistillRun(config, echo=lambda line: None).run(until="generate")
    assert shards[0].stat().st_mtime_ns == first  # a finished shard is not regenerated
    assert (root / "generate" / "queries" / "queries.jsonl").read_text() == reference
    assert read_manifest(root / "generate")["resumed"] is True


def test_bad_generation_settings_fail_before_any_stage(adapt_config: dict, tmp_path: Path):
    bad = copy.deepcopy(adapt_config)
    bad["generate"]["generator"] = "llm:no-such-org/no-such-lm"
    with pytest.raises(RKDError, match="no-such-lm"):
        DistillRun(distill_config_from_dict(bad))
    bad["generate"]["template"] = str(tmp_path / "t.txt")
    (tmp_path / "t.txt").write_text("Write a question about it.")
    with pytest.raises(InputError, match=r"\{passage\} exactly once"):
        DistillRun(distill_config_from_dict(bad))
    bad = copy.deepcopy(adapt_config)
    bad["candidates"]["sources"] = ["bm25", "dense:no-such-org/no-such-retriever"]
    with pytest.raises(RKDError, match="no-such-retriever"):
        DistillRun(distill_config_from_dict(bad))
    bad = copy.deepcopy(adapt_config)
    bad["data"]["train_queries"] = "invent"
    with pytest.raises(RKDError, match="data.train_queries"):
        distill_config_from_dict(bad)
    assert not Path(adapt_config["output_dir"]).exists()


def test_empty_corpus_is_refused(adapt_config: dict) -> None:
    (Path(os.environ["RKD_DATA_DIR"]) / "toy" / "corpus.jsonl").write_text("")
    with pytest.raises(InputError, match="corpus is empty"):
        DistillRun(distill_config_from_dict(adapt_config))


def test_filters_that_leave_nothing_stop_before_training(adapt_config: dict) -> None:
    bad = copy.deepcopy(adapt_config)
    bad["filters"] = {"teacher_floor": 1e9}
    with pytest.raises(InputError, match="zero generated queries left after filtering"):
        DistillRun(distill_config_from_dict(bad), echo=lambda line: None).run()
    root = Path(adapt_config["output_dir"])
    assert not (root / "train-distilled").exists()
    shutil.rmtree(root)
