"""One entry point for every collection: ``load_dataset(spec, split)``.

A data spec is one of

- a short name (``scifact``, ``nfcorpus``, ``msmarco-trecdl``, ``cranfield``, or any folder)
  resolved under ``$RKD_DATA_DIR``;
- a BEIR folder path (``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``);
- an ``ir_datasets`` id with the ``irds:`` prefix (``irds:beir/scifact/test``), whose split is
  part of the id.

Everything is loaded lazily: asking for qrels does not read the corpus.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from retrieval_kd.data.corpus import Corpus
from retrieval_kd.data.files import load_corpus_file, read_queries
from retrieval_kd.data.irds import PREFIX as IRDS_PREFIX
from retrieval_kd.data.irds import irds_corpus, irds_qrels, irds_queries
from retrieval_kd.data.qrels import read_qrels
from retrieval_kd.data.types import Qrels, Queries
from retrieval_kd.errors import InputError

DATA_DIR_ENV = "RKD_DATA_DIR"
SHORT_NAMES = ("scifact", "nfcorpus", "msmarco-trecdl", "cranfield")


@dataclass
class Dataset:
    """A collection and, optionally, one split of its judged queries.

    Attributes:
        name: what the user called it (``scifact``, a path, ``irds:...``).
        split: the split whose qrels are used (``None``: no qrels, every query).
        corpus / queries / qrels: loaded on first access. With a split, ``queries`` holds only
            the queries judged in that split.
    """

    name: str
    split: str | None
    load_corpus: Callable[[], Corpus] = field(repr=False)
    load_all_queries: Callable[[], Queries] = field(repr=False)
    load_qrels: Callable[[], Qrels] | None = field(repr=False, default=None)

    @cached_property
    def corpus(self) -> Corpus:
        return self.load_corpus()

    @cached_property
    def qrels(self) -> Qrels:
        if self.load_qrels is None:
            raise InputError(f"dataset {self.name!r} was loaded without a split: no qrels")
        return self.load_qrels()

    @cached_property
    def queries(self) -> Queries:
        every = self.load_all_queries()
        if self.load_qrels is None:
            return every
        missing = [q for q in self.qrels if q not in every]
        if missing:
            raise InputError(
                f"dataset {self.name!r}: {len(missing)} judged query id(s) have no "
                f"query text, e.g. {missing[:5]}"
            )
        return {query_id: every[query_id] for query_id in self.qrels}

    @property
    def label(self) -> str:
        """``name/split`` for tables and manifests."""
        return self.name if not self.split else f"{self.name}/{self.split}"


def data_dir() -> Path:
    """The folder short names resolve under (``$RKD_DATA_DIR``)."""
    value = os.environ.get(DATA_DIR_ENV)
    if not value:
        raise InputError(
            f"${DATA_DIR_ENV} is not set: set it to the folder that holds the "
            f"collections ({', '.join(SHORT_NAMES)}), or pass a folder path"
        )
    return Path(value)


def resolve_folder(spec: str) -> Path:
    """A BEIR folder from a path or a short name under ``$RKD_DATA_DIR``."""
    path = Path(spec).expanduser()
    if path.is_dir():
        return path
    if "/" in spec or os.sep in spec:
        raise InputError(f"data folder not found: {spec}")
    folder = data_dir() / spec
    if not folder.is_dir():
        known = (
            sorted(p.name for p in data_dir().iterdir() if p.is_dir())
            if data_dir().is_dir()
            else []
        )
        raise InputError(
            f"no collection {spec!r} under ${DATA_DIR_ENV}={data_dir()} "
            f"(found: {', '.join(known) or 'nothing'})"
        )
    return folder


def beir_splits(folder: Path) -> list[str]:
    """Split names that have a ``qrels/<split>.tsv`` file."""
    return sorted(p.stem for p in (folder / "qrels").glob("*.tsv"))


def load_beir_folder(folder: str | Path, split: str | None, name: str | None = None) -> Dataset:
    """A BEIR-layout folder; ``split`` picks ``qrels/<split>.tsv``."""
    folder = Path(folder)
    for required in ("corpus.jsonl", "queries.jsonl"):
        if not (folder / required).is_file():
            raise InputError(f"not a BEIR folder: {required} is missing", folder)
    qrels_loader = None
    if split is not None:
        qrels_file = folder / "qrels" / f"{split}.tsv"
        if not qrels_file.is_file():
            raise InputError(
                f"split {split!r} not found (available: "
                f"{', '.join(beir_splits(folder)) or 'none'})",
                qrels_file,
            )

        def qrels_loader() -> Qrels:
            return read_qrels(qrels_file)

    return Dataset(
        name=name or str(folder),
        split=split,
        load_corpus=lambda: load_corpus_file(folder / "corpus.jsonl"),
        load_all_queries=lambda: read_queries(folder / "queries.jsonl"),
        load_qrels=qrels_loader,
    )


def load_dataset(spec: str, split: str | None = None) -> Dataset:
    """Resolve a data spec (see the module docstring) into a lazily loaded ``Dataset``.

    Raises:
        InputError: unknown name, missing folder or split, or a split given with an
            ``irds:`` id that already names one.
    """
    if spec.startswith(IRDS_PREFIX):
        dataset_id = spec[len(IRDS_PREFIX) :]
        if split is not None:
            dataset_id = f"{dataset_id}/{split}"
        from retrieval_kd.data.irds import load_irds

        has_qrels = load_irds(dataset_id).has_qrels()  # metadata only: no download
        return Dataset(
            name=spec,
            split=split,
            load_corpus=lambda: irds_corpus(dataset_id),
            load_all_queries=lambda: irds_queries(dataset_id),
            load_qrels=(lambda: irds_qrels(dataset_id)) if has_qrels else None,
        )
    folder = resolve_folder(spec)
    return load_beir_folder(folder, split, name=spec)


def parse_data_split(spec: str) -> tuple[str, str | None]:
    """Split ``"scifact/test"`` into ``("scifact", "test")``; other specs pass through.

    ``irds:`` ids keep their split inside the id; an existing folder has no split.
    """
    if spec.startswith(IRDS_PREFIX) or Path(spec).expanduser().is_dir():
        return spec, None
    head, sep, tail = spec.rpartition("/")
    if sep and head:
        return head, tail
    return spec, None


def load_qrels_spec(spec: str) -> Qrels:
    """Qrels from a file path, or from ``data/split`` (``scifact/test``, ``irds:...``)."""
    if Path(spec).is_file():
        return read_qrels(spec)
    name, split = parse_data_split(spec)
    if split is None and not name.startswith(IRDS_PREFIX):
        raise InputError(f"--qrels {spec!r}: give a qrels file or data/split (e.g. scifact/test)")
    return load_dataset(name, split).qrels
