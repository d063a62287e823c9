"""Training: strict config, group sampling and validation, the distillation Trainer end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from _train_worker import make_toy_training, save_tiny_st, weights_sha256

from retrieval_kd.data import load_dataset, pool_doc_ids
from retrieval_kd.errors import InputError, RKDError
from retrieval_kd.losses import build_loss
from retrieval_kd.store import ScoredQuery, ScoreStore, ShardWriter
from retrieval_kd.training import (
    DistillTrainer,
    GroupDataset,
    GroupSampler,
    collate_groups,
    config_from_dict,
    load_config,
    train,
)
from retrieval_kd.training.config import EvalConfig
from retrieval_kd.training.dev import build_dev_set
from retrieval_kd.training.groups import Candidates, lift_positives

REPO = Path(__file__).resolve().parents[1]
TERMS = ("loss/margin_mse", "loss/kl", "loss/info_nce")


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_toy_training(tmp_path_factory.mktemp("toy"))


def toy_config(toy: dict[str, Path], out: Path, **sections: dict) -> dict:
    config = {
        "data": {"collection": str(toy["collection"]), "score_store": str(toy["store"])},
        "student": {"model": str(toy["model"]), "similarity": "dot",
                    "query_max_length": 16, "passage_max_length": 32},
        "groups": {"size": 4, "strategy": "top", "depth": 8},
        "loss": {"margin_mse": 1.0, "kl": 1.0},
        "training": {"output_dir": str(out), "max_steps": 4, "batch_size": 3,
                     "learning_rate": 1e-3, "warmup": 0.0, "logging_steps": 1},
    }  # fmt: skip
    for name, values in sections.items():
        config[name] = {**config.get(name, {}), **values}
    return config


# -- config -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"training": {"batch_sise": 4}}, "unknown config key 'training.batch_sise'"),
        ({"trainer": {}}, "unknown config section 'trainer'"),
        ({"loss": {"margin_mse": 1.0, "klx": 1.0}}, "unknown loss 'klx'"),
        ({"loss": {"kl": {"temprature": 2.0}}}, "unknown hyper-parameter"),
        ({"loss": {"kl": {"in_batch": True}}}, "in_batch works with info_nce only"),
        ({"training": {"batch_size": "16"}}, "'training.batch_size' must be"),
        ({"groups": {"strategy": "hardest"}}, "'groups.strategy'"),
        ({"groups": {"size": 8, "depth": 4}}, "'groups.depth'"),
        ({"groups": {"trust_labels": -1.0}}, "'groups.trust_labels'"),
        ({"student": {"kind": "ranker"}}, "'student.kind'"),
        ({"evaluation": {"every_steps": 5}}, "holdout_queries"),
        ({"evaluation": {"search": "corpus"}}, "'evaluation.search'"),
        ({"training": {"attention_dropout": 1.0}}, "'training.attention_dropout'"),
    ],
)
def test_config_errors_are_one_clear_message(
    toy: dict[str, Path], tmp_path: Path, patch: dict, message: str
) -> None:
    config = toy_config(toy, tmp_path / "out")
    for name, values in patch.items():
        config[name] = values if name == "loss" else {**config.get(name, {}), **values}
    with pytest.raises(RKDError, match=message):
        config_from_dict(config)


def test_auto_precision_is_resolved_for_a_config_object_too(
    toy: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import retrieval_kd.training.config as config_module

    monkeypatch.setattr(config_module, "resolve_precision",
                        lambda p: "bf16" if p == "auto" else p)  # fmt: skip
    plain = toy_config(toy, tmp_path / "out", training={"precision": "auto"})
    assert config_module.as_config(plain).training.precision == "bf16"
    obj = config_from_dict(plain)
    obj.training.precision = "auto"  # a TrainConfig built or changed in Python
    assert config_module.as_config(obj).training.precision == "bf16"


def test_yaml_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("data: {collection: x, score_store: y}\nstudent: {model: m}\n"
                    "training: {output_dir: o, epocs: 1}\n")  # fmt: skip
    with pytest.raises(InputError, match=r"c\.yaml: unknown config key 'training\.epocs'"):
        load_config(path)


def test_shipped_scifact_config_is_valid() -> None:
    config = load_config(REPO / "configs" / "train-scifact-l3.yaml")
    assert config.student.model == "sentence-transformers/paraphrase-MiniLM-L3-v2"
    assert set(config.loss) == {"margin_mse", "kl"}
    assert config.evaluation.every_steps and config.evaluation.holdout_queries > 0


def test_shipped_bi_encoder_teacher_config_is_valid() -> None:
    config = load_config(REPO / "configs" / "teacher-bi-encoder-scifact.yaml")
    assert config.student.model == "sentence-transformers/all-MiniLM-L6-v2"
    assert set(config.loss) == {"info_nce"} and config.data.score_store.endswith("/store")


# -- groups -------------------------------------------------------------------------------------
def candidates(n: int = 20, positives: tuple[int, ...] = (3,)) -> Candidates:
    scores = np.linspace(10, 0, n).astype(np.float32)
    grades = np.zeros(n, dtype=np.int64)
    grades[list(positives)] = 1
    return Candidates("q1", [f"d{i}" for i in range(n)], scores, grades, list(positives))


def test_top_strategy_takes_the_teachers_hardest() -> None:
    sampler = GroupSampler(size=5, strategy="top", depth=10, seed=0)
    assert sampler.sample(candidates(), epoch=0) == [3, 0, 1, 2, 4]
    assert sampler.sample(candidates(), epoch=7) == [3, 0, 1, 2, 4]


def test_random_strategy_resamples_each_epoch_deterministically() -> None:
    sampler = GroupSampler(size=5, strategy="random", depth=10, seed=1)
    draws = [sampler.sample(candidates(), epoch) for epoch in range(6)]
    assert all(d[0] == 3 and len(set(d)) == 5 and max(d) <= 10 for d in draws)
    assert all(d[1:] == sorted(d[1:]) for d in draws)
    assert len({tuple(d) for d in draws}) > 1  # re-drawn across epochs
    again = GroupSampler(size=5, strategy="random", depth=10, seed=1)
    assert [again.sample(candidates(), e) for e in range(6)] == draws  # same seed, same groups
    other = GroupSampler(size=5, strategy="random", depth=10, seed=2)
    assert [other.sample(candidates(), e) for e in range(6)] != draws


def test_mixed_strategy_keeps_the_hardest_and_samples_the_rest() -> None:
    sampler = GroupSampler(size=7, strategy="mixed", depth=15, mixed_top=2, seed=0)
    draws = [sampler.sample(candidates(), epoch) for epoch in range(5)]
    for draw in draws:
        assert draw[0] == 3 and draw[1:3] == [0, 1] and len(set(draw)) == 7
        assert max(draw) <= 15
    assert len({tuple(d) for d in draws}) > 1


def test_several_positives_are_drawn_in_turn() -> None:
    sampler = GroupSampler(size=3, strategy="top", depth=5, seed=0)
    firsts = {sampler.sample(candidates(positives=(2, 6)), epoch)[0] for epoch in range(20)}
    assert firsts == {2, 6}


def test_dataset_items_collate_into_tensors(toy: dict[str, Path]) -> None:
    dataset = load_dataset(str(toy["collection"]), "train")
    store = ScoreStore(toy["store"])
    sampler = GroupSampler(size=4, strategy="random", depth=8)
    groups = GroupDataset(store, dataset.queries, dataset.corpus, sampler, dataset.qrels)
    batch = collate_groups([groups[0], groups[1]])
    assert batch["teacher_scores"].shape == (2, 4)
    assert batch["teacher_scores"].dtype == torch.float32
    assert batch["labels"][:, 0].tolist() == [1, 1]
    row = store.get(batch["query_ids"][0])
    expected = [float(row.scores[row.doc_ids.index(d)]) for d in batch["doc_ids"][0]]
    assert batch["teacher_scores"][0].tolist() == pytest.approx(expected)
    assert batch["passages"][0] == dataset.corpus.texts(batch["doc_ids"][0])
    before = groups[0]["doc_ids"]
    groups.set_epoch(3)
    assert groups[0]["doc_ids"][0] == before[0]


def test_lift_positives_puts_judged_positives_above_every_negative() -> None:
    scores = np.array([1.0, 3.0, 2.0, -1.0], dtype=np.float32)
    labels = np.array([1, 0, 0, 0])
    lifted = lift_positives(scores, labels, margin=0.5)
    assert lifted.tolist() == [3.5, 3.0, 2.0, -1.0]  # negatives keep their scores and order
    assert scores[0] == 1.0  # a copy
    agreeing = np.array([5.0, 3.0, 2.0, -1.0], dtype=np.float32)
    assert lift_positives(agreeing, labels, 0.5).tolist() == agreeing.tolist()
    two = lift_positives(np.array([0.0, 4.0, 1.0]), np.array([1, 0, 2]), 1.0)
    assert two.tolist() == [5.0, 4.0, 5.0]
    assert lift_positives(scores, np.zeros(4, dtype=int), 1.0).tolist() == scores.tolist()


def test_trust_labels_lifts_the_positive_in_dataset_items(toy: dict[str, Path]) -> None:
    dataset = load_dataset(str(toy["collection"]), "train")
    store = ScoreStore(toy["store"])
    sampler = GroupSampler(size=4, strategy="random", depth=8)
    args = (store, dataset.queries, dataset.corpus, sampler, dataset.qrels)
    plain, trusted = GroupDataset(*args), GroupDataset(*args, trust_labels=2.0)
    for i in range(len(plain)):
        a, b = plain[i], trusted[i]
        assert a["doc_ids"] == b["doc_ids"]  # sampling is unchanged
        negatives = a["teacher_scores"][1:]
        assert b["teacher_scores"][1:].tolist() == negatives.tolist()
        assert b["teacher_scores"][0] >= max(a["teacher_scores"][0], negatives.max() + 2.0)


def test_pool_dev_set_ranks_every_query_against_all_candidates_and_judged_docs(
    toy: dict[str, Path],
) -> None:
    dataset = load_dataset(str(toy["collection"]), "train")
    ids = ["q0", "q1", "q2"]
    queries = {q: dataset.queries[q] for q in ids}
    store = ScoreStore(toy["store"])
    settings = {"candidates": "bm25", "depth": 2}
    rerank = build_dev_set(EvalConfig(**settings), "toy", dataset.corpus, queries,
                           dataset.qrels, store)  # fmt: skip
    pooled = build_dev_set(EvalConfig(**settings, search="pool"), "toy", dataset.corpus,
                           queries, dataset.qrels, store)  # fmt: skip
    expected = sorted(
        {d for c in rerank.candidates.values() for d in c}
        | {d for q in ids for d in dataset.qrels[q]}
    )
    assert all(len(c) == 2 for c in rerank.candidates.values())
    assert pooled.candidates == {q: expected for q in ids}
    assert f"pool of {len(expected)} docs" in pooled.source
    # a judged doc BM25 missed at depth 2 is now rankable, by every query
    assert any(d not in rerank.candidates[q] for q in ids for d in dataset.qrels[q])


def test_pool_doc_ids_skips_judged_docs_missing_from_the_corpus(toy: dict[str, Path]) -> None:
    corpus = load_dataset(str(toy["collection"]), "train").corpus
    known = corpus.ids[:3]
    pool = pool_doc_ids({"a": [known[0]], "b": [known[1]]}, {"a": {known[2]: 1, "gone": 1}}, corpus)
    assert pool == sorted(known)


def _store(folder: Path, rows: list[ScoredQuery]) -> ScoreStore:
    ShardWriter(folder).write(rows)
    return ScoreStore(folder)


def test_validation_errors_before_training(toy: dict[str, Path], tmp_path: Path) -> None:
    dataset = load_dataset(str(toy["collection"]), "train")
    corpus, queries, qrels = dataset.corpus, dataset.queries, dataset.qrels
    docs = corpus.ids[:6]
    sampler = GroupSampler(size=4, strategy="top", depth=8)
    good = ScoredQuery("q0", docs, np.arange(6, dtype=np.float32))

    bad_docs = _store(tmp_path / "a", [good, ScoredQuery("q1", ["nope", *docs[:4]], [1.0] * 5)])
    with pytest.raises(InputError, match=r"1 doc id\(s\) of the score store are not in the corpus"):
        GroupDataset(bad_docs, queries, corpus, sampler, qrels)
    no_text = _store(tmp_path / "b", [good, ScoredQuery("ghost", docs, [1.0] * 6)])
    with pytest.raises(InputError, match=r"have no query text.*'ghost'"):
        GroupDataset(no_text, queries, corpus, sampler, qrels)
    short = _store(tmp_path / "c", [good, ScoredQuery("q1", docs[:2], [1.0, 0.0])])
    with pytest.raises(InputError, match="K=4 is larger than the stored candidates"):
        GroupDataset(short, queries, corpus, sampler, qrels, positives="teacher")
    kept = GroupDataset(
        short, queries, corpus, sampler, qrels, positives="teacher", short_queries="skip"
    )
    assert [c.query_id for c in kept.items] == ["q0"]
    assert kept.skipped == {"no_scored_positive": 0, "too_few_candidates": 1}
    with pytest.raises(RKDError, match="short_queries must be one of"):
        GroupDataset(short, queries, corpus, sampler, qrels, short_queries="drop")


def test_unfinished_store_fails_before_any_model_is_built(
    toy: dict[str, Path], tmp_path: Path
) -> None:
    _store(tmp_path / "store", [ScoredQuery("q0", ["x"], [1.0])])
    config = toy_config(toy, tmp_path / "out", data={"score_store": str(tmp_path / "store")})
    with pytest.raises(InputError, match="unfinished"):
        train(config)
    assert not (tmp_path / "out").exists()


def test_a_distill_stage_folder_given_as_the_store_names_its_store(
    toy: dict[str, Path], tmp_path: Path
) -> None:
    stage = tmp_path / "run-scores-train"  # an rkd distill stage: its manifest, and store/ in it
    _store(stage / "store", [ScoredQuery("q0", ["x"], [1.0])])
    (stage / "manifest.json").write_text("{}")
    config = toy_config(toy, tmp_path / "out", data={"score_store": str(stage)})
    with pytest.raises(InputError, match="the stage's score store is .*run-scores-train/store"):
        train(config)


# -- training -----------------------------------------------------------------------------------
def top_groups(toy: dict[str, Path]) -> GroupDataset:
    """Every toy training query's deterministic 'top' group of 4."""
    dataset = load_dataset(str(toy["collection"]), "train")
    sampler = GroupSampler(size=4, strategy="top", depth=8)
    store = ScoreStore(toy["store"])
    return GroupDataset(store, dataset.queries, dataset.corpus, sampler, dataset.qrels)


def mean_loss(model_dir: Path, toy: dict[str, Path]) -> float:
    """The loss over every training group (deterministic 'top' groups), no gradient."""
    from students.bi_encoder import BiEncoderStudent

    groups = top_groups(toy)
    student = BiEncoderStudent(
        model_dir, similarity="dot", query_max_length=16, passage_max_length=32
    )
    student.model.eval()
    loss = build_loss({"margin_mse": 1.0, "kl": 1.0})
    batch = collate_groups([groups[i] for i in range(len(groups))])
    with torch.no_grad():
        scores = student.score_groups(batch["queries"], batch["passages"])
        return float(loss(scores, batch["teacher_scores"], batch["labels"])["loss"])


@pytest.fixture(scope="module")
def trained(toy: dict[str, Path]) -> dict:
    out = toy["root"] / "run"
    config = toy_config(
        toy,
        out,
        loss={"margin_mse": 1.0, "kl": 1.0, "info_nce": {"weight": 0.2, "in_batch": True}},
        groups={"strategy": "mixed"},
        training={"max_steps": 8},
        evaluation={"every_steps": 4, "holdout_queries": 3, "candidates": "bm25", "depth": 10},
    )
    return {"config": config, "result": train(config)}


def test_a_few_steps_reduce_the_loss_on_a_toy_store(toy: dict, tmp_path: Path) -> None:
    result = train(toy_config(toy, tmp_path / "out", training={"max_steps": 8}))
    assert result.global_step == 8
    assert mean_loss(result.model_dir, toy) < 0.8 * mean_loss(toy["model"], toy)


def test_every_loss_term_is_logged(trained: dict) -> None:
    logged = trained["result"].loss_curve
    assert [row["step"] for row in logged] == list(range(1, 9))
    for row in logged:
        assert all(term in row for term in TERMS)
        total = row["loss/margin_mse"] + row["loss/kl"] + 0.2 * row["loss/info_nce"]
        assert row["loss"] == pytest.approx(total, rel=1e-4)


def test_dev_curve_best_checkpoint_and_records(trained: dict) -> None:
    result = trained["result"]
    steps = [step for step, _ in result.dev_curve]
    assert steps == [0, 4, 8]
    best_step, best = max(((s, v) for s, v in result.dev_curve if s > 0), key=lambda x: x[1])
    assert result.best_metric == pytest.approx(best)
    assert result.best_checkpoint.endswith(f"checkpoint-{best_step}")
    folder = result.model_dir
    for name in ("loss_curves.json", "loss_curves.png", "train_config.yaml", "rkd_student.json"):
        assert (folder / name).is_file()
    manifest = json.loads((folder / "manifest.json").read_text())
    store_hash = manifest["inputs"]["score_store"]["manifest_sha256"]
    assert len(store_hash) == 64
    assert manifest["inputs"]["dev"]["queries"] == 3
    assert manifest["result"]["train_queries"] == 9  # 12 judged, 3 held out
    reloaded = load_config(folder / "train_config.yaml")  # the resolved config is strict-valid
    assert reloaded.to_dict() == config_from_dict(trained["config"]).to_dict()
    curves = json.loads((folder / "loss_curves.json").read_text())
    assert [row["step"] for row in curves["dev"]] == steps


def test_training_watches_a_pool_dev_set(toy: dict, tmp_path: Path) -> None:
    evaluation = {"every_steps": 2, "holdout_queries": 3, "depth": 2, "search": "pool"}
    result = train(toy_config(toy, tmp_path / "out", training={"max_steps": 2},
                              evaluation=evaluation))  # fmt: skip
    assert [step for step, _ in result.dev_curve] == [0, 2]
    assert all(0.0 <= value <= 1.0 for _, value in result.dev_curve)
    manifest = json.loads((result.model_dir / "manifest.json").read_text())
    assert "ranked in a pool of" in manifest["inputs"]["dev"]["source"]


def test_rerun_of_a_finished_config_does_nothing(trained: dict) -> None:
    manifest = json.loads((trained["result"].model_dir / "manifest.json").read_text())
    again = train(trained["config"])
    assert again.manifest["created_at"] == manifest["created_at"]
    assert again.global_step == 8


def test_cli_train_runs_a_yaml_config(trained: dict, tmp_path: Path) -> None:
    import typer
    from typer.testing import CliRunner

    from retrieval_kd.cli.train import train as train_command

    app = typer.Typer()
    app.command()(train_command)
    app.command("noop")(lambda: None)  # a second command keeps 'train' as a sub-command
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(trained["config"]))
    out = CliRunner().invoke(app, ["train", "--config", str(path)])
    assert out.exit_code == 0, out.output
    assert "trained 8 steps" in out.output and "dev ndcg@10 by step: 0:" in out.output


def test_checkpoint_and_resume_match_an_uninterrupted_run(
    toy: dict[str, Path], tmp_path: Path
) -> None:
    sections = {"training": {"lr_scheduler": "constant", "save_steps": 2, "max_steps": 4}}
    straight = train(toy_config(toy, tmp_path / "straight", **sections))
    cut = toy_config(toy, tmp_path / "cut", **sections)
    cut["training"]["max_steps"] = 2
    first = train(cut)
    assert first.global_step == 2 and (tmp_path / "cut" / "checkpoint-2").is_dir()
    cut["training"].update(max_steps=4, resume_from_checkpoint=True)
    resumed = train(cut)
    assert resumed.global_step == 4
    assert [row["step"] for row in resumed.loss_curve] == [1, 2, 3, 4]  # history kept
    assert weights_sha256(resumed.model_dir) == weights_sha256(straight.model_dir)


def test_bf16_mixed_precision_with_gradient_accumulation(toy: dict, tmp_path: Path) -> None:
    config = toy_config(
        toy,
        tmp_path / "bf16",
        training={"precision": "bf16", "gradient_accumulation_steps": 2, "max_steps": 2},
    )
    result = train(config)
    assert result.global_step == 2
    assert all(np.isfinite(row["loss"]) for row in result.loss_curve)
    assert result.manifest["config"]["training"]["precision"] == "bf16"


def test_grad_cache_gives_the_same_gradients(toy: dict[str, Path], tmp_path: Path) -> None:
    from transformers import TrainingArguments

    from students.bi_encoder import BiEncoderStudent

    groups = top_groups(toy)
    batch = collate_groups([groups[i] for i in range(4)])
    spec = {"margin_mse": 1.0, "kl": 1.0}
    grads = []
    for grad_cache in (False, True):
        student = BiEncoderStudent(toy["model"], similarity="dot")
        trainer = DistillTrainer(
            student=student,
            group_loss=build_loss(spec),
            in_batch_loss=build_loss({"info_nce": 0.5}),
            grad_cache=grad_cache,
            grad_cache_chunk_size=3,
            args=TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True),
        )
        trainer.current_gradient_accumulation_steps = 1
        loss = trainer.training_step(trainer.model, dict(batch))
        grads.append((loss, [p.grad.clone() for p in student.model.parameters()]))
    (loss_plain, plain), (loss_cached, cached) = grads
    torch.testing.assert_close(loss_cached, loss_plain, rtol=1e-5, atol=1e-6)
    for a, b in zip(plain, cached, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6)


def test_torchrun_two_processes_train_three_steps(toy: dict[str, Path], tmp_path: Path) -> None:
    config = toy_config(
        toy,
        tmp_path / "ddp",
        training={"max_steps": 3, "batch_size": 2},
        evaluation={"every_steps": 3, "holdout_queries": 3, "candidates": "store"},
    )
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RKD_QUIET": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
               "--standalone", str(REPO / "tests" / "_train_worker.py"),
               str(config_path), str(tmp_path)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO)
    assert done.returncode == 0, done.stderr[-4000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    assert [r["global_step"] for r in ranks] == [3, 3]
    assert ranks[0]["weights"] == ranks[1]["weights"]  # DDP kept the replicas identical
    manifest = json.loads((tmp_path / "ddp" / "model" / "manifest.json").read_text())
    assert manifest["result"]["world_size"] == 2
    assert [step for step, _ in manifest["result"]["dev_curve"]] == [0, 3]  # sharded dev eval
    assert all(t in manifest["result"]["loss_curve"][-1] for t in ("loss/margin_mse", "loss/kl"))


@pytest.mark.parametrize("kind", ["colbert", "cross-encoder"])
def test_other_student_kinds_train_through_the_same_trainer(
    toy: dict[str, Path], tmp_path: Path, kind: str
) -> None:
    config = toy_config(
        toy,
        tmp_path / kind,
        training={"max_steps": 3},
        evaluation={"every_steps": 3, "holdout_queries": 3, "depth": 10},
    )
    config["student"] = {
        "kind": kind,
        "model": str(toy["model"]),
        "query_max_length": 16,
        "passage_max_length": 32,
    }
    result = train(config)
    assert result.global_step == 3
    assert [step for step, _ in result.dev_curve] == [0, 3]
    assert (Path(result.model_dir) / "manifest.json").is_file()


def test_bi_encoder_settings_are_refused_for_other_kinds(toy: dict, tmp_path: Path) -> None:
    config = toy_config(toy, tmp_path / "x")
    config["student"] = {"kind": "colbert", "model": str(toy["model"]), "similarity": "dot"}
    with pytest.raises(RKDError, match="has no setting similarity"):
        train(config)


def test_report_to_reaches_the_trainer(toy: dict[str, Path], tmp_path: Path) -> None:
    from retrieval_kd.training.run import training_arguments

    plain = config_from_dict(toy_config(toy, tmp_path / "a"))
    assert training_arguments(plain, False).report_to in ([], "none", ["none"])
    asked = config_from_dict(toy_config(toy, tmp_path / "b", training={"report_to": "tensorboard"}))
    assert training_arguments(asked, False).report_to == ["tensorboard"]


def test_attention_dropout_is_off_while_training_and_kept_in_the_saved_config(
    toy: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from retrieval_kd.training import attention_dropout

    seen: list[list[float]] = []
    original = attention_dropout.set_attention_dropout

    def spy(model, rate):
        changed = original(model, rate)
        seen.append([m.p for m in model.modules() if type(m).__name__ == "Dropout"])
        assert changed > 0
        return changed

    monkeypatch.setattr(attention_dropout, "set_attention_dropout", spy)
    model = save_tiny_st(tmp_path / "with-dropout", dropout=0.1)
    config = toy_config(
        toy, tmp_path / "out", student={"model": str(model)}, training={"attention_dropout": 0.0}
    )
    result = train(config_from_dict(config))
    assert seen[0].count(0.0) == 2  # the two layers' attention-probability dropout
    assert seen[0].count(0.1) >= 4  # embeddings and hidden-state dropout stay on
    saved = json.loads((Path(result.model_dir) / "config.json").read_text())
    assert saved["attention_probs_dropout_prob"] == 0.1  # the checkpoint's own, for later use
    card = (Path(result.model_dir) / "README.md").read_text(encoding="utf-8")
    assert "| attention dropout | 0.0 while training" in card
