"""``rkd distill`` on a toy collection with tiny models: plan, fail-fast errors, end to end,
skipping finished stages, and re-running only what a changed loss touches."""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path

import pytest
import yaml
from conftest import write_beir_folder
from tiny_models import WORDS, save_tiny_sentence_transformer

from retrieval_kd.errors import InputError, RKDError
from retrieval_kd.pipeline import DistillRun, load_distill_config
from retrieval_kd.pipeline.config import distill_config_from_dict
from retrieval_kd.pipeline.stages import Stage, run_stage, stage_state


def toy_collection(root: Path) -> Path:
    """24 documents, 10 train + 6 test queries; each query's words come from its document."""
    rng = random.Random(0)
    docs = [
        {"_id": f"d{i}", "title": "", "text": " ".join(rng.sample(WORDS, 8))} for i in range(24)
    ]
    queries, qrels = [], {"train": [], "test": []}
    for i in range(16):
        doc = docs[i]
        queries.append({"_id": f"q{i}", "text": " ".join(doc["text"].split()[:3])})
        qrels["train" if i < 10 else "test"].append((f"q{i}", doc["_id"], 1))
    return write_beir_folder(root / "toy", docs, queries, qrels)


@pytest.fixture
def toy_config(tmp_path: Path, monkeypatch) -> dict:
    collection = toy_collection(tmp_path)
    monkeypatch.setenv("RKD_DATA_DIR", str(collection.parent))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    student = save_tiny_sentence_transformer(tmp_path / "student", seed=0)
    teacher = save_tiny_sentence_transformer(tmp_path / "teacher", seed=1)
    return {
        "name": "toy",
        "output_dir": str(tmp_path / "run"),
        "data": {"collection": "toy", "train_split": "train", "eval_split": "test"},
        "candidates": {"train_depth": 6, "eval_depth": 10},
        "teacher": {
            "model": "no-such-org/no-such-teacher",
            "fallbacks": [f"ensemble:zscore:run*1+bi-encoder:{teacher}*1"],
        },
        "student": {"model": str(student), "query_max_length": 16, "passage_max_length": 32},
        "groups": {"size": 4, "depth": 5},
        "loss": {"margin_mse": 1.0, "kl": 1.0},
        "baseline": {"enabled": True},
        "training": {
            "epochs": 1,
            "batch_size": 4,
            "logging_steps": 1,
            "save_steps": 2,
            "use_cpu": True,
        },
        "evaluation": {"every_steps": None},
        "search": {"k": 10},
    }


def write(config: dict, path: Path) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


def test_typo_key_fails_before_anything(toy_config: dict) -> None:
    bad = copy.deepcopy(toy_config)
    bad["training"]["learnig_rate"] = 1e-4
    with pytest.raises(RKDError, match="unknown config key 'training.learnig_rate'"):
        distill_config_from_dict(bad)
    bad = copy.deepcopy(toy_config)
    bad["candidats"] = {}
    with pytest.raises(RKDError, match="unknown config key 'candidats'"):
        distill_config_from_dict(bad)
    bad = copy.deepcopy(toy_config)
    bad["loss"] = {"margin_mse": 1.0, "kl_divergence": 1.0}
    with pytest.raises(RKDError, match="kl_divergence"):
        distill_config_from_dict(bad)


def test_missing_data_and_unresolvable_models_fail_fast(toy_config: dict) -> None:
    bad = copy.deepcopy(toy_config)
    bad["data"]["collection"] = "nowhere"
    with pytest.raises(InputError, match="no collection 'nowhere'"):
        DistillRun(distill_config_from_dict(bad))
    bad = copy.deepcopy(toy_config)
    bad["student"]["model"] = "no-such-org/no-such-student"
    with pytest.raises(RKDError, match="no-such-student"):
        DistillRun(distill_config_from_dict(bad))
    bad = copy.deepcopy(toy_config)
    bad["teacher"]["fallbacks"] = ["bi-encoder:no-such-org/other"]
    with pytest.raises(RKDError, match="no teacher could be resolved"):
        DistillRun(distill_config_from_dict(bad))


def test_teacher_falls_back_and_override_wins(toy_config: dict, tmp_path: Path) -> None:
    run = DistillRun(distill_config_from_dict(toy_config))
    assert run.teacher_spec.startswith("ensemble:zscore:run*1+bi-encoder:")
    assert "no-such-org/no-such-teacher" in run.teacher_skipped[0]
    override = f"bi-encoder:{tmp_path / 'teacher'}"
    assert (
        DistillRun(distill_config_from_dict(toy_config), teacher=override).teacher_spec == override
    )


def test_a_bare_run_teacher_scores_the_candidates_it_is_given(toy_config: dict) -> None:
    # the evaluation stage reuses the teacher built for training: a ``run`` teacher must read
    # the evaluation candidates' scores, not look eval pairs up in the training run (all 0)
    run = DistillRun(distill_config_from_dict(toy_config), teacher="run")
    train_run, eval_run = {"t1": {"d1": 3.0, "d2": 1.0}}, {"e1": {"d2": 5.0, "d3": 2.0}}
    run.teacher(train_run)
    teacher = run.teacher(eval_run)
    scores = teacher.score(["eval query"], [["b", "c"]], query_ids=["e1"], doc_ids=[["d2", "d3"]])
    assert scores[0].tolist() == [5.0, 2.0]


def test_distill_end_to_end_then_skip_then_loss_change(toy_config: dict, tmp_path: Path) -> None:
    config = load_distill_config(write(toy_config, tmp_path / "toy.yaml"))
    pipeline = DistillRun(config, echo=lambda line: None)
    pipeline.run()
    root = Path(config.output_dir)
    report = (root / "report" / "report.md").read_text()
    for row in ("BM25", "teacher", "student (untrained)", "student (distilled)", "baseline"):
        assert row in report
    assert "Kendall" in report and "Cost per stage" in report
    assert (root / "report" / "losses.png").is_file()
    metrics = json.loads((root / "report" / "metrics.json").read_text())
    assert set(metrics["means"]["student (distilled)"]) == {"ndcg@10", "mrr@10", "recall@100"}
    for stage in pipeline.plan():
        assert stage_state(root, stage) == "done"

    # The baseline's groups come from the candidate run's own scores, not the teacher's.
    from retrieval_kd.data import read_run
    from retrieval_kd.store import ScoreStore

    bm25 = read_run(root / "candidates-train" / "run.trec")
    for row in ScoreStore(root / "run-scores-train" / "store"):
        assert [bm25[row.query_id][d] for d in row.doc_ids] == pytest.approx(list(row.scores))
    baseline_manifest = json.loads(
        (root / "train-baseline" / "model" / "manifest.json").read_text()
    )
    assert "run-scores-train" in json.dumps(baseline_manifest)

    # Each student carries a model card: how it was made and the report's figures.
    from sentence_transformers import SentenceTransformer

    card = (root / "train-distilled" / "model" / "README.md").read_text()
    ndcg = metrics["means"]["student (distilled)"]["ndcg@10"]
    row = next(line for line in card.splitlines() if line.startswith("| student (distilled) |"))
    assert f"| {ndcg:.4f} |" in row  # the report's nDCG@10 of this very student
    for fact in (
        pipeline.teacher_spec,
        "How this model was made",
        "SentenceTransformer(",
        "margin_mse",
        "library_name: sentence-transformers",
        "retrieval_kd",
    ):
        assert fact in card, fact  # fmt: skip
    assert card.count("How this model was made") == 1  # the report updated, not appended
    baseline_card = (root / "train-baseline" / "model" / "README.md").read_text()
    assert "none: the labels" in baseline_card and "| baseline" in baseline_card
    assert SentenceTransformer(str(root / "train-distilled" / "model")).encode(["x"]).shape[0] == 1

    # rkd benchmark on the same student and split gives the report's figures, beside BM25.
    from retrieval_kd.benchmark import benchmark

    folders = [str(root / f"train-{n}" / "model") for n in ("distilled", "baseline")]
    bench = benchmark(folders, ["toy/test", "toy/train"], tmp_path / "bench", k=10,
                      metrics=["ndcg@10", "mrr@10", "recall@100"])  # fmt: skip
    names = list(bench["students"])
    for metric, value in metrics["means"]["student (distilled)"].items():
        assert bench["collections"]["toy/test"]["means"][names[0]][metric] == pytest.approx(value)
    for metric, value in metrics["means"]["baseline (InfoNCE, no teacher)"].items():
        assert bench["collections"]["toy/test"]["means"][names[1]][metric] == pytest.approx(value)
    table = (tmp_path / "bench" / "benchmark.md").read_text()
    assert "| BM25 |" in table and "toy/train ndcg@10" in table and "mean ndcg@10" in table
    assert json.loads((tmp_path / "bench" / "benchmark.json").read_text())["collections"]

    # Only the loss changes: candidates, teacher scores and the baseline stay done.
    changed = copy.deepcopy(toy_config)
    changed["loss"] = {"margin_mse": 1.0}
    again = DistillRun(distill_config_from_dict(changed), echo=lambda line: None)
    states = {stage.name: stage_state(root, stage) for stage in again.plan()}
    assert states["candidates-train"] == states["teacher-train"] == "done"
    assert states["train-baseline"] == states["retrieve-baseline"] == "done"
    assert states["train-distilled"] == states["retrieve-distilled"] == "stale"
    assert states["report"] == "stale"


def test_candidate_pool_search_retrieves_only_from_the_pool(toy_config: dict) -> None:
    toy_config["search"] = {"k": 10, "corpus": "candidates"}
    toy_config["candidates"]["eval_depth"] = 3
    toy_config["baseline"] = {"enabled": False}
    config = distill_config_from_dict(toy_config)
    DistillRun(config, echo=lambda line: None).run()
    root = Path(config.output_dir)
    from retrieval_kd.data import load_dataset, read_run

    candidates = read_run(root / "candidates-eval" / "run.trec")
    qrels = load_dataset("toy", "test").qrels
    pool = {d for q in candidates for d in candidates[q]} | {d for q in qrels for d in qrels[q]}
    assert len(pool) < 24  # a real subset of the 24 documents
    for stage in ("retrieve-untrained", "retrieve-distilled"):
        run = read_run(root / stage / "run.trec")
        assert {d for q in run for d in run[q]} <= pool
        assert json.loads((root / stage / "manifest.json").read_text())["outputs"][
            "corpus_docs"
        ] == len(pool)
    assert "candidate pool only" in (root / "report" / "report.md").read_text()
    toy_config["search"]["corpus"] = "sample"
    with pytest.raises(RKDError, match="'search.corpus'"):
        distill_config_from_dict(toy_config)


def test_until_stops_early_and_dry_run_plans(toy_config: dict) -> None:
    config = distill_config_from_dict(toy_config)
    pipeline = DistillRun(config, echo=lambda line: None)
    pipeline.run(until="score")
    root = Path(config.output_dir)
    assert (root / "teacher-train" / "store").is_dir()
    assert not (root / "train-distilled").exists()
    plan = "\n".join(pipeline.describe_plan())
    assert "done  teacher-train" in plan and "new  train-distilled" in plan
    with pytest.raises(RKDError, match="--until 'nope'"):
        pipeline.run(until="nope")


def test_an_unfinished_stage_with_other_settings_is_cleared_not_resumed(tmp_path: Path) -> None:
    def killed(folder: Path) -> dict:
        (folder / "checkpoint").write_text("trained with the old loss")
        raise KeyboardInterrupt  # stands in for kill -9: no manifest is written

    old = Stage("train-distilled", {"loss": {"kl": 1.0}}, killed)
    with pytest.raises(KeyboardInterrupt):
        run_stage(tmp_path, old)
    assert stage_state(tmp_path, old) == "partial"  # same settings: resume in place

    seen: list[bool] = []
    new = Stage(
        "train-distilled",
        {"loss": {"kl": 2.0}},
        lambda folder: seen.append((folder / "checkpoint").exists()) or {},
    )
    assert stage_state(tmp_path, new) == "stale"
    manifest = run_stage(tmp_path, new)
    assert seen == [False] and manifest["resumed"] is False  # the old checkpoint was cleared
    assert stage_state(tmp_path, new) == "done"


def test_auto_is_resolved_before_stage_fingerprints(toy_config: dict, monkeypatch) -> None:
    import torch

    from retrieval_kd.training import precision

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    auto, fp32 = copy.deepcopy(toy_config), copy.deepcopy(toy_config)
    auto["training"]["precision"] = "auto"
    fp32["training"]["precision"] = "fp32"
    config = distill_config_from_dict(auto)
    assert config.train["training"]["precision"] == "fp32"
    assert config.train_config("out", "store").training.precision == "fp32"
    plans = [
        {s.name: s.fingerprint for s in DistillRun(distill_config_from_dict(raw)).plan()}
        for raw in (auto, fp32)
    ]
    assert plans[0] == plans[1]  # a run made with "fp32" counts as done for "auto" here


def test_overrides_and_reusing_another_runs_stages(toy_config: dict, tmp_path: Path) -> None:
    from retrieval_kd.pipeline.config import apply_overrides

    path = write(toy_config, tmp_path / "toy.yaml")
    first = load_distill_config(path)
    DistillRun(first, echo=lambda line: None).run()
    second = load_distill_config(
        path, overrides=["training.seed=7", f"output_dir={tmp_path / 'seed7'}"]
    )
    assert second.train["training"]["seed"] == 7 and second.output_dir.endswith("seed7")
    lines: list[str] = []
    DistillRun(second, echo=lines.append).run(reuse=Path(first.output_dir))
    reused = {line.split("]")[0][1:] for line in lines if "reused from" in line}
    assert {"candidates-train", "teacher-train", "student-untrained"} <= reused
    assert not {"train-distilled", "train-baseline", "report"} & reused
    root = Path(second.output_dir)
    assert (root / "teacher-train").is_symlink() and not (root / "train-distilled").is_symlink()
    assert (root / "report" / "report.md").is_file()
    # a stale linked stage is unlinked, never cleared in the run it came from
    third = load_distill_config(path, overrides=[f"output_dir={root}", "candidates.train_depth=5"])
    DistillRun(third, echo=lambda line: None).run(until="candidates")
    assert (Path(first.output_dir) / "candidates-train" / "manifest.json").is_file()
    assert not (root / "candidates-train").is_symlink()
    with pytest.raises(RKDError, match="expected section.key=value"):
        apply_overrides({}, ["training.seed"])
    with pytest.raises(RKDError, match="unknown config key 'training.sed'"):
        load_distill_config(path, overrides=["training.sed=1"])


def test_a_cross_encoder_student_reranks_and_colbert_is_refused(toy_config: dict, tmp_path):
    from tiny_models import save_tiny_cross_encoder

    config = copy.deepcopy(toy_config)
    model = save_tiny_cross_encoder(tmp_path / "ce", seed=0)
    config["student"] = {"kind": "cross-encoder", "model": str(model)}
    config["baseline"] = {"loss": {"info_nce": {"weight": 1.0, "in_batch": True}}}
    with pytest.raises(RKDError, match="drop in_batch"):
        distill_config_from_dict(config)
    config["baseline"] = {"loss": {"info_nce": 1.0}}
    DistillRun(distill_config_from_dict(config), echo=lambda line: None).run()
    root = Path(config["output_dir"])
    manifest = json.loads((root / "retrieve-distilled" / "manifest.json").read_text())
    assert manifest["outputs"]["reranked"] == "candidates-eval"
    report = (root / "report" / "report.md").read_text()
    assert "re-ranks candidates-eval" in report
    # the cross-encoder trained here is the next run's teacher
    trained = root / "train-baseline" / "model"
    card = (trained / "README.md").read_text()
    assert "How this model was made" in card and "CrossEncoder(" in card
    nxt = copy.deepcopy(toy_config)
    nxt["output_dir"] = str(tmp_path / "next")
    nxt["teacher"] = {"model": f"cross-encoder:{trained}", "fallbacks": []}
    store = DistillRun(distill_config_from_dict(nxt), echo=lambda line: None).run(until="score")
    described = json.loads((tmp_path / "next" / "teacher-train" / "manifest.json").read_text())
    assert described["outputs"]["teacher"] == f"cross-encoder:{trained}" and store
    config["student"] = {"kind": "colbert", "model": str(model)}
    with pytest.raises(RKDError, match="does not index ColBERT students"):
        distill_config_from_dict(config)
