"""Multi-vector basics shared by the ColBERT student, its teacher role and the retrieval CLI.

- :class:`TokenEmbeddings`: padded per-token vectors of several texts plus the mask of the
  positions that count in MaxSim (Khattab & Zaharia 2020).
- :func:`is_multi_vector_checkpoint`: whether a folder holds a trained late-interaction model
  rather than a backbone a fresh ColBERT starts from.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor


@dataclass(frozen=True)
class TokenEmbeddings:
    """Padded token vectors of several texts and which positions are real.

    Shapes:
        vectors: [N, T, D] float (zeros at padding); mask: [N, T] bool, True = a scored token
        (query expansion positions included, skiplisted passage tokens excluded).
    """

    vectors: Tensor
    mask: Tensor

    def __len__(self) -> int:
        return self.vectors.shape[0]

    @property
    def lengths(self) -> Tensor:
        """Scored tokens per text. Shapes: [N] long."""
        return self.mask.sum(dim=1)

    def unpad(self) -> list[Tensor]:
        """The token matrix of each text, without padding. Shapes: N tensors [n_i, D]."""
        return [v[m] for v, m in zip(self.vectors, self.mask, strict=True)]

    @classmethod
    def pad(cls, matrices: Sequence[Tensor]) -> TokenEmbeddings:
        """Stack ragged token matrices. Shapes: N tensors [n_i, D] -> vectors [N, max n_i, D]."""
        if not matrices:
            return cls(torch.zeros(0, 0, 0), torch.zeros(0, 0, dtype=torch.bool))
        vectors = torch.nn.utils.rnn.pad_sequence(list(matrices), batch_first=True)
        lengths = torch.tensor([len(m) for m in matrices], device=vectors.device)
        mask = torch.arange(vectors.shape[1], device=vectors.device)[None, :] < lengths[:, None]
        return cls(vectors, mask)


def is_multi_vector_checkpoint(folder: str | Path) -> bool:
    """Whether ``folder`` holds a trained late-interaction model (not a backbone to start from).

    True for MultiVectorEncoder saves, PyLate saves (``model_type: ColBERT``), Stanford-NLP
    ColBERT (``HF_ColBERT``) and transformers-native ``*ForRetrieval`` models.
    """
    folder = Path(folder)
    st_config = _read_json(folder / "config_sentence_transformers.json")
    if st_config.get("model_type") in ("MultiVectorEncoder", "ColBERT"):
        return True
    architectures = _read_json(folder / "config.json").get("architectures") or []
    return any(a == "HF_ColBERT" or a.endswith("ForRetrieval") for a in architectures)


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    with path.open(encoding="utf-8") as f:
        data = json.load(f)
    return data if isinstance(data, dict) else {}
