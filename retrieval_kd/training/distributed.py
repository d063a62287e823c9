"""In-batch negatives across processes: every rank contrasts against the global batch.

Under DDP each process holds B of the W x B queries of a step. Without gathering, a query's
in-batch negatives are the B x K passages of its own process only, so W GPUs give it W times
fewer negatives than one GPU at the same global batch (the DPR / RocketQA "cross-batch
negatives" point, Qu et al. 2021). Here each process gathers every process's passage
representations **with gradients** (sentence-transformers' ``all_gather_with_grad`` /
``all_gather_padded``, the collectives behind its ``MultipleNegativesRankingLoss
(gather_across_devices=True)``), scores its own queries against all of them, and places its own
groups at its rank's offset. The backward of the gather sums every process's gradient for a
passage back to the process that encoded it; DDP then averages the parameter gradients, so W
processes of B queries give the loss and gradients of one process on the W x B batch.

Shapes (W processes, B queries each, K passages per group, D dims):
    passage vectors [B*K, D] -> gathered [W*B*K, D]; scores [B, W*B*K].
"""

from __future__ import annotations

from typing import Any

import torch

from retrieval_kd.errors import RKDError


def world() -> tuple[int, int]:
    """(rank, world size) of the initialised process group, else (0, 1)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather_groups(doc_ids: list[list[str]]) -> tuple[list[list[str]], int]:
    """Every process's groups of doc ids in rank order, and the index of this process's first.

    Raises:
        RKDError: processes hold different numbers of groups (the tensors gathered next must
            have one shape on every rank; accelerate's ``even_batches`` keeps them equal).
    """
    import torch.distributed as dist

    rank, size = world()
    if size == 1:
        return doc_ids, 0
    parts: list[Any] = [None] * size
    dist.all_gather_object(parts, doc_ids)
    counts = [len(part) for part in parts]
    if len(set(counts)) > 1:
        raise RKDError(
            f"in-batch gathering needs the same batch on every process, got {counts} groups; "
            "keep the dataloader's even_batches on or set training.gather_across_devices: false"
        )
    return [group for part in parts for group in part], sum(counts[:rank])


def gather_vectors(vectors: torch.Tensor) -> torch.Tensor:
    """``[n, D]`` on each process -> ``[W*n, D]`` in rank order, gradients kept (as is)."""
    from sentence_transformers.util.distributed import all_gather_with_grad

    return vectors if world()[1] == 1 else all_gather_with_grad(vectors)


def gather_tokens(vectors: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Token vectors ``[n, T, D]`` + mask ``[n, T]`` -> ``[W*n, T_max, D]`` + ``[W*n, T_max]``
    (padded to the longest process's T; gradients kept for the vectors)."""
    from sentence_transformers.util.distributed import all_gather_padded

    if world()[1] == 1:
        return vectors, mask
    return all_gather_padded(vectors, mask, with_grad=True)
