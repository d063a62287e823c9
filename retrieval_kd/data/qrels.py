"""Relevance judgements: TREC qrels (``qid iter docid rel``) and BEIR TSV (header + 3 columns)."""

from __future__ import annotations

from pathlib import Path

from retrieval_kd.data.textfiles import iter_tsv
from retrieval_kd.data.types import Qrels
from retrieval_kd.errors import InputError

BEIR_HEADER = "query-id"


def read_qrels(path: str | Path) -> Qrels:
    """Read relevance judgements into ``{query_id: {doc_id: grade}}``.

    Two layouts are accepted, told apart per line by the number of fields:

    - BEIR TSV: an optional header ``query-id<TAB>corpus-id<TAB>score``, then
      ``qid<TAB>docid<TAB>grade``;
    - TREC qrels: ``qid iter docid grade`` separated by any whitespace.

    Raises:
        InputError: a line with another number of fields, a non-integer grade, the same
            (query, document) judged twice with different grades, or no judgement at all.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("qrels file not found", path)
    qrels: Qrels = {}
    for line_number, fields in iter_tsv(path, skip_header=BEIR_HEADER):
        if len(fields) == 1:  # TREC qrels are whitespace-separated
            fields = fields[0].split()
        if len(fields) == 3:
            query_id, doc_id, grade_text = fields
        elif len(fields) == 4:
            query_id, _, doc_id, grade_text = fields
        else:
            raise InputError(
                f"qrels line has {len(fields)} fields, expected 3 (BEIR: query-id corpus-id "
                "score) or 4 (TREC: qid iter docid rel)",
                path,
                line_number,
            )
        try:
            value = float(grade_text)
        except ValueError:
            raise InputError(
                f"relevance grade {grade_text!r} is not a number", path, line_number
            ) from None
        if not value.is_integer():  # int() would truncate 1.5 to 1 without a word
            raise InputError(
                f"relevance grade {grade_text!r} is not a whole number (grades are integer "
                "levels: 0, 1, 2, ...)",
                path,
                line_number,
            )
        grade = int(value)
        judged = qrels.setdefault(query_id.strip(), {})
        doc_id = doc_id.strip()
        if doc_id in judged and judged[doc_id] != grade:
            raise InputError(
                f"query {query_id!r} judges document {doc_id!r} twice with different grades "
                f"({judged[doc_id]} and {grade})",
                path,
                line_number,
            )
        judged[doc_id] = grade
    if not qrels:
        raise InputError("qrels file holds no judgement", path)
    return qrels


def write_qrels(qrels: Qrels, path: str | Path) -> Path:
    """Write qrels in TREC layout (``qid 0 docid grade``), sorted by query then document."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        for query_id in sorted(qrels):
            for doc_id in sorted(qrels[query_id]):
                handle.write(f"{query_id} 0 {doc_id} {qrels[query_id][doc_id]}\n")
    return path
