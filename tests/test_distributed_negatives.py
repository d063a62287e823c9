"""In-batch negatives under DDP: W processes of B queries train as one process of W x B.

``retrieval_kd.training.distributed`` gathers every process's passage vectors with gradients;
these tests check the target layout at a process's offset and, with two gloo processes under
torchrun, that loss, gradient norm and the updated weights equal those of one process on the
global batch (before gathering, each process contrasted against its own half only).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from _train_worker import make_toy_training, train_and_record

from retrieval_kd.training.trainer import group_block, in_batch_targets

REPO = Path(__file__).resolve().parents[1]


def test_in_batch_targets_place_a_process_s_groups_at_its_offset() -> None:
    groups = [["a", "b"], ["c", "a"], ["d", "e"], ["f", "b"]]  # 2 processes x 2 groups
    labels = torch.tensor([[1.0, 0.0], [1.0, 0.0]])  # process 1's own groups: 2 and 3
    out, mask = in_batch_targets(groups, labels, offset=2)
    assert out.shape == mask.shape == (2, 8)
    assert out[0].tolist() == [0, 0, 0, 0, 1, 0, 0, 0]
    assert out[1].tolist() == [0, 0, 0, 0, 0, 0, 1, 0]
    # group 3 holds "b": process 0's "b" (column 1) must not be one of its negatives
    assert mask[1].tolist() == [True, False, True, True, True, True, True, True]
    assert mask[0].all()
    single, single_mask = in_batch_targets(groups, torch.ones(4, 2) * torch.tensor([1.0, 0.0]))
    torch.testing.assert_close(single[2:], out)
    assert torch.equal(single_mask[2:], mask)


def test_group_block_reads_the_own_groups_at_the_offset() -> None:
    scores = torch.arange(2 * 8, dtype=torch.float32).view(2, 8)  # 2 queries x 4 groups of 2
    assert group_block(scores, 2, offset=2).tolist() == [[4.0, 5.0], [14.0, 15.0]]
    assert group_block(scores[:, :4], 2).tolist() == [[0.0, 1.0], [10.0, 11.0]]


def ddp_config(toy: dict[str, Path], out: Path, batch_size: int) -> dict:
    return {
        "data": {"collection": str(toy["collection"]), "score_store": str(toy["store"]),
                 "max_queries": 4},
        "student": {"model": str(toy["model"]), "similarity": "dot",
                    "query_max_length": 16, "passage_max_length": 32},
        "groups": {"size": 3, "strategy": "top", "depth": 8},
        "loss": {"kl": 1.0, "info_nce": {"weight": 1.0, "temperature": 1.0, "in_batch": True}},
        "training": {"output_dir": str(out), "max_steps": 1, "batch_size": batch_size,
                     "learning_rate": 1e-3, "warmup": 0.0, "logging_steps": 1,
                     "max_grad_norm": 1e9},
    }  # fmt: skip


def first_log(record: dict) -> dict:
    return next(row for row in record["logs"] if "grad_norm" in row)


def test_two_gloo_processes_equal_one_process_on_the_global_batch(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    toy = make_toy_training(tmp_path / "toy")
    one = tmp_path / "one"
    one.mkdir()
    reference = train_and_record(ddp_config(toy, one / "run", batch_size=4), one)

    two = tmp_path / "two"
    two.mkdir()
    (two / "config.json").write_text(json.dumps(ddp_config(toy, two / "run", batch_size=2)))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RKD_QUIET": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
               "--standalone", str(REPO / "tests" / "_train_worker.py"),
               str(two / "config.json"), str(two)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO)
    assert done.returncode == 0, done.stderr[-4000:]
    ranks = [json.loads((two / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]

    want, got = first_log(reference), first_log(ranks[0])
    assert got["loss"] == pytest.approx(want["loss"], rel=1e-4)
    assert got["grad_norm"] == pytest.approx(want["grad_norm"], rel=1e-4)
    w_one = load_file(str(one / "run" / "model" / "model.safetensors"))
    w_two = load_file(str(two / "run" / "model" / "model.safetensors"))
    for name, tensor in w_one.items():  # Adam's first step is g / (|g| + eps): near-zero
        # gradients move a weight by up to lr either way, so allow 1% of lr (1e-5)
        torch.testing.assert_close(w_two[name], tensor, rtol=1e-4, atol=1e-5)
    manifest = json.loads((two / "run" / "model" / "manifest.json").read_text())
    assert manifest["result"]["in_batch_processes"] == 2
    assert manifest["config"]["training"]["gather_across_devices"] is True
