"""Which documents get queries: a seeded sample under a budget.

GPL (Wang et al. 2022) fixes a budget of generated queries and spreads it over the corpus
(queries per document x documents); small collections get several queries per document, large
ones a sample of documents. :func:`plan_budget` turns ``per_doc`` and either a number of
documents or a total number of queries into the documents to sample; :func:`sample_documents`
draws them, the same for the same seed whatever the corpus order on disk.

Example:
    >>> plan_budget(corpus_size=5000, per_doc=2, docs=None, queries=3000)
    1500
    >>> plan_budget(corpus_size=5000, per_doc=1, docs=None, queries=None)
    5000
"""

from __future__ import annotations

import math

import numpy as np

from retrieval_kd.data.corpus import Corpus
from retrieval_kd.errors import InputError


def plan_budget(corpus_size: int, per_doc: int, docs: int | None, queries: int | None) -> int:
    """How many documents to sample: ``docs``, or ``ceil(queries / per_doc)``, or all, capped
    at the corpus size.

    Raises:
        InputError: an empty corpus, ``per_doc`` < 1, ``docs`` or ``queries`` < 1, or both given.
    """
    if corpus_size < 1:
        raise InputError("the corpus is empty: there is nothing to generate queries for")
    if per_doc < 1:
        raise InputError(f"queries per document must be >= 1, got {per_doc}")
    if docs is not None and queries is not None:
        raise InputError("give the number of documents or the query budget, not both")
    if docs is not None and docs < 1 or queries is not None and queries < 1:
        raise InputError("the number of documents and the query budget must be >= 1")
    if docs is None:
        docs = corpus_size if queries is None else math.ceil(queries / per_doc)
    return min(docs, corpus_size)


def sample_documents(corpus: Corpus, n: int, seed: int = 0) -> list[str]:
    """``n`` doc ids drawn without replacement (all of them when ``n`` >= the corpus), sorted.

    The draw is over the sorted ids, so it depends on the seed and the set of ids only.
    """
    ids = sorted(corpus.ids)
    if n >= len(ids):
        return ids
    picked = np.random.default_rng(seed).choice(len(ids), size=n, replace=False)
    return sorted(ids[int(i)] for i in picked)
