"""The ``--corpus`` / ``--queries`` / ``--qrels`` options, defined once for every command that
takes a collection (``retrieval_kd.data.own_files`` turns them into one)."""

from __future__ import annotations

import typer

CORPUS = typer.Option(None, help="Your own corpus file (.jsonl / .tsv) instead of --data.")
QUERIES = typer.Option(None, "--queries", help="With --corpus: your queries file (.jsonl / .tsv).")
QRELS = typer.Option(
    None, help="With --corpus: your qrels file (TREC or BEIR TSV), named by --split."
)
