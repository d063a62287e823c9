"""One arithmetic rule for every encoder and scorer: bf16 only where native, recorded, never
mixed in one index."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_models import save_tiny_cross_encoder, save_tiny_sentence_transformer

from retrieval_kd.data import load_dataset
from retrieval_kd.errors import RKDError
from retrieval_kd.models.arithmetic import dtype_name, inference_dtype
from retrieval_kd.retrieval import StudentEncoder, index_corpus, search_index


@pytest.fixture
def native_bf16(monkeypatch: pytest.MonkeyPatch):
    """Set whether the CPU 'has' AVX512-BF16 for the auto rule."""
    from retrieval_kd.training import precision

    def set_native(value: bool) -> None:
        monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: value)

    return set_native


def test_auto_picks_bf16_only_where_the_cpu_computes_it(native_bf16) -> None:
    native_bf16(True)
    assert inference_dtype("auto", "cpu") == torch.bfloat16
    assert inference_dtype(None, "cpu") == torch.bfloat16
    native_bf16(False)
    assert inference_dtype("auto", "cpu") == torch.float32
    # explicit choices are taken as they are, by short or torch name or dtype
    assert inference_dtype("bf16", "cpu") == torch.bfloat16
    assert inference_dtype("torch.float16", "cpu") == torch.float16
    assert inference_dtype(torch.float32, "cuda") == torch.float32
    assert dtype_name(inference_dtype("fp32")) == "float32"
    with pytest.raises(RKDError, match="unknown precision 'int4'"):
        inference_dtype("int4")


def test_student_encoder_records_its_dtype_and_bf16_stays_close(tmp_path: Path) -> None:
    student = save_tiny_sentence_transformer(tmp_path / "student")
    texts = ["the moon pulls the tides", "bread rises with yeast", "a b c d e f g"]
    fp32 = StudentEncoder(str(student), precision="fp32")
    bf16 = StudentEncoder(str(student), precision="bf16")
    assert fp32.settings["dtype"] == "float32" and bf16.settings["dtype"] == "bfloat16"
    a, b = fp32.encode_passages(texts), bf16.encode_passages(texts)
    assert a.dtype == b.dtype == np.float32  # vectors come back as float32 either way
    cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cosine.min() > 0.99  # bf16 rounding, not another model
    assert not np.array_equal(a, b)  # and it did run in bf16


def test_search_encodes_queries_in_the_dtype_the_index_was_built_with(
    toy_beir: Path, tmp_path: Path, native_bf16
) -> None:
    student = save_tiny_sentence_transformer(tmp_path / "student")
    dataset = load_dataset(str(toy_beir), "test")
    index_corpus(str(student), dataset.corpus, tmp_path / "bf16", "flat", precision="bf16")
    index_corpus(str(student), dataset.corpus, tmp_path / "fp32", "flat", precision="fp32")
    from retrieval_kd.manifest import read_manifest

    assert read_manifest(tmp_path / "bf16")["encoder"]["dtype"] == "bfloat16"
    native_bf16(False)  # 'auto' would now pick fp32: search must still use the index's bf16
    bf16 = StudentEncoder(str(student), precision="bf16")
    run = search_index(tmp_path / "bf16", dataset.queries, k=2)
    docs = bf16.encode_passages(dataset.corpus.texts(dataset.corpus.ids))
    for query_id, text in dataset.queries.items():
        expected = docs @ bf16.encode_queries([text])[0]
        assert list(run[query_id].values()) == pytest.approx(sorted(expected)[::-1][:2], rel=1e-3)


def test_an_index_resumed_in_another_dtype_reencodes_its_chunks(
    toy_beir: Path, tmp_path: Path
) -> None:
    student = save_tiny_sentence_transformer(tmp_path / "student")
    dataset = load_dataset(str(toy_beir), "test")
    out = tmp_path / "index"
    index_corpus(str(student), dataset.corpus, out, "flat", precision="fp32", keep_chunks=True)
    first = sorted(p.name for p in (out / "chunks").iterdir())
    index_corpus(str(student), dataset.corpus, out, "flat", precision="bf16", keep_chunks=True)
    second = sorted(p.name for p in (out / "chunks").iterdir())
    assert set(first).isdisjoint(second)  # no fp32 chunk was reused for the bf16 index


def test_teachers_follow_the_rule_and_describe_their_dtype(tmp_path: Path, native_bf16) -> None:
    from teachers import build_teacher

    st = save_tiny_sentence_transformer(tmp_path / "st")
    ce = save_tiny_cross_encoder(tmp_path / "ce")
    native_bf16(True)
    assert build_teacher(f"bi-encoder:{st}").describe()["dtype"] == "bfloat16"
    assert build_teacher(f"cross-encoder:{ce}").describe()["dtype"] == "bfloat16"
    native_bf16(False)
    assert build_teacher(f"bi-encoder:{st}").describe()["dtype"] == "float32"
    assert build_teacher(f"cross-encoder:{ce}").describe()["dtype"] == "float32"
    pinned = build_teacher({"kind": "bi-encoder", "model": str(st), "precision": "fp32"})
    assert pinned.describe()["dtype"] == "float32"


def test_the_index_encoder_takes_the_recorded_backend_and_dtype(tmp_path: Path) -> None:
    import importlib.util

    from retrieval_kd.retrieval import index_encoder

    student = str(save_tiny_sentence_transformer(tmp_path / "student"))
    encoder = index_encoder({"student": student, "encoder": {"dtype": "bfloat16"}})
    assert encoder.dtype == "bfloat16" and encoder.backend == "torch"
    assert index_encoder({"student": student}).backend == "torch"  # an index from before
    recorded = {"student": student, "encoder": {"backend": "onnx", "dtype": "float32"}}
    if importlib.util.find_spec("optimum") is None:  # the project's environment
        with pytest.raises(RKDError, match="backend 'onnx' could not load"):
            index_encoder(recorded)
    else:
        assert index_encoder(recorded).backend == "onnx"
