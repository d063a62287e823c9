"""Score store: round trip, multi-shard merge, corrupt shards, exports (Run, TREC, HF dataset)."""

from __future__ import annotations

import numpy as np
import pytest

from retrieval_kd.errors import InputError, RKDError
from retrieval_kd.store import ScoredQuery, ScoreStore, ShardWriter

ROWS = [
    ScoredQuery("q2", ["d1", "d2", "d3"], [0.5, 2.0, -1.0], [0, 1, 0]),
    ScoredQuery("q1", ["d9", "d8"], [1.0, 1.0], None),
]


def test_round_trip(tmp_path):
    path = ShardWriter(tmp_path).write(ROWS)
    assert path.name == "shard-r00-000000.parquet"
    store = ScoreStore(tmp_path)
    assert len(store) == 2 and store.num_pairs == 5
    assert store.query_ids() == ["q1", "q2"] and "q1" in store and "q3" not in store
    q2 = store.get("q2")
    assert q2.doc_ids == ["d2", "d1", "d3"]  # score descending
    assert q2.scores.dtype == np.float32 and q2.scores.tolist() == [2.0, 0.5, -1.0]
    assert q2.labels.tolist() == [1, 0, 0]
    q1 = store.get("q1")
    assert q1.doc_ids == ["d9", "d8"]  # equal scores: doc id descending (retrieval_kd.ranking)
    assert q1.labels is None
    assert [row.query_id for row in store] == ["q1", "q2"]
    assert store.manifest is None  # written by score_candidates only
    with pytest.raises(KeyError):
        store.get("q3")


def test_multi_shard_merge(tmp_path):
    ShardWriter(tmp_path, rank=0).write([ScoredQuery("q1", ["a", "b"], [3.0, 1.0], [1, 0])])
    ShardWriter(tmp_path, rank=1).write([ScoredQuery("q1", ["c", "a"], [2.0, 9.0], [0, 1])])
    second = ShardWriter(tmp_path, rank=0)  # continues the sequence of rank 0
    assert second.next_seq == 1
    second.write([ScoredQuery("q2", ["x"], [0.0], [0])])
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [
        "shard-r00-000000.parquet",
        "shard-r00-000001.parquet",
        "shard-r01-000000.parquet",
    ]
    store = ScoreStore(tmp_path)
    merged = store.get("q1")
    # the duplicate pair (q1, a) keeps the first shard's score (shard name order)
    assert merged.doc_ids == ["a", "c", "b"]
    assert merged.scores.tolist() == [3.0, 2.0, 1.0]
    assert merged.labels.tolist() == [1, 0, 0]
    assert len(store) == 2 and store.num_pairs == 4


def test_labels_none_when_a_row_lacks_them(tmp_path):
    ShardWriter(tmp_path, rank=0).write([ScoredQuery("q1", ["a"], [1.0], [1])])
    ShardWriter(tmp_path, rank=1).write([ScoredQuery("q1", ["b"], [0.0], None)])
    assert ScoreStore(tmp_path).get("q1").labels is None


def test_reload_sees_new_shards_and_ignores_temp_files(tmp_path):
    writer = ShardWriter(tmp_path)
    writer.write(ROWS[:1])
    store = ScoreStore(tmp_path)
    (tmp_path / ".shard-r00-000001.parquet.tmp").write_bytes(b"half a shard")
    assert len(store.reload()) == 1
    writer.write(ROWS[1:])
    assert len(store) == 1 and len(store.reload()) == 2
    ShardWriter(tmp_path)  # a new writer of rank 0 removes its stale temp files
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_shard_is_an_input_error_naming_the_file(tmp_path, damage):
    path = ShardWriter(tmp_path).write(ROWS)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"not parquet" * 10)
    with pytest.raises(InputError, match="shard-r00-000000.parquet") as info:
        ScoreStore(tmp_path)
    assert info.value.path == str(path)


def test_missing_folder_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="no such folder"):
        ScoreStore(tmp_path / "nope")


def test_writer_rejects_ragged_rows(tmp_path):
    with pytest.raises(ValueError, match="differ in length"):
        ShardWriter(tmp_path).write([ScoredQuery("q", ["a", "b"], [1.0], None)])
    assert not list(tmp_path.iterdir())


def test_to_run_and_trec_round_trip(tmp_path):
    scores = np.array([0.1, 1 / 3, -2.5e-7], dtype=np.float32)
    ShardWriter(tmp_path / "s").write([ScoredQuery("q1", ["a", "b", "c"], scores, None)])
    store = ScoreStore(tmp_path / "s")
    run = store.to_run()
    assert run == {"q1": {"a": float(scores[0]), "b": float(scores[1]), "c": float(scores[2])}}
    path = store.write_trec(tmp_path / "run.trec", run_name="t")
    lines = [line.split() for line in path.read_text().splitlines()]
    assert [(f[0], f[1], f[2], f[3], f[5]) for f in lines] == [
        ("q1", "Q0", "b", "1", "t"),
        ("q1", "Q0", "a", "2", "t"),
        ("q1", "Q0", "c", "3", "t"),
    ]
    read_back = {f[2]: np.float32(float(f[4])) for f in lines}
    assert all(read_back[d] == np.float32(run["q1"][d]) for d in "abc")  # float32-exact


def _export_store(tmp_path) -> ScoreStore:
    writer = ShardWriter(tmp_path)
    writer.write(
        [
            ScoredQuery("q1", ["a", "b", "c", "d"], [4.0, 3.0, 2.0, 1.0], None),
            ScoredQuery("q2", ["e", "f", "g", "h"], [1.0, 5.0, 2.0, 0.0], None),
            ScoredQuery("q3", ["i", "j"], [1.0, 0.0], None),
        ]
    )
    return ScoreStore(tmp_path)


QUERIES = {"q1": "first", "q2": "second", "q3": "third"}


def _text(ids):
    return [f"text {d}" for d in ids]


def test_hf_dataset_kl_with_qrels(tmp_path):
    qrels = {"q1": {"c": 1, "a": 0}, "q2": {"e": 1, "h": 2}, "q3": {"zz": 1}}
    ds = _export_store(tmp_path).to_hf_dataset(QUERIES, _text, qrels=qrels, num_negatives=2)
    assert ds.column_names == ["query", "positive", "negative_1", "negative_2", "label"]
    rows = ds.to_list()
    assert len(rows) == 2  # q3: its judged positive was not scored -> skipped
    assert rows[0] == {
        "query": "first",
        "positive": "text c",  # the qrels positive, not the teacher's top-1
        "negative_1": "text a",  # hardest negatives first (a is judged 0 = negative)
        "negative_2": "text b",
        "label": [2.0, 4.0, 3.0],
    }
    assert rows[1]["positive"] == "text h"  # highest grade wins over higher teacher score
    assert rows[1]["label"] == [0.0, 5.0, 2.0]


def test_hf_dataset_margin_mse_teacher_top1(tmp_path):
    store = _export_store(tmp_path)
    ds = store.to_hf_dataset(QUERIES, _text, format="margin_mse", num_negatives=1)
    assert ds.column_names == ["query", "positive", "negative_1", "label"]
    rows = ds.to_list()
    assert [r["positive"] for r in rows] == ["text a", "text f", "text i"]  # teacher top-1
    assert [r["label"] for r in rows] == [[1.0], [3.0], [1.0]]  # pos - neg margins


def test_hf_dataset_random_negatives_are_seeded(tmp_path):
    store = _export_store(tmp_path)
    a = store.to_hf_dataset(QUERIES, _text, num_negatives=2, negatives="random", seed=3)
    b = store.to_hf_dataset(QUERIES, _text, num_negatives=2, negatives="random", seed=3)
    assert a.to_list() == b.to_list() and len(a) == 2  # q3 has one negative only
    for row in a.to_list():
        assert row["label"][1] >= row["label"][2]  # kept in teacher-score order


def test_hf_dataset_bad_arguments(tmp_path):
    store = _export_store(tmp_path)
    with pytest.raises(RKDError, match="format"):
        store.to_hf_dataset(QUERIES, _text, format="listwise")
    with pytest.raises(RKDError, match="num_negatives"):
        store.to_hf_dataset(QUERIES, _text, num_negatives=0)


def test_hf_dataset_fits_the_sentence_transformers_losses(tmp_path):
    """Labels have the shapes DistillKLDivLoss and MarginMSELoss check (their own code)."""
    torch = pytest.importorskip("torch")
    losses = pytest.importorskip("sentence_transformers.sentence_transformer.losses")
    from sentence_transformers.base.data_collator import DEFAULT_LABEL_COLUMNS

    store = _export_store(tmp_path)
    for fmt, loss in (
        ("kl", losses.DistillKLDivLoss(model=None)),
        ("margin_mse", losses.MarginMSELoss(model=None)),
    ):
        ds = store.to_hf_dataset(QUERIES, _text, format=fmt, num_negatives=2)
        assert ds.column_names[-1] in DEFAULT_LABEL_COLUMNS
        text_columns = ds.column_names[:-1]
        labels = torch.tensor(ds["label"])
        embeddings = [torch.randn(len(ds), 8) for _ in text_columns]
        value = loss.compute_loss_from_embeddings(embeddings, labels)
        assert value.ndim == 0 and torch.isfinite(value)
        with pytest.raises(ValueError):  # the same check fails on a wrong label width
            loss.compute_loss_from_embeddings(embeddings, labels[:, :1].repeat(1, 4))


def test_teacher_identity_ignores_volatile_keys_at_every_depth():
    from retrieval_kd.store.store_manifest import teacher_identity

    def ensemble(device: str, batch_size: int) -> dict:
        member = {"kind": "llm-ql", "model": "m", "device": device, "batch_size": batch_size}
        return {"kind": "ensemble", "members": [{"weight": 1.0, **member}], "device": device}

    assert teacher_identity(ensemble("cuda", 64)) == teacher_identity(ensemble("cpu", 8))
    assert teacher_identity(ensemble("cpu", 8))["members"][0] == {
        "kind": "llm-ql", "model": "m", "weight": 1.0
    }  # fmt: skip
