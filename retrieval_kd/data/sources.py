"""One entry point for every collection: ``load_dataset(spec, split)``.

A data spec is one of

- a short name (``scifact``, ``nfcorpus``, ``msmarco-trecdl``, ``cranfield``, or any folder)
  resolved under ``$RKD_DATA_DIR``;
- a BEIR folder path (``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``);
- an ``ir_datasets`` id with the ``irds:`` prefix (``irds:beir/scifact/test``), whose split is
  part of the id.

A BEIR folder may hold its own queries and qrels but borrow its corpus: instead of
``corpus.jsonl`` it has ``corpus.ref.json`` (``{"data": <data spec>}`` or ``{"corpus_file":
<path>}``), which names where the documents live. Generated query sets
(:mod:`retrieval_kd.generation`) are folders of this kind, so every stage reads them as it reads
any collection.

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
CORPUS_REF = "corpus.ref.json"  # a BEIR folder whose corpus lives elsewhere
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


def write_corpus_ref(folder: str | Path, data: str | None = None, corpus_file: str | None = None):
    """Make ``folder`` borrow its corpus from a data spec or a corpus file (``corpus.ref.json``).

    A relative folder path in ``data`` is stored absolute, so the reference survives a change of
    working directory; short names and ``irds:`` ids are stored as given.
    """
    from retrieval_kd.manifest import write_json_atomic

    if (data is None) == (corpus_file is None):
        raise InputError("a corpus reference names either a data spec or a corpus file")
    if data is not None and Path(data).expanduser().is_dir():
        data = str(Path(data).expanduser().resolve())
    ref = {"data": data} if data is not None else {"corpus_file": str(Path(corpus_file).resolve())}
    return write_json_atomic(Path(folder) / CORPUS_REF, ref)


def corpus_source(folder: str | Path) -> str:
    """The corpus file a BEIR folder reads: its own ``corpus.jsonl`` or the one it borrows
    (``corpus.ref.json``). ``irds:`` corpora have no file: their id is returned.

    Raises:
        InputError: neither file is there, or the reference is malformed.
    """
    import json

    folder = Path(folder)
    if (folder / "corpus.jsonl").is_file():
        return str(folder / "corpus.jsonl")
    ref_file = folder / CORPUS_REF
    if not ref_file.is_file():
        raise InputError("not a BEIR folder: corpus.jsonl is missing", folder)
    try:
        ref = json.loads(ref_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise InputError(f"corrupt corpus reference: {err.msg}", ref_file, err.lineno) from None
    if not isinstance(ref, dict) or len(ref) != 1 or not {"data", "corpus_file"} & set(ref):
        raise InputError('expected {"data": <spec>} or {"corpus_file": <path>}', ref_file)
    if "corpus_file" in ref:
        return str(ref["corpus_file"])
    spec = str(ref["data"])
    if spec.startswith(IRDS_PREFIX):
        return spec
    return corpus_source(resolve_folder(spec))


def _corpus_loader(source: str) -> Callable[[], Corpus]:
    if source.startswith(IRDS_PREFIX):
        dataset_id = source[len(IRDS_PREFIX) :]
        return lambda: irds_corpus(dataset_id)
    return lambda: load_corpus_file(source)


def load_beir_folder(folder: str | Path, split: str | None, name: str | None = None) -> Dataset:
    """A BEIR-layout folder; ``split`` picks ``qrels/<split>.tsv``. Its corpus is its own
    ``corpus.jsonl`` or the one its ``corpus.ref.json`` names."""
    folder = Path(folder)
    if not (folder / "queries.jsonl").is_file():
        raise InputError("not a BEIR folder: queries.jsonl is missing", folder)
    corpus_file = corpus_source(folder)
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
        load_corpus=_corpus_loader(corpus_file),
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
