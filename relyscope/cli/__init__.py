"""The `relyscope` command line: one module per command, each adding its own subparser.

Building the parser imports no model stack: each command imports torch, transformers, Celery,
gRPC or the audit methods inside the function that runs it, so `relyscope --help`,
`relyscope report` and `relyscope gate --baseline-results ...` start in about a second
(tests/test_cli_startup.py holds this).
"""

from __future__ import annotations

import os

# OpenMP threads spin-wait by default; on shared cores that made 2 threads 3.3x slower than 1
# (bench/results/perf.json). Passive waiting must be set before torch loads: the commands
# below import it only when they run (a command that needs no model starts without it), but
# set here, it holds whatever imports torch later.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import sys  # noqa: E402
from collections.abc import Sequence  # noqa: E402

from relyscope.cli import (  # noqa: E402
    audit,
    audit_logs,
    demo,
    gate,
    report,
    retrieval,
    serve,
    train_attributor,
    worker,
)
from relyscope.errors import CaseError  # noqa: E402

#: In the order `relyscope --help` lists them.
COMMANDS = (demo, audit, report, retrieval, audit_logs, serve, worker, gate, train_attributor)

__all__ = ["build_parser", "main"]


_VERBOSE_HELP = "show the libraries' own progress bars and warnings (model loading)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="relyscope",
        description="Which sources and tool outputs did an LLM answer rely on?")
    parser.add_argument("-v", "--verbose", action="store_true", help=_VERBOSE_HELP)
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_commands(sub)
    for subparser in sub.choices.values():  # `relyscope audit ... --verbose` works too
        subparser.add_argument("-v", "--verbose", action="store_true",
                               default=argparse.SUPPRESS, help=_VERBOSE_HELP)
    return parser


def quiet_libraries() -> None:
    """Hide transformers' per-load "Loading weights" bars and its info/warning chatter, here and
    in the worker processes this command starts (they inherit the environment).

    Both libraries read these variables when they are imported; only when one is imported
    already (main() called in-process) are their switches flipped here, so a command that never
    loads a model does not import transformers for this."""
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    os.environ["TRANSFORMERS_VERBOSITY"] = "error"
    if "transformers" in sys.modules or "huggingface_hub" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; invalid input (named field) and missing files exit 2. A closed stdout
    (`relyscope report ... | head`) ends the command quietly."""
    args = build_parser().parse_args(argv)
    if not args.verbose:
        quiet_libraries()
    try:
        code = int(args.func(args))
        sys.stdout.flush()  # a pipe closed early raises here, not at interpreter exit
        return code
    except CaseError as err:
        print(f"relyscope: invalid input: {err}", file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError) as err:
        print(f"relyscope: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        _silence_stdout()
        return 1


def _silence_stdout() -> None:
    """After the reader of stdout went away, point stdout at /dev/null so the interpreter's own
    flush at exit does not raise a second BrokenPipeError (the recipe of Python's signal docs)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
