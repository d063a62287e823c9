"""Teachers: calibration, ensembles, run scores, spec parsing, and the model teachers on tiny
random models (cross-encoder and bi-encoder)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_models import save_tiny_cross_encoder, save_tiny_sentence_transformer

from retrieval_kd.errors import InputError, RKDError
from retrieval_kd.interfaces import Scorer, check_groups, split_groups
from teachers import EnsembleTeacher, RunScoreTeacher, build_teacher, parse_teacher_spec
from teachers.calibration import minmax, rank, zscore

QUERIES = ["solar panels electricity", "cooking pasta"]
PASSAGES = [
    ["solar panels make electricity", "boil pasta water", "wind turbines"],
    ["cooking pasta in water", "the sun"],
]


# -- calibration -------------------------------------------------------------------------------
def test_calibrations_by_hand() -> None:
    assert zscore(np.array([1.0, 3.0])).tolist() == [-1.0, 1.0]  # mean 2, std 1
    assert zscore(np.array([5.0, 5.0])).tolist() == [0.0, 0.0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy RuntimeWarning on a 0- or 1-candidate list
        assert zscore(np.array([4.0])).tolist() == [0.0]
        assert zscore(np.array([])).tolist() == []
    assert minmax(np.array([-2.0, 0.0, 2.0])).tolist() == [0.0, 0.5, 1.0]
    assert minmax(np.array([7.0])).tolist() == [0.5]
    assert rank(np.array([0.3, 0.1, 0.2])).tolist() == [1.0, 0.0, 0.5]


@pytest.mark.parametrize("calibrate", [zscore, minmax, rank])
def test_calibration_ignores_scale_and_shift(calibrate) -> None:
    scores = np.array([0.2, 1.7, -0.4, 3.0])
    assert np.allclose(calibrate(scores), calibrate(13.0 * scores - 4.0))


# -- run scores and ensembles ------------------------------------------------------------------
def test_run_scores_need_ids_and_floor_missing_documents() -> None:
    teacher = RunScoreTeacher({"q1": {"a": 3.0, "b": 1.0}}, name="bm25")
    out = teacher.score(["x"], [["b", "zz", "a"]], query_ids=["q1"], doc_ids=[["b", "zz", "a"]])
    assert out[0].tolist() == [1.0, 1.0, 3.0]  # unknown doc gets the query's lowest score
    with pytest.raises(RKDError, match="must pass query_ids"):
        teacher.score(["x"], [["b"]])
    assert isinstance(teacher, Scorer)


def test_ensemble_is_weighted_sum_of_zscores() -> None:
    lexical = RunScoreTeacher({"q": {"a": 30.0, "b": 10.0, "c": 20.0}}, "bm25")
    dense = RunScoreTeacher({"q": {"a": 0.1, "b": 0.9, "c": 0.5}}, "dense")
    ensemble = EnsembleTeacher([(lexical, 1.0), (dense, 2.0)], calibration="zscore")
    docs = ["a", "b", "c"]
    out = ensemble.score(["q"], [docs], query_ids=["q"], doc_ids=[docs])[0]
    # z(bm25) = [1.2247, -1.2247, 0]; z(dense) = [-1.2247, 1.2247, 0]
    assert out == pytest.approx([1.2247 - 2 * 1.2247, -1.2247 + 2 * 1.2247, 0.0], abs=1e-4)
    described = ensemble.describe()
    assert described["calibration"] == "zscore" and len(described["members"]) == 2


def test_ensemble_rejects_bad_settings() -> None:
    with pytest.raises(RKDError, match="at least one member"):
        EnsembleTeacher([])
    with pytest.raises(RKDError, match="unknown calibration 'softmax'"):
        EnsembleTeacher([(RunScoreTeacher({}), 1.0)], calibration="softmax")


# -- specs -------------------------------------------------------------------------------------
def test_spec_strings() -> None:
    assert parse_teacher_spec("cross-encoder/ms-marco-MiniLM-L-6-v2") == {
        "kind": "cross-encoder",
        "model": "cross-encoder/ms-marco-MiniLM-L-6-v2",
    }
    assert parse_teacher_spec("bi-encoder:minilm-l6") == {
        "kind": "bi-encoder",
        "model": "minilm-l6",
    }
    assert parse_teacher_spec("ensemble:rank:run*0.5+bi-encoder:m*2") == {
        "kind": "ensemble",
        "calibration": "rank",
        "members": [
            {"kind": "run", "weight": 0.5},
            {"kind": "bi-encoder", "model": "m", "weight": 2.0},
        ],
    }
    with pytest.raises(RKDError, match="weight 'x' is not a number"):
        parse_teacher_spec("ensemble:zscore:run*x")


def test_spec_file_and_errors(tmp_path: Path) -> None:
    spec = tmp_path / "teacher.yaml"
    spec.write_text("kind: ensemble\ncalibration: minmax\nmembers:\n  - {kind: run, weight: 1}\n")
    teacher = build_teacher(str(spec), candidates={"q": {"a": 1.0}})
    assert isinstance(teacher, EnsembleTeacher) and teacher.calibration == "minmax"
    with pytest.raises(RKDError, match="unknown teacher kind 'oracle'"):
        build_teacher({"kind": "oracle"})
    with pytest.raises(RKDError, match="give candidates"):
        build_teacher("run")


def test_unresolvable_model_is_one_clear_error(monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RKDError, match="no-such-org/no-such-model"):
        build_teacher("bi-encoder:no-such-org/no-such-model")


# -- model teachers on tiny random models ------------------------------------------------------
def test_cross_encoder_teacher_matches_plain_cross_encoder(tmp_path: Path) -> None:
    from sentence_transformers import CrossEncoder

    folder = save_tiny_cross_encoder(tmp_path / "ce")
    # fp32 on both sides: on a GPU the teacher's "auto" dtype is bf16, plain predict stays fp32
    teacher = build_teacher({"kind": "cross-encoder", "model": str(folder), "dtype": "float32"})
    scores = teacher.score(QUERIES, PASSAGES)
    assert [s.shape for s in scores] == [(3,), (2,)]
    plain = CrossEncoder(str(folder), activation_fn=torch.nn.Identity())
    expected = plain.predict([(q, p) for q, ps in zip(QUERIES, PASSAGES, strict=True) for p in ps])
    assert np.concatenate(scores) == pytest.approx(expected, abs=1e-5)  # raw logits, same order
    assert teacher.describe()["kind"] == "cross-encoder"


def test_cross_encoder_teacher_is_batch_size_invariant(tmp_path: Path) -> None:
    from teachers.cross_encoder import CrossEncoderTeacher

    folder = save_tiny_cross_encoder(tmp_path / "ce")
    one = CrossEncoderTeacher(str(folder), batch_size=1, dtype="float32").score(QUERIES, PASSAGES)
    many = CrossEncoderTeacher(str(folder), batch_size=4, dtype="float32").score(QUERIES, PASSAGES)
    for a, b in zip(one, many, strict=True):
        assert a == pytest.approx(b, abs=1e-5)  # padding does not leak into scores


def test_scorer_group_helpers() -> None:
    flat = np.arange(5, dtype=np.float32)
    parts = split_groups(flat, [["a", "b"], [], ["c", "d", "e"]])
    assert [p.tolist() for p in parts] == [[0.0, 1.0], [], [2.0, 3.0, 4.0]]
    check_groups(["q"], [["a"]])
    with pytest.raises(InputError, match="2 queries but 1 passage lists"):
        check_groups(["q1", "q2"], [["a"]])


def test_cross_encoder_teacher_refuses_unaligned_input(tmp_path: Path) -> None:
    from teachers.cross_encoder import CrossEncoderTeacher

    teacher = CrossEncoderTeacher(str(save_tiny_cross_encoder(tmp_path / "ce")))
    with pytest.raises(InputError, match="queries but"):
        teacher.score(QUERIES, PASSAGES[:-1])


def test_cross_encoder_teacher_reads_the_models_own_max_length(tmp_path: Path) -> None:
    """A folder's saved length (a cross-encoder trained here saves its training length) is the
    default, so pairs are cut as in training; an explicit ``max_length`` still wins."""
    from transformers import AutoTokenizer

    from teachers.cross_encoder import CrossEncoderTeacher

    folder = save_tiny_cross_encoder(tmp_path / "ce")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.model_max_length = 12
    tokenizer.save_pretrained(folder)
    teacher = CrossEncoderTeacher(str(folder), dtype="float32")
    assert teacher.max_length == 12 and teacher.describe()["max_length"] == 12
    pair = [("alpha beta gamma " * 4, "delta epsilon zeta eta " * 10)]
    explicit_12 = CrossEncoderTeacher(str(folder), max_length=12, dtype="float32")
    explicit_64 = CrossEncoderTeacher(str(folder), max_length=64, dtype="float32")
    assert explicit_64.max_length == 64
    assert teacher.score_pairs(pair) == pytest.approx(explicit_12.score_pairs(pair))
    assert teacher.score_pairs(pair) != pytest.approx(explicit_64.score_pairs(pair))


def test_cross_encoder_heads_two_class_log_odds_and_named_labels(tmp_path: Path) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from teachers.cross_encoder import CrossEncoderTeacher

    def raw_logits(folder: Path) -> torch.Tensor:
        model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
        tokenizer = AutoTokenizer.from_pretrained(folder)
        pairs = [(q, p) for q, group in zip(QUERIES, PASSAGES, strict=True) for p in group]
        batch = tokenizer(
            [q for q, _ in pairs],
            [p for _, p in pairs],
            padding=True,
            truncation="longest_first",
            max_length=512,
            return_tensors="pt",
        )
        with torch.inference_mode():
            return model(**batch).logits  # fmt: skip

    two = save_tiny_cross_encoder(tmp_path / "two", num_labels=2)
    teacher = CrossEncoderTeacher(str(two), dtype="float32")
    logits = raw_logits(two)
    scores = np.concatenate(teacher.score(QUERIES, PASSAGES))
    np.testing.assert_allclose(scores, (logits[:, 1] - logits[:, 0]).numpy(), atol=1e-5)
    assert teacher.describe()["score"] == "logit[1] - logit[0]"

    three = save_tiny_cross_encoder(tmp_path / "three", num_labels=3)
    with pytest.raises(RKDError, match="head has 3 labels: say which logit"):
        CrossEncoderTeacher(str(three))
    with pytest.raises(RKDError, match="label 3 is out of range"):
        CrossEncoderTeacher(str(three), label=3)
    picked = build_teacher(
        {"kind": "cross-encoder", "model": str(three), "label": 2, "dtype": "float32"}
    )
    scores = np.concatenate(picked.score(QUERIES, PASSAGES))
    np.testing.assert_allclose(scores, raw_logits(three)[:, 2].numpy(), atol=1e-5)


def test_cross_encoder_teacher_in_bf16_on_cpu_stays_close(tmp_path: Path) -> None:
    from teachers.cross_encoder import CrossEncoderTeacher

    folder = save_tiny_cross_encoder(tmp_path / "ce")
    fp32 = CrossEncoderTeacher(str(folder), dtype="float32").score(QUERIES, PASSAGES)
    fp32 = np.concatenate(fp32)
    teacher = CrossEncoderTeacher(str(folder), dtype="bfloat16", device="cpu")
    bf16 = np.concatenate(teacher.score(QUERIES, PASSAGES))
    assert teacher.describe()["dtype"] == "bfloat16"  # recorded in the store's manifest
    assert bf16.dtype == np.float64 and np.isfinite(bf16).all()
    spread = float(np.ptp(fp32))
    assert np.abs(bf16 - fp32).max() <= 0.05 * spread + 1e-2  # bf16 keeps ~3 significant digits


def test_bi_encoder_teacher_is_cosine_of_embeddings(tmp_path: Path) -> None:
    from sentence_transformers import SentenceTransformer

    folder = save_tiny_sentence_transformer(tmp_path / "st")
    teacher = build_teacher({"kind": "bi-encoder", "model": str(folder), "precision": "fp32"})
    scores = teacher.score(QUERIES, PASSAGES)
    model = SentenceTransformer(str(folder))
    q = model.encode(QUERIES, normalize_embeddings=True)
    p = model.encode(PASSAGES[1], normalize_embeddings=True)
    assert scores[1] == pytest.approx(p @ q[1], abs=1e-5)
    assert all(np.all(np.abs(s) <= 1.0 + 1e-6) for s in scores)
    assert teacher.describe()["dtype"] == "float32"  # the arithmetic is in the identity
    teacher.encoder.half()
    assert teacher.describe()["dtype"] == "float16"
