"""Model cards: a saved student's README.md says how it was made and how to load it.

sentence-transformers writes its own card when a bi-encoder is saved (architecture, output
dimension, similarity, usage); this module adds a "How this model was made" section from the
training manifest (base model, teacher, training data, candidates, loss mix, steps, precision)
and, once the pipeline's report exists, the report's metrics. The section sits between two
markers, so a later update replaces it and leaves the rest of the card alone. For a student
kind whose library writes no card, the whole README.md is written here, with Hugging Face
front matter (``library_name``, ``base_model``, ``tags``) so the hub displays it.

Example:
    >>> text = card_section({"config": {"student": {"model": "org/base"}}, "result": {}})
    >>> "org/base" in text
    True
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

BEGIN, END = "<!-- retrieval_kd:begin -->", "<!-- retrieval_kd:end -->"
TAGS = ["retrieval_kd", "knowledge-distillation", "information-retrieval"]


def hub_id_of(described: Any) -> str | None:
    """The hub id (``org/name``) a student's ``describe()`` names as its base model, if any."""
    if not isinstance(described, dict):
        return None
    for key in ("hub_id", "spec"):
        value = described.get(key)
        if isinstance(value, str) and value.count("/") == 1 and not Path(value).exists():
            return value
    return hub_id_of(described.get("base_model"))


def save_with_card(model: Any, folder: str | Path, base_model: str | None = None) -> None:
    """``model.save(folder)`` with sentence-transformers' own model card, never asking the hub.

    ``base_model``: the hub id the student started from (named in the card's front matter).
    A card that cannot be generated is logged and skipped: the weights matter more.
    """
    card = getattr(model, "model_card_data", None)
    if card is None:
        model.save(str(folder), create_model_card=False)
        return
    card.local_files_only = True  # no base-model or dataset lookups on the hub while saving
    if base_model and base_model.count("/") == 1 and not card.base_model:
        card.base_model = base_model
    card.add_tags(list(TAGS))
    try:
        model.save(str(folder), create_model_card=True)
    except Exception as err:  # noqa: BLE001 - the card is documentation, not the model
        logger.warning("no sentence-transformers model card for %s: %s", folder, err)
        model.save(str(folder), create_model_card=False)


def _teacher_name(teacher: Any) -> str:
    if isinstance(teacher, dict):
        for key in ("spec", "name", "model"):
            if teacher.get(key):
                return str(teacher[key])
        if teacher.get("kind") == "ensemble":
            members = ", ".join(_teacher_name(m) for m in teacher.get("members") or [])
            return f"ensemble ({teacher.get('calibration', '')}) of {members}"
        return str(teacher.get("kind", "unknown"))
    return str(teacher) if teacher else "none (trained on the labels only)"


def _store_manifest(manifest: dict[str, Any]) -> dict[str, Any]:
    folder = ((manifest.get("inputs") or {}).get("score_store") or {}).get("folder")
    path = Path(folder) / "manifest.json" if folder else None
    if path is None or not path.is_file():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))


def card_section(
    manifest: dict[str, Any],
    metrics: dict[str, dict[str, float]] | None = None,
    evaluated_on: str | None = None,
    teacher: str | None = None,
) -> str:
    """The "How this model was made" Markdown of a training manifest (and report metrics).

    Args:
        manifest: the ``manifest.json`` of a trained student folder.
        metrics: ``{row label: {metric: value}}`` from the pipeline's report, this model's row
            first; None when no report was made.
        evaluated_on: what the metrics were measured on (collection and split).
        teacher: the teacher spec, when the caller knows it better than the store manifest.
    """
    config = manifest.get("config") or {}
    student, data = config.get("student") or {}, config.get("data") or {}
    training, result = config.get("training") or {}, manifest.get("result") or {}
    inputs = manifest.get("inputs") or {}
    store = _store_manifest(manifest)
    candidates = store.get("candidate_source") or {}
    base = (manifest.get("student") or {}).get("base_model") or {}
    base_name = base.get("hub_id") or base.get("spec") or student.get("model", "unknown")
    teacher = teacher or _teacher_name((inputs.get("score_store") or {}).get("teacher"))
    loss = config.get("loss")
    collection = inputs.get("collection", data.get("collection"))
    queries = result.get("train_queries", "?")
    pairs = (store.get("counts") or {}).get("pairs", candidates.get("pairs", "?"))
    scored = (
        f"{candidates.get('name', 'unknown')}, depth {candidates.get('depth', '?')}, "
        f"{pairs} scored pairs"
        if candidates
        else "unknown"
    )
    rows = [
        ("base model", f"`{base_name}` ({student.get('kind', 'bi-encoder')})"),
        ("teacher", f"`{teacher}`"),
        ("training data", f"`{collection}`, split `{data.get('split')}`, {queries} queries"),
        ("candidates", scored),
        ("loss", f"`{json.dumps(loss, sort_keys=True)}`"),
        ("groups", f"`{json.dumps(config.get('groups'), sort_keys=True)}`"),
        ("steps", f"{result.get('global_step', '?')} (batch {training.get('batch_size')}, "
                  f"lr {training.get('learning_rate')}, seed {training.get('seed')})"),
        ("precision", f"{training.get('precision')}"),
        ("lengths", f"query {student.get('query_max_length')}, passage "
                    f"{student.get('passage_max_length')} tokens"),
    ]  # fmt: skip
    if training.get("attention_dropout") is not None:
        rows.append(("attention dropout", f"{training['attention_dropout']} while training "
                     "(the saved config keeps the base model's)"))  # fmt: skip
    if training.get("interpolate") is not None:
        rows.append(("WiSE-FT", f"weights interpolated {training['interpolate']} toward trained"))
    if result.get("false_negatives"):
        rows.append(("false negatives", f"`{json.dumps(result['false_negatives'])}`"))
    lines = [
        BEGIN,
        "## How this model was made (retrieval_kd)",
        "",
        "Trained with retrieval_kd (distilling rerankers into retrievers) from the inputs below.",
        "",
        "| | |",
        "|---|---|",
        *[f"| {name} | {value} |" for name, value in rows],
        "",
    ]
    if metrics:
        names = sorted({m for row in metrics.values() for m in row})
        lines += [
            f"### Results{f' on {evaluated_on}' if evaluated_on else ''} (from the run's report)",
            "",
            "| model | " + " | ".join(names) + " |",
            "|---|" + "---:|" * len(names),
            *[
                f"| {label} | " + " | ".join(f"{row.get(m, math.nan):.4f}" for m in names) + " |"
                for label, row in metrics.items()
            ],
            "",
        ]
    lines += _usage(student.get("kind", "bi-encoder")) + [END]
    return "\n".join(lines) + "\n"


def _usage(kind: str) -> list[str]:
    if kind == "cross-encoder":
        code = [
            "from sentence_transformers import CrossEncoder",
            "",
            'model = CrossEncoder("path/to/this/folder")',
            'scores = model.predict([("a query", "a passage"), ("a query", "another passage")])',
        ]
    elif kind == "colbert":
        code = [
            "from retrieval_kd.retrieval import index_corpus_late, search_index",
            "",
            'index_corpus_late("path/to/this/folder", corpus, "index-colbert")',
            'run = search_index("index-colbert", queries, k=100)',
        ]
    else:
        code = [
            "from sentence_transformers import SentenceTransformer",
            "",
            'model = SentenceTransformer("path/to/this/folder")',
            'queries = model.encode_query(["what causes tides?"])',
            'passages = model.encode_document(["Tides are caused by the moon."])',
            "print(model.similarity(queries, passages))",
        ]
    return ["### Load it", "", "```python", *code, "```", ""]


def write_model_card(
    folder: str | Path,
    manifest: dict[str, Any],
    metrics: dict[str, dict[str, float]] | None = None,
    evaluated_on: str | None = None,
    teacher: str | None = None,
) -> Path:
    """Write (or update) ``folder/README.md`` with the section of :func:`card_section`.

    An existing card (sentence-transformers') keeps everything outside the markers; a folder
    without one gets a whole card with Hugging Face front matter.
    """
    path = Path(folder) / "README.md"
    section = card_section(manifest, metrics, evaluated_on, teacher)
    if path.is_file():
        text = path.read_text(encoding="utf-8")
        if BEGIN in text and END in text:
            head, rest = text.split(BEGIN, 1)
            text = head + section.rstrip("\n") + rest.split(END, 1)[1]
        else:
            text = _insert_after_intro(text, section)
    else:
        text = _front_matter(manifest) + section
    path.write_text(text, encoding="utf-8")
    return path


def _insert_after_intro(text: str, section: str) -> str:
    """Put the section before the card's first ``## `` heading (after its intro paragraph)."""
    at = text.find("\n## ")
    if at < 0:
        return text.rstrip("\n") + "\n\n" + section
    return text[: at + 1] + section + "\n" + text[at + 1 :]


def _front_matter(manifest: dict[str, Any]) -> str:
    import yaml

    student = (manifest.get("config") or {}).get("student") or {}
    base = (manifest.get("student") or {}).get("base_model") or {}
    meta: dict[str, Any] = {
        "library_name": "sentence-transformers",  # every student kind is saved by it
        "tags": TAGS,
    }
    hub_id = base.get("hub_id") or student.get("model")
    if isinstance(hub_id, str) and hub_id.count("/") == 1 and not Path(hub_id).exists():
        meta["base_model"] = hub_id
    return "---\n" + yaml.safe_dump(meta, sort_keys=False) + "---\n\n# retrieval_kd student\n\n"
