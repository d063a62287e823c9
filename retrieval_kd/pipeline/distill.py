"""``rkd distill``: candidates -> teacher scores -> training -> index -> search -> report.

Each stage writes ``<output_dir>/<stage>/`` with a ``manifest.json`` and is skipped when a run
with the same inputs and settings finished it (see ``retrieval_kd.pipeline.stages``):

=====================  =================================================================
generate                (``data.train_queries: generate``) queries generated from a sample of
                        the corpus, cleaned and de-duplicated: a query set (``queries.jsonl``,
                        ``sources.tsv``, synthetic ``qrels/train.tsv``: source doc = positive)
candidates-train        ``candidates.sources`` top ``train_depth`` for the training queries
                        (BM25, dense, run files; fused), ``run.trec``
candidates-eval         ``candidates.eval_sources`` top ``eval_depth`` for the evaluation queries
teacher-train           the teacher's scores of the training candidates (``store/``); with
                        generated queries each query's source document is scored too
teacher-eval            the teacher re-ranking the evaluation candidates (``store/``, ``run.trec``)
filter                  (generated queries) round-trip / teacher-floor filters: the query set
                        the students train on (``train``, and ``teacher-free`` for the baseline)
student-untrained       the student before training (``model/``)
train-distilled         the student trained from the teacher's scores (``model/``)
run-scores-train        the training candidates under their own run scores (``store/``)
train-baseline          the same student, same queries and candidates, no teacher (InfoNCE;
                        negatives in the candidate run's order, ``baseline.negatives``); on
                        generated queries this is the QGen baseline (source doc = positive)
retrieve-<student>      FAISS index of the corpus and its top-k run for each student
report                  ``report.md`` + PNGs: metrics, significance, agreement, curves, cost
=====================  =================================================================

With generated queries no split's queries or qrels are read for training; ``eval_split`` is
used by the report only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import Any

from retrieval_kd.data import load_dataset, read_run, write_run
from retrieval_kd.data.types import Run
from retrieval_kd.errors import RKDError
from retrieval_kd.pipeline.config import DistillConfig
from retrieval_kd.pipeline.stages import Stage, reuse_stage, run_stage, stage_state
from retrieval_kd.pipeline.teacher_choice import choose_teacher

logger = logging.getLogger(__name__)

STUDENTS = ("untrained", "distilled", "baseline")
QUERY_SET = "queries"  # the query-set folder inside the generate and filter stages
UNTIL = {  # --until <name> runs every stage up to and including these
    "generate": "generate",
    "candidates": "candidates-eval",
    "score": "teacher-eval",
    "train": "train-baseline",
    "index": "retrieve-baseline",
    "report": "report",
}


class DistillRun:
    """Plans and runs one distillation config.

    Construction checks everything cheap first (config, data folders and splits, student and
    teacher resolution), so a typo'd path or an unresolvable model fails in seconds.

    Args:
        config: the validated config.
        teacher: a teacher spec that overrides the configured one and its fallbacks.
        echo: where progress lines go (``print`` by default).
    """

    def __init__(
        self,
        config: DistillConfig,
        teacher: str | None = None,
        echo: Callable[[str], None] = print,
        dry_run: bool = False,
    ):
        self.config = config
        self.root = Path(config.output_dir)
        self.echo = echo
        data = config.data
        self.eval_data = load_dataset(data.collection, data.eval_split)
        self._train_split = (
            None if config.generates else load_dataset(data.collection, data.train_split)
        )
        self._query_sets: dict[tuple[str, str], Any] = {}
        self.problems: list[str] = []  # what a dry run could not resolve on this machine
        from retrieval_kd.candidates import parse_sources
        from retrieval_kd.models import resolve_model

        def check(what: str, action: Callable[[], Any]) -> Any:
            try:
                return action()
            except RKDError as err:
                if not dry_run:
                    raise
                self.problems.append(f"{what}: {str(err).splitlines()[0]}")
                return None

        student = config.train["student"]["model"]
        self.student_label = student
        resolved = check(f"student {student}", lambda: resolve_model(student))
        if resolved is not None:
            self.student_label += f" ({resolved.source})"
        for key in ("sources", "eval_sources"):  # a dense model that cannot be resolved, a run
            check(f"candidates.{key}", lambda k=key: parse_sources(getattr(config.candidates, k)))
        if config.generates:
            check("generate", self._check_generation)
            if not dry_run and len(self.corpus) == 0:
                raise RKDError(f"the corpus of {data.collection!r} is empty")
        try:
            self.teacher_spec, self.teacher_skipped = choose_teacher(
                config.teacher.model, list(config.teacher.fallbacks), teacher
            )
        except RKDError as err:
            if not dry_run:
                raise
            self.teacher_spec, self.teacher_skipped = config.teacher.model, []
            self.problems.append(str(err).splitlines()[0])
        self._teacher = None

    def _check_generation(self) -> None:
        """The generator's template (and few-shot examples) parse and its model resolves,
        without loading it: a typo fails in seconds, not after sampling the corpus."""
        from retrieval_kd.generation import build_template
        from retrieval_kd.models import resolve_model

        g = self.config.generate
        head, _, tail = g.generator.partition(":")
        if head == "span":
            from retrieval_kd.generation import SpanQueryGenerator

            SpanQueryGenerator(tail or "sentence", **g.options)
            return
        build_template(g.kind, g.template, g.examples)
        model = tail if head == "llm" else g.generator
        if not model:
            raise RKDError("config key 'generate.generator': llm: needs a model")
        if not str(model).lower().endswith(".gguf"):
            resolve_model(model)

    # -- inputs ---------------------------------------------------------------------------------
    @cached_property
    def corpus_fp(self) -> str:
        """The corpus identity without reading it (so a dry run plans without the data)."""
        name = self.config.data.collection
        if name.startswith("irds:"):
            return name
        from retrieval_kd.data.corpus import content_id
        from retrieval_kd.data.sources import corpus_source, resolve_folder

        source = corpus_source(resolve_folder(name))
        return source if source.startswith("irds:") else content_id(Path(source))

    @property
    def corpus(self):
        """The collection's documents (training and evaluation share them)."""
        return self.eval_data.corpus

    def query_set(self, stage: str, split: str = "train"):
        """The dataset of a query-set stage's folder (``generate`` or ``filter``), once built."""
        key = (stage, split)
        if key not in self._query_sets:
            self._query_sets[key] = load_dataset(str(self.root / stage / QUERY_SET), split)
        return self._query_sets[key]

    @property
    def train_data(self):
        """The training queries: the split's, or the generated ones (after ``generate`` ran)."""
        return self.query_set("generate") if self.config.generates else self._train_split

    def _queries(self, dataset, limit: int | None) -> dict[str, str]:
        queries = dataset.queries
        ids = sorted(queries)[:limit] if limit else sorted(queries)
        return {q: queries[q] for q in ids}

    def teacher(self, candidates: Run):
        """The teacher, built once and shared by both scoring stages (encoder caches too)."""
        if self._teacher is None:
            from teachers import build_teacher

            self._teacher = build_teacher(self.teacher_spec, candidates, corpus=self.corpus)
            return self._teacher
        from teachers import RunScoreTeacher

        # a ``run`` teacher (bare, or an ensemble member) reads the scores of the candidates
        # being scored: rebind it, or the evaluation stage would look eval pairs up in the
        # training run and score every one 0
        members = [m for m, _ in getattr(self._teacher, "members", [(self._teacher, 1.0)])]
        for member in members:
            if isinstance(member, RunScoreTeacher):
                member.run = candidates
        return self._teacher

    # -- stages ---------------------------------------------------------------------------------
    def plan(self) -> list[Stage]:
        """The stages in order, each fingerprinted by its settings and the stages it reads."""
        plan = _Plan()
        data = {"collection": self.config.data.collection, "corpus": self.corpus_fp}
        self._plan_queries(plan, data)
        self._plan_candidates(plan, data)
        self._plan_teacher(plan)
        self._plan_students(plan)
        self._plan_retrieval(plan)
        c = self.config
        plan.add(
            "report",
            {
                "metrics": c.search.metrics,
                "conventions": c.data.conventions,
                "agreement_depth": c.search.agreement_depth,
            },
            self._report_work(),
            "report.md: metrics, significance, agreement, curves, cost",
            list(plan.fingerprints),
        )
        return plan.stages

    def _plan_queries(self, plan: _Plan, data: dict[str, Any]) -> None:
        """``generate`` (generated training queries only)."""
        if not self.config.generates:
            return
        g = self.config.generate
        plan.add(
            "generate",
            {**data, "generate": vars(g)},
            self._generate_work(),
            f"{g.generator} writes {g.per_doc} quer{'y' if g.per_doc == 1 else 'ies'} per "
            "sampled document",
            [],
        )

    def _plan_candidates(self, plan: _Plan, data: dict[str, Any]) -> None:
        """``candidates-train`` and ``candidates-eval``."""
        c = self.config
        cand = c.candidates
        for part, depth, limit, sources in (
            ("train", cand.train_depth, c.data.max_train_queries, cand.sources),
            ("eval", cand.eval_depth, c.data.max_eval_queries, cand.eval_sources),
        ):
            generated = part == "train" and c.generates
            split = "generated" if generated else getattr(c.data, f"{part}_split")
            settings = {**data, "split": split, "depth": depth, "max_queries": limit}
            if list(sources) == ["bm25"]:
                settings["source"] = "bm25"  # the fingerprint of a BM25-only stage, unchanged
            else:
                settings.update(sources=list(sources), fusion=cand.fusion)
            plan.add(
                f"candidates-{part}",
                settings,
                self._candidates_work(part, depth, limit, list(sources)),
                " + ".join(sources)
                + (f" ({cand.fusion})" if len(sources) > 1 else "")
                + f" top-{depth} for {'generated' if generated else split} queries"
                + (f" (first {limit})" if limit else ""),
                ["generate"] if generated else [],
            )

    def _plan_teacher(self, plan: _Plan) -> None:
        """``teacher-train``, ``teacher-eval`` and, for generated queries, ``filter``."""
        c = self.config
        for part in ("train", "eval"):
            if part == "eval" and not c.teacher.score_eval:
                continue
            settings = {"teacher": self.teacher_spec}
            if part == "train" and c.generates:
                settings["score_sources"] = True
            plan.add(
                f"teacher-{part}",
                settings,
                self._teacher_work(part),
                f"teacher {self.teacher_spec} scores candidates-{part}",
                [f"candidates-{part}"],
            )
        if c.generates:
            f = c.filters
            plan.add(
                "filter",
                {"filters": vars(f)},
                self._filter_work(),
                "round-trip / teacher-floor filters on the generated queries"
                + ("" if f.round_trip_k or f.teacher_floor is not None else " (none)"),
                ["teacher-train", "candidates-train", "generate"],
            )

    def _plan_students(self, plan: _Plan) -> None:
        """``student-untrained``, ``train-distilled`` and the baseline's stages."""
        c = self.config
        plan.add(
            "student-untrained",
            {"student": c.train["student"]},
            self._untrained_work(),
            f"student {c.train['student']['model']} before training",
            [],
        )
        trainings = [("distilled", c.train.get("loss"), "teacher-train")]
        if c.baseline.enabled:
            store = "teacher-train"
            if c.baseline.negatives == "candidates":
                store = "run-scores-train"
                plan.add(
                    store,
                    {"scores": "candidate run"},
                    self._run_scores_work(),
                    "the candidate run's own scores as a store: the baseline's negatives",
                    ["candidates-train"],
                )
            trainings.append(("baseline", c.baseline.loss, store))
        recipe = {k: v for k, v in c.train.items() if k != "loss"}  # each training's own loss
        for name, loss, store in trainings:
            split = None
            if c.generates:
                from retrieval_kd.generation.filters import TEACHER_FREE_SPLIT

                split = TEACHER_FREE_SPLIT if name == "baseline" else "train"
            groups = c.baseline.groups if name == "baseline" else {}
            settings = {
                "train": recipe,
                "loss": loss,
                "max_train_queries": c.data.max_train_queries,
            }
            if groups:
                settings["groups"] = groups
            plan.add(
                f"train-{name}",
                settings,
                self._train_work(loss, store, split, groups),
                f"train the student with {loss} on groups from {store}"
                + (f" (generated queries, split {split})" if split else ""),
                [store, *(["filter"] if c.generates else [])],
            )

    def _plan_retrieval(self, plan: _Plan) -> None:
        """``retrieve-<student>`` for the untrained student and each trained one."""
        c = self.config
        trained = [n for n in STUDENTS if f"train-{n}" in plan.fingerprints or n == "untrained"]
        for name in trained:
            source = "student-untrained" if name == "untrained" else f"train-{name}"
            plan.add(
                f"retrieve-{name}",
                {
                    "index": vars(c.index),
                    "k": c.search.k,
                    "eval_split": c.data.eval_split,
                    "max_eval_queries": c.data.max_eval_queries,
                    **({"corpus": c.search.corpus} if c.search.corpus != "full" else {}),
                },
                self._retrieve_work(source),
                f"{c.index.type} index + top-{c.search.k} search with the {name} student",
                [source, "candidates-eval"],
            )

    def _generate_work(self):
        def work(folder: Path) -> dict[str, Any]:
            from retrieval_kd.generation import QueryFilter, build_generator, generate_queries

            g = self.config.generate
            generator = build_generator(
                g.generator,
                kind=g.kind,
                template_file=g.template,
                examples_file=g.examples,
                seed=g.seed,
                **g.options,
            )
            manifest = generate_queries(
                self.corpus,
                generator,
                folder / QUERY_SET,
                corpus_ref={"data": self.config.data.collection},
                per_doc=g.per_doc,
                docs=g.docs,
                queries=g.queries,
                seed=g.seed,
                docs_per_shard=g.docs_per_shard,
                query_filter=QueryFilter(g.min_words, g.max_words),
            )
            if manifest is None:
                raise RKDError("other processes are still generating: run the stage again")
            cost = manifest["cost"]
            self.echo(
                f"  generated {manifest['counts']['kept']} queries from "
                f"{manifest['counts']['documents']} documents ({cost['docs_per_s']} docs/s)"
            )
            return {
                "query_set": QUERY_SET,
                "counts": manifest["counts"],
                "docs_per_s": cost["docs_per_s"],
                "generator": manifest["generator"],
            }

        return work

    def _candidates_work(self, part: str, depth: int, limit: int | None, sources: list[str]):
        def work(folder: Path) -> dict[str, Any]:
            from retrieval_kd.candidates import parse_sources, retrieve_candidates

            dataset = self.train_data if part == "train" else self.eval_data
            queries = self._queries(dataset, limit)
            run, records = retrieve_candidates(
                parse_sources(sources),
                dataset.corpus,
                queries,
                depth,
                fusion=self.config.candidates.fusion,
                known_queries=dataset.load_all_queries(),
                batch_size=self.config.index.batch_size,
            )
            fused = len(sources) > 1 and self.config.candidates.fusion == "union"
            write_run(run, folder / "run.trec", tag="candidates", depth=None if fused else depth)
            return {
                "run": "run.trec",
                "queries": len(run),
                "pairs": sum(len(d) for d in run.values()),
                "sources": records,
                **(records["bm25"] if list(records) == ["bm25"] else {}),
            }

        return work

    def _filter_work(self):
        def work(folder: Path) -> dict[str, Any]:
            from retrieval_kd.generation.filters import filter_query_set
            from retrieval_kd.store import ScoreStore

            f = self.config.filters
            manifest = filter_query_set(
                self.root / "generate" / QUERY_SET,
                folder / QUERY_SET,
                ScoreStore(self.root / "teacher-train" / "store"),
                read_run(self.root / "candidates-train" / "run.trec"),
                round_trip=f.round_trip,
                round_trip_k=f.round_trip_k,
                teacher_floor=f.teacher_floor,
            )
            return {"query_set": QUERY_SET, "counts": manifest["counts"]}

        return work

    def _teacher_work(self, part: str):
        def work(folder: Path) -> dict[str, Any]:
            dataset = self.train_data if part == "train" else self.eval_data
            candidates_stage = f"candidates-{part}"
            candidates = read_run(self.root / candidates_stage / "run.trec")
            store = _score_into(
                self.teacher(candidates),
                dataset,
                candidates,
                candidates_stage,
                folder,
                add_positives=part == "train" and self.config.generates,
            )
            write_run(store.to_run(), folder / "run.trec", tag="teacher")
            manifest = store.manifest or {}
            return {
                "store": "store",
                "run": "run.trec",
                "teacher": self.teacher_spec,
                "teacher_skipped": self.teacher_skipped,
                "pairs": store.num_pairs,
                "teacher_describe": manifest.get("teacher"),
                "pairs_per_s": (manifest.get("cost") or {}).get("pairs_per_s_per_process"),
            }

        return work

    def _untrained_work(self):
        def work(folder: Path) -> dict[str, Any]:
            from retrieval_kd.training.students import build_student

            config = self.config.train_config(folder, folder)
            build_student(config.student).save(folder / "model")
            return {"model": "model"}

        return work

    def _run_scores_work(self):
        """A score store of the training candidates under their own run scores (no model)."""

        def work(folder: Path) -> dict[str, Any]:
            from teachers import RunScoreTeacher

            candidates = read_run(self.root / "candidates-train" / "run.trec")
            teacher = RunScoreTeacher(candidates, name="candidates")
            store = _score_into(
                teacher,
                self.train_data,
                candidates,
                "candidates-train",
                folder,
                add_positives=self.config.generates,
            )
            return {"store": "store", "pairs": store.num_pairs}

        return work

    def _train_work(self, loss, store_stage: str, split: str | None, groups: dict):
        def work(folder: Path) -> dict[str, Any]:
            from retrieval_kd.training import train

            config = self.config.train_config(
                folder,
                self.root / store_stage / "store",
                loss=loss,
                collection=str(self.root / "filter" / QUERY_SET) if split else None,
                split=split,
                groups=groups,
            )
            if any(folder.glob("checkpoint-*")):
                config.training.resume_from_checkpoint = True  # a killed run resumes
            result = train(config)
            return {
                "model": str(Path(result.model_dir).relative_to(folder)),
                "best_metric": result.best_metric,
                "global_step": result.global_step,
                "dev_curve": result.dev_curve,
                "loss_curve": result.loss_curve,
                "examples_per_s": (result.manifest.get("result") or {}).get("examples_per_s"),
            }

        return work

    def _retrieve_work(self, source_stage: str):
        if self.config.train["student"].get("kind", "bi-encoder") == "cross-encoder":
            return self._rerank_work(source_stage)
        return self._index_work(source_stage)

    def _model_dir(self, source_stage: str) -> Path:
        from retrieval_kd.manifest import read_manifest

        outputs = read_manifest(self.root / source_stage)["outputs"]
        return self.root / source_stage / outputs["model"]

    def _rerank_work(self, source_stage: str):
        """A cross-encoder student cannot index a corpus: it re-ranks the evaluation candidates
        (the teacher's job), which is what the report then compares it on."""

        def work(folder: Path) -> dict[str, Any]:
            import time

            from students.cross_encoder_student import CrossEncoderStudent

            c = self.config
            student = CrossEncoderStudent(
                str(self._model_dir(source_stage)), batch_size=c.index.batch_size
            )
            queries = self._queries(self.eval_data, c.data.max_eval_queries)
            candidates = read_run(self.root / "candidates-eval" / "run.trec")
            start = time.perf_counter()
            store = _score_into(student, self.eval_data, candidates, "candidates-eval", folder)
            run = {q: docs for q, docs in store.to_run().items() if q in queries}
            write_run(run, folder / "run.trec", tag=source_stage)
            write_run(run, folder / "candidates_rescored.trec", tag=source_stage)
            pairs = sum(len(d) for d in run.values())
            return {
                "run": "run.trec",
                "reranked": "candidates-eval",
                "pairs": pairs,
                "pairs_per_s": round(pairs / max(time.perf_counter() - start, 1e-9), 1),
            }

        return work

    def _index_work(self, source_stage: str):
        def work(folder: Path) -> dict[str, Any]:
            import time

            from retrieval_kd.retrieval import StudentEncoder, index_corpus, search_index

            c = self.config
            encoder = StudentEncoder(
                str(self._model_dir(source_stage)),
                batch_size=c.index.batch_size,
                passage_max_length=c.index.max_length,
                precision=c.index.precision,
            )
            queries = self._queries(self.eval_data, c.data.max_eval_queries)
            candidates = read_run(self.root / "candidates-eval" / "run.trec")
            corpus = self.eval_data.corpus
            if c.search.corpus == "candidates":
                corpus = candidate_pool(corpus, queries, candidates, self.eval_data.qrels, folder)
            start = time.perf_counter()
            index = index_corpus(
                encoder,
                corpus,
                folder / "index",
                c.index.type,
                chunk_size=c.index.chunk_size,
            )
            built = time.perf_counter()
            run = search_index(folder / "index", queries, k=c.search.k, encoder=encoder)
            searched = time.perf_counter()
            write_run(run, folder / "run.trec", tag=source_stage)
            rescored = _student_scores(
                encoder, queries, candidates, _passage_vectors(index, encoder, corpus)
            )
            write_run(rescored, folder / "candidates_rescored.trec", tag=source_stage)
            return {
                "run": "run.trec",
                "index": "index",
                "vectors": index.ntotal,
                "dtype": encoder.dtype,
                "docs_per_s": round(index.ntotal / max(built - start, 1e-9), 1),
                "queries_per_s": round(len(queries) / max(searched - built, 1e-9), 1),
                "index_bytes": index.size_bytes(),
                "corpus": c.search.corpus,
                "corpus_docs": len(corpus),
            }

        return work

    def _report_work(self):
        def work(folder: Path) -> dict[str, Any]:
            from retrieval_kd.pipeline.report import write_report

            return write_report(self, folder)

        return work

    # -- running --------------------------------------------------------------------------------
    def describe_plan(self, until: str | None = None) -> list[str]:
        lines = [f"teacher: {self.teacher_spec}"]
        lines += [f"  (skipped {reason})" for reason in self.teacher_skipped]
        lines.append(f"student: {self.student_label}")
        lines += [f"  cannot run here: {problem}" for problem in self.problems]
        for stage in self._selected(until):
            lines.append(f"{stage_state(self.root, stage):>7}  {stage.name:18s} {stage.describe}")
        return lines

    def _selected(self, until: str | None) -> list[Stage]:
        stages = self.plan()
        if until is None:
            return stages
        last = UNTIL.get(until, until)
        names = [s.name for s in stages]
        if last not in names:
            raise RKDError(f"--until {until!r}: choose one of {', '.join([*UNTIL, *names])}")
        return stages[: names.index(last) + 1]

    def run(self, until: str | None = None, reuse: Path | None = None) -> dict[str, Any]:
        """Run (or skip) every stage up to ``until``; returns the last stage's manifest.

        ``reuse``: another run folder whose finished stages of the same fingerprint are linked
        in instead of run again (a second seed of a recipe reuses its generation, candidates and
        teacher scores).
        """
        manifest: dict[str, Any] = {}
        self.echo(f"teacher: {self.teacher_spec}")
        for reason in self.teacher_skipped:
            self.echo(f"  (skipped {reason})")
        for stage in self._selected(until):
            if reuse is not None and reuse_stage(self.root, stage, reuse):
                self.echo(f"[{stage.name}] reused from {reuse}")
                continue
            state = stage_state(self.root, stage)
            self.echo(f"[{stage.name}] {'skip (done)' if state == 'done' else stage.describe}")
            manifest = run_stage(self.root, stage)
        return manifest


class _Plan:
    """The stages being planned and their fingerprints (a stage's settings name the
    fingerprints of the stages it reads, so a change upstream re-runs what follows)."""

    def __init__(self) -> None:
        self.stages: list[Stage] = []
        self.fingerprints: dict[str, str] = {}

    def add(
        self,
        name: str,
        settings: dict[str, Any],
        work: Callable[[Path], dict[str, Any]],
        describe: str,
        after: list[str],
    ) -> Stage:
        upstream = {a: self.fingerprints[a] for a in after}
        stage = Stage(name, {**settings, "after": upstream}, work, describe, after)
        self.fingerprints[name] = stage.fingerprint
        self.stages.append(stage)
        return stage


def candidate_pool(corpus, queries: dict, candidates: Run, qrels: dict, folder: Path):
    """The sub-corpus of ``queries``' candidates and judged documents, written to
    ``folder/pool.arrow`` (what ``search.corpus: candidates`` retrieves from).

    Shapes:
        returns a Corpus of |union of candidate and judged doc ids| documents, sorted by id.
    """
    from retrieval_kd.data import Corpus, pool_doc_ids

    ids = pool_doc_ids({q: candidates.get(q, {}) for q in queries}, qrels, corpus)
    records = ((d, "", text) for d, text in zip(ids, corpus.texts(ids), strict=True))
    return Corpus.from_records(records, folder / "pool.arrow", name=f"{corpus.name}-pool")


def _passage_vectors(index, encoder, corpus) -> Callable[[list[str]], Any]:
    """doc ids -> the student's vectors: read back from the index where it can reconstruct them
    (flat, sq8, HNSW), else encoded again."""
    try:
        matrix = index.faiss_index.reconstruct_n(0, index.ntotal)
    except RuntimeError:  # IVF / PQ indexes without a direct map
        return lambda ids: encoder.encode_passages(corpus.texts(ids))
    row_of = {doc_id: i for i, doc_id in enumerate(index.ids)}
    return lambda ids: matrix[[row_of[d] for d in ids]]


def _student_scores(
    encoder, queries: dict[str, str], candidates: Run, passage_vectors: Callable[[list[str]], Any]
) -> Run:
    """The student's scores of each query's candidates (for agreement with the teacher)."""
    import numpy as np

    doc_ids = sorted({d for q in queries for d in candidates.get(q, {})})
    vectors = passage_vectors(doc_ids) if doc_ids else None
    row = {d: i for i, d in enumerate(doc_ids)}
    query_ids = [q for q in queries if candidates.get(q)]
    query_vectors = encoder.encode_queries([queries[q] for q in query_ids])
    out: Run = {}
    for q, qv in zip(query_ids, query_vectors, strict=True):
        docs = list(candidates[q])
        scores = vectors[np.array([row[d] for d in docs])] @ qv
        out[q] = {d: float(s) for d, s in zip(docs, scores, strict=True)}
    return out


def _score_into(
    teacher: Any,
    dataset: Any,
    candidates: dict,
    source: str,
    folder: Path,
    add_positives: bool = False,
) -> Any:
    """Score every candidate of ``candidates`` (stage ``source``) into ``folder/store``;
    ``add_positives`` also scores each query's judged positives outside its candidates (a
    generated query's source document)."""
    from retrieval_kd.store import score_candidates

    return score_candidates(
        teacher,
        dataset.queries,
        candidates,
        dataset.corpus.texts,
        folder / "store",
        depth=max(len(d) for d in candidates.values()),
        qrels=dataset.qrels,
        add_qrels_positives=add_positives,
        queries_per_shard=50,
        candidate_source={"name": source},
    )
