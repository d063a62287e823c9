"""Training groups: each query with a positive and K-1 teacher-scored candidates, plus texts.

For every training query the score store holds teacher-scored candidates (sorted by teacher score,
descending). Each epoch, a query's group is drawn afresh, deterministically from
``(seed, epoch, query id)``:

- **positive** (column 0): with ``positives="qrels"``, one of the stored candidates whose qrels
  grade is at least ``min_relevance`` (drawn at random when there are several); with
  ``positives="teacher"``, the teacher's top-1. A query whose judged positives were never scored
  by the teacher has no teacher score for them and is skipped (counted in ``skipped``).
- **the K-1 others**, from the candidates except that positive, by ``strategy``:
  ``"top"`` the teacher's top K-1 (hardest first); ``"random"`` a sample of the top ``depth``;
  ``"mixed"`` the ``mixed_top`` hardest plus a random sample of the rest of the top ``depth``.
  They keep teacher order after the positive.

Labels are the qrels grades (0 below ``min_relevance`` or unjudged), so another judged positive
drawn among the others is a positive for the losses, not a negative; with ``positives="teacher"``
labels are ``[1, 0, ..., 0]``.

Suspected false negatives (unjudged candidates the teacher scores close to the group's positive,
:mod:`retrieval_kd.training.false_negatives`) are dropped from the draw, masked out of the loss
or relabelled positive, as the sampler's rule says; every group carries a ``mask`` ([K] bool,
True = seen by the losses), and the dataset counts what the rule did in the first epoch.

Everything that would stop training is checked when the dataset is built, each with one clear
``InputError``: store query ids without query text, store doc ids missing from the corpus, and
queries with fewer stored candidates than K.

Shapes (a collated batch of B groups):
    queries: B strings; passages / doc_ids: B lists of K; teacher_scores: [B, K] float32;
    labels: [B, K] long; mask: [B, K] bool.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from retrieval_kd.data.corpus import Corpus
from retrieval_kd.data.types import Qrels, Queries
from retrieval_kd.errors import InputError, RKDError
from retrieval_kd.store import ScoreStore
from retrieval_kd.training.config import POSITIVES, SHORT_QUERIES, STRATEGIES
from retrieval_kd.training.false_negatives import FalseNegativeRule

logger = logging.getLogger(__name__)


def _examples(items: Sequence[Any], n: int = 5) -> str:
    shown = ", ".join(repr(x) for x in list(items)[:n])
    return shown + (", ..." if len(items) > n else "")


@dataclass(frozen=True)
class Candidates:
    """One query's stored candidates in teacher order and the indices of eligible positives.

    Shapes:
        scores: [N] float32 (descending); grades: [N] int64; positives: indices into doc_ids.
    """

    query_id: str
    doc_ids: list[str]
    scores: np.ndarray
    grades: np.ndarray
    positives: list[int]


@dataclass(frozen=True)
class Draw:
    """One drawn group: candidate indices (positive first), which of them the losses see, and
    which are positives (the judged ones, plus suspects relabelled by a ``positive`` rule).

    Shapes:
        indices: K ints; mask / positive: [K] bool.
    """

    indices: list[int]
    mask: np.ndarray
    positive: np.ndarray
    dropped: int = 0  # suspects kept out of the draw


@dataclass(frozen=True)
class GroupSampler:
    """Draws a group of ``size`` candidate indices, positive first (see the module docstring)."""

    size: int = 8
    strategy: str = "top"
    depth: int = 50
    mixed_top: int | None = None
    seed: int = 0
    false_negatives: FalseNegativeRule | None = None

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise RKDError(f"unknown group strategy {self.strategy!r}; expected {STRATEGIES}")
        if self.size < 2 or self.depth < self.size - 1:
            raise RKDError(f"need size >= 2 and depth >= size - 1, got {self.size}, {self.depth}")

    def rng(self, query_id: str, epoch: int) -> np.random.Generator:
        """The generator of one (query, epoch): independent of order, process and worker."""
        return np.random.default_rng([self.seed, epoch, zlib.crc32(query_id.encode("utf-8"))])

    def sample(self, cand: Candidates, epoch: int) -> list[int]:
        """Indices into ``cand.doc_ids``: the positive, then K-1 others in teacher order."""
        return self.draw(cand, epoch).indices

    def draw(self, cand: Candidates, epoch: int) -> Draw:
        """The group of ``cand`` in ``epoch``, with its mask and positives (module docstring)."""
        rng = self.rng(cand.query_id, epoch)
        positive = cand.positives[int(rng.integers(len(cand.positives)))]
        judged = cand.grades > 0
        suspect = np.zeros(len(cand.doc_ids), dtype=bool)
        rule = self.false_negatives
        if rule is not None:
            suspect = rule.suspects(cand.scores, positive, judged)
        others = self.size - 1
        candidates = [i for i in range(len(cand.doc_ids)) if i != positive]
        if len(candidates) < others:
            raise InputError(
                f"query {cand.query_id!r} has {len(candidates) + 1} stored candidates, fewer than "
                f"the group size {self.size}"
            )
        dropped = 0
        if rule is not None and rule.action == "drop":
            kept = [i for i in candidates if not suspect[i]]
            # too few left: fill up with the least suspect ones (masked below)
            filler = [i for i in candidates if suspect[i]][::-1][: max(0, others - len(kept))]
            dropped = int(suspect[candidates[: self.depth]].sum()) - len(filler)
            candidates = sorted(kept + filler)
        pool = candidates[: self.depth]
        if self.strategy == "top":
            chosen = pool[:others]
        else:
            hardest = 0 if self.strategy == "random" else self.mixed_top
            if hardest is None:
                hardest = others // 2
            rest = pool[hardest:]
            drawn = rng.choice(len(rest), size=others - hardest, replace=False)
            chosen = pool[:hardest] + [rest[int(i)] for i in drawn]
        indices = [positive, *sorted(chosen)]
        picked = suspect[indices]
        mask = np.ones(len(indices), dtype=bool)
        is_positive = judged[indices].copy()
        if rule is not None and rule.action == "positive":
            is_positive |= picked
        elif rule is not None:
            mask &= ~picked
        return Draw(indices, mask, is_positive, dropped)


class GroupDataset(torch.utils.data.Dataset):
    """The score store joined with query and passage texts, one group per training query.

    Args:
        store: the teacher score store.
        queries: query id -> text; must hold every training query.
        corpus: the collection; must hold every stored doc id of the training queries.
        sampler: how groups are drawn.
        qrels: judgements for ``positives="qrels"`` (and labels).
        positives: ``"qrels"`` or ``"teacher"``.
        min_relevance: lowest grade that makes a positive.
        query_ids: the training queries (default: every query of the store).
        short_queries: a query with fewer than K stored candidates is an ``"error"`` (default)
            or is ``"skip"``ped (counted in ``skipped["too_few_candidates"]`` and logged); BM25
            finds fewer than K documents for some one-word queries (NFCorpus: "dizziness").
        trust_labels: None (default: teacher scores as stored), or a margin: in each drawn group
            the judged positives' teacher scores are lifted to at least the best other
            passage's score plus this margin (:func:`lift_positives`).

    Raises:
        InputError: store query ids without text, store doc ids not in the corpus, queries with
            fewer than K stored candidates (unless skipped), or no query left with a positive.
    """

    def __init__(
        self,
        store: ScoreStore,
        queries: Queries,
        corpus: Corpus,
        sampler: GroupSampler,
        qrels: Qrels | None = None,
        positives: str = "qrels",
        min_relevance: int = 1,
        query_ids: Sequence[str] | None = None,
        short_queries: str = "error",
        trust_labels: float | None = None,
    ) -> None:
        if trust_labels is not None and trust_labels < 0:
            raise RKDError(f"trust_labels must be None or >= 0, got {trust_labels}")
        self.trust_labels = trust_labels
        if short_queries not in SHORT_QUERIES:
            raise RKDError(f"short_queries must be one of {SHORT_QUERIES}, got {short_queries!r}")
        if positives not in POSITIVES:
            raise RKDError(f"positives must be one of {POSITIVES}, got {positives!r}")
        if positives == "qrels" and qrels is None:
            raise RKDError("positives='qrels' needs qrels")
        ids = list(store.query_ids() if query_ids is None else query_ids)
        not_stored = [q for q in ids if q not in store]
        if not_stored:
            raise InputError(
                f"{len(not_stored)} training query id(s) are not in the score store: "
                + _examples(not_stored),
                store.folder,
            )
        no_text = [q for q in ids if q not in queries]
        if no_text:
            raise InputError(
                f"{len(no_text)} query id(s) of the score store have no query text in the "
                f"collection: {_examples(no_text)}",
                store.folder,
            )
        self.sampler = sampler
        self.corpus = corpus
        self.queries = {q: queries[q] for q in ids}
        self.epoch = 0
        self.skipped = {"no_scored_positive": 0, "too_few_candidates": 0}
        self.items: list[Candidates] = []
        short: list[tuple[int, str]] = []
        all_docs: set[str] = set()
        for qid in ids:
            row = store.get(qid)
            judged = (qrels or {}).get(qid, {})
            grades = np.array([judged.get(d, 0) for d in row.doc_ids], dtype=np.int64)
            grades[grades < min_relevance] = 0
            all_docs.update(row.doc_ids)
            if len(row.doc_ids) < sampler.size:
                short.append((len(row.doc_ids), qid))
                if short_queries == "skip":
                    self.skipped["too_few_candidates"] += 1
                    continue
            if positives == "teacher":
                grades = np.zeros(len(row.doc_ids), dtype=np.int64)
                if len(grades):
                    grades[0] = 1
                eligible = [0] if len(grades) else []
            else:
                eligible = [int(i) for i in np.flatnonzero(grades > 0)]
            if not eligible:
                self.skipped["no_scored_positive"] += 1
                continue
            self.items.append(Candidates(qid, list(row.doc_ids), row.scores, grades, eligible))
        if sampler.false_negatives is not None and self.items:
            sampler.false_negatives.check_scores(
                np.concatenate([c.scores[c.positives] for c in self.items]), store.folder
            )
        docs = sorted(all_docs)
        found = corpus.rows_of(docs, missing="skip").size if docs else 0
        if found != len(docs):
            missing = [d for d in docs if d not in corpus]
            raise InputError(
                f"{len(missing)} doc id(s) of the score store are not in the corpus "
                f"{corpus.name!r}: {_examples(missing)}",
                store.folder,
            )
        if short and short_queries == "skip":
            fewest, qid = min(short)
            logger.warning(
                "skipped %d training query(ies) with fewer than K=%d stored candidates "
                "(fewest: %d, query %r)",
                len(short),
                sampler.size,
                fewest,
                qid,
            )
        elif short:
            fewest, qid = min(short)
            raise InputError(
                f"groups.size K={sampler.size} is larger than the stored candidates of "
                f"{len(short)} query(ies) (fewest: {fewest}, query {qid!r}); lower groups.size, "
                "score more candidates per query, or skip them (groups.short_queries: skip)",
                store.folder,
            )
        if not self.items:
            raise InputError(
                f"no training query has a positive among its stored candidates "
                f"({len(ids)} queries, positives={positives!r}); score the qrels positives "
                "(add_qrels_positives) or use positives: teacher",
                store.folder,
            )

    def set_epoch(self, epoch: int) -> None:
        """Groups are re-drawn for each epoch (called by the trainer and by accelerate)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        cand = self.items[index]
        drawn = self.sampler.draw(cand, self.epoch)
        picks = drawn.indices
        doc_ids = [cand.doc_ids[i] for i in picks]
        scores = cand.scores[picks].astype(np.float32)
        labels = np.where(drawn.positive, np.maximum(cand.grades[picks], 1), 0)
        if self.trust_labels is not None:
            scores = lift_positives(scores, labels, self.trust_labels)
        return {
            "query_id": cand.query_id,
            "query": self.queries[cand.query_id],
            "doc_ids": doc_ids,
            "passages": self.corpus.texts(doc_ids),
            "teacher_scores": scores,
            "labels": labels,
            "mask": drawn.mask,
        }

    def false_negative_counts(self, epoch: int = 0) -> dict[str, Any] | None:
        """What the sampler's false-negative rule does in ``epoch`` (None without a rule):
        suspects dropped from the draws, masked, relabelled positive, and queries touched."""
        rule = self.sampler.false_negatives
        if rule is None:
            return None
        dropped = masked = relabelled = touched = 0
        for cand in self.items:
            drawn = self.sampler.draw(cand, epoch)
            judged = cand.grades[drawn.indices] > 0
            hidden = int((~drawn.mask).sum())
            extra = int((drawn.positive & ~judged).sum())
            dropped += drawn.dropped
            masked += hidden
            relabelled += extra
            touched += bool(drawn.dropped or hidden or extra)
        return {
            **rule.to_dict(),
            "epoch": epoch,
            "queries": len(self.items),
            "queries_touched": touched,
            "dropped": dropped,
            "masked": masked,
            "relabelled_positive": relabelled,
        }


def lift_positives(scores: np.ndarray, labels: np.ndarray, margin: float) -> np.ndarray:
    """Teacher scores that agree with the labels: each positive at least ``margin`` above the
    best non-positive, other scores unchanged.

    A teacher that ranks an unjudged passage above a judged positive (the BM25 + MiniLM-L6
    teacher does so for 31% of SciFact's training queries) makes the KL and Margin-MSE terms
    pull against the labels; lifting the positive keeps what the teacher says about the
    negatives (their order and gaps) and trusts the judgement for the positive.

    Shapes:
        scores: [K] float; labels: [K] int (> 0 = positive) -> [K] float (a copy).
    """
    out = np.array(scores, dtype=np.float32, copy=True)
    positive = labels > 0
    if positive.any() and (~positive).any():
        floor = out[~positive].max() + np.float32(margin)
        out[positive] = np.maximum(out[positive], floor)
    return out


def collate_groups(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack dataset items into a batch (texts stay lists; scores and labels become tensors).

    Shapes:
        returns teacher_scores [B, K] float32, labels [B, K] long and mask [B, K] bool.
    """
    out = {
        "query_ids": [item["query_id"] for item in items],
        "queries": [item["query"] for item in items],
        "doc_ids": [item["doc_ids"] for item in items],
        "passages": [item["passages"] for item in items],
        "teacher_scores": torch.from_numpy(np.stack([item["teacher_scores"] for item in items])),
        "labels": torch.from_numpy(np.stack([item["labels"] for item in items])).long(),
    }
    if all("mask" in item for item in items):
        out["mask"] = torch.from_numpy(np.stack([item["mask"] for item in items]))
    return out
