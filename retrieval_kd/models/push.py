"""Upload a saved student folder, with its model card, to the Hugging Face hub.

``rkd push --model <folder> --repo <org/name>`` and :func:`push_to_hub` create the repository
if needed and upload the folder (weights, configs, tokenizer, ``README.md`` card, manifest),
leaving out training checkpoints and temporary files. The folder must be a finished student
(it has a manifest and weights); a card is written first if it has none.

Example (a fake API object stands in for ``huggingface_hub.HfApi``):
    >>> class Fake:
    ...     def create_repo(self, repo_id, **kw): return f"https://huggingface.co/{repo_id}"
    ...     def upload_folder(self, **kw): self.kw = kw
    >>> push_to_hub("runs/demo/train-distilled/model", "me/l3", api=Fake())  # doctest: +SKIP
    'https://huggingface.co/me/l3'
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from retrieval_kd.errors import InputError

REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}$")
WEIGHTS = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json")
IGNORE = ["checkpoint-*", "checkpoint-*/**", "*.tmp", ".*"]


def push_to_hub(
    folder: str | Path,
    repo_id: str,
    *,
    private: bool = False,
    commit_message: str | None = None,
    api: Any = None,
) -> str:
    """Upload ``folder`` to the hub repository ``repo_id``; returns the repository's URL.

    Args:
        folder: a saved student folder (``<run>/train-distilled/model``).
        repo_id: ``org/name``.
        private: create the repository private (when it does not exist yet).
        commit_message: the upload's commit message.
        api: an ``huggingface_hub.HfApi`` (default: a new one, with the user's token).

    Raises:
        InputError: not a finished student folder, or a malformed repository id.
    """
    from retrieval_kd.models.model_card import write_model_card

    folder = Path(folder)
    if not REPO_ID.match(repo_id):
        raise InputError(f"repository id must look like 'org/name', got {repo_id!r}")
    if not folder.is_dir():
        raise InputError("no such student folder", folder)
    if not any((folder / w).is_file() for w in WEIGHTS):
        raise InputError(f"not a saved model: none of {', '.join(WEIGHTS)}", folder)
    if not (folder / "README.md").is_file() and (folder / "manifest.json").is_file():
        from retrieval_kd.manifest import read_manifest

        write_model_card(folder, read_manifest(folder))
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi()
    url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    api.upload_folder(
        folder_path=str(folder),
        repo_id=repo_id,
        repo_type="model",
        commit_message=commit_message or f"Upload {folder.name} (retrieval_kd)",
        ignore_patterns=IGNORE,
    )
    return str(url)
