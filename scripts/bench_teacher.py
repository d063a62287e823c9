"""Benchmark: CrossEncoderTeacher vs plain sentence-transformers CrossEncoder.predict.

Same model, same (query, passage) pairs, same batch size, measured in one run:

1. pairs/s of ``sentence_transformers.CrossEncoder.predict`` (fp32) and of ``CrossEncoderTeacher``
   in fp32 and in bf16 (on CPUs with native bf16, e.g. AVX512-BF16 / AMX), the ratio (target
   >= 1.3x), and how far each one's scores are from fp32 predict's (max difference, mean
   per-query Kendall tau);
2. pairs/s of a fully cached re-run of the scoring loop (every pair already in the store);
3. peak memory (RSS) of the scoring loop at N and 10N pairs, each in a fresh process
   (target: flat, i.e. the store does not grow memory with the number of pairs);
4. with ``--llm``: the pointwise LLM teacher (SmolLM2-135M-Instruct, query likelihood) on the
   pairs a store call over SciFact's training candidates holds for a random sample of passages
   (every query that lists a sampled passage in BM25's top ``--llm-depth``, so each passage
   comes with as many queries as in the full call), scored with the prefix of each prompt run
   whole per pair in fp32 (before: the path the issue measured), whole per pair in the
   default arithmetic (bf16 where the CPU computes it natively), and shared per passage in that
   arithmetic (after: the default teacher): pairs/s, the ratio (target >= 5x) and its two
   factors, prompt tokens/s, the score differences and per-query Kendall tau against the slow
   path, and the achieved fraction of this machine's matrix-product FLOP/s in each dtype
   measured in the same run; ``--llm-profile`` adds torch.profiler's operator table of one batch
   of the slow and the fast path;
5. with ``--generator N``: the LLM query generator (``LLMQueryGenerator``, the same model) writing
   one query for each of N SciFact passages in fp32 and in the default arithmetic: documents/s,
   new tokens/s, and with ``--llm-profile`` the operator table of one batch.

The model is a MiniLM-L6-sized cross-encoder built from the all-MiniLM-L6-v2 weights with a
fresh classification head: speed does not depend on the head's training.

Usage:
    python scripts/bench_teacher.py --pairs 5000 --batch-size 32 --max-length 256
    python scripts/bench_teacher.py --skip-cross-encoder --llm --llm-passages 40 --llm-profile
    python scripts/bench_teacher.py --skip-cross-encoder --generator 32 --llm-profile
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def build_cross_encoder(folder: Path) -> Path:
    """MiniLM-L6 encoder weights + a fresh 1-logit head, saved as a plain HF folder."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from retrieval_kd.models import resolve_model

    source = str(resolve_model("sentence-transformers/all-MiniLM-L6-v2").path)
    model = AutoModelForSequenceClassification.from_pretrained(source, num_labels=1)
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(source).save_pretrained(folder)
    return folder


def scifact_pairs(n_pairs: int, depth: int) -> tuple[dict, dict, object]:
    """(queries, candidates, corpus): BM25 top-``depth`` of SciFact queries, ~n_pairs pairs."""
    from retrieval_kd.candidates import bm25_candidates
    from retrieval_kd.data import load_dataset

    dataset = load_dataset("scifact")  # every query, judged or not
    n_queries = max(1, n_pairs // depth)
    queries = dict(list(dataset.queries.items())[:n_queries])
    run, _ = bm25_candidates(dataset.corpus, queries, k=depth)
    return queries, run, dataset.corpus


def flat_pairs(queries: dict, run: dict, corpus, limit: int) -> list[tuple[str, str]]:
    pairs = [(queries[q], doc) for q in run for doc in run[q]][:limit]
    texts = corpus.texts([doc for _, doc in pairs])
    return [(q, t) for (q, _), t in zip(pairs, texts, strict=True)]


def per_query_kendall(a: np.ndarray, b: np.ndarray, sizes: list[int], n: int) -> float:
    """Mean Kendall tau between two score vectors over each query's candidates (first n pairs)."""
    from scipy.stats import kendalltau

    taus, start = [], 0
    for size in sizes:
        stop = min(start + size, n)
        if stop - start > 1:
            taus.append(kendalltau(a[start:stop], b[start:stop]).statistic)
        start = stop
    return float(np.nanmean(taus))


def memory_child(model: str, n_pairs: int, depth: int, max_length: int, batch: int) -> None:
    """Score ~n_pairs into a fresh store and print peak RSS (run in its own process)."""
    from retrieval_kd.manifest import peak_memory_mb
    from retrieval_kd.store import score_candidates
    from teachers.cross_encoder import CrossEncoderTeacher

    queries, run, corpus = scifact_pairs(n_pairs, depth)
    teacher = CrossEncoderTeacher(model, max_length=max_length, batch_size=batch)
    with tempfile.TemporaryDirectory() as store_dir:
        start = time.perf_counter()
        store = score_candidates(teacher, queries, run, corpus.texts, store_dir, depth=depth)
        seconds = time.perf_counter() - start
        print(
            json.dumps(
                {
                    "pairs": store.num_pairs,
                    "peak_rss_mb": round(peak_memory_mb(), 1),
                    "pairs_per_s": round(store.num_pairs / seconds, 1),
                }
            )
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--depth", type=int, default=100)
    parser.add_argument(
        "--memory-pairs",
        type=int,
        nargs=2,
        default=[10_000, 100_000],
        help="pair counts of the memory check (each in its own process)",
    )
    parser.add_argument(
        "--memory-max-length",
        type=int,
        default=32,
        help="shorter pairs in the memory check, to keep 100k pairs quick",
    )
    parser.add_argument(
        "--dtypes",
        nargs="+",
        default=["float32", "bfloat16"],
        help="CrossEncoderTeacher dtypes to time (the first one also runs the store checks)",
    )
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-cross-encoder", action="store_true", help="only the LLM part")
    parser.add_argument("--llm", action="store_true", help="also time the pointwise LLM teacher")
    parser.add_argument("--llm-model", default="HuggingFaceTB/SmolLM2-135M-Instruct")
    parser.add_argument("--llm-mode", default="query_likelihood")
    parser.add_argument("--llm-passages", type=int, default=40, help="passages sampled")
    parser.add_argument("--llm-depth", type=int, default=30, help="BM25 depth of the call")
    parser.add_argument("--llm-batch-size", type=int, default=8)
    parser.add_argument("--llm-max-length", type=int, default=512)
    parser.add_argument(
        "--llm-dtype", default=None, help="the teacher's dtype (default: bf16 where native)"
    )
    parser.add_argument(
        "--llm-before-dtype", default="float32", help="the slow path's dtype (default float32)"
    )
    parser.add_argument(
        "--llm-row-tokens", type=int, default=None, help="packed row length (default 2 x max)"
    )
    parser.add_argument("--llm-profile", action="store_true", help="operator table of a batch")
    parser.add_argument(
        "--llm-pairwise",
        type=int,
        default=0,
        metavar="QUERIES",
        help="also time the pairwise LLM teacher (all pairs of BM25's top 6) on this many queries",
    )
    parser.add_argument(
        "--generator",
        type=int,
        default=0,
        metavar="PASSAGES",
        help="also time the LLM query generator on this many SciFact passages",
    )
    parser.add_argument("--generator-batch-size", type=int, default=16)
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        model, n_pairs, depth, max_length, batch = args.child
        memory_child(model, int(n_pairs), int(depth), int(max_length), int(batch))
        return

    import torch

    torch.manual_seed(0)
    print(
        f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
        f"device {'cuda' if torch.cuda.is_available() else 'cpu'}"
    )
    if not args.skip_cross_encoder:
        cross_encoder_section(args)
    if args.llm:
        llm_section(args)
    if args.llm_pairwise:
        pairwise_section(args)
    if args.generator:
        generator_section(args)


def cross_encoder_section(args: argparse.Namespace) -> None:
    import torch
    from sentence_transformers import CrossEncoder

    from retrieval_kd.store import score_candidates
    from teachers.cross_encoder import CrossEncoderTeacher

    work = Path(tempfile.mkdtemp(prefix="bench-teacher-"))
    model_dir = build_cross_encoder(work / "minilm-l6-ce")
    queries, run, corpus = scifact_pairs(args.pairs, args.depth)
    pairs = flat_pairs(queries, run, corpus, args.pairs)
    print(
        f"{len(pairs)} SciFact (query, BM25 candidate) pairs, batch {args.batch_size}, "
        f"max length {args.max_length}"
    )

    plain = CrossEncoder(
        str(model_dir), max_length=args.max_length, activation_fn=torch.nn.Identity()
    )
    teachers = {
        dtype: CrossEncoderTeacher(
            str(model_dir), max_length=args.max_length, batch_size=args.batch_size, dtype=dtype
        )
        for dtype in args.dtypes
    }
    warm = pairs[: args.batch_size]
    plain.predict(warm, batch_size=args.batch_size, show_progress_bar=False)
    for teacher in teachers.values():
        teacher.score_pairs(warm)

    def timed(fn) -> tuple[float, np.ndarray]:
        start = time.perf_counter()
        scores = np.asarray(fn(), dtype=np.float64)
        return time.perf_counter() - start, scores

    t_plain, s_plain = timed(
        lambda: plain.predict(pairs, batch_size=args.batch_size, show_progress_bar=False)
    )
    print(f"{'sentence-transformers CrossEncoder.predict':48s} {len(pairs) / t_plain:8.1f} pairs/s")
    for dtype, teacher in teachers.items():
        t_ours, s_ours = timed(lambda teacher=teacher: teacher.score_pairs(pairs))
        tau = per_query_kendall(s_plain, s_ours, [len(run[q]) for q in run], len(pairs))
        print(
            f"{'retrieval_kd CrossEncoderTeacher (' + dtype + ')':48s} "
            f"{len(pairs) / t_ours:8.1f} pairs/s  ratio {t_plain / t_ours:.2f}x (target >= 1.3x); "
            f"vs fp32 predict: max |diff| {np.abs(s_plain - s_ours).max():.2e}, "
            f"mean per-query Kendall tau {tau:.4f}"
        )
    teacher = next(iter(teachers.values()))

    store_dir = work / "store"
    first_run = {q: run[q] for q in list(run)}
    score_candidates(teacher, queries, first_run, corpus.texts, store_dir, depth=args.depth)
    start = time.perf_counter()
    store = score_candidates(teacher, queries, first_run, corpus.texts, store_dir, depth=args.depth)
    cached = time.perf_counter() - start
    print(
        f"fully cached re-run: {store.num_pairs} pairs in {cached:.3f} s = "
        f"{store.num_pairs / cached:,.0f} pairs/s"
    )

    if args.skip_memory:
        return
    for n in args.memory_pairs:
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                str(model_dir),
                str(n),
                str(args.depth),
                str(args.memory_max_length),
                str(args.batch_size),
            ],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "RKD_QUIET": "1"},
        )
        result = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"scoring loop at {result['pairs']:>7,} pairs (max length "
            f"{args.memory_max_length}): peak RSS {result['peak_rss_mb']:.0f} MiB, "
            f"{result['pairs_per_s']} pairs/s"
        )


def matmul_flops(dtype, device: str, size: tuple[int, int, int] = (4096, 576, 1536)) -> float:
    """Measured FLOP/s of one large matrix product in ``dtype`` (the machine's ceiling here)."""
    import torch

    m, k, n = size
    a = torch.randn(m, k, dtype=dtype, device=device)
    b = torch.randn(k, n, dtype=dtype, device=device)
    for _ in range(3):
        a @ b
    if device != "cpu":
        torch.cuda.synchronize()
    reps, start = 20, time.perf_counter()
    for _ in range(reps):
        a @ b
    if device != "cpu":
        torch.cuda.synchronize()
    return 2 * m * k * n * reps / (time.perf_counter() - start)


def linear_flops_per_token(model) -> float:
    """2 x the weights of the decoder's linear layers (the LM head is counted apart)."""
    import torch

    head = model.get_output_embeddings()
    return 2.0 * sum(
        m.weight.numel()
        for m in model.modules()
        if isinstance(m, torch.nn.Linear) and m is not head
    )


def llm_pairs(passages: int, depth: int, seed: int = 0) -> tuple[list[str], list[list[str]]]:
    """Queries and passages of every (train query, BM25 top-``depth``) pair of ``passages``
    passages drawn at random from the distinct candidates of all SciFact training queries."""
    import random

    from retrieval_kd.candidates import bm25_candidates
    from retrieval_kd.data import load_dataset

    dataset = load_dataset("scifact", "train")
    run, _ = bm25_candidates(dataset.corpus, dataset.queries, k=depth)
    distinct = sorted({d for q in run for d in run[q]})
    picked = set(random.Random(seed).sample(distinct, min(passages, len(distinct))))
    queries, groups = [], []
    for qid in sorted(run):
        docs = sorted(d for d in run[qid] if d in picked)
        if docs:
            queries.append(dataset.queries[qid])
            groups.append(list(dataset.corpus.texts(docs)))
    total = sum(len(run[q]) for q in run)
    print(
        f"LLM pairs: {sum(map(len, groups))} pairs of {len(picked)} passages drawn from the "
        f"{len(distinct)} distinct BM25 top-{depth} candidates of {len(run)} SciFact train "
        f"queries ({total} pairs: {total / len(distinct):.2f} pairs per passage in one call)"
    )
    return queries, groups


def llm_section(args: argparse.Namespace) -> None:
    """Three paths over the same pairs: the slow path the issue measured (whole prompts, in
    ``--llm-before-dtype``, fp32 by default), whole prompts in the default arithmetic (bf16 where
    native: what the dtype alone buys), and the default teacher (that arithmetic + shared
    passage prefixes)."""
    import functools

    from retrieval_kd.llm.prefix_sharing import real_tokens
    from teachers.llm_pointwise import LLMPointwiseTeacher

    queries, groups = llm_pairs(args.llm_passages, args.llm_depth)
    n_pairs = sum(map(len, groups))
    options = {
        "mode": args.llm_mode,
        "max_length": args.llm_max_length,
        "batch_size": args.llm_batch_size,
    }
    start = time.perf_counter()
    after = LLMPointwiseTeacher(
        args.llm_model, row_tokens=args.llm_row_tokens, dtype=args.llm_dtype, **options
    )
    load_s = time.perf_counter() - start
    whole = LLMPointwiseTeacher(args.llm_model, share_prefixes=False, dtype=after.dtype, **options)
    whole.model = after.model  # one copy of the weights
    before = LLMPointwiseTeacher(
        args.llm_model, share_prefixes=False, dtype=args.llm_before_dtype, **options
    )
    device = str(after.device)
    per_token = linear_flops_per_token(after.model)
    ceilings = {dtype: matmul_flops(dtype, device) for dtype in {before.dtype, after.dtype}}
    prompt_tokens = sum(
        len(after.encode(q, p).input_ids) for q, g in zip(queries, groups, strict=True) for p in g
    )
    print(
        f"{args.llm_model} ({args.llm_mode}, {device}, batch {args.llm_batch_size}), loaded in "
        f"{load_s:.1f} s; {prompt_tokens} prompt tokens ({prompt_tokens / n_pairs:.0f} a pair); "
        "matrix products here: "
        + ", ".join(f"{dtype_label(d)} {c / 1e9:.1f} GFLOP/s" for d, c in ceilings.items())
    )
    if args.llm_profile:
        from torch.profiler import ProfilerActivity, profile

        sample_q, sample_g = queries[:2], [g[:4] for g in groups[:2]]
        for name, teacher in (("before", before), ("after", after)):
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                teacher.score(sample_q, sample_g)
            print(f"profile ({name}: {dtype_label(teacher.dtype)}, 2 queries x 4 passages)")
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=14))

    paths = (
        (f"before: whole prompts, {dtype_label(before.dtype)}", before),
        (f"whole prompts, {dtype_label(after.dtype)}", whole),
        (f"after: shared prefixes, {dtype_label(after.dtype)}", after),
    )
    results = {}
    for name, teacher in paths:
        ran: list[int] = []
        decoder = teacher.model.get_decoder()
        forward = decoder.forward

        def counting(*a, _forward=forward, _ran=ran, **kw):
            _ran.append(real_tokens(kw["input_ids"], kw.get("attention_mask")))
            return _forward(*a, **kw)

        decoder.forward = functools.wraps(forward)(counting)
        start = time.perf_counter()
        scores = np.concatenate(teacher.score(queries, groups))
        seconds = time.perf_counter() - start
        decoder.forward = forward
        run_tokens = sum(ran)
        results[name] = (seconds, scores)
        share = run_tokens * per_token / seconds / ceilings[teacher.dtype]
        print(
            f"{name:34s} {n_pairs / seconds:7.2f} pairs/s, {prompt_tokens / seconds:7.0f} prompt "
            f"tokens/s, {run_tokens} tokens through the model ({run_tokens / seconds:.0f}/s, "
            f"{share:.0%} of the {dtype_label(teacher.dtype)} matrix-product FLOP/s)"
        )
    (t_before, s_before), (t_whole, s_whole), (t_after, s_after) = results.values()
    spread = float(s_before.max() - s_before.min())
    print(
        f"LLM teacher ratio after/before: {t_before / t_after:.2f}x (target >= 5x); of it the "
        f"arithmetic {t_before / t_whole:.2f}x, the shared prefixes {t_whole / t_after:.2f}x"
    )
    print(
        f"scores after vs before: max |diff| {np.abs(s_after - s_before).max():.2e}, mean "
        f"{np.abs(s_after - s_before).mean():.2e} (scores span {s_before.min():.2f}.."
        f"{s_before.max():.2f}, {spread:.2f}); shared vs whole in the same arithmetic: max "
        f"{np.abs(s_after - s_whole).max():.2e}; per-query Kendall tau after vs before "
        f"{per_query_kendall(s_after, s_before, [len(g) for g in groups], n_pairs):.4f}"
    )


def dtype_label(dtype) -> str:
    return str(dtype).removeprefix("torch.")


def pairwise_section(args: argparse.Namespace) -> None:
    """The pairwise LLM teacher (PRP, all pairs of BM25's top 6, both orders) with and without
    running the prefix that prompts showing the same passage first share once."""
    from retrieval_kd.candidates import bm25_candidates
    from retrieval_kd.data import load_dataset
    from retrieval_kd.llm.readout import Readout
    from teachers.llm_pairwise import LLMPairwiseTeacher

    dataset = load_dataset("scifact", "train")
    qids = sorted(dataset.queries)[: args.llm_pairwise]
    run, _ = bm25_candidates(dataset.corpus, {q: dataset.queries[q] for q in qids}, k=6)
    teacher = LLMPairwiseTeacher(
        args.llm_model, batch_size=args.llm_batch_size, dtype=args.llm_dtype, top_m=6
    )
    shared = teacher.readout
    whole = Readout(teacher.lm, args.llm_batch_size, share_prefixes=False)
    queries = [dataset.queries[q] for q in qids]
    groups = [list(dataset.corpus.texts(list(run[q]))) for q in qids]
    results = {}
    for name, readout in (("whole prompts", whole), ("shared prefixes", shared)):
        teacher.readout = readout
        start = time.perf_counter()
        scores = np.concatenate(teacher.score(queries, groups))
        results[name] = (time.perf_counter() - start, scores)
    n_prompts = sum(len(g) * (len(g) - 1) for g in groups)
    for name, (seconds, _) in results.items():
        print(f"pairwise {name:16s} {n_prompts / seconds:6.2f} prompts/s ({n_prompts} prompts)")
    (t_whole, s_whole), (t_shared, s_shared) = results.values()
    print(
        f"pairwise ratio shared/whole: {t_whole / t_shared:.2f}x; scores: max |diff| "
        f"{np.abs(s_shared - s_whole).max():.2e}"
    )


def generator_section(args: argparse.Namespace) -> None:
    """The LLM query generator on the first ``--generator`` SciFact passages (one query each,
    sampling seeded, so both arithmetics see the same prompts): fp32 against the default."""
    from retrieval_kd.data import load_dataset
    from retrieval_kd.generation.llm_generator import LLMQueryGenerator

    corpus = load_dataset("scifact", "test").corpus
    ids = list(corpus.ids)[: args.generator]
    bodies = list(corpus.texts(ids))
    titles = [""] * len(ids)
    seconds: list[float] = []
    for dtype in ("float32", args.llm_dtype):  # None: the default (bf16 where native)
        generator = LLMQueryGenerator(
            args.llm_model, batch_size=args.generator_batch_size, dtype=dtype, device="cpu"
        )
        label = f"generator {dtype_label(generator.lm.model.dtype)}"
        generator.generate(ids[:2], titles[:2], bodies[:2], 1)  # warm-up
        if args.llm_profile:
            from torch.profiler import ProfilerActivity, profile

            batch = slice(0, generator.batch_size)
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                generator.generate(ids[batch], titles[batch], bodies[batch], 1)
            print(f"profile ({label}, one batch of {generator.batch_size} passages)")
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=14))
        start = time.perf_counter()
        queries = generator.generate(ids, titles, bodies, 1)
        seconds.append(time.perf_counter() - start)
        new_tokens = sum(len(generator.tokenizer(q[0])["input_ids"]) for q in queries)
        print(
            f"{label:26s} {len(ids) / seconds[-1]:6.2f} docs/s, "
            f"{new_tokens / seconds[-1]:6.1f} new tokens/s (batch {generator.batch_size}); "
            f"first query: {queries[0][0]!r}"
        )
    t_fp32, t_default = seconds
    print(f"generator ratio default/fp32: {t_fp32 / t_default:.2f}x")


if __name__ == "__main__":
    main()
