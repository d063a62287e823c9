"""Plain-dict types for queries, relevance judgements and rankings.

They are the shapes ranx, ir_datasets and trec_eval users already know, so nothing needs
converting at the boundaries:

- ``Queries``: query id -> query text
- ``Qrels``: query id -> {doc id: graded relevance (int)}
- ``Run``: query id -> {doc id: score (float, higher = better)}
"""

from __future__ import annotations

Queries = dict[str, str]
Qrels = dict[str, dict[str, int]]
Run = dict[str, dict[str, float]]
