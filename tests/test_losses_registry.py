"""WeightedSum and the loss registry: every term reported, the right total, clear errors."""

from __future__ import annotations

import doctest
import importlib
import math

import pytest
import torch

from retrieval_kd.errors import RKDError
from retrieval_kd.losses import (
    WeightedSum,
    build_loss,
    cprd,
    get_loss,
    hyper_parameters,
    listmle,
    listwise_kl,
    loss_names,
    margin_mse,
    pointwise_mse,
)

NAMES = ["cprd", "graded_bce", "info_nce", "kl", "listmle", "margin_mse", "mse", "pld", "ranknet"]


@pytest.fixture
def scores():
    g = torch.Generator().manual_seed(11)
    s = torch.randn(3, 6, generator=g, dtype=torch.float64)
    t = torch.randn(3, 6, generator=g, dtype=torch.float64) * 2
    mask = torch.ones(3, 6, dtype=torch.bool)
    mask[2, 4:] = False
    return s, t, mask


def test_loss_names():
    assert loss_names() == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_every_registered_loss_runs_and_describes_itself(name, scores):
    s, t, mask = scores
    loss = get_loss(name)
    value = loss(s, t, None, mask)
    value = value["loss"] if isinstance(value, dict) else value
    assert value.dim() == 0 and torch.isfinite(value) and float(value) > 0
    assert loss.describe()["name"] == name


def test_hand_computed_weighted_sum():
    s = torch.tensor([[3.0, 1.0, 0.0]])
    t = torch.tensor([[5.0, 4.0, 1.0]])
    ws = WeightedSum({"margin_mse": 2.0, "mse": 0.5})
    out = ws(s, t)
    # margin_mse = 1 (see its docstring); mse = (4 + 9 + 1) / 3 = 14/3
    assert float(out["margin_mse"]) == pytest.approx(1.0)
    assert float(out["mse"]) == pytest.approx(14 / 3)
    assert float(out["loss"]) == pytest.approx(2.0 + 0.5 * 14 / 3)


def test_weighted_sum_returns_every_term_and_total(scores):
    s, t, mask = scores
    spec = {
        "margin_mse": 1.0,
        "kl": {"weight": 0.5, "temperature": 2.0},
        "kl_sharp": {"loss": "kl", "weight": 0.25, "temperature": 0.5},
        "cprd": {"weight": 2.0, "top_m": 3, "cprd_weight": 0.1},
        "custom": (pointwise_mse, 3.0),
    }
    out = build_loss(spec)(s, t, None, mask)
    expected = {
        "margin_mse": margin_mse(s, t, None, mask),
        "kl": listwise_kl(s, t, None, mask, temperature=2.0),
        "kl_sharp": listwise_kl(s, t, None, mask, temperature=0.5),
        "custom": pointwise_mse(s, t, None, mask),
    }
    parts = cprd(s, t, None, mask, top_m=3, cprd_weight=0.1)
    assert set(out) == set(expected) | {"cprd", "cprd/cprd", "cprd/contrastive", "loss"}
    for name, value in expected.items():
        torch.testing.assert_close(out[name], value)
    torch.testing.assert_close(out["cprd"], parts["loss"])
    torch.testing.assert_close(out["cprd/cprd"], parts["cprd"])
    torch.testing.assert_close(out["cprd/contrastive"], parts["contrastive"])
    total = (
        expected["margin_mse"]
        + 0.5 * expected["kl"]
        + 0.25 * expected["kl_sharp"]
        + 2.0 * parts["loss"]
        + 3.0 * expected["custom"]
    )
    torch.testing.assert_close(out["loss"], total)


def test_weighted_sum_gradient_is_weighted_sum_of_gradients(scores):
    s, t, mask = scores
    x = s.clone().requires_grad_(True)
    build_loss({"margin_mse": 0.3, "kl": 0.7})(x, t, None, mask)["loss"].backward()
    y = s.clone().requires_grad_(True)
    (0.3 * margin_mse(y, t, None, mask) + 0.7 * listwise_kl(y, t, None, mask)).backward()
    torch.testing.assert_close(x.grad, y.grad)


def test_pld_preset_and_overrides(scores):
    s, t, mask = scores
    assert hyper_parameters("pld")["weighting"] == "teacher"
    expected = listmle(s, t, None, mask, weighting="teacher", positives_first=True)
    torch.testing.assert_close(get_loss("pld")(s, t, None, mask), expected)
    plain = get_loss("pld", weighting="none", positives_first=False)(s, t, None, mask)
    torch.testing.assert_close(plain, listmle(s, t, None, mask))


def test_build_loss_from_bare_name(scores):
    s, t, mask = scores
    out = build_loss("mse")(s, t, None, mask)
    assert set(out) == {"mse", "loss"}
    torch.testing.assert_close(out["loss"], out["mse"])


def test_info_nce_per_call_positive_index_passes_through():
    s = torch.tensor([[0.0, 2.0, 0.0]])
    loss = get_loss("info_nce")
    value = loss(s, None, None, None, positive_index=torch.tensor([1]))
    assert float(value) == pytest.approx(math.log(1 + 2 * math.exp(-2)))
    assert "positive_index" not in hyper_parameters("info_nce")


def test_unknown_name_lists_valid_names():
    with pytest.raises(RKDError) as info:
        get_loss("margin_mae")
    for name in NAMES:
        assert name in str(info.value)
    with pytest.raises(RKDError, match="valid names"):
        build_loss({"kl": 1.0, "lambdarank": 1.0})


def test_unknown_hyper_parameter():
    with pytest.raises(RKDError, match="tempreature.*valid: temperature, teacher_temperature"):
        get_loss("kl", tempreature=2.0)
    with pytest.raises(RKDError, match="positive_index"):
        get_loss("info_nce", positive_index=0)
    with pytest.raises(RKDError, match="margin"):
        build_loss({"mse": {"weight": 1.0, "margin": 0.1}})


@pytest.mark.parametrize(
    "spec",
    [
        {},
        {"kl": -1.0},
        {"kl": "heavy"},
        {"kl": float("inf")},
        {"kl": {"weight": None}},
        {"loss": 1.0},
        {"a/b": (pointwise_mse, 1.0)},
        {"custom": (pointwise_mse,)},
        ["kl"],
    ],
)
def test_bad_specs(spec):
    with pytest.raises(RKDError):
        build_loss(spec)


@pytest.mark.parametrize(
    "module",
    [
        "__init__",
        "_masking",
        "cprd",
        "graded_bce",
        "info_nce",
        "listmle",
        "listwise_kl",
        "margin_mse",
        "pointwise_mse",
        "ranknet",
        "registry",
        "weighted_sum",
    ],
)
def test_docstring_examples(module):
    """The worked examples in the docstrings are right (and exist where a loss is defined)."""
    mod = importlib.import_module(f"retrieval_kd.losses.{module}".replace(".__init__", ""))
    result = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
    if module != "_masking":
        assert result.attempted > 0
