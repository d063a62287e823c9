"""The Hugging Face hub side of model resolution: offline mode, a fast reachability probe, the
local HF cache, and downloads.

``huggingface_hub`` waits up to 10 s per request (``HF_HUB_ETAG_TIMEOUT``) before it decides the
hub is unreachable, and a machine whose DNS hangs can wait longer. Resolution therefore asks once
per process, with a 2 s limit that also covers name lookup, whether the hub answers at all, and
only then calls ``snapshot_download`` online.
"""

from __future__ import annotations

import os
import threading
import urllib.error
import urllib.request
from pathlib import Path

from retrieval_kd.models.fingerprint import weight_files

PROBE_TIMEOUT_S = 2.0
# Files a PyTorch from_pretrained never reads: other frameworks' and runtimes' copies.
IGNORE_PATTERNS = [
    "*.onnx",
    "onnx/*",
    "openvino/*",
    "*.h5",
    "*.msgpack",
    "*.ot",
    "*.tflite",
    "*.mlmodel",
    "coreml/*",
    "*.gguf",
]
PICKLED_WEIGHTS = ["*.bin", "*.pt", "*.pth"]
_TRUE = {"1", "ON", "YES", "TRUE"}
_probe_results: dict[str, str | None] = {}
_probe_lock = threading.Lock()


def offline_mode() -> bool:
    """Whether ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) is set, now or at hub import."""
    from huggingface_hub import constants

    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(name, "").strip().upper() in _TRUE:
            return True
    return bool(constants.HF_HUB_OFFLINE)


def hub_endpoint() -> str:
    """The hub's base URL (``$HF_ENDPOINT`` or https://huggingface.co)."""
    from huggingface_hub import constants

    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def hf_cache_dir() -> Path:
    """The HF hub cache ``snapshot_download`` reads (``$HF_HUB_CACHE``, ``$HF_HOME/hub``, ...)."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def _probe(endpoint: str, timeout: float) -> str | None:
    """One HEAD request to ``endpoint``: None when it answers, else why not."""
    outcome: list[str | None] = []

    def ask() -> None:
        request = urllib.request.Request(endpoint, method="HEAD")
        try:
            with urllib.request.urlopen(request, timeout=timeout):
                outcome.append(None)
        except urllib.error.HTTPError as err:  # it answered; 5xx means it is down
            outcome.append(f"HTTP {err.code}" if err.code >= 500 else None)
        except (urllib.error.URLError, OSError, ValueError) as err:
            outcome.append(str(getattr(err, "reason", err)) or type(err).__name__)

    # A thread, because a hanging DNS lookup ignores socket timeouts.
    thread = threading.Thread(target=ask, name="rkd-hub-probe", daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    return outcome[0] if outcome else f"no answer within {timeout:g} s"


def hub_unreachable_reason(
    endpoint: str | None = None, timeout: float = PROBE_TIMEOUT_S
) -> str | None:
    """Why the hub cannot be reached (None when it can); asked once per endpoint and process."""
    endpoint = endpoint or hub_endpoint()
    with _probe_lock:
        if endpoint not in _probe_results:
            _probe_results[endpoint] = _probe(endpoint, timeout)
        return _probe_results[endpoint]


def forget_hub_probe() -> None:
    """Drop remembered probe answers (after the network came back, or in tests)."""
    with _probe_lock:
        _probe_results.clear()


def _short(err: Exception) -> str:
    first = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"{type(err).__name__}: {first}" if first else type(err).__name__


def find_in_hf_cache(hub_id: str) -> tuple[Path, str]:
    """The HF cache's snapshot of ``hub_id`` (default branch) and its commit hash.

    Raises:
        LookupError: No complete snapshot with a weights file is cached; the message says why.
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        folder = snapshot_download(
            hub_id, local_files_only=True, ignore_patterns=IGNORE_PATTERNS + PICKLED_WEIGHTS
        )
    except LocalEntryNotFoundError:
        raise LookupError(f"no snapshot of {hub_id}") from None
    except Exception as err:  # invalid id, incomplete snapshot, unreadable cache: all "not here"
        raise LookupError(_short(err)) from None
    path = Path(folder)
    if not weight_files(path):
        raise LookupError(f"snapshot {path.name} of {hub_id} has no weights file")
    return path, path.name


def download(hub_id: str) -> tuple[Path, str]:
    """Download ``hub_id`` into the HF cache; return the snapshot folder and its commit hash.

    Only what PyTorch loading needs is fetched: no ONNX/OpenVINO/TF/Flax/GGUF copies, and no
    pickled ``.bin`` weights when the repo has safetensors.

    Raises:
        LookupError: The download failed or brought no weights file; the message says why.
    """
    from huggingface_hub import HfApi, snapshot_download

    try:
        files = HfApi().list_repo_files(hub_id)
        ignore = list(IGNORE_PATTERNS)
        if any(name.endswith(".safetensors") for name in files):
            ignore += PICKLED_WEIGHTS
        folder = Path(snapshot_download(hub_id, ignore_patterns=ignore))
    except Exception as err:  # not found, gated, network dropped mid-way: report and go on
        raise LookupError(_short(err)) from None
    if not weight_files(folder):
        raise LookupError(f"{hub_id} has no weights in a format from_pretrained loads")
    return folder, folder.name
