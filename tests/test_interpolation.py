"""WiSE-FT interpolation (``training.interpolate``): the saved student is exactly the chosen
point between its starting weights and the weights training reached."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from _train_worker import make_toy_training
from safetensors.torch import load_file
from test_training import toy_config

from retrieval_kd.errors import RKDError
from retrieval_kd.training import config_from_dict, train
from retrieval_kd.training.interpolation import interpolate_weights, snapshot


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_toy_training(tmp_path_factory.mktemp("toy-wise"))


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def test_integer_buffers_stay_and_bad_weights_are_refused() -> None:
    module = torch.nn.Embedding(3, 2)
    module.register_buffer("ids", torch.arange(3))
    start = snapshot(module)
    assert "ids" not in start
    with torch.no_grad():
        module.weight.add_(1.0)
    assert interpolate_weights(module, start, 1.0) == 1  # alpha 1 keeps the trained weights
    torch.testing.assert_close(module.weight, start["weight"] + 1.0)
    with pytest.raises(RKDError, match=r"\(0, 1\]"):
        interpolate_weights(module, start, 0.0)
    with pytest.raises(RKDError, match="cannot interpolate 'weight'"):
        interpolate_weights(module, {"weight": torch.zeros(1)}, 0.5)


def test_config_refuses_a_weight_outside_its_range(toy: dict, tmp_path: Path) -> None:
    with pytest.raises(RKDError, match="training.interpolate"):
        config_from_dict(toy_config(toy, tmp_path / "x", training={"interpolate": 1.5}))


def test_saved_student_is_the_midpoint_of_start_and_trained(toy: dict, tmp_path: Path) -> None:
    plain = train(toy_config(toy, tmp_path / "plain", training={"seed": 3}))
    wise = train(toy_config(toy, tmp_path / "wise", training={"seed": 3, "interpolate": 0.5}))
    start, trained, mixed = (
        _weights(Path(toy["model"])), _weights(plain.model_dir), _weights(wise.model_dir)
    )  # fmt: skip
    moved = [name for name in trained if not torch.equal(trained[name], start[name])]
    assert moved, "training changed no weight"
    for name in moved:
        torch.testing.assert_close(mixed[name], 0.5 * trained[name] + 0.5 * start[name])
    assert wise.manifest["config"]["training"]["interpolate"] == 0.5
