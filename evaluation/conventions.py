"""Metric names, relevance conventions and trec_eval's ranking order, as used by ``evaluate``.

Metric names (case-insensitive) are ``<family>@<k>`` with ``k`` a positive integer:

- ``ndcg@k``: trec_eval's ``ndcg_cut.k`` (linear gain = grade, log2 discount); this is
  ranx's ``ndcg`` (Järvelin & Kekäläinen), not ``ndcg_burges`` (gain 2^grade - 1).
- ``mrr@k`` (alias ``rr@k``): ``recip_rank`` on the top k (MS MARCO's MRR@10,
  ``trec_eval -M k``).
- ``recall@k`` (alias ``r@k``): ``recall.k``.
- ``map@k``: ``map_cut.k`` (divides by all relevant documents, retrieved or not).
- ``precision@k`` (alias ``p@k``): ``P.k`` (divides by k even when fewer are retrieved).

Conventions decide which grade counts as relevant and how the run is cleaned first:

- ``default``: grade >= 1 is relevant; nDCG uses the grades as gains.
- ``trec-dl``: the TREC Deep Learning track's rules (Craswell et al., 2019, and the official
  ``trec_eval -l 2`` invocations): MRR, recall, MAP and precision count grade >= 2 as
  relevant; nDCG still uses every grade >= 1 as its gain, as ``trec_eval -m ndcg_cut`` does.
- ``beir``: like ``default``, and a document whose id equals the query id is removed from
  that query's ranking before evaluating (BEIR's ``ignore_identical_ids``, which matters for
  ArguAna and Quora where a query is also a corpus document).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from retrieval_kd.errors import InputError
from retrieval_kd.ranking import rank_key

#: Accepted spelling -> ranx metric name.
_FAMILIES: dict[str, str] = {
    "ndcg": "ndcg",  # ranx's "ndcg" is Järvelin & Kekäläinen's linear gain = trec_eval's
    "mrr": "mrr",
    "rr": "mrr",
    "recall": "recall",
    "r": "recall",
    "map": "map",
    "precision": "precision",
    "p": "precision",
}

VALID_METRICS = "ndcg@k, mrr@k, recall@k, map@k, precision@k (aliases: rr@k, r@k, p@k)"

_METRIC_RE = re.compile(r"^([a-z]+)@(\d+)$")


@dataclass(frozen=True)
class MetricSpec:
    """One parsed metric.

    Attributes:
        key: the name as the user spelled it, stripped and lowercased (``"P@10"`` -> ``"p@10"``);
            results are keyed by it.
        family: ranx's metric name (``ndcg``, ``mrr``, ``recall``, ``map``, ``precision``).
        k: the cutoff.
    """

    key: str
    family: str
    k: int

    def ranx_name(self, conventions: Conventions) -> str:
        """ranx's spelling, relevance level included, e.g. ``"mrr@10-l2"``.

        ranx reads the level from a ``-l<level>`` suffix placed after the cutoff
        (``ranx.meta.evaluate.extract_metric_and_params`` splits on ``"-l"`` first).
        """
        if self.family == "ndcg":
            level = conventions.gain_level
        else:
            level = conventions.relevance_level
        return f"{self.family}@{self.k}-l{level}"


@dataclass(frozen=True)
class Conventions:
    """How grades are read and the run is cleaned before scoring.

    Attributes:
        name: ``default``, ``trec-dl`` or ``beir``.
        relevance_level: lowest grade that binary metrics (MRR, recall, MAP, precision) count
            as relevant; a query with no document at this grade is excluded from evaluation.
        gain_level: lowest grade that earns nDCG gain (the gain is the grade itself).
        drop_self_hits: remove a document whose id equals the query id from the run.
    """

    name: str
    relevance_level: int
    gain_level: int
    drop_self_hits: bool


CONVENTIONS: dict[str, Conventions] = {
    "default": Conventions("default", relevance_level=1, gain_level=1, drop_self_hits=False),
    "trec-dl": Conventions("trec-dl", relevance_level=2, gain_level=1, drop_self_hits=False),
    "beir": Conventions("beir", relevance_level=1, gain_level=1, drop_self_hits=True),
}


def get_conventions(name: str) -> Conventions:
    """The conventions called ``name`` (case-insensitive; ``trec_dl`` is accepted too).

    Raises:
        InputError: an unknown name; the message lists the valid ones.
    """
    if not isinstance(name, str):
        raise InputError(f"conventions must be a name, got {name!r}; valid: {_valid_conventions()}")
    normalised = name.strip().lower().replace("_", "-")
    if normalised not in CONVENTIONS:
        raise InputError(f"unknown conventions {name!r}; valid: {_valid_conventions()}")
    return CONVENTIONS[normalised]


def _valid_conventions() -> str:
    return ", ".join(CONVENTIONS)


def parse_metric(name: str) -> MetricSpec:
    """Parse one metric name such as ``"nDCG@10"`` or ``"p@5"``.

    Raises:
        InputError: an unknown family, or a missing, non-integer or non-positive cutoff; the
            message names the bad metric and lists the valid ones.
    """
    if not isinstance(name, str):
        raise InputError(f"metric names must be strings, got {name!r}; valid: {VALID_METRICS}")
    key = name.strip().lower()
    match = _METRIC_RE.match(key)
    if match is None:
        family = key.split("@", 1)[0]
        if family in _FAMILIES:
            reason = "needs a cutoff @k with k a positive integer, e.g. ndcg@10"
        else:
            reason = "is not a known metric"
        raise InputError(f"metric {name!r} {reason}; valid metrics: {VALID_METRICS}")
    family, k_text = match.groups()
    if family not in _FAMILIES:
        raise InputError(f"metric {name!r} is not a known metric; valid metrics: {VALID_METRICS}")
    k = int(k_text)
    if k <= 0:
        raise InputError(
            f"metric {name!r} needs a positive cutoff k, got {k}; valid metrics: {VALID_METRICS}"
        )
    return MetricSpec(key=key, family=_FAMILIES[family], k=k)


def parse_metrics(names: str | Sequence[str]) -> list[MetricSpec]:
    """Parse metric names, keeping their order and dropping repeats of the same key.

    A single string is one metric name (not a sequence of characters).

    Raises:
        InputError: no metric at all, or any invalid name (see ``parse_metric``).
    """
    if isinstance(names, str):
        names = [names]
    specs: dict[str, MetricSpec] = {}
    for name in names:
        spec = parse_metric(name)
        specs.setdefault(spec.key, spec)
    if not specs:
        raise InputError(f"no metric requested; valid metrics: {VALID_METRICS}")
    return list(specs.values())


def trec_order(scores: Mapping[str, float], exclude: str | None = None) -> list[str]:
    """Doc ids in trec_eval's order: score descending, ties broken by doc id descending.

    trec_eval sorts each query's results this way (``form_res_rels.c``, ``comp_sim_docno``),
    ignoring the rank column; ordering strings by code point equals C's ``strcmp`` on UTF-8.

    Args:
        scores: doc id -> score for one query.
        exclude: a doc id to leave out (the query's own id under the ``beir`` conventions).

    Raises:
        InputError: a score that is not a number, or NaN.
    """
    items: list[tuple[float, str]] = []
    for doc_id, score in scores.items():
        if doc_id == exclude:
            continue
        try:
            value = float(score)
        except (TypeError, ValueError):
            raise InputError(f"document {doc_id!r} has a non-numeric score {score!r}") from None
        if math.isnan(value):
            raise InputError(f"document {doc_id!r} has a NaN score")
        items.append(rank_key(doc_id, value))
    items.sort(reverse=True)  # the project's one rule (retrieval_kd.ranking)
    return [doc_id for _, doc_id in items]


def relevant_at(judgements: Mapping[str, int], level: int) -> bool:
    """Whether any judged document reaches ``level``."""
    return any(grade >= level for grade in judgements.values())


def sorted_ids(ids: Iterable[str]) -> list[str]:
    """Query ids in a stable, documented order: plain string order."""
    return sorted(ids)
