"""Collections: corpora, queries, qrels and runs from BEIR folders, files and ir_datasets."""

from retrieval_kd.data.corpus import Corpus, join_title
from retrieval_kd.data.files import load_corpus_file, read_queries
from retrieval_kd.data.qrels import read_qrels, write_qrels
from retrieval_kd.data.runs import (
    pool_doc_ids,
    ranked_doc_ids,
    read_run,
    run_fingerprint,
    truncate_run,
    write_run,
)
from retrieval_kd.data.sources import (
    Dataset,
    load_beir_folder,
    load_dataset,
    load_qrels_spec,
    parse_data_split,
)
from retrieval_kd.data.types import Qrels, Queries, Run

__all__ = [
    "Corpus",
    "Dataset",
    "Qrels",
    "Queries",
    "Run",
    "join_title",
    "load_beir_folder",
    "load_corpus_file",
    "load_dataset",
    "load_qrels_spec",
    "parse_data_split",
    "pool_doc_ids",
    "ranked_doc_ids",
    "read_qrels",
    "read_queries",
    "read_run",
    "run_fingerprint",
    "truncate_run",
    "write_qrels",
    "write_run",
]
