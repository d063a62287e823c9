"""False-negative handling in group sampling: which candidates are suspect, drop / mask /
relabel, the counts, the config checks, and the mask reaching every loss term."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from _train_worker import make_toy_training
from test_training import candidates, toy_config

from retrieval_kd.errors import RKDError
from retrieval_kd.training import GroupSampler, config_from_dict, train
from retrieval_kd.training.false_negatives import FalseNegativeRule
from retrieval_kd.training.trainer import in_batch_targets


def test_thresholds_follow_sentence_transformers_margins() -> None:
    scores = np.array([10.0, 9.8, 9.0, 5.0])
    judged = np.array([True, False, False, False])
    absolute = FalseNegativeRule("drop", absolute_margin=0.5).suspects(scores, 0, judged)
    assert absolute.tolist() == [False, True, False, False]  # 9.8 > 10 - 0.5
    relative = FalseNegativeRule("drop", relative_margin=0.05).suspects(scores, 0, judged)
    assert relative.tolist() == [False, True, False, False]  # 9.8 > 0.95 * 10 = 9.5
    both = FalseNegativeRule("drop", absolute_margin=2.0, relative_margin=0.05)
    assert both.threshold(10.0) == 8.0  # the stricter (lower) of the two flags more
    # a candidate above the positive is suspect too; a judged positive never is
    assert FalseNegativeRule("mask", absolute_margin=0.0).suspects(scores, 2, judged).tolist() == [
        False, True, False, False,
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"action": "ignore", "absolute_margin": 1.0}, "action must be one of"),
        ({"action": "drop"}, "needs absolute_margin or relative_margin"),
        ({"action": "drop", "absolute_margin": -0.1}, "absolute_margin must be"),
        ({"action": "drop", "relative_margin": 1.0}, r"relative_margin must be in \[0, 1\)"),
        ({"action": "drop", "relative_margin": -0.2}, "relative_margin must be in"),
    ],
)
def test_bad_rules_are_one_clear_error(kwargs: dict, message: str) -> None:
    with pytest.raises(RKDError, match=message):
        FalseNegativeRule(**kwargs)


def test_drop_mask_and_positive_actions() -> None:
    cand = candidates(20, positives=(5,))  # scores 10 .. 0; the positive is the 6th
    margin = float(cand.scores[5] - cand.scores[8])  # indices 0..7 score within it (not 5)
    suspects = [i for i in range(9) if i != 5]
    plain = GroupSampler(size=5, strategy="top", depth=12).draw(cand, 0)
    assert plain.indices == [5, 0, 1, 2, 3] and plain.mask.all()

    drop = GroupSampler(5, "top", 12, false_negatives=FalseNegativeRule("drop", margin + 1e-4))
    drawn = drop.draw(cand, 0)
    assert drawn.indices == [5, 9, 10, 11, 12] and drawn.mask.all()
    assert drawn.dropped == len(suspects)

    mask = GroupSampler(5, "top", 12, false_negatives=FalseNegativeRule("mask", margin + 1e-4))
    drawn = mask.draw(cand, 0)
    assert drawn.indices == plain.indices and drawn.mask.tolist() == [True] + [False] * 4

    relabel = GroupSampler(
        5, "top", 12, false_negatives=FalseNegativeRule("positive", margin + 1e-4)
    )
    drawn = relabel.draw(cand, 0)
    assert drawn.mask.all() and drawn.positive.tolist() == [True] * 5


def test_drop_fills_a_short_pool_with_masked_suspects() -> None:
    cand = candidates(6, positives=(0,))  # every other candidate is within the margin
    rule = FalseNegativeRule("drop", absolute_margin=100.0)
    drawn = GroupSampler(4, "top", 5, false_negatives=rule).draw(cand, 0)
    assert len(drawn.indices) == 4 and drawn.mask.tolist() == [True, False, False, False]
    assert drawn.dropped == 5 - 3  # two suspects stay out; three fill the group, masked


def test_in_batch_mask_keeps_a_masked_suspect_out_of_its_own_row() -> None:
    labels = torch.tensor([[1, 0], [1, 0]])
    group_mask = torch.tensor([[True, False], [True, True]])
    ib_labels, ib_mask = in_batch_targets([["a", "b"], ["c", "d"]], labels, group_mask)
    assert ib_mask.tolist() == [[True, False, True, True], [True, True, True, True]]
    assert ib_labels.tolist() == [[1, 0, 0, 0], [0, 0, 1, 0]]


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_toy_training(tmp_path_factory.mktemp("toy-fn"))


def test_config_checks_the_rule_before_training(toy: dict, tmp_path: Path) -> None:
    bad = toy_config(toy, tmp_path / "out", groups={"false_negatives": {"action": "drop"}})
    with pytest.raises(RKDError, match="groups.false_negatives.*needs absolute_margin"):
        config_from_dict(bad)
    bad = toy_config(
        toy, tmp_path / "out", groups={"false_negatives": {"action": "drop", "margin": 1}}
    )
    with pytest.raises(RKDError, match="unknown key"):
        config_from_dict(bad)


@pytest.mark.parametrize("action", ["drop", "mask", "positive"])
def test_training_counts_what_the_rule_did(toy: dict, tmp_path: Path, action: str) -> None:
    rule = {"action": action, "absolute_margin": 0.5}
    config = toy_config(
        toy,
        tmp_path / action,
        groups={"false_negatives": rule},
        loss={"margin_mse": 1.0, "kl": 1.0, "info_nce": {"weight": 1.0, "in_batch": True}},
    )
    result = train(config)
    counts = result.manifest["result"]["false_negatives"]
    assert counts["action"] == action and counts["absolute_margin"] == 0.5
    done = {
        "drop": counts["dropped"],
        "mask": counts["masked"],
        "positive": counts["relabelled_positive"],
    }
    assert done[action] > 0 and counts["queries_touched"] > 0
    assert all(np.isfinite(step["loss"]) for step in result.loss_curve if "loss" in step)


def test_pipeline_keeps_a_teacher_rule_off_the_candidate_ordered_baseline(tmp_path, monkeypatch):
    from test_pipeline import toy_collection

    from retrieval_kd.pipeline.config import distill_config_from_dict

    monkeypatch.setenv("RKD_DATA_DIR", str(toy_collection(tmp_path).parent))
    raw = {
        "name": "toy",
        "output_dir": str(tmp_path / "run"),
        "data": {"collection": "toy"},
        "student": {"model": "m"},
        "groups": {"size": 4, "depth": 5, "false_negatives": {"absolute_margin": 0.5}},
        "training": {"epochs": 1},
    }
    with pytest.raises(RKDError, match="baseline.negatives: candidates"):
        distill_config_from_dict(raw)
    off = distill_config_from_dict({**raw, "baseline": {"groups": {"false_negatives": None}}})
    assert off.baseline.groups == {"false_negatives": None}
    teacher = distill_config_from_dict({**raw, "baseline": {"negatives": "teacher"}})
    assert teacher.baseline.negatives == "teacher"
