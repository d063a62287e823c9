"""Cross-encoder student on a tiny random BERT: fresh head, losses, Scorer order, save/load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_models import (
    save_tiny_cross_encoder,
    save_tiny_sentence_transformer,
    tiny_bert_config,
    tiny_tokenizer,
)

from retrieval_kd.errors import InputError
from retrieval_kd.interfaces import Scorer
from retrieval_kd.losses import get_loss, loss_names
from students.base import TrainableStudent
from students.cross_encoder_student import CrossEncoderStudent

QUERIES = ["solar power", "how do wind turbines make energy"]
PASSAGES = [
    ["solar panels make electricity", "boil the pasta in water", "the sun"],
    ["wind turbines turn air into energy", "rivers and dams", "cooking pasta"],
]
TEACHER = torch.tensor([[6.0, 1.0, -2.0], [3.0, 4.0, 0.5]])


@pytest.fixture(scope="module")
def backbone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A plain HF ``BertModel`` folder: no classification head."""
    from transformers import BertModel

    folder = tmp_path_factory.mktemp("ce-backbone")
    torch.manual_seed(0)
    BertModel(tiny_bert_config()).save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return folder


def make_student(folder: Path | str, seed: int = 0, **settings) -> CrossEncoderStudent:
    torch.manual_seed(seed)
    student = CrossEncoderStudent(str(folder), device="cpu", **settings)
    student.model.eval()
    return student


@pytest.fixture
def student(backbone: Path) -> CrossEncoderStudent:
    return make_student(backbone)


def test_backbone_gets_a_fresh_one_logit_head(student: CrossEncoderStudent):
    from transformers import BertForSequenceClassification

    assert isinstance(student.hf_model, BertForSequenceClassification)
    assert student.hf_model.config.num_labels == 1
    assert student.hf_model.classifier.weight.shape == (1, 32)
    assert isinstance(student, TrainableStudent) and isinstance(student, Scorer)
    info = student.describe()
    assert info["kind"] == "cross-encoder" and info["num_labels"] == 1
    assert info["architecture"] == "BertForSequenceClassification" and info["source"] == "local"


def test_a_bi_encoder_folder_is_a_backbone_too(tmp_path: Path):
    folder = save_tiny_sentence_transformer(tmp_path / "bi")
    scores = make_student(folder).score_groups(QUERIES, PASSAGES)
    assert scores.shape == (2, 3) and torch.isfinite(scores).all()


def test_score_groups_are_the_pair_logits(student: CrossEncoderStudent):
    scores = student.score_groups(QUERIES, PASSAGES)
    assert scores.shape == (2, 3) and scores.requires_grad
    tokenizer = student.model.tokenizer
    for b, query in enumerate(QUERIES):
        for k, passage in enumerate(PASSAGES[b]):
            with torch.no_grad():
                logit = student.hf_model(**tokenizer(query, passage, return_tensors="pt")).logits
            assert float(scores[b, k].detach()) == pytest.approx(float(logit[0, 0]), abs=1e-5)
    flat = student.score(QUERIES, PASSAGES)
    np.testing.assert_allclose(np.stack(flat), scores.detach().numpy(), atol=1e-5)


def test_gradients_reach_head_and_encoder(backbone: Path):
    student = make_student(backbone)
    student.model.train()
    student.score_groups(QUERIES, PASSAGES).sum().backward()
    assert student.hf_model.classifier.weight.grad.abs().sum() > 0
    assert student.hf_model.bert.embeddings.word_embeddings.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("name", [n for n in loss_names() if n != "info_nce"])
def test_every_group_loss_trains_the_cross_encoder(student: CrossEncoderStudent, name: str):
    student.model.zero_grad()
    value = get_loss(name)(student.score_groups(QUERIES, PASSAGES), TEACHER, None, None)
    value = value["loss"] if isinstance(value, dict) else value
    assert value.dim() == 0 and torch.isfinite(value)
    value.backward()
    assert student.hf_model.classifier.weight.grad.abs().sum() > 0


def test_info_nce_over_the_group_trains_the_cross_encoder(student: CrossEncoderStudent):
    value = get_loss("info_nce")(student.score_groups(QUERIES, PASSAGES))
    assert torch.isfinite(value)
    value.backward()
    assert student.hf_model.classifier.weight.grad.abs().sum() > 0


def test_score_all_is_not_offered(student: CrossEncoderStudent):
    with pytest.raises(NotImplementedError, match="score_groups"):
        student.score_all(QUERIES, [p for group in PASSAGES for p in group])


def test_scorer_restores_input_order_after_length_sorting(student: CrossEncoderStudent):
    long = " ".join(["solar panels make electricity"] * 6)
    groups = [["sun", long, "the sun light", "wind"], [], ["pasta", long + " and water"]]
    queries = ["solar power", "rivers", "how do you boil pasta in water"]
    out = student.score(queries, groups, query_ids=["a", "b", "c"], doc_ids=None)
    assert [a.shape for a in out] == [(4,), (0,), (2,)] and out[0].dtype == np.float64
    one_by_one = [
        np.array([student.score_pairs([(q, p)])[0] for p in group])
        for q, group in zip(queries, groups, strict=True)
    ]
    for got, expected in zip(out, one_by_one, strict=True):
        np.testing.assert_allclose(got, expected, atol=1e-5)
    assert len(set(np.round(out[0], 6))) == 4  # distinct scores: a misorder would show


def test_scores_do_not_depend_on_batch_size(student: CrossEncoderStudent):
    reference = np.concatenate(student.score(QUERIES, PASSAGES))
    for batch_size in (1, 4):
        student.batch_size = batch_size
        np.testing.assert_allclose(
            np.concatenate(student.score(QUERIES, PASSAGES)), reference, atol=1e-5
        )


def test_scoring_keeps_the_training_mode(student: CrossEncoderStudent):
    student.model.train()
    student.score(QUERIES, PASSAGES)
    assert student.model.training


def test_save_loads_in_plain_sentence_transformers_and_transformers(
    student: CrossEncoderStudent, tmp_path: Path
):
    from sentence_transformers import CrossEncoder
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder = tmp_path / "ce"
    student.save(folder)
    pairs = [(q, p) for q, group in zip(QUERIES, PASSAGES, strict=True) for p in group]
    ours = student.score_pairs(pairs)
    plain = CrossEncoder(str(folder), device="cpu").predict(pairs)  # saved activation: identity
    np.testing.assert_allclose(plain, ours, atol=1e-5)

    hf = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    batch = tokenizer(
        [q for q, _ in pairs], [p for _, p in pairs], padding=True, return_tensors="pt"
    )
    with torch.no_grad():
        logits = hf(**batch).logits[:, 0].numpy()
    np.testing.assert_allclose(logits, ours, atol=1e-5)

    again = make_student(folder)
    np.testing.assert_allclose(again.score_pairs(pairs), ours, atol=1e-6)


def test_a_trained_cross_encoder_keeps_its_head(tmp_path: Path):
    from sentence_transformers import CrossEncoder

    folder = save_tiny_cross_encoder(tmp_path / "ce", seed=3)
    pairs = [("solar power", "solar panels"), ("wind", "pasta water")]
    expected = CrossEncoder(str(folder), activation_fn=torch.nn.Identity()).predict(pairs)
    np.testing.assert_allclose(
        make_student(folder, seed=99).score_pairs(pairs), expected, atol=1e-6
    )


def test_max_length_truncates_pairs(backbone: Path):
    student = make_student(backbone, max_length=8)
    assert student.describe()["max_length"] == 8
    features = student.model.preprocess([("solar power", " ".join(["energy"] * 30))])
    assert features["input_ids"].shape[1] == 8


def test_group_sizes_must_agree(student: CrossEncoderStudent):
    with pytest.raises(InputError, match="same non-zero number"):
        student.score_groups(QUERIES, [["a", "b"], ["c"]])
