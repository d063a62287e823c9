"""Properties of the losses: gradients (gradcheck), invariances, ragged masks, input errors."""

from __future__ import annotations

import pytest
import torch

from retrieval_kd.errors import InputError, RKDError
from retrieval_kd.losses import (
    cprd,
    graded_bce,
    info_nce,
    listmle,
    listwise_kl,
    margin_mse,
    pointwise_mse,
    ranknet,
    ranknet_from_pairs,
)

# Every loss (and notable variant) as f(student, teacher, labels, mask) -> scalar.
LOSSES = {
    "margin_mse": lambda s, t, y, m: margin_mse(s, t, y, m),
    "margin_mse_all_pairs": lambda s, t, y, m: margin_mse(s, t, y, m, all_pairs=True),
    "kl": lambda s, t, y, m: listwise_kl(s, t, y, m, temperature=2.0),
    "kl_negatives_only": lambda s, t, y, m: listwise_kl(s, t, y, m, negatives_only=True),
    "ranknet_hard": lambda s, t, y, m: ranknet(s, t, y, m, margin=0.1),
    "ranknet_soft": lambda s, t, y, m: ranknet(s, t, y, m, target="soft", temperature=2.0),
    "info_nce": lambda s, t, y, m: info_nce(s, t, y, m, temperature=0.5),
    "cprd": lambda s, t, y, m: cprd(s, t, y, m, top_m=3, temperature=0.5)["loss"],
    "listmle": lambda s, t, y, m: listmle(s, t, y, m),
    "pld": lambda s, t, y, m: listmle(s, t, y, m, weighting="teacher", positives_first=True),
    "listmle_conditional": lambda s, t, y, m: listmle(s, t, y, m, weighting="teacher_conditional"),
    "graded_bce_sigmoid": lambda s, t, y, m: graded_bce(s, t, y, m, temperature=2.0),
    "graded_bce_labels": lambda s, t, y, m: graded_bce(s, t, y, m, target="labels", max_grade=2),
    "mse": lambda s, t, y, m: pointwise_mse(s, t, y, m),
}
# Losses in which the teacher's values (not only its order) enter smoothly.
TEACHER_SMOOTH = [
    "margin_mse",
    "kl",
    "kl_negatives_only",
    "ranknet_soft",
    "pld",
    "graded_bce_sigmoid",
    "mse",
]


def _batch(seed: int = 0, rows: int = 3, k: int = 5):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(rows, k, generator=g, dtype=torch.float64)
    t = torch.randn(rows, k, generator=g, dtype=torch.float64) * 2
    labels = torch.zeros(rows, k, dtype=torch.long)
    labels[:, 0] = 2
    labels[0, 2] = 1
    mask = torch.ones(rows, k, dtype=torch.bool)
    for b in range(1, rows):  # row b (b >= 1) keeps k - 3 + b entries: ragged
        mask[b, k - 3 + b :] = False
    return s, t, labels, mask


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_gradcheck_student(name):
    s, t, labels, mask = _batch(rows=2)
    s.requires_grad_(True)
    fn = LOSSES[name]
    assert torch.autograd.gradcheck(lambda x: fn(x, t, labels, mask), (s,))


@pytest.mark.parametrize("name", TEACHER_SMOOTH)
def test_gradcheck_teacher(name):
    s, t, labels, mask = _batch(rows=2)
    t.requires_grad_(True)
    fn = LOSSES[name]
    assert torch.autograd.gradcheck(lambda x: fn(s, x, labels, mask), (t,))


def test_gradcheck_ranknet_from_pairs_and_learnable_bce_scale():
    s, _, _, mask = _batch(rows=2)
    s.requires_grad_(True)
    pairs = torch.tensor([[0, 0, 1], [0, 3, 2], [1, 2, 0]])
    prob = torch.tensor([0.9, 0.2, 0.5], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: ranknet_from_pairs(x, pairs, prob, mask), (s,))
    tau = torch.tensor(1.5, dtype=torch.float64, requires_grad=True)
    bias = torch.tensor(-0.2, dtype=torch.float64, requires_grad=True)
    probs = torch.rand(2, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(3))

    def fn(x, a, b):
        return graded_bce(x, probs, None, mask, target="prob", temperature=a, bias=b)

    assert torch.autograd.gradcheck(fn, (s, tau, bias))


# --------------------------------------------------------------------------- padding


def _with_padding(x: torch.Tensor, mask: torch.Tensor, fill: torch.Tensor) -> torch.Tensor:
    return torch.where(mask, x, fill)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_garbage_padding_changes_nothing(name):
    s, t, labels, mask = _batch()
    fn = LOSSES[name]
    g = torch.Generator().manual_seed(7)
    junk = torch.randn(s.shape, generator=g, dtype=torch.float64) * 1e6
    weird = torch.tensor([float("nan"), float("inf"), -float("inf"), 1e30, -7.0]).double()
    weird = weird.expand_as(s)
    results = []
    for fill in (torch.zeros_like(s), junk, weird):
        x = _with_padding(s, mask, fill).requires_grad_(True)
        y = _with_padding(t, mask, -fill)
        lab = torch.where(mask, labels, torch.full_like(labels, 5))
        value = fn(x, y, lab, mask)
        (grad,) = torch.autograd.grad(value, x)
        results.append((value.detach(), grad))
    value0, grad0 = results[0]
    assert torch.isfinite(value0) and torch.isfinite(grad0).all()
    assert float(value0) > 0
    assert (grad0[~mask] == 0).all()
    for value, grad in results[1:]:
        torch.testing.assert_close(value, value0, rtol=0, atol=0)
        torch.testing.assert_close(grad, grad0, rtol=0, atol=0)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_padded_row_equals_unpadded_row(name):
    s, t, labels, _ = _batch(rows=1, k=4)
    pad = torch.full((1, 3), 123.0, dtype=torch.float64)
    mask = torch.tensor([[True] * 4 + [False] * 3])
    fn = LOSSES[name]
    padded = fn(
        torch.cat([s, pad], 1), torch.cat([t, -pad], 1), torch.cat([labels, pad.long()], 1), mask
    )
    torch.testing.assert_close(padded, fn(s, t, labels, None))


@pytest.mark.parametrize("name", ["kl", "listmle", "pld", "listmle_conditional"])
def test_row_averaged_losses_over_ragged_rows(name):
    """KL and ListMLE average per-row values: a ragged batch is the mean of its rows alone."""
    s, t, labels, mask = _batch()
    fn = LOSSES[name]
    rows = []
    for b in range(3):
        keep = mask[b]
        rows.append(fn(s[b : b + 1, keep], t[b : b + 1, keep], labels[b : b + 1, keep], None))
    torch.testing.assert_close(fn(s, t, labels, mask), torch.stack(rows).mean())


def test_fully_masked_row_and_empty_pairs():
    s, t, labels, mask = _batch()
    mask[1] = False
    for name in ["kl", "listmle", "info_nce", "cprd", "mse"]:
        full = LOSSES[name](s, t, labels, mask)
        kept = LOSSES[name](s[[0, 2]], t[[0, 2]], labels[[0, 2]], mask[[0, 2]])
        torch.testing.assert_close(full, kept)
    # no (positive, negative) pair at all: 0, and backward still works
    x = s.clone().requires_grad_(True)
    value = margin_mse(x, t, torch.zeros_like(labels), mask)
    value.backward()
    assert float(value.detach()) == 0.0 and (x.grad == 0).all()


# --------------------------------------------------------------------------- invariances


def _row_constants(rows: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(rows, 1, generator=g, dtype=torch.float64) * 10


@pytest.mark.parametrize("name", ["kl", "listmle", "pld", "listmle_conditional", "info_nce"])
def test_softmax_losses_invariant_to_row_shifts(name):
    s, t, labels, mask = _batch()
    fn = LOSSES[name]
    base = fn(s, t, labels, mask)
    torch.testing.assert_close(fn(s + _row_constants(3, 1), t, labels, mask), base)
    torch.testing.assert_close(fn(s, t + _row_constants(3, 2), labels, mask), base)


@pytest.mark.parametrize("name", ["margin_mse", "margin_mse_all_pairs", "ranknet_soft"])
def test_margin_losses_invariant_to_same_shift(name):
    s, t, labels, mask = _batch()
    fn = LOSSES[name]
    c = _row_constants(3, 4)
    torch.testing.assert_close(fn(s + c, t + c, labels, mask), fn(s, t, labels, mask))
    torch.testing.assert_close(fn(s + c, t - 3 * c, labels, mask), fn(s, t, labels, mask))


def test_kl_changes_when_scale_changes():
    """Guard against a vacuous invariance test: scaling (unlike shifting) does matter."""
    s, t, labels, mask = _batch()
    assert not torch.isclose(listwise_kl(s * 2, t, labels, mask), listwise_kl(s, t, labels, mask))


def test_kl_negatives_only_is_the_kl_over_the_negatives_alone():
    """NCKD (Zhao et al. 2022): the same KL with every positive taken out of the group."""
    s, t, labels, mask = _batch()
    got = listwise_kl(s, t, labels, mask, temperature=0.5, negatives_only=True)
    per_row = []
    for b in range(s.shape[0]):
        keep = mask[b] & (labels[b] == 0)
        p_t = torch.softmax(t[b][keep] / 0.5, dim=-1)  # teacher_temperature: tau by default
        log_p_s = torch.log_softmax(s[b][keep] / 0.5, dim=-1)
        per_row.append((p_t * (p_t.log() - log_p_s)).sum())
    assert torch.allclose(got, torch.stack(per_row).mean())
    # the positives' scores (labels > 0) do not enter: any value there gives the same loss
    s2, t2 = s.clone(), t.clone()
    s2[labels > 0] += 7.0
    t2[labels > 0] -= 3.0
    assert torch.allclose(
        got, listwise_kl(s2, t2, labels, mask, temperature=0.5, negatives_only=True)
    )
    assert not torch.isclose(got, listwise_kl(s, t, labels, mask, temperature=0.5))


def test_kl_negatives_only_row_without_negatives_adds_nothing():
    s = torch.tensor([[1.0, 2.0, 0.5], [0.3, 0.1, 0.0]], requires_grad=True)
    t = torch.tensor([[0.0, 1.0, 2.0], [1.0, 0.0, 2.0]])
    labels = torch.tensor([[1, 1, 1], [1, 0, 0]])  # row 0: positives only
    loss = listwise_kl(s, t, labels, negatives_only=True)
    loss.backward()
    assert torch.isfinite(loss) and torch.all(s.grad[0] == 0)
    alone = listwise_kl(s[1:].detach(), t[1:], labels[1:], negatives_only=True)
    assert torch.isclose(loss, alone)


def test_cprd_ignores_order_below_rank_m():
    g = torch.Generator().manual_seed(5)
    s = torch.randn(2, 9, generator=g, dtype=torch.float64)
    # col 0 positive; negatives 1..8 with the top 3 (cols 1, 2, 3) clearly above the tail
    t = torch.tensor([[9.0, 8.0, 7.0, 6.0, 1.0, 0.5, 0.0, -1.0, -2.0]] * 2, dtype=torch.float64)
    kw = {"top_m": 3, "temperature": 0.5, "cprd_weight": 0.7}
    base = cprd(s, t, **kw)
    tail = torch.arange(4, 9)
    perm_s, perm_t = tail[torch.randperm(5, generator=g)], tail[torch.randperm(5, generator=g)]
    s2, t2 = s.clone(), t.clone()
    s2[:, tail], t2[:, tail] = s[:, perm_s], t[:, perm_t]
    out = cprd(s2, t2, **kw)
    for key in ("cprd", "contrastive", "loss"):
        torch.testing.assert_close(out[key], base[key])
    # the tail's student scores never enter the ranking term
    s3 = s.clone()
    s3[:, tail] = torch.randn(2, 5, generator=g, dtype=torch.float64) * 5
    torch.testing.assert_close(cprd(s3, t, **kw)["cprd"], base["cprd"])
    # ...but the order inside the top m does
    s4 = s.clone()
    s4[:, [1, 3]] = s[:, [3, 1]]
    assert not torch.isclose(cprd(s4, t, **kw)["cprd"], base["cprd"])


# --------------------------------------------------------------------------- dtypes, errors


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_inputs_computed_in_float32(dtype):
    s, t, labels, mask = _batch()
    for name in ["margin_mse", "kl", "cprd", "listmle"]:
        value = LOSSES[name](s.to(dtype), t.to(dtype), labels, mask)
        assert value.dtype == torch.float32
        ref = LOSSES[name](s.to(dtype).double(), t.to(dtype).double(), labels, mask)
        torch.testing.assert_close(value.double(), ref, rtol=1e-5, atol=1e-6)


def test_bad_inputs_raise_input_error():
    s, t, labels, mask = _batch()
    with pytest.raises(InputError, match="expected"):
        margin_mse(s, t[:, :4])
    with pytest.raises(InputError, match=r"\[B, K\]"):
        listwise_kl(s[0], t[0])
    with pytest.raises(InputError, match="bool"):
        listmle(s, t, mask=mask.long())
    with pytest.raises(InputError, match="teacher"):
        ranknet(s, None)
    with pytest.raises(InputError, match="labels"):
        cprd(s, t, labels[:, :2])
    with pytest.raises(InputError, match="either"):
        info_nce(s, labels=labels, positive_index=torch.zeros(3, dtype=torch.long))
    with pytest.raises(InputError, match="outside"):
        info_nce(s, positive_index=torch.tensor([0, 1, 5]))
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        graded_bce(s, t, target="prob")
    with pytest.raises(InputError, match="max_grade|0, 1"):
        graded_bce(s, None, labels, target="labels", max_grade=1)


def test_ranknet_from_pairs_errors():
    s, _, _, mask = _batch()
    prob = torch.tensor([0.5])
    with pytest.raises(InputError, match=r"\[P, 3\]"):
        ranknet_from_pairs(s, torch.tensor([[0, 1]]), prob)
    with pytest.raises(InputError, match="outside"):
        ranknet_from_pairs(s, torch.tensor([[3, 0, 1]]), prob)
    with pytest.raises(InputError, match="outside"):
        ranknet_from_pairs(s, torch.tensor([[0, 0, 5]]), prob)
    with pytest.raises(InputError, match="padded"):
        ranknet_from_pairs(s, torch.tensor([[1, 0, 4]]), prob, mask)
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        ranknet_from_pairs(s, torch.tensor([[0, 0, 1]]), torch.tensor([1.5]))
    empty = ranknet_from_pairs(s, torch.zeros(0, 3, dtype=torch.long), torch.zeros(0))
    assert float(empty) == 0.0


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda s, t: listwise_kl(s, t, temperature=0.0), "temperature"),
        (lambda s, t: ranknet(s, t, target="medium"), "target"),
        (lambda s, t: ranknet(s, t, margin=-1.0), "margin"),
        (lambda s, t: cprd(s, t, top_m=1), "top_m"),
        (lambda s, t: listmle(s, t, weighting="heavy"), "weighting"),
        (lambda s, t: graded_bce(s, t, max_grade=0), "max_grade"),
        (lambda s, t: info_nce(s, temperature=float("nan")), "temperature"),
    ],
)
def test_bad_hyper_parameters_raise(call, match):
    s, t, _, _ = _batch()
    with pytest.raises(RKDError, match=match):
        call(s, t)
