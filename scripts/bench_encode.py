"""Benchmark: `rkd index`'s passage encoder vs sentence-transformers' own CPU configurations.

The same model (default paraphrase-MiniLM-L3-v2, the demo's student), the same 5,000 SciFact
passages, the same batch size, in one run: docs/s of each configuration, the ratio of each to
``rkd index``'s encoder, and the SciFact test nDCG@10 of exact search with each one's vectors (so
a faster path that changes results shows it). Every configuration runs in its own process, one
after the other, so none inherits another's threads or caches:

- ``rkd``: :class:`retrieval_kd.retrieval.StudentEncoder` (what ``rkd index`` encodes with, in
  its default ``precision="auto"``: bf16 on a CPU with AVX512-BF16 / AMX, else fp32), and
  ``rkd-fp32``: the same pinned to fp32;
- ``st-torch``: ``SentenceTransformer(folder).encode_document`` in fp32, and ``st-torch-bf16``:
  the same loaded with ``model_kwargs={"torch_dtype": torch.bfloat16}``;
- ``st-onnx``: ``SentenceTransformer(folder, backend="onnx")`` (ONNX Runtime, model exported
  by optimum), and ``st-onnx-O3`` / ``st-onnx-int8``: the same after sentence-transformers'
  ``export_optimized_onnx_model(..., "O3")`` / ``export_dynamic_quantized_onnx_model(...,
  "avx2")``. These need ``optimum-onnx[onnxruntime]``, which pins transformers < 4.58; where the
  project's environment cannot hold it, ``--onnx-python`` names the Python of another
  environment that has sentence-transformers and optimum (the children there only read texts and
  a model folder and write vectors);
- ``st-openvino``: ``SentenceTransformer(folder, backend="openvino")`` (needs
  ``optimum-intel[openvino]``, which pins transformers < 5.6; ``--openvino-python`` names an
  environment's Python that has it). OpenVINO picks bf16 inference by itself on CPUs that
  compute it natively. ``rkd-openvino``: ``StudentEncoder(..., backend="openvino")`` in that
  environment (retrieval_kd installed there too).

Usage:
    python scripts/bench_encode.py --passages 5000 --onnx-python /tmp/onnxenv/bin/python \
        --openvino-python /tmp/ovenv/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CONFIGS = (
    "rkd",
    "rkd-fp32",
    "st-torch",
    "st-torch-bf16",
    "st-onnx",
    "st-onnx-O3",
    "st-onnx-int8",
    "st-openvino",
    "rkd-openvino",
)
ONNX_CONFIGS = {"st-onnx", "st-onnx-O3", "st-onnx-int8"}
OPENVINO_CONFIGS = {"st-openvino", "rkd-openvino"}


def child(
    config: str, folder: str, work: str, batch_size: int, timed: int, max_length: int
) -> None:
    """Encode ``work``/texts.json (passages, then queries); write vectors and timings."""
    import torch

    texts = json.loads((Path(work) / "texts.json").read_text(encoding="utf-8"))
    passages, queries = texts["passages"], texts["queries"]
    start = time.perf_counter()
    if config.startswith("rkd"):
        from retrieval_kd.retrieval import StudentEncoder

        if config == "rkd-openvino":  # the export writes into the folder: a copy of its own
            local = Path(work) / f"model-{config}"
            if not local.exists():
                shutil.copytree(folder, local)
                _drop_torch_only_kwargs(local)
            folder = str(local)
        encoder = StudentEncoder(
            folder,
            batch_size=batch_size,
            device="cpu",
            passage_max_length=max_length or None,
            precision="fp32" if config == "rkd-fp32" else "auto",
            backend="openvino" if config == "rkd-openvino" else "torch",
        )

        def encode_passages(x):
            return encoder.encode_passages(x)

        def encode_queries(x):
            return encoder.encode_queries(x)

        info = {"settings": encoder.settings}
    else:
        from sentence_transformers import SentenceTransformer

        options: dict = {"device": "cpu"}
        if config == "st-torch-bf16":
            options["model_kwargs"] = {"torch_dtype": torch.bfloat16}
        if config in OPENVINO_CONFIGS:
            local = Path(work) / f"model-{config}"
            if not local.exists():
                shutil.copytree(folder, local)
                _drop_torch_only_kwargs(local)
            options["backend"] = "openvino"
            folder = str(local)
        if config in ONNX_CONFIGS:
            local = Path(work) / f"model-{config}"  # exports write into the folder
            if not local.exists():
                shutil.copytree(folder, local)
                _drop_torch_only_kwargs(local)
            options["backend"] = "onnx"
            if config != "st-onnx":
                _export(config, local)
                name = "model_O3.onnx" if config == "st-onnx-O3" else "model_quint8_avx2.onnx"
                if not (local / "onnx" / name).is_file():  # else the plain model.onnx loads
                    raise SystemExit(f"the export wrote no onnx/{name}")
                options["model_kwargs"] = {"file_name": name}
            folder = str(local)
        model = SentenceTransformer(folder, **options)
        if max_length:
            model.max_seq_length = max_length

        def encode_passages(x):
            return model.encode_document(x, batch_size=batch_size, convert_to_numpy=True)

        def encode_queries(x):
            return model.encode_query(x, batch_size=batch_size, convert_to_numpy=True)

        info = {"backend": getattr(model, "backend", "torch")}
        if config in OPENVINO_CONFIGS:  # the precision OpenVINO's CPU plugin runs by default
            import openvino

            hint = openvino.Core().get_property("CPU", "INFERENCE_PRECISION_HINT")
            info["inference_precision"] = f"openvino {hint}"
    load_s = time.perf_counter() - start
    encode_passages(passages[:batch_size])  # warm-up
    start = time.perf_counter()
    head = np.asarray(encode_passages(passages[:timed]), dtype=np.float32)
    seconds = time.perf_counter() - start
    rest = np.asarray(encode_passages(passages[timed:]), dtype=np.float32)
    vectors = np.concatenate([head, rest]) if len(rest) else head
    np.save(Path(work) / f"{config}-passages.npy", vectors)
    np.save(Path(work) / f"{config}-queries.npy", np.asarray(encode_queries(queries), np.float32))
    result = {
        "config": config,
        "docs": timed,
        "seconds": seconds,
        "docs_per_s": timed / seconds,
        "load_s": load_s,
        "threads": torch.get_num_threads(),
        **info,
    }
    (Path(work) / f"{config}.json").write_text(json.dumps(result, default=str), encoding="utf-8")


def _drop_torch_only_kwargs(folder: Path) -> None:
    """``add_pooling_layer`` (a BertModel argument) is refused by the ONNX Runtime models."""
    path = folder / "sentence_bert_config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    for key in ("model_args", "model_kwargs"):
        config.get(key, {}).pop("add_pooling_layer", None)
    path.write_text(json.dumps(config, indent=2), encoding="utf-8")


def _export(config: str, folder: Path) -> None:
    """sentence-transformers' own ONNX optimisation / int8 quantisation of ``folder``."""
    from sentence_transformers import (
        SentenceTransformer,
        export_dynamic_quantized_onnx_model,
        export_optimized_onnx_model,
    )

    model = SentenceTransformer(str(folder), backend="onnx", device="cpu")
    if config == "st-onnx-O3":
        export_optimized_onnx_model(model, "O3", str(folder))
    else:
        export_dynamic_quantized_onnx_model(model, "avx2", str(folder))


def ndcg_at_10(passages: np.ndarray, queries: np.ndarray, doc_ids, query_ids, qrels) -> float:
    """SciFact test nDCG@10 of exact cosine search (the similarity of the MiniLM models)."""
    from evaluation import evaluate

    def unit(x: np.ndarray) -> np.ndarray:
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    scores = unit(queries) @ unit(passages).T
    top = np.argsort(-scores, axis=1)[:, :100]
    run = {q: {doc_ids[j]: float(scores[i, j]) for j in top[i]} for i, q in enumerate(query_ids)}
    return float(evaluate(run, qrels, ["ndcg@10"], conventions="beir").means["ndcg@10"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="sentence-transformers/paraphrase-MiniLM-L3-v2")
    parser.add_argument("--passages", type=int, default=5000, help="passages timed")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=CONFIGS)
    parser.add_argument(
        "--onnx-python",
        default=sys.executable,
        help="Python with sentence-transformers + optimum-onnx for the st-onnx* configs",
    )
    parser.add_argument(
        "--openvino-python",
        default=sys.executable,
        help="Python with sentence-transformers + optimum-intel[openvino] for st-openvino",
    )
    parser.add_argument(
        "--max-length", type=int, default=0, help="passage token limit (0: the model's own)"
    )
    parser.add_argument("--child", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        config, folder, work, batch, timed, max_length = args.child
        child(config, folder, work, int(batch), int(timed), int(max_length))
        return

    from retrieval_kd.data import load_dataset
    from retrieval_kd.models import resolve_model

    folder = str(resolve_model(args.model).path)
    dataset = load_dataset("scifact", "test")
    doc_ids = list(dataset.corpus.ids)
    query_ids = [q for q in dataset.queries if q in dataset.qrels]
    work = Path(tempfile.mkdtemp(prefix="bench-encode-"))
    texts = {
        "passages": list(dataset.corpus.texts(doc_ids)),
        "queries": [dataset.queries[q] for q in query_ids],
    }
    (work / "texts.json").write_text(json.dumps(texts), encoding="utf-8")
    timed = min(args.passages, len(doc_ids))
    print(
        f"{args.model}: {timed} of {len(doc_ids)} SciFact passages timed, batch "
        f"{args.batch_size}; nDCG@10 on {len(query_ids)} test queries over the whole corpus"
    )
    results = {}
    for config in args.configs:
        python = sys.executable
        if config in ONNX_CONFIGS:
            python = args.onnx_python
        elif config in OPENVINO_CONFIGS:
            python = args.openvino_python
        command = [python, __file__, "--child", config, folder, str(work)]
        command += [str(args.batch_size), str(timed), str(args.max_length)]
        done = subprocess.run(
            command, capture_output=True, text=True, env={**os.environ, "RKD_QUIET": "1"}
        )
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["?"])[-1]
            print(f"{config:14s} did not run: {last}")
            continue
        result = json.loads((work / f"{config}.json").read_text(encoding="utf-8"))
        result["ndcg@10"] = ndcg_at_10(
            np.load(work / f"{config}-passages.npy"),
            np.load(work / f"{config}-queries.npy"),
            doc_ids,
            query_ids,
            dataset.qrels,
        )
        results[config] = result
    reference = results.get("rkd")
    fp32 = results.get("st-torch", reference)
    for config, result in results.items():
        versus = reference["docs_per_s"] / result["docs_per_s"] if reference else float("nan")
        delta = result["ndcg@10"] - fp32["ndcg@10"] if fp32 else float("nan")
        arithmetic = (result.get("settings") or {}).get("dtype") or result.get(
            "inference_precision", ""
        )
        print(
            f"{config:14s} {result['docs_per_s']:8.1f} docs/s   rkd index encoder / this "
            f"{versus:5.2f}x   nDCG@10 {result['ndcg@10']:.4f} ({delta:+.4f} vs st-torch fp32)"
            f"  {arithmetic}"
        )
    if reference and fp32:
        own = reference["ndcg@10"] - fp32["ndcg@10"]
        print(
            f"rkd index encoder: nDCG@10 {own:+.4f} vs fp32 "
            f"({'within' if abs(own) <= 0.002 else 'OUTSIDE'} the 0.002 bound)"
        )
        close = [
            r
            for c, r in results.items()
            if not c.startswith("rkd") and abs(r["ndcg@10"] - fp32["ndcg@10"]) <= 0.002
        ]
        if close:
            best = max(close, key=lambda r: r["docs_per_s"])
            print(
                f"rkd index encoder vs sentence-transformers' fastest configuration within 0.002 "
                f"nDCG@10 of fp32 ({best['config']}): "
                f"{reference['docs_per_s'] / best['docs_per_s']:.2f}x (target >= 1.0x)"
            )
    (work / "results.json").write_text(json.dumps(results, indent=2, default=str))
    print(f"results: {work / 'results.json'}")


if __name__ == "__main__":
    main()
