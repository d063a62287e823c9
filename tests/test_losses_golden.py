"""Golden values of every loss: hand-computed numbers, and naive Python loops on random inputs.

The reference implementations here are deliberately naive (lists, ``math``, one entry at a
time) and share no code with ``retrieval_kd.losses``.
"""

from __future__ import annotations

import math

import pytest
import torch

from retrieval_kd.losses import (
    cprd,
    graded_bce,
    in_batch_positive_index,
    info_nce,
    listmle,
    listwise_kl,
    margin_mse,
    pointwise_mse,
    ranknet,
    ranknet_from_pairs,
)

# --------------------------------------------------------------------------- naive references


def _rows(S, T, L, M):
    """Per row: list of (column, s, t, is_positive) over real entries."""
    out = []
    for b in range(len(S)):
        row = []
        for k in range(len(S[b])):
            if M is not None and not M[b][k]:
                continue
            pos = (L[b][k] > 0) if L is not None else (k == 0)
            row.append((k, S[b][k], None if T is None else T[b][k], pos))
        out.append(row)
    return out


def _mean(xs):
    return sum(xs) / len(xs) if xs else 0.0


def _sig(x):
    return 1.0 / (1.0 + math.exp(-x))


def _lse(xs):
    m = max(xs)
    return m + math.log(sum(math.exp(x - m) for x in xs))


def ref_margin_mse(S, T, L=None, M=None, all_pairs=False):
    terms = []
    for row in _rows(S, T, L, M):
        for a in range(len(row)):
            for c in range(len(row)):
                _, sa, ta, pa = row[a]
                _, sc, tc, pc = row[c]
                ok = (a < c) if all_pairs else (pa and not pc)
                if ok:
                    terms.append(((sa - sc) - (ta - tc)) ** 2)
    return _mean(terms)


def ref_kl(S, T, M=None, tau=1.0, tau_t=None):
    tau_t = tau if tau_t is None else tau_t
    rows = []
    for row in _rows(S, T, None, M):
        if not row:
            continue
        zs = _lse([s / tau for _, s, _, _ in row])
        zt = _lse([t / tau_t for _, _, t, _ in row])
        kl = 0.0
        for _, s, t, _ in row:
            lpt, lps = t / tau_t - zt, s / tau - zs
            kl += math.exp(lpt) * (lpt - lps)
        rows.append(kl)
    return _mean(rows) * (tau**2 if tau > 1 else 1.0)  # the default: rescale when tau > 1


def ref_ranknet(S, T, M=None, target="hard", tau=1.0, margin=0.0):
    terms = []
    for row in _rows(S, T, None, M):
        for _, si, ti, _ in row:
            for _, sj, tj, _ in row:
                if ti - tj > margin:
                    y = 1.0 if target == "hard" else _sig((ti - tj) / tau)
                    p = _sig(si - sj)
                    terms.append(-(y * math.log(p) + (1 - y) * math.log(1 - p)))
    return _mean(terms)


def ref_info_nce(S, L=None, M=None, tau=1.0):
    terms = []
    for row in _rows(S, None, L, M):
        negs = [s / tau for _, s, _, p in row if not p]
        for _, s, _, p in row:
            if p:
                x = s / tau
                terms.append(-(x - _lse([x] + negs)))
    return _mean(terms)


def ref_cprd(S, T, L=None, M=None, top_m=8, tau=1.0, margin=0.0, w=1.0, tau_c=None):
    terms = []
    for row in _rows(S, T, L, M):
        negs = sorted([(-t, k, s, t) for k, s, t, p in row if not p])[:top_m]
        for i in range(len(negs) - 1):
            if negs[i][3] - negs[i + 1][3] >= margin:
                xs = [n[2] / tau for n in negs[i:]]
                terms.append(-(xs[0] - _lse(xs)))
    rank = _mean(terms)
    con = ref_info_nce(S, L, M, tau if tau_c is None else tau_c)
    return {"cprd": rank, "contrastive": con, "loss": con + w * rank}


def ref_listmle(S, T, L=None, M=None, weighting="none", tau=1.0, tau_t=1.0, pos_first=False):
    rows = []
    for row in _rows(S, T, L, M):
        if not row:
            continue
        perm = sorted(row, key=lambda e: ((not e[3]) if pos_first else 0, -e[2], e[0]))
        xs = [e[1] / tau for e in perm]
        us = [e[2] / tau_t for e in perm]
        total = 0.0
        for k in range(len(perm)):
            step = _lse(xs[k:]) - xs[k]
            if weighting == "none":
                alpha = 1.0
            elif weighting == "teacher":
                alpha = math.exp(us[k] - _lse(us))
            else:
                alpha = math.exp(us[k] - _lse(us[k:]))
            total += alpha * step
        rows.append(total)
    return _mean(rows)


def ref_graded_bce(S, T, L=None, M=None, target="sigmoid", tau=1.0, bias=0.0, tau_t=1.0, g=1.0):
    terms = []
    for b in range(len(S)):
        for k in range(len(S[b])):
            if M is not None and not M[b][k]:
                continue
            if target == "sigmoid":
                y = _sig(T[b][k] / tau_t)
            elif target == "prob":
                y = T[b][k]
            else:
                y = (L[b][k] / g) if L is not None else float(k == 0)
            p = _sig(S[b][k] / tau + bias)
            terms.append(-(y * math.log(p) + (1 - y) * math.log(1 - p)))
    return _mean(terms)


def ref_mse(S, T, M=None):
    return _mean([(s - t) ** 2 for row in _rows(S, T, None, M) for _, s, t, _ in row])


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def batch():
    """A ragged batch: 3 groups, K = 5, graded labels with 1-2 positives per row."""
    g = torch.Generator().manual_seed(0)
    s = torch.randn(3, 5, generator=g, dtype=torch.float64) * 2
    t = torch.randn(3, 5, generator=g, dtype=torch.float64) * 3
    labels = torch.tensor([[2, 0, 1, 0, 0], [0, 1, 0, 0, 0], [1, 0, 0, 0, 0]])
    mask = torch.tensor(
        [[True, True, True, True, True], [True, True, True, False, False], [True] * 4 + [False]]
    )
    return s, t, labels, mask


def _lists(*xs):
    return [None if x is None else x.tolist() for x in xs]


def _close(value, expected):
    """Tight for float64 results, float32 rounding otherwise (hand-computed float32 inputs)."""
    rel = 1e-9 if value.dtype == torch.float64 else 1e-6
    assert float(value) == pytest.approx(expected, rel=rel, abs=1e-12)


# --------------------------------------------------------------------------- hand-computed


def test_margin_mse_by_hand():
    s = torch.tensor([[3.0, 1.0, 0.0], [0.0, 2.0, 9.0]])
    t = torch.tensor([[5.0, 4.0, 1.0], [1.0, 1.0, 9.0]])
    mask = torch.tensor([[True, True, True], [True, True, False]])
    # row 0 margins s (2, 3) vs t (1, 4): errors 1, 1; row 1: s -2 vs t 0: error 4.
    # mean over the 3 pairs = (1 + 1 + 4) / 3 = 2
    _close(margin_mse(s, t, mask=mask), 2.0)


def test_margin_mse_temperature_scales_the_student_only():
    s = torch.tensor([[0.15, 0.05, 0.0]])  # cosine-like scores
    t = torch.tensor([[5.0, 4.0, 1.0]])
    # s / 0.05 = (3, 1, 0): the margins of test_margin_mse_by_hand's row 0 -> (1 + 1) / 2 = 1
    _close(margin_mse(s, t, temperature=0.05), 1.0)
    _close(margin_mse(s / 0.05, t), 1.0)


def test_kl_by_hand_with_temperature():
    s = torch.tensor([[0.0, 0.0]])
    t = torch.tensor([[0.0, 2 * math.log(3.0)]])
    # tau = 2: teacher softmax of (0, ln 3) = (1/4, 3/4), student (1/2, 1/2)
    # KL = 1/4 ln(1/2) + 3/4 ln(3/2) = 0.130812035; times tau^2 = 4 -> 0.52324814
    expected = 4 * (0.25 * math.log(0.5) + 0.75 * math.log(1.5))
    _close(listwise_kl(s, t, temperature=2.0), expected)
    assert expected == pytest.approx(0.52324814, abs=1e-8)
    # rescale=False: the plain KL, without the tau^2 factor
    _close(listwise_kl(s, t, temperature=2.0, rescale=False), expected / 4)


def test_kl_scale_only_temperature_for_cosine_students():
    s = torch.tensor([[0.05, 0.0]])  # cosine scores; / 0.05 -> (1, 0)
    t = torch.tensor([[1.0, 0.0]])  # teacher at tau_t = 1 -> the same distribution
    _close(listwise_kl(s, t, temperature=0.05, teacher_temperature=1.0, rescale=False), 0.0)
    t2 = torch.tensor([[0.0, math.log(3.0)]])  # teacher (1/4, 3/4)
    p = 1 / (1 + math.exp(-1))  # student (p, 1 - p)
    expected = 0.25 * math.log(0.25 / p) + 0.75 * math.log(0.75 / (1 - p))
    got = listwise_kl(s, t2, temperature=0.05, teacher_temperature=1.0, rescale=False)
    _close(got, expected)
    # the default rescales only a softening temperature (tau > 1): at 0.05 it stays plain
    _close(listwise_kl(s, t2, temperature=0.05, teacher_temperature=1.0), expected)
    _close(
        listwise_kl(s, t2, temperature=0.05, teacher_temperature=1.0, rescale=True),
        expected * 0.05**2,
    )


def test_ranknet_by_hand():
    s = torch.tensor([[1.0, 1.0, 0.0]])
    t = torch.tensor([[3.0, 2.0, 2.5]])
    # margin 0.6: only pair (0, 1) (Δt = 1) survives; Δs = 0 -> -log σ(0) = ln 2
    _close(ranknet(s, t, margin=0.6), math.log(2.0))
    # soft: y = σ(1), p = σ(0) = 1/2 -> -(y ln 1/2 + (1 - y) ln 1/2) = ln 2 as well
    _close(ranknet(s, t, margin=0.6, target="soft"), math.log(2.0))


def test_ranknet_from_pairs_by_hand():
    s = torch.tensor([[2.0, 0.0, 1.0]])
    pairs = torch.tensor([[0, 0, 1], [0, 2, 1]])
    # BCE(σ(2), 1) = ln(1 + e^-2); BCE(σ(1), 1/2) = ln(1 + e^-1) + 1/2
    expected = (math.log1p(math.exp(-2)) + math.log1p(math.exp(-1)) + 0.5) / 2
    _close(ranknet_from_pairs(s, pairs, torch.tensor([1.0, 0.5])), expected)


def test_info_nce_by_hand():
    s = torch.tensor([[2.0, 0.0, 0.0]])
    _close(info_nce(s), math.log(1 + 2 * math.exp(-2)))  # 0.23954...
    # two positives (cols 0, 1) each against the one negative; τ = 0.5
    labels = torch.tensor([[1, 1, 0]])
    expected = (math.log1p(math.exp(-4)) + math.log1p(math.exp(0))) / 2
    _close(info_nce(s, None, labels, temperature=0.5), expected)


def test_cprd_by_hand():
    s = torch.tensor([[2.0, 1.0, 0.0, 5.0]])
    t = torch.tensor([[9.0, 3.0, 2.0, 1.0]])
    out = cprd(s, t, top_m=3, cprd_weight=0.5)
    # negatives by teacher: cols 1, 2, 3 (s = 1, 0, 5)
    # i=1: -log(e^1 / (e^1 + e^0 + e^5)); i=2: -log(e^0 / (e^0 + e^5))
    t1 = math.log(math.exp(1) + 1 + math.exp(5)) - 1
    t2 = math.log(1 + math.exp(5))
    con = math.log(math.exp(2) + math.exp(1) + 1 + math.exp(5)) - 2
    _close(out["cprd"], (t1 + t2) / 2)
    _close(out["contrastive"], con)
    _close(out["loss"], con + 0.5 * (t1 + t2) / 2)
    # δ = 1.5: both teacher gaps (3 - 2 = 1, 2 - 1 = 1) are below it, so no term is left
    _close(cprd(s, t, top_m=3, margin=1.5)["cprd"], 0.0)


def test_listmle_and_pld_by_hand():
    s = torch.tensor([[0.0, 0.0, 0.0]])
    t = torch.tensor([[3.0, 2.0, 1.0]])
    _close(listmle(s, t), math.log(3) + math.log(2))
    # PLD weights: teacher softmax of (3, 2, 1) = (0.66524, 0.24473, 0.09003); last step is 0
    z = math.exp(3) + math.exp(2) + math.exp(1)
    _close(
        listmle(s, t, weighting="teacher"),
        math.exp(3) / z * math.log(3) + math.exp(2) / z * math.log(2),
    )
    # conditional: step 2 weight is e^2 / (e^2 + e^1)
    w2 = math.exp(2) / (math.exp(2) + math.exp(1))
    _close(
        listmle(s, t, weighting="teacher_conditional"),
        math.exp(3) / z * math.log(3) + w2 * math.log(2),
    )


def test_graded_bce_by_hand():
    s = torch.tensor([[0.0, 0.0]])
    _close(graded_bce(s, torch.tensor([[1.0, 0.5]]), target="prob"), math.log(2))
    # labels 3 and 0 of max grade 3 -> targets 1 and 0; σ(2·0 + 1) for both (temperature 0.5)
    labels = torch.tensor([[3, 0]])
    out = graded_bce(s, None, labels, target="labels", max_grade=3, temperature=0.5, bias=1.0)
    _close(out, (math.log1p(math.exp(-1)) + math.log1p(math.exp(1))) / 2)


def test_pointwise_mse_by_hand():
    s = torch.tensor([[1.0, 2.0], [5.0, 0.0]])
    t = torch.tensor([[0.0, 4.0], [5.0, 7.0]])
    mask = torch.tensor([[True, True], [True, False]])
    _close(pointwise_mse(s, t, mask=mask), (1 + 4 + 0) / 3)


# --------------------------------------------------------------------------- naive loops


@pytest.mark.parametrize("all_pairs", [False, True])
@pytest.mark.parametrize("use_labels", [False, True])
def test_margin_mse_matches_naive(batch, all_pairs, use_labels):
    s, t, labels, mask = batch
    lab = labels if use_labels else None
    expected = ref_margin_mse(*_lists(s, t, lab, mask), all_pairs=all_pairs)
    _close(margin_mse(s, t, lab, mask, all_pairs=all_pairs), expected)


@pytest.mark.parametrize(("tau", "tau_t"), [(1.0, None), (2.0, None), (0.5, 3.0)])
def test_kl_matches_naive(batch, tau, tau_t):
    s, t, labels, mask = batch
    expected = ref_kl(*_lists(s, t, mask), tau=tau, tau_t=tau_t)
    _close(listwise_kl(s, t, labels, mask, temperature=tau, teacher_temperature=tau_t), expected)


@pytest.mark.parametrize(("target", "margin"), [("hard", 0.0), ("soft", 0.0), ("hard", 1.0)])
def test_ranknet_matches_naive(batch, target, margin):
    s, t, _, mask = batch
    expected = ref_ranknet(*_lists(s, t, mask), target=target, tau=2.0, margin=margin)
    _close(ranknet(s, t, None, mask, target=target, temperature=2.0, margin=margin), expected)


@pytest.mark.parametrize("use_labels", [False, True])
def test_info_nce_matches_naive(batch, use_labels):
    s, _, labels, mask = batch
    lab = labels if use_labels else None
    _close(info_nce(s, None, lab, mask, temperature=0.7), ref_info_nce(*_lists(s, lab, mask), 0.7))


def test_info_nce_in_batch_layout():
    g = torch.Generator().manual_seed(1)
    bsz, k = 3, 4
    s = torch.randn(bsz, bsz * k, generator=g, dtype=torch.float64)
    index = in_batch_positive_index(bsz, k)
    labels = torch.zeros(bsz, bsz * k, dtype=torch.long)
    labels[torch.arange(bsz), index] = 1
    expected = ref_info_nce(s.tolist(), labels.tolist(), None, 0.05)
    _close(info_nce(s, None, positive_index=index, temperature=0.05), expected)
    _close(info_nce(s, None, labels, temperature=0.05), expected)


@pytest.mark.parametrize(("top_m", "margin"), [(2, 0.0), (3, 0.0), (8, 0.0), (3, 0.8)])
def test_cprd_matches_naive(batch, top_m, margin):
    s, t, labels, mask = batch
    kw = {"top_m": top_m, "margin": margin, "temperature": 0.5, "cprd_weight": 0.3}
    out = cprd(s, t, labels, mask, contrastive_temperature=2.0, **kw)
    ref = ref_cprd(*_lists(s, t, labels, mask), top_m, 0.5, margin, 0.3, 2.0)
    assert set(out) == {"cprd", "contrastive", "loss"}
    for key in ref:
        _close(out[key], ref[key])


@pytest.mark.parametrize("weighting", ["none", "teacher", "teacher_conditional"])
@pytest.mark.parametrize("pos_first", [False, True])
def test_listmle_matches_naive(batch, weighting, pos_first):
    s, t, labels, mask = batch
    kw = {"weighting": weighting, "temperature": 0.5, "teacher_temperature": 2.0}
    out = listmle(s, t, labels, mask, positives_first=pos_first, **kw)
    expected = ref_listmle(*_lists(s, t, labels, mask), weighting, 0.5, 2.0, pos_first)
    _close(out, expected)


@pytest.mark.parametrize("target", ["sigmoid", "prob", "labels"])
def test_graded_bce_matches_naive(batch, target):
    s, t, labels, mask = batch
    if target == "prob":
        t = torch.sigmoid(t)
    kw = {"temperature": 0.5, "bias": -0.3}
    out = graded_bce(s, t, labels, mask, target=target, teacher_temperature=2.0, max_grade=2, **kw)
    expected = ref_graded_bce(*_lists(s, t, labels, mask), target, 0.5, -0.3, 2.0, 2.0)
    _close(out, expected)


def test_pointwise_mse_matches_naive(batch):
    s, t, labels, mask = batch
    _close(pointwise_mse(s, t, labels, mask), ref_mse(*_lists(s, t, mask)))


def test_ranknet_from_pairs_matches_ranknet(batch):
    s, t, _, mask = batch
    rows = []
    for b in range(3):
        for i in range(5):
            for j in range(5):
                if mask[b, i] and mask[b, j] and t[b, i] > t[b, j]:
                    rows.append([b, i, j])
    pairs = torch.tensor(rows)
    soft = torch.sigmoid((t[pairs[:, 0], pairs[:, 1]] - t[pairs[:, 0], pairs[:, 2]]) / 2.0)
    _close(ranknet_from_pairs(s, pairs, soft, mask), ref_ranknet(*_lists(s, t, mask), "soft", 2.0))
