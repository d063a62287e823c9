"""Loaders for every source kind, and one clear error for each kind of bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from retrieval_kd.data import (
    Corpus,
    load_corpus_file,
    load_dataset,
    load_qrels_spec,
    parse_data_split,
    ranked_doc_ids,
    read_qrels,
    read_queries,
    read_run,
    truncate_run,
    write_run,
)
from retrieval_kd.errors import InputError


def cache_files() -> list[Path]:
    import os

    root = Path(os.environ["RKD_CACHE_DIR"]) / "corpora"
    return sorted(root.glob("*")) if root.exists() else []


# -- BEIR folders and short names --------------------------------------------------------------
def test_beir_folder_split_restricts_queries(toy_beir: Path) -> None:
    ds = load_dataset(str(toy_beir), "test")
    assert ds.qrels["q1"] == {"d1": 2, "d4": 1}
    assert sorted(ds.queries) == ["q1", "q2", "q3"]  # only the judged queries of the split
    assert len(ds.corpus) == 5
    # title + " " + text; no title -> text alone
    assert ds.corpus.texts(["d1", "d4"]) == [
        "Solar power Solar panels convert sunlight into electricity.",
        "Photovoltaic cells and solar panels on rooftops.",
    ]


def test_no_split_means_every_query_and_no_qrels(toy_beir: Path) -> None:
    ds = load_dataset(str(toy_beir))
    assert len(ds.queries) == 4
    with pytest.raises(InputError, match="without a split"):
        _ = ds.qrels


def test_short_name_resolves_under_data_dir(toy_beir: Path, monkeypatch) -> None:
    monkeypatch.setenv("RKD_DATA_DIR", str(toy_beir.parent))
    assert load_dataset("toy", "train").qrels == {"q4": {"d5": 1}}
    assert parse_data_split("toy/test") == ("toy", "test")
    assert load_qrels_spec("toy/test")["q2"] == {"d3": 1}


def test_unknown_short_name_lists_what_exists(toy_beir: Path, monkeypatch) -> None:
    monkeypatch.setenv("RKD_DATA_DIR", str(toy_beir.parent))
    with pytest.raises(InputError, match=r"no collection 'nope'.*found: toy"):
        load_dataset("nope", "test")


def test_short_name_without_data_dir(monkeypatch) -> None:
    monkeypatch.delenv("RKD_DATA_DIR", raising=False)
    with pytest.raises(InputError, match="RKD_DATA_DIR is not set"):
        load_dataset("scifact", "test")


def test_missing_split_names_available_ones(toy_beir: Path) -> None:
    with pytest.raises(InputError, match=r"split 'dev' not found \(available: test, train\)"):
        load_dataset(str(toy_beir), "dev")


def test_corpus_is_cached_once_and_reused(toy_beir: Path) -> None:
    first = load_corpus_file(toy_beir / "corpus.jsonl")
    before = cache_files()
    second = load_corpus_file(toy_beir / "corpus.jsonl")
    assert cache_files() == before and first.path == second.path
    assert second.texts(["d3"]) == first.texts(["d3"])


def test_corpus_batches_stream_every_document(toy_beir: Path) -> None:
    corpus = load_corpus_file(toy_beir / "corpus.jsonl")
    seen = [doc_id for ids, _ in corpus.iter_batches(batch_size=2) for doc_id in ids]
    assert seen == ["d1", "d2", "d3", "d4", "d5"]
    assert "d2" in corpus and "d9" not in corpus
    with pytest.raises(InputError, match="not in corpus"):
        corpus.texts(["d9"])


# -- TSV / JSONL id-text files -----------------------------------------------------------------
def test_tsv_corpus_and_queries(tmp_path: Path) -> None:
    (tmp_path / "collection.tsv").write_text("7\tfirst passage\n8\tA title\tsecond passage\n")
    (tmp_path / "queries.tsv").write_text("1\twhat is first\n2\tsecond?\n")
    corpus = load_corpus_file(tmp_path / "collection.tsv")
    assert corpus.texts(["8", "7"]) == ["A title second passage", "first passage"]
    assert read_queries(tmp_path / "queries.tsv") == {"1": "what is first", "2": "second?"}


# -- qrels and runs ----------------------------------------------------------------------------
def test_trec_and_beir_qrels_agree(tmp_path: Path) -> None:
    (tmp_path / "a.qrels").write_text("q1 0 d1 2\nq1 0 d2 0\nq2 0 d3 1\n")
    (tmp_path / "b.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\td2\t0\nq2\td3\t1\n")
    assert (
        read_qrels(tmp_path / "a.qrels")
        == read_qrels(tmp_path / "b.tsv")
        == {"q1": {"d1": 2, "d2": 0}, "q2": {"d3": 1}}
    )


def test_run_round_trip_orders_ties_by_doc_id(tmp_path: Path) -> None:
    run = {"q1": {"a": 1.0, "b": 1.0, "c": 2.0}, "q2": {"x": 0.5}}
    path = write_run(run, tmp_path / "r.trec", tag="t")
    lines = path.read_text().splitlines()
    assert lines[:3] == ["q1 Q0 c 1 2.0 t", "q1 Q0 b 2 1.0 t", "q1 Q0 a 3 1.0 t"]
    assert read_run(path) == run
    assert truncate_run(run, 2) == {"q1": {"c": 2.0, "b": 1.0}, "q2": {"x": 0.5}}


def test_run_file_keeps_full_precision_so_near_ties_stay_ordered(tmp_path: Path) -> None:
    # 6 decimals would write both as 0.123456 and the tie would put "a" above "b"
    run = {"q1": {"a": 0.1234561, "b": 0.1234564, "c": np.float32(0.3)}}
    back = read_run(write_run(run, tmp_path / "r.trec"))
    assert back["q1"]["a"] == 0.1234561 and back["q1"]["b"] == 0.1234564
    assert back["q1"]["c"] == float(np.float32(0.3))
    assert ranked_doc_ids(back["q1"]) == ["c", "b", "a"]


# -- bad input: one clear error naming file and line, nothing partial ----------------------------
def test_malformed_json_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "corpus.jsonl"
    path.write_text('{"_id": "d1", "text": "ok"}\n{"_id": "d2", "text": "broken\n')
    with pytest.raises(InputError) as err:
        load_corpus_file(path)
    assert f"{path}:2: malformed JSON" in str(err.value)
    assert cache_files() == []  # nothing partial written


def test_duplicate_document_id(tmp_path: Path) -> None:
    path = tmp_path / "corpus.jsonl"
    rows = [{"_id": "a", "text": "x"}, {"_id": "b", "text": "y"}, {"_id": "a", "text": "z"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(
        InputError,
        match=r"corpus.jsonl:3: duplicate document id 'a' "
        r"\(first at line 1\)",
    ):
        load_corpus_file(path)
    assert cache_files() == []


def test_empty_corpus(tmp_path: Path) -> None:
    path = tmp_path / "corpus.jsonl"
    path.write_text("\n")
    with pytest.raises(InputError, match="corpus is empty"):
        load_corpus_file(path)
    assert cache_files() == []


def test_missing_text_field(tmp_path: Path) -> None:
    path = tmp_path / "corpus.jsonl"
    path.write_text('{"_id": "a", "title": "no text"}\n')
    with pytest.raises(InputError, match=r":1: missing field 'text'"):
        load_corpus_file(path)


def test_qrels_line_with_two_fields(tmp_path: Path) -> None:
    path = tmp_path / "q.tsv"
    path.write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\n")
    with pytest.raises(InputError, match=r"q.tsv:3: qrels line has 2 fields, expected 3"):
        read_qrels(path)


def test_qrels_grade_not_a_number(tmp_path: Path) -> None:
    path = tmp_path / "q.txt"
    path.write_text("q1 0 d1 high\n")
    with pytest.raises(InputError, match=r"q.txt:1: relevance grade 'high' is not a number"):
        read_qrels(path)


def test_qrels_fractional_grade_is_refused_not_truncated(tmp_path: Path) -> None:
    path = tmp_path / "q.txt"
    path.write_text("q1 0 d1 2.0\nq1 0 d2 1.5\n")
    with pytest.raises(InputError, match=r"q.txt:2: relevance grade '1.5' is not a whole number"):
        read_qrels(path)
    path.write_text("q1 0 d1 2.0\n")
    assert read_qrels(path) == {"q1": {"d1": 2}}


def test_run_names_unknown_query(toy_beir: Path, tmp_path: Path) -> None:
    path = tmp_path / "r.trec"
    path.write_text("q1 Q0 d1 1 3.0 x\nq99 Q0 d2 1 2.0 x\n")
    queries = load_dataset(str(toy_beir), "test").load_all_queries()
    with pytest.raises(InputError, match=r"r.trec:2: run names unknown query 'q99'"):
        read_run(path, known_queries=queries)


def test_run_names_unknown_document_with_its_first_line(toy_beir: Path, tmp_path: Path) -> None:
    path = tmp_path / "r.trec"
    path.write_text("q1 Q0 d1 1 3.0 x\nq1 Q0 zz 2 2.0 x\nq2 Q0 yy 1 2.0 x\nq2 Q0 zz 2 1.0 x\n")
    corpus = load_dataset(str(toy_beir), "test").corpus
    assert corpus.contains(["d1", "zz", "d2"]).tolist() == [True, False, True]
    for known in (corpus, set(corpus.ids)):  # the corpus's vectorised lookup, or any collection
        with pytest.raises(InputError, match=r"r.trec:2: run names unknown document 'zz'"):
            read_run(path, known_docs=known)
    path.write_text("q1 Q0 d1 1 3.0 x\nq2 Q0 d2 1 2.0 x\n")
    assert read_run(path, known_docs=corpus) == {"q1": {"d1": 3.0}, "q2": {"d2": 2.0}}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("q1 Q0 d1 1 3.0\n", r":1: run line has 5 fields, expected 6"),
        ("q1 Q0 d1 1 abc x\n", r":1: score 'abc' is not a number"),
        ("q1 Q0 d1 1 nan x\n", r":1: score 'nan' is not finite"),
        ("q1 Q0 d1 1 2 x\nq1 Q0 d1 2 1 x\n", r":2: document 'd1' appears twice for query 'q1'"),
        ("", r"run file holds no ranking"),
    ],
)
def test_bad_run_lines(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "r.trec"
    path.write_text(content)
    with pytest.raises(InputError, match=message):
        read_run(path)


def test_duplicate_query_id(tmp_path: Path) -> None:
    path = tmp_path / "queries.jsonl"
    path.write_text('{"_id": "1", "text": "a"}\n{"_id": "1", "text": "b"}\n')
    with pytest.raises(InputError, match=r"queries.jsonl:2: duplicate query id '1'"):
        read_queries(path)


def test_corpus_cache_that_is_garbage_is_reported(tmp_path: Path) -> None:
    bad = tmp_path / "x.arrow"
    bad.write_bytes(b"not arrow")
    with pytest.raises(InputError, match="unreadable corpus cache"):
        Corpus(bad)


def test_content_id_follows_content_not_path_or_mtime(tmp_path) -> None:
    import os

    from retrieval_kd.data.corpus import content_id

    a = tmp_path / "a" / "corpus.jsonl"
    b = tmp_path / "b" / "corpus.jsonl"
    for path in (a, b):
        path.parent.mkdir()
        path.write_text('{"_id": "d1", "text": "x"}\n', encoding="utf-8")
    os.utime(b, ns=(1, 1))  # another mtime, as after a copy or a re-mount
    assert content_id(a) == content_id(b)
    assert content_id(a).startswith("corpus-")
    b.write_text('{"_id": "d1", "text": "y"}\n', encoding="utf-8")
    assert content_id(a) != content_id(b)
