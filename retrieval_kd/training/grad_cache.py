"""Gradient caching for students that encode texts into single vectors.

Gao, Zhang, Han, Callan (2021), "Scaling Deep Contrastive Learning Batch Size under Memory Limited
Setup" (GradCache). The loss of a batch depends on the parameters only through the embeddings,
so the step splits into three passes, and activation memory is bounded by one chunk whatever the
batch size:

1. embed every query and passage in chunks **without** a graph, remembering each chunk's RNG
   state (dropout);
2. compute the loss on those embeddings as leaves and get ``dL/d(embedding)``;
3. re-embed each chunk **with** a graph under the same RNG state and back-propagate
   ``sum(embedding * cached_gradient)``, which adds exactly the chunk's share of ``dL/dθ``.

Under DistributedDataParallel every chunk but the last back-propagates under ``no_sync``, so the
gradients are all-reduced once per step.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from retrieval_kd.errors import RKDError


@dataclass
class RngState:
    """The CPU and CUDA random states at one point, to replay dropout masks exactly."""

    cpu: torch.Tensor
    cuda: list[torch.Tensor] | None

    @classmethod
    def capture(cls) -> RngState:
        cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
        return cls(torch.get_rng_state(), cuda)

    @contextlib.contextmanager
    def replay(self) -> Iterator[None]:
        """Run the block from this state; the outer random streams are left as they were."""
        devices = list(range(len(self.cuda))) if self.cuda is not None else []
        with torch.random.fork_rng(devices=devices):
            torch.set_rng_state(self.cpu)
            if self.cuda is not None:
                torch.cuda.set_rng_state_all(self.cuda)
            yield


def chunks(texts: list[str], size: int) -> list[list[str]]:
    """Consecutive slices of at most ``size`` texts."""
    return [texts[i : i + size] for i in range(0, len(texts), size)]


def embed_without_graph(
    encode: Callable[[list[str]], torch.Tensor], parts: list[list[str]]
) -> tuple[list[torch.Tensor], list[RngState]]:
    """Pass 1: embeddings of every chunk without autograd, and the RNG state before each.

    Shapes:
        returns one Tensor[n_i, D] per chunk.
    """
    reps, states = [], []
    for part in parts:
        states.append(RngState.capture())
        with torch.no_grad():
            rep = encode(part)
        if not isinstance(rep, torch.Tensor) or rep.dim() != 2:
            raise RKDError(
                "grad_cache needs a student whose encode_queries / encode_passages return one "
                "vector per text (Tensor[n, D]); turn training.grad_cache off for this student"
            )
        reps.append(rep)
    return reps, states


def backward_through_chunks(
    encode: Callable[[list[str]], torch.Tensor],
    parts: list[list[str]],
    states: list[RngState],
    grads: torch.Tensor,
    backward: Callable[[torch.Tensor], None],
    no_sync: Callable[[], contextlib.AbstractContextManager],
    last_syncs: bool,
) -> None:
    """Pass 3: re-embed each chunk under its RNG state and back-propagate the cached gradients.

    Args:
        encode: texts -> Tensor[n, D] with a graph.
        parts / states: the chunks and RNG states of pass 1.
        grads: ``dL/d(embedding)`` of all chunks, concatenated ([sum n_i, D]).
        backward: back-propagates a scalar (the accelerator's, so loss scaling applies).
        no_sync: context in which gradients are not all-reduced (DDP).
        last_syncs: whether the last chunk may all-reduce (else it runs under ``no_sync`` too).
    """
    start = 0
    for i, (part, state) in enumerate(zip(parts, states, strict=True)):
        sync = last_syncs and i == len(parts) - 1
        with contextlib.nullcontext() if sync else no_sync(), state.replay():
            rep = encode(part)
            grad = grads[start : start + len(part)]
            backward((rep.float() * grad).sum())
        start += len(part)
