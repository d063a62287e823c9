"""BiEncoderStudent: protocol, plain sentence-transformers round trip, settings checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from _train_worker import save_tiny_st

from retrieval_kd.errors import InputError, RKDError
from students.base import TrainableStudent
from students.bi_encoder import SETTINGS_FILE, BiEncoderSettings, BiEncoderStudent

QUERIES = ["how do solar panels make electricity", "wind turbines"]
PASSAGES = [
    "solar panels make electricity from sun light on the cells of the panels " * 3,
    "boil pasta in water",
    "wind turbines turn air into power",
]


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_st(tmp_path_factory.mktemp("tiny") / "st")


@pytest.mark.parametrize(
    "settings",
    [
        dict(pooling="mean", similarity="cosine", query_prefix="query: ",
             passage_prefix="passage: ", query_max_length=6, passage_max_length=12),
        dict(pooling="cls", similarity="dot", query_max_length=16, passage_max_length=40),
    ],
)  # fmt: skip
def test_saved_folder_encodes_identically_in_plain_sentence_transformers(
    tiny_folder: Path, tmp_path: Path, settings: dict
) -> None:
    from sentence_transformers import SentenceTransformer

    student = BiEncoderStudent(tiny_folder, **settings)
    student.model.eval()
    with torch.no_grad():
        q_ours = student.encode_queries(QUERIES)
        p_ours = student.encode_passages(PASSAGES)
    student.save(tmp_path / "saved")

    plain = SentenceTransformer(str(tmp_path / "saved"), device="cpu")
    q_plain = plain.encode_query(QUERIES, convert_to_tensor=True)
    p_plain = plain.encode_document(PASSAGES, convert_to_tensor=True)
    torch.testing.assert_close(q_plain, q_ours, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(p_plain, p_ours, atol=1e-6, rtol=1e-5)
    assert plain.similarity_fn_name == settings["similarity"]
    norms = p_plain.norm(dim=-1)
    if settings["similarity"] == "cosine":
        torch.testing.assert_close(norms, torch.ones_like(norms))
    else:
        assert not torch.allclose(norms, torch.ones_like(norms))
    # the limits and prefixes really act: a longer limit or no prefix changes the vectors
    longer = BiEncoderStudent(
        tiny_folder, **{**settings, "passage_max_length": 64, "query_prefix": ""}
    )
    longer.model.eval()
    with torch.no_grad():
        assert not torch.allclose(longer.encode_passages(PASSAGES[:1]), p_ours[:1])
        if settings.get("query_prefix"):
            assert not torch.allclose(longer.encode_queries(QUERIES), q_ours)


def test_settings_record_and_reload(tiny_folder: Path, tmp_path: Path) -> None:
    student = BiEncoderStudent(tiny_folder, similarity="cosine", query_max_length=8)
    assert isinstance(student, TrainableStudent)
    student.save(tmp_path / "saved")
    record = json.loads((tmp_path / "saved" / SETTINGS_FILE).read_text())
    assert record["kind"] == "bi-encoder"
    assert record["settings"]["similarity"] == "cosine"
    assert record["settings"]["query_max_length"] == 8
    reloaded = BiEncoderStudent(tmp_path / "saved")  # nothing asked: the saved settings
    assert reloaded.settings == student.settings
    assert reloaded.describe()["base_model"] == student.describe()["base_model"]


def test_settings_that_contradict_the_saved_student_are_an_error(
    tiny_folder: Path, tmp_path: Path
) -> None:
    BiEncoderStudent(tiny_folder, pooling="mean", similarity="dot").save(tmp_path / "saved")
    with pytest.raises(InputError, match=r"pooling: saved 'mean', asked 'cls'") as err:
        BiEncoderStudent(tmp_path / "saved", pooling="cls", similarity="cosine")
    assert "similarity: saved 'dot', asked 'cosine'" in str(err.value)
    assert SETTINGS_FILE in str(err.value)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(RKDError, match="pooling"):
        BiEncoderSettings(pooling="max")
    with pytest.raises(RKDError, match="query_max_length"):
        BiEncoderSettings(query_max_length=0)


def test_scores_are_differentiable_and_consistent(tiny_folder: Path) -> None:
    student = BiEncoderStudent(tiny_folder, similarity="dot")
    student.model.eval()
    groups = [PASSAGES, list(reversed(PASSAGES))]
    scores = student.score_groups(QUERIES, groups)
    assert scores.shape == (2, 3)
    flat = [p for group in groups for p in group]
    everything = student.score_all(QUERIES, flat)
    assert everything.shape == (2, 6)
    torch.testing.assert_close(scores[0], everything[0, :3])
    torch.testing.assert_close(scores[1], everything[1, 3:])
    scores.sum().backward()
    grads = [p.grad for p in student.model.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    with pytest.raises(InputError, match="same number"):
        student.score_groups(QUERIES, [PASSAGES, PASSAGES[:2]])


def test_dot_removes_and_cosine_adds_normalize(tiny_folder: Path, tmp_path: Path) -> None:
    from sentence_transformers.sentence_transformer.modules import Normalize

    cosine = BiEncoderStudent(tiny_folder, similarity="cosine")
    assert isinstance(cosine.model[-1], Normalize)
    cosine.model.save(str(tmp_path / "plain"), create_model_card=False)  # no rkd_student.json
    assert BiEncoderStudent(tmp_path / "plain").settings.similarity == "cosine"
    dot = BiEncoderStudent(tmp_path / "plain", similarity="dot")
    assert not any(isinstance(m, Normalize) for m in dot.model)
    assert dot.settings.similarity == "dot"
