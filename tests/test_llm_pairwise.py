"""The pairwise LLM teacher and instruction distillation, on a tiny random chat Llama.

The tiny model knows nothing; the tests check the mechanics: the order-debiased preference
(``P(i > j) + P(j > i) = 1``, a pure position bias cancels to 0.5), the readout against a plain
one-prompt forward pass, pair selection, the Scorer protocol, and that a pointwise student's
RankNet loss on the pairwise targets goes down.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path

import numpy as np
import pytest
import torch

from retrieval_kd.errors import InputError, RKDError
from retrieval_kd.interfaces import Scorer
from retrieval_kd.llm.loading import LoadedLM, load_causal_lm
from retrieval_kd.llm.messages import truncate_tokens
from retrieval_kd.losses import ranknet_from_pairs
from retrieval_kd.losses.preference import pairwise_targets
from retrieval_kd.store.preferences import PreferenceRecord
from teachers.llm_pairwise import LLMPairwiseTeacher, select_pairs

WORDS = (
    "Given a query which of the following two passages is more relevant to Passage Output or "
    "I will provide you with each indicated by identifier Rank based on their relevance search "
    "Search Query above All should be included and listed using identifiers in descending order "
    "of format e g Only respond ranking results do not say any word explain Does answer Answer "
    "Yes No yes no solar panels convert sunlight into electricity wind turbines turn moving air "
    "boil pasta for ten minutes salted water how make what cooking dams use flowing rivers "
    "energy from sun power You are RankLLM an intelligent assistant that can"
).split()
LABELS = [chr(ord("A") + i) for i in range(26)] + [str(i) for i in range(0, 21)]
PUNCT = ['"', ":", "?", "'", "'.", ".", ",", "[", "]", ">", "[]", "],", "].", ':"']
SPECIAL = ["<pad>", "<unk>", "<bos>", "<eos>", "<|system|>", "<|user|>", "<|assistant|>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|> {{ message['content'] }} <eos> "
    "{% endfor %}{% if add_generation_prompt %}<|assistant|> {% endif %}"
)
QUERY = "how do solar panels make electricity"
PASSAGES = [
    "solar panels convert sunlight into electricity",
    "boil pasta for ten minutes in salted water",
    "wind turbines turn moving air into electricity",
    "dams use flowing water",
    "energy from the sun",
]


def tiny_chat_tokenizer():
    """A word-level tokenizer with a chat template, answer labels A..Z and 0..20, yes/no."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    tokens = SPECIAL + sorted(set(WORDS) - set(LABELS)) + LABELS + PUNCT
    vocab = {tok: i for i, tok in enumerate(dict.fromkeys(tokens))}
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
        additional_special_tokens=["<|system|>", "<|user|>", "<|assistant|>"],
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def save_tiny_chat_lm(folder: Path, seed: int = 0) -> Path:
    """Save a 2-layer, 32-wide random Llama with :func:`tiny_chat_tokenizer` into ``folder``."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = tiny_chat_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    with torch.no_grad():  # random init is near-uniform; widen it so preferences differ visibly
        model.lm_head.weight.mul_(30.0)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> LoadedLM:
    folder = save_tiny_chat_lm(tmp_path_factory.mktemp("tiny-chat-llm"))
    return load_causal_lm(str(folder), device="cpu", dtype="float32")


def _manual_margin(teacher: LLMPairwiseTeacher, first: str, second: str) -> float:
    """ℓ_A − ℓ_B from one unpadded forward pass of one prompt."""
    ids = torch.tensor([teacher.prompt_ids(QUERY, first, second)])
    with torch.no_grad():
        last = teacher.lm.model(input_ids=ids).logits[0, -1]
    a, b = (torch.logsumexp(last[ids_], 0).item() for ids_ in teacher.label_ids)
    return a - b


def test_swapping_the_passages_flips_the_preference(tiny_lm: LoadedLM):
    teacher = LLMPairwiseTeacher(tiny_lm, batch_size=3)
    pairs = [(0, 1), (1, 0), (2, 4), (4, 2), (3, 3)]
    probs, cost = teacher.compare(QUERY, PASSAGES, pairs)
    assert probs[0] + probs[1] == 1.0 and probs[2] + probs[3] == 1.0
    assert probs[4] == 0.5  # a passage against itself, without a prompt
    assert not np.allclose(probs[[0, 2]], 0.5, atol=1e-3)  # the random model does prefer
    assert (
        cost
        == {
            "forward_passes": 4,  # two unordered pairs, each shown in both orders once
            "tokens_in": cost["tokens_in"],
            "tokens_out": 0,
        }
        and cost["tokens_in"] > 10 * 20
    )


def test_preference_matches_a_plain_forward_pass(tiny_lm: LoadedLM):
    teacher = LLMPairwiseTeacher(tiny_lm, batch_size=4)  # batched, left-padded, length-sorted
    probs, _ = teacher.compare(QUERY, PASSAGES, [(0, 1), (2, 3)])
    for p, (i, j) in zip(probs, [(0, 1), (2, 3)], strict=True):
        d_ij = _manual_margin(teacher, PASSAGES[i], PASSAGES[j])
        d_ji = _manual_margin(teacher, PASSAGES[j], PASSAGES[i])
        expected = 0.5 * (1 / (1 + np.exp(-d_ij)) + 1 / (1 + np.exp(d_ji)))
        assert p == pytest.approx(expected, abs=1e-5)


def test_prompts_sharing_their_first_passage_run_it_once(tiny_lm: LoadedLM):
    from retrieval_kd.llm.prefix_sharing import real_tokens
    from retrieval_kd.llm.readout import Readout

    teacher = LLMPairwiseTeacher(tiny_lm)
    pairs = select_pairs(4, "all")  # passage i first: i's 3 - i partners share its prefix
    prompts = [teacher.prompt_ids(QUERY, PASSAGES[i], PASSAGES[j]) for i, j in pairs]
    prompts += [teacher.prompt_ids(QUERY, PASSAGES[j], PASSAGES[i]) for i, j in pairs]
    whole = Readout(tiny_lm, batch_size=3, share_prefixes=False)
    shared = Readout(tiny_lm, batch_size=3, min_shared=4)
    assert shared.share_prefixes
    seen: list[int] = []
    decoder = tiny_lm.model.get_decoder()
    forward = decoder.forward

    @functools.wraps(forward)  # keeps the signature that prefix sharing inspects
    def counting(*args, **kwargs):
        seen.append(real_tokens(kwargs["input_ids"], kwargs["attention_mask"]))
        return forward(*args, **kwargs)

    decoder.forward = counting
    try:
        got = shared(prompts, teacher.label_ids)
    finally:
        del decoder.forward
    expected = whole(prompts, teacher.label_ids)
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
    assert np.ptp(expected[:, 0] - expected[:, 1]) > 1e-2  # the margins differ between prompts
    assert 0 < sum(seen) < sum(map(len, prompts))  # the shared first passages ran once


def test_a_pure_position_bias_cancels(tiny_lm: LoadedLM):
    teacher = LLMPairwiseTeacher(tiny_lm)
    teacher.readout = lambda prompts, groups: np.tile([7.0, 0.0], (len(prompts), 1))  # always A
    probs, _ = teacher.compare(QUERY, PASSAGES, [(0, 1), (3, 2)])
    np.testing.assert_allclose(probs, 0.5, atol=1e-12)


def test_pair_strategies():
    assert select_pairs(4, "all") == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    assert select_pairs(5, "all", top_m=2) == [(0, 1)]
    assert select_pairs(4, "sliding") == [(0, 1), (1, 2), (2, 3)]
    assert select_pairs(1, "sliding") == [] and select_pairs(0, "all") == []
    sampled = select_pairs(10, "sampled", budget=8, seed=1, key="q1")
    assert len(set(sampled)) == 8 and all(0 <= i < j < 10 for i, j in sampled)
    assert sampled == select_pairs(10, "sampled", budget=8, seed=1, key="q1")
    assert sampled != select_pairs(10, "sampled", budget=8, seed=2, key="q1")
    assert len(select_pairs(4, "sampled", budget=100)) == 6
    with pytest.raises(RKDError):
        select_pairs(4, "tournament")


def test_judge_record_and_scorer_protocol(tiny_lm: LoadedLM):
    teacher = LLMPairwiseTeacher(tiny_lm, pairs="all", top_m=3)
    assert isinstance(teacher, Scorer)
    record = teacher.judge(QUERY, ["d0", "d1", "d2", "d3", "d4"], PASSAGES)
    assert record.pairs.tolist() == [[0, 1], [0, 2], [1, 2]]
    assert record.probs.dtype == np.float32 and ((record.probs > 0) & (record.probs < 1)).all()
    assert record.cost["forward_passes"] == 6
    scores = teacher.score([QUERY, "cooking pasta"], [PASSAGES, PASSAGES[:1]])
    assert [s.shape for s in scores] == [(5,), (1,)]
    # passages 3 and 4 are in no pair: below every compared one, in their given order
    assert scores[0][3] < scores[0][:3].min() and scores[0][4] < scores[0][3]
    assert teacher.describe()["kind"] == "llm-pairwise"


def test_truncation_and_bad_settings(tiny_lm: LoadedLM):
    long = " ".join(["solar"] * 50)
    assert truncate_tokens(tiny_lm.tokenizer, long, 5) == "solar solar solar solar solar"
    assert truncate_tokens(tiny_lm.tokenizer, "wind power", 5) == "wind power"
    short = LLMPairwiseTeacher(tiny_lm, passage_max_tokens=4)
    full = LLMPairwiseTeacher(tiny_lm, passage_max_tokens=100)
    assert (
        short.compare(QUERY, [long, long], [(0, 1)])[1]["tokens_in"]
        < full.compare(QUERY, [long, long], [(0, 1)])[1]["tokens_in"]
    )
    with pytest.raises(InputError):
        LLMPairwiseTeacher(tiny_lm, template="{query} {passage_a}")
    with pytest.raises(RKDError):
        LLMPairwiseTeacher(tiny_lm, labels=("Alpha", "Beta"))  # not tokens of this vocabulary


def test_instruction_distillation_lowers_the_ranknet_loss(tiny_lm: LoadedLM, tmp_path: Path):
    from students.instruction_distill import PointwiseLLMStudent, distill_preferences

    folder = save_tiny_chat_lm(tmp_path / "student-lm", seed=1)
    student = PointwiseLLMStudent(
        load_causal_lm(str(folder), device="cpu"), trainable_layers=1, max_length=128
    )
    trainable = {n for n, p in student.model.named_parameters() if p.requires_grad}
    assert trainable and all("layers.1." in n or n.startswith("model.norm") for n in trainable)
    teacher = LLMPairwiseTeacher(tiny_lm, pairs="all")
    docs = [f"d{i}" for i in range(len(PASSAGES))]
    text = dict(zip(docs, PASSAGES, strict=True))
    record = teacher.judge(QUERY, docs, PASSAGES)
    record.query_id = "q1"
    targets = pairwise_targets([record])

    def loss_now() -> float:
        with torch.no_grad():
            scores = student.score_groups([QUERY], [PASSAGES])
        return float(ranknet_from_pairs(scores, targets.pair_index, targets.target_prob))

    before = loss_now()
    history = distill_preferences(
        student, [record], {"q1": QUERY}, lambda ids: [text[i] for i in ids], steps=15, lr=3e-3
    )
    assert len(history) == 15 and history[0] == pytest.approx(before, abs=1e-4)
    assert loss_now() < before
    # the Scorer view agrees with the differentiable one
    with torch.no_grad():
        grouped = student.score_groups([QUERY], [PASSAGES])[0].numpy()
    np.testing.assert_allclose(student.score([QUERY], [PASSAGES])[0], grouped, atol=1e-4)
    student.save(tmp_path / "saved")
    assert (tmp_path / "saved" / "rkd_student.json").is_file()


@pytest.mark.parametrize("loss", ["listmle", "cprd", "kl"])
def test_listwise_losses_train_from_pairwise_records(tiny_lm: LoadedLM, loss: str):
    from students.instruction_distill import PointwiseLLMStudent, distill_preferences

    student = PointwiseLLMStudent(copy.deepcopy(tiny_lm), trainable_layers=0, max_length=128)
    assert [n for n, p in student.model.named_parameters() if p.requires_grad] == [
        "model.norm.weight"
    ]
    record = PreferenceRecord(
        "q1", ["d0", "d1", "d2"], np.array([[0, 1], [1, 2], [0, 2]]), np.array([0.9, 0.8, 0.9])
    )
    text = {"d0": PASSAGES[0], "d1": PASSAGES[1], "d2": PASSAGES[2]}
    history = distill_preferences(
        student, [record], {"q1": QUERY}, lambda ids: [text[i] for i in ids],
        loss=loss, steps=2, lr=1e-2,
    )  # fmt: skip
    assert len(history) == 2 and all(np.isfinite(history)) and history[1] != history[0]
    with pytest.raises(RKDError):
        distill_preferences(student, [record], {"q1": QUERY}, lambda ids: ids, loss="mse")
