"""The ``rkd`` command line: one command per arrow of the pipeline.

``candidates -> score -> train -> index -> search -> evaluate``, ``distill`` for the whole
chain from one YAML file, ``generate-queries`` for a corpus that has no queries, and
``index-report`` for an ANN index's recall / speed trade-off, and ``push`` to upload a student.
Errors raised on purpose (``RKDError``) print one clear line and exit with status 2; nothing
partial is written.
"""

from __future__ import annotations

import logging
import sys

import typer

from retrieval_kd.cli.benchmark import benchmark
from retrieval_kd.cli.candidates import candidates
from retrieval_kd.cli.distill import distill
from retrieval_kd.cli.evaluate import evaluate
from retrieval_kd.cli.generate import generate_queries
from retrieval_kd.cli.index_report import index_report
from retrieval_kd.cli.push import push
from retrieval_kd.cli.retrieve import index, search
from retrieval_kd.cli.score import score
from retrieval_kd.cli.train import train
from retrieval_kd.errors import RKDError
from retrieval_kd.progress import set_quiet

app = typer.Typer(
    name="rkd",
    help="Distil rerankers into retrievers: candidates, teacher scores, training, FAISS "
    "indexes and evaluation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _global_options(
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log at INFO level."),
) -> None:
    set_quiet(quiet)
    configure_logging(verbose)


def configure_logging(verbose: bool) -> None:
    """WARNING and above by default; with ``-v`` INFO, and DEBUG from libraries that ask for it.

    The threshold sits on the handler, not only on the root logger: a library that sets its
    own logger to DEBUG (bm25s does, on import) would otherwise print DEBUG lines on every
    normal run.
    """
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", force=True)
    root = logging.getLogger()
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    for handler in root.handlers:
        handler.setLevel(logging.NOTSET if verbose else logging.WARNING)


app.command(help="First-stage candidates: BM25 top-k (or an external run) -> TREC run.")(candidates)
app.command(help="Evaluate one or more TREC runs (ranx), with significance tests.")(evaluate)
app.command(
    name="generate-queries",
    help="Queries for a corpus without any: LLM or span generation -> a query set.",
)(generate_queries)
app.command(help="Score candidates with a teacher into a resumable score store.")(score)
app.command(help="Encode a corpus with a student into a FAISS index.")(index)
app.command(help="Search a student's FAISS index -> TREC run.")(search)
app.command(
    name="index-report",
    help="Recall, nDCG@10 and queries/s of an ANN index's settings against exact search.",
)(index_report)
app.command(help="The whole chain from one YAML config (resumable, stage by stage).")(distill)
app.command(help="Train a student from a teacher score store (YAML config).")(train)
app.command(help="Students on several collections: exact search, one table beside BM25.")(benchmark)
app.command(help="Upload a saved student folder, with its model card, to the Hugging Face hub.")(
    push
)


def main() -> None:
    """Console entry point: run the app, turning ``RKDError`` into one line on stderr."""
    try:
        code = app(standalone_mode=False)  # returns the code of a typer.Exit in this mode
        sys.exit(code if isinstance(code, int) else 0)
    except RKDError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except (typer.Exit, SystemExit) as done:
        code = done.exit_code if isinstance(done, typer.Exit) else done.code
        sys.exit(code)
    except typer.Abort:
        sys.exit(130)
    except Exception as err:
        if _is_usage_error(err):
            err.show()  # type: ignore[attr-defined]
            sys.exit(err.exit_code)  # type: ignore[attr-defined]
        raise


def _is_usage_error(err: Exception) -> bool:
    """A click usage error (unknown command, bad option), from click or typer's vendored copy.

    typer >= 0.2x ships its own copy of click whose exceptions are not ``click``'s classes, so
    they are recognised by what they offer: ``show()`` and an ``exit_code``.
    """
    return callable(getattr(err, "show", None)) and isinstance(getattr(err, "exit_code", None), int)


if __name__ == "__main__":
    main()
