"""ir_datasets ids: a local registered dataset loads lazily; a failed download says so."""

from __future__ import annotations

from pathlib import Path

import pytest

from retrieval_kd.data import load_dataset
from retrieval_kd.errors import InputError

ir_datasets = pytest.importorskip("ir_datasets")


@pytest.fixture
def local_irds(tmp_path: Path) -> str:
    """Register a tiny dataset made of local files under a unique ir_datasets id."""
    from ir_datasets.formats import TrecQrels, TsvDocs, TsvQueries
    from ir_datasets.util import LocalDownload

    (tmp_path / "docs.tsv").write_text("d1\tsolar panels make electricity\nd2\tboil pasta\n")
    (tmp_path / "queries.tsv").write_text("q1\tsolar electricity\n")
    (tmp_path / "qrels").write_text("q1 0 d1 1\n")
    name = f"rkd-test/{tmp_path.name}"
    dataset = ir_datasets.Dataset(
        TsvDocs(LocalDownload(tmp_path / "docs.tsv")),
        TsvQueries(LocalDownload(tmp_path / "queries.tsv")),
        TrecQrels(LocalDownload(tmp_path / "qrels"), {1: "relevant"}),
    )
    ir_datasets.registry.register(name, dataset)
    return name


def test_local_irds_dataset(local_irds: str) -> None:
    ds = load_dataset(f"irds:{local_irds}")
    assert ds.qrels == {"q1": {"d1": 1}}
    assert ds.queries == {"q1": "solar electricity"}
    assert ds.corpus.texts(["d2", "d1"]) == ["boil pasta", "solar panels make electricity"]


def test_unknown_irds_id() -> None:
    with pytest.raises(InputError, match="unknown ir_datasets id"):
        _ = load_dataset("irds:no-such/dataset").qrels


def test_offline_download_error_suggests_local_folder(monkeypatch, tmp_path: Path) -> None:
    """Only the download is mocked: it fails as it does on a machine without network."""
    from ir_datasets.util import download

    def no_network(self):
        raise ConnectionError(f"could not reach {self.url}")

    monkeypatch.setenv("IR_DATASETS_HOME", str(tmp_path / "irds-home"))
    monkeypatch.setattr(ir_datasets.util, "home_path", lambda: tmp_path / "irds-home")
    monkeypatch.setattr(download.RequestsDownload, "__iter__", no_network)
    ds = load_dataset("irds:beir/scifact/test")  # lazy: nothing fetched yet
    with pytest.raises(InputError) as err:
        _ = ds.qrels
    message = str(err.value)
    assert "could not get the qrels of 'beir/scifact/test'" in message
    assert "--data scifact" in message
