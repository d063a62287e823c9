"""Query generation: cleaning, filters, templates, span and LLM generators, the resumable and
distributable shard loop, and the query-set folder every later stage reads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import write_beir_folder

from retrieval_kd.data import load_dataset
from retrieval_kd.errors import InputError, RKDError
from retrieval_kd.generation import (
    LLMQueryGenerator,
    PromptTemplate,
    QueryFilter,
    SpanQueryGenerator,
    build_generator,
    clean_query,
    generate_queries,
    read_examples,
    read_sources,
)
from retrieval_kd.generation.cleaning import drop_reason, normalise
from retrieval_kd.generation.sampling import plan_budget, sample_documents

TEXTS = [
    "Aspirin inhibits platelet aggregation. It blocks the COX-1 enzyme in platelets for days.",
    "Statins lower LDL cholesterol in adults. Muscle pain is a known side effect of statins.",
    "Vitamin D deficiency is common in winter. Sunlight exposure raises vitamin D levels.",
    "Smoking raises the risk of lung cancer. Quitting lowers that risk over ten years.",
    "Exercise improves insulin sensitivity. Even short walks after meals help glucose control.",
    "Sleep loss impairs memory consolidation. Deep sleep stages matter most for memory.",
]


@pytest.fixture
def corpus_folder(tmp_path: Path) -> Path:
    docs = [{"_id": f"d{i}", "title": f"Title {i}", "text": t} for i, t in enumerate(TEXTS)]
    queries = [{"_id": "q0", "text": "aspirin platelets"}]
    return write_beir_folder(tmp_path / "med", docs, queries, {"test": [("q0", "d0", 1)]})


def _generate(folder: Path, out: Path, generator=None, **kwargs):
    corpus = load_dataset(str(folder)).corpus
    generator = generator or SpanQueryGenerator("sentence", min_words=3, seed=0)
    return generate_queries(
        corpus, generator, out, corpus_ref={"data": str(folder)}, docs_per_shard=2, **kwargs
    )


# -- cleaning --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("Here is a question: What does aspirin do?\nMore text.", "What does aspirin do?"),
        ("Sure! Here's a search query: statins and muscle pain", "Statins and muscle pain"),
        ('1. "Does sleep loss impair memory?"', "Does sleep loss impair memory?"),
        ("Question: Is vitamin D low in winter?", "Is vitamin D low in winter?"),
        ("Q: What regulates pluripotency?", "What regulates pluripotency?"),
        ("The passage supports the claim that smoking causes cancer.", "Smoking causes cancer."),
        (
            "This abstract suggests that exercise helps glucose control",
            "Exercise helps glucose control",
        ),
        ("\n\n  Does exercise help?  ", "Does exercise help?"),
        ("", ""),
    ],
)
def test_clean_query_strips_preambles_markers_and_extra_lines(raw: str, clean: str) -> None:
    assert clean_query(raw) == clean


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("What is the title of this passage?", "meta"),
        ("What is the search question?", "meta"),
        ("", "empty"),
        ("aspirin", "too_short"),
        ("word " * 70, "too_long"),
        ("Does aspirin block COX-1?", None),
    ],
)
def test_drop_reasons(query: str, reason: str | None) -> None:
    assert drop_reason(query, 3, 64) == reason


def test_filter_counts_every_drop_and_keeps_first_duplicate() -> None:
    generated = [
        ("d1", ["Does aspirin block COX?", "", "What is this passage about?"]),
        ("d2", ["does aspirin   block COX", "Statins lower LDL cholesterol levels"]),
    ]
    kept, counts = QueryFilter(min_words=3).apply(generated)
    assert kept == [
        ("d1", 0, "Does aspirin block COX?"),
        ("d2", 1, "Statins lower LDL cholesterol levels"),
    ]
    assert counts.to_dict() == {
        "raw": 5,
        "kept": 2,
        "empty": 1,
        "meta": 1,
        "too_short": 0,
        "too_long": 0,
        "duplicate": 1,
    }
    assert normalise("Does aspirin, block COX?") == "does aspirin block cox"
    with pytest.raises(InputError, match="min_words"):
        QueryFilter(min_words=5, max_words=2)


# -- templates -------------------------------------------------------------------------------
def test_templates_need_the_passage_placeholder_once(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"\{passage\} exactly once"):
        PromptTemplate("Write a question.")
    with pytest.raises(InputError, match=r"\{passage\} exactly once"):
        PromptTemplate("{passage} and {passage}")
    with pytest.raises(InputError, match="needs few-shot examples"):
        PromptTemplate("{examples}{passage}")
    with pytest.raises(InputError, match="unknown query kind"):
        PromptTemplate.for_kind("poem")
    (tmp_path / "t.txt").write_text("Passage: {passage}\nAsk:")
    assert PromptTemplate.from_file(tmp_path / "t.txt").render("X") == "Passage: X\nAsk:"


def test_few_shot_examples_from_jsonl_and_tsv(tmp_path: Path) -> None:
    (tmp_path / "ex.jsonl").write_text(json.dumps({"passage": "P1", "query": "Q1"}) + "\n")
    (tmp_path / "ex.tsv").write_text("P2\tQ2\n")
    (tmp_path / "bad.tsv").write_text("only one field\n")
    examples = read_examples(tmp_path / "ex.jsonl") + read_examples(tmp_path / "ex.tsv")
    prompt = PromptTemplate.for_kind("few-shot", examples).render("P3 with {passage} inside")
    assert prompt.index("Query: Q1") < prompt.index("Query: Q2") < prompt.index("P3")
    assert prompt.count("{passage}") == 1  # a passage's own braces are not a placeholder
    with pytest.raises(InputError, match="bad.tsv:1"):
        read_examples(tmp_path / "bad.tsv")


# -- budget, sampling, span generator --------------------------------------------------------
def test_budget_rule_and_seeded_sample(corpus_folder: Path) -> None:
    assert plan_budget(6, per_doc=2, docs=None, queries=5) == 3
    assert plan_budget(6, per_doc=1, docs=100, queries=None) == 6
    with pytest.raises(InputError, match="empty"):
        plan_budget(0, 1, None, None)
    with pytest.raises(InputError, match="not both"):
        plan_budget(6, 1, 2, 2)
    corpus = load_dataset(str(corpus_folder)).corpus
    first = sample_documents(corpus, 3, seed=1)
    assert first == sample_documents(corpus, 3, seed=1) and len(set(first)) == 3
    assert first == sorted(first)


def test_span_generator_is_seeded_and_bounded() -> None:
    g = SpanQueryGenerator("sentence", min_words=3, max_words=12, seed=0)
    one = g.generate(["d0", "d1"], ["", ""], TEXTS[:2], 3)
    assert one == g.generate(["d0", "d1"], ["", ""], TEXTS[:2], 3)
    assert all(q in TEXTS[i] for i, qs in enumerate(one) for q in qs)
    spans = SpanQueryGenerator("span", min_words=2, max_words=4, seed=0).generate(
        ["d0"], [""], [TEXTS[0]], 5
    )[0]
    assert all(2 <= len(s.split()) <= 4 and s in TEXTS[0] for s in spans)
    titles = SpanQueryGenerator("title").generate(["d0"], ["Aspirin"], [TEXTS[0]], 2)
    assert titles == [["Aspirin", ""]]
    with pytest.raises(InputError, match="unknown span generator kind"):
        SpanQueryGenerator("paragraph")


# -- the shard loop and the query-set folder -------------------------------------------------
def test_generate_writes_a_query_set_every_stage_can_read(corpus_folder: Path, tmp_path: Path):
    manifest = _generate(corpus_folder, tmp_path / "gen", per_doc=2)
    data = load_dataset(str(tmp_path / "gen"), "train")
    sources = read_sources(tmp_path / "gen")
    assert set(data.queries) == set(sources) == set(data.qrels)
    assert all(data.qrels[q] == {d: 1} for q, d in sources.items())
    assert len(data.corpus) == len(TEXTS)  # the corpus is borrowed, not copied
    assert not (tmp_path / "gen" / "corpus.jsonl").exists()
    assert all(data.queries[q] in data.corpus.text(d) for q, d in sources.items())
    counts = manifest["counts"]
    assert counts["documents"] == 6 and counts["raw"] == 12 and counts["shards"] == 3
    assert counts["kept"] == len(sources) and counts["kept"] + counts["duplicate"] == 12
    assert manifest["generator"]["kind"] == "span" and manifest["cost"]["docs_per_s"] > 0
    assert len(manifest["examples"]) == min(10, len(sources))
    # done: a second call returns the manifest without generating
    assert (
        _generate(corpus_folder, tmp_path / "gen", per_doc=2)["created_at"]
        == manifest["created_at"]
    )


def test_a_folder_of_other_settings_is_refused(corpus_folder: Path, tmp_path: Path) -> None:
    _generate(corpus_folder, tmp_path / "gen", per_doc=1)
    with pytest.raises(InputError, match="other settings"):
        _generate(corpus_folder, tmp_path / "gen", per_doc=2)


class _Counting:
    """Wraps a generator, counts documents asked for, and fails after ``fail_after`` shards."""

    def __init__(self, inner, fail_after: int | None = None):
        self.inner, self.fail_after, self.calls, self.docs = inner, fail_after, 0, []
        self.needs_cleaning = inner.needs_cleaning

    def generate(self, doc_ids, titles, bodies, n):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise KeyboardInterrupt  # a crash between shards
        self.calls += 1
        self.docs += doc_ids
        return self.inner.generate(doc_ids, titles, bodies, n)

    def describe(self):
        return self.inner.describe()


def test_interrupted_run_resumes_without_regenerating(corpus_folder: Path, tmp_path: Path):
    reference = _generate(corpus_folder, tmp_path / "ref")
    span = SpanQueryGenerator("sentence", min_words=3, seed=0)
    crashing = _Counting(span, fail_after=2)
    with pytest.raises(KeyboardInterrupt):
        _generate(corpus_folder, tmp_path / "gen", generator=crashing)
    assert len(list((tmp_path / "gen" / "shards").glob("shard-*.jsonl"))) == 2
    resumed = _Counting(span)
    manifest = _generate(corpus_folder, tmp_path / "gen", generator=resumed)
    assert resumed.calls == 1 and set(resumed.docs).isdisjoint(crashing.docs)
    assert (tmp_path / "gen" / "queries.jsonl").read_text() == (
        tmp_path / "ref" / "queries.jsonl"
    ).read_text()
    assert manifest["counts"] == reference["counts"] and manifest["cost"]["docs_generated"] == 2


def test_ranks_generate_their_own_shards(corpus_folder: Path, tmp_path: Path) -> None:
    reference = _generate(corpus_folder, tmp_path / "ref")
    span = SpanQueryGenerator("sentence", min_words=3, seed=0)
    first, second = _Counting(span), _Counting(span)
    assert _generate(corpus_folder, tmp_path / "gen", generator=first, rank=0, world_size=2) is None
    manifest = _generate(corpus_folder, tmp_path / "gen", generator=second, rank=1, world_size=2)
    assert first.calls == 2 and second.calls == 1
    assert set(first.docs).isdisjoint(second.docs)
    assert manifest["counts"] == reference["counts"]


class _Empty:
    needs_cleaning = True

    def generate(self, doc_ids, titles, bodies, n):
        return [[""] * n for _ in doc_ids]

    def describe(self):
        return {"kind": "empty"}


def test_a_generator_of_empty_strings_is_one_clear_error(corpus_folder: Path, tmp_path: Path):
    with pytest.raises(
        InputError, match="no generated query is left: 6 raw outputs, dropped empty 6"
    ):
        _generate(corpus_folder, tmp_path / "gen", generator=_Empty())


# -- the LLM generator on a tiny random chat model -------------------------------------------
@pytest.fixture(scope="module")
def tiny_chat_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from test_llm_pairwise import save_tiny_chat_lm

    return save_tiny_chat_lm(tmp_path_factory.mktemp("tiny-gen-lm"))


def test_llm_generator_batches_and_is_seeded(tiny_chat_lm: Path) -> None:
    def make(batch_size: int) -> LLMQueryGenerator:
        return LLMQueryGenerator(
            str(tiny_chat_lm),
            batch_size=batch_size,
            max_new_tokens=6,
            seed=3,
            device="cpu",
            dtype="float32",  # pinned: the default is bf16 on CPUs with native bf16
        )

    g = make(2)
    outs = g.generate(["d0", "d1", "d2"], ["", "", ""], TEXTS[:3], 2)
    assert len(outs) == 3 and all(len(o) == 2 and all(isinstance(s, str) for s in o) for o in outs)
    assert outs == make(2).generate(["d0", "d1", "d2"], ["", "", ""], TEXTS[:3], 2)
    greedy = LLMQueryGenerator(str(tiny_chat_lm), temperature=0, max_new_tokens=5, device="cpu")
    alone = greedy.generate(["d1"], [""], [TEXTS[1]], 1)
    greedy.batch_size = 3  # left padding does not change a greedy continuation
    assert greedy.generate(["d0", "d1", "d2"], ["", "", ""], TEXTS[:3], 1)[1] == alone[0]
    info = g.describe()
    assert info["kind"] == "llm" and info["template_kind"] == "question" and info["chat"] is True
    assert info["dtype"] == "float32" and info["revision_or_hash"]
    assert "Passage: " in g.prompt(TEXTS[0]) and "<|assistant|>" in g.prompt(TEXTS[0])


def test_llm_generator_in_the_shard_loop(corpus_folder: Path, tmp_path: Path, tiny_chat_lm: Path):
    generator = build_generator(f"llm:{tiny_chat_lm}", max_new_tokens=4, device="cpu", seed=0)
    try:
        manifest = _generate(
            corpus_folder, tmp_path / "gen", generator=generator, query_filter=QueryFilter(1, 64)
        )
    except InputError as err:  # a random model may write nothing usable: said clearly
        assert "no generated query is left" in str(err)
        return
    assert manifest["counts"]["raw"] == 6 and manifest["generator"]["kind"] == "llm"


def test_unresolvable_generator_and_bad_spec_fail_clearly() -> None:
    with pytest.raises(RKDError, match="no-such-org/no-such-lm"):
        build_generator("llm:no-such-org/no-such-lm")
    with pytest.raises(InputError, match="empty generator spec"):
        build_generator(" ")
    with pytest.raises(InputError, match="needs few-shot examples"):
        build_generator("llm:no-such-org/no-such-lm", kind="few-shot")  # before any model loads


# -- the command line ------------------------------------------------------------------------
def test_cli_generates_from_a_collection_or_a_corpus_file(corpus_folder: Path, tmp_path: Path):
    from test_cli import rkd

    out = tmp_path / "gen"
    args = ["generate-queries", "--generator", "span:sentence", "--out", str(out)]
    done = rkd("--quiet", *args, "--data", str(corpus_folder), "--docs", "4")
    assert done.returncode == 0, done.stderr
    assert "from 4 documents" in done.stdout and "documents/s" in done.stdout
    assert load_dataset(str(out), "train").corpus.text("d0").startswith("Title 0")
    from_file = tmp_path / "gen-file"
    done = rkd("--quiet", *args[:-1], str(from_file), "--data", str(corpus_folder / "corpus.jsonl"))
    assert done.returncode == 0, done.stderr
    ref = json.loads((from_file / "corpus.ref.json").read_text())
    assert ref == {"corpus_file": str((corpus_folder / "corpus.jsonl").resolve())}
    bad = rkd("generate-queries", "--data", str(corpus_folder), "--out", str(tmp_path / "x"),
              "--generator", "llm:no-such-org/no-such-lm")  # fmt: skip
    assert bad.returncode == 2 and "no-such-lm" in bad.stderr and not (tmp_path / "x").exists()
    bad = rkd("generate-queries", "--data", str(corpus_folder), "--out", str(tmp_path / "y"),
              "--template", str(corpus_folder / "queries.jsonl"))  # fmt: skip
    assert bad.returncode == 2 and "{passage}" in bad.stderr


def test_kill_9_during_generation_then_resume(corpus_folder: Path, tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    reference = _generate(corpus_folder, tmp_path / "ref")
    out, ready = tmp_path / "gen", tmp_path / "ready"
    config = {"data": str(corpus_folder), "out": str(out), "ready": str(ready), "hang_after": 2}
    (tmp_path / "worker.json").write_text(json.dumps(config))
    tests = Path(__file__).resolve().parent
    env = {**os.environ, "RKD_QUIET": "1", "PYTHONPATH": str(tests.parent)}
    worker = subprocess.Popen(
        [sys.executable, str(tests / "_generate_worker.py"), str(tmp_path / "worker.json")], env=env
    )
    deadline = time.time() + 120
    while not ready.exists() and time.time() < deadline and worker.poll() is None:
        time.sleep(0.1)
    assert ready.exists(), "the worker never reached its second shard"
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    written = sorted(p.name for p in (out / "shards").glob("shard-*"))
    assert written == ["shard-000000.jsonl", "shard-000001.jsonl"]  # only complete shards
    before = {p: (out / "shards" / p).read_bytes() for p in written}
    resumed = _Counting(SpanQueryGenerator("sentence", min_words=3, seed=0))
    manifest = _generate(corpus_folder, out, generator=resumed)
    assert resumed.calls == 1  # only the third shard
    assert all((out / "shards" / p).read_bytes() == b for p, b in before.items())
    assert (out / "queries.jsonl").read_text() == (tmp_path / "ref" / "queries.jsonl").read_text()
    assert manifest["counts"] == reference["counts"]


def test_mixed_kind_gives_each_document_one_of_three_templates(tiny_chat_lm: Path, tmp_path):
    g = build_generator(f"llm:{tiny_chat_lm}", kind="mixed", device="cpu", seed=1)
    kinds = [g.template_for(f"d{i}").kind for i in range(30)]
    assert set(kinds) == {"question", "claim", "keywords"}
    assert kinds == [g.template_for(f"d{i}").kind for i in range(30)]  # seeded per document
    assert g.describe()["template_kind"] == "mixed" and len(g.describe()["template"]) == 3
    (tmp_path / "ex.tsv").write_text("a passage\ta query\n")
    with pytest.raises(InputError, match="few-shot kind, not mixed"):
        build_generator("llm:x", kind="mixed", examples_file=str(tmp_path / "ex.tsv"))
