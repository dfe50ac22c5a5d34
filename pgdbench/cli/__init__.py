"""``pgdbench``: the command line; each subcommand lives in ``pgdbench/cli/commands/NAME.py``.

User errors (:class:`pgdbench.errors.PgdbenchError`) print one line and exit 2;
an interrupted command exits 130 after its results file has been closed.

The command sets ``OPENBLAS_THREAD_TIMEOUT=4`` unless it is already set (see
:mod:`pgdbench.harness.openblas_env`): it must happen before NumPy is loaded,
hence first, before the commands (which load NumPy) are imported.
"""
from __future__ import annotations

from pgdbench.harness.openblas_env import prefer_sleeping_blas_threads

prefer_sleeping_blas_threads()

import argparse  # noqa: E402  (after the environment is set)
import os  # noqa: E402
import sys  # noqa: E402

from pgdbench.cli.commands import (averaging_study, bench, check, dbn, gate, mpi_bench, peak, report,  # noqa: E402
                                   train, tta, tune)
from pgdbench.cli.commands import list as list_command  # noqa: E402  (not to shadow the builtin)
from pgdbench.core import mpi  # noqa: E402
from pgdbench.errors import PgdbenchError  # noqa: E402

#: The subcommands in the order ``pgdbench --help`` lists them.
COMMANDS = {"list": list_command, "train": train, "bench": bench, "tune": tune, "peak": peak, "check": check, "tta": tta,
            "report": report, "averaging-study": averaging_study, "mpi-bench": mpi_bench, "dbn": dbn,
            "gate": gate}


class Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own errors: one line, exit 2, no usage dump
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def show_defaults(parser: argparse.ArgumentParser) -> None:
    """Every option's --help line ends with its default, unless the text already gives it."""
    for action in parser._actions:
        default = action.default
        if default in (None, False, argparse.SUPPRESS) or not action.option_strings or action.help == argparse.SUPPRESS:
            continue
        shown = ",".join(map(str, default)) if isinstance(default, (list, tuple)) else default
        if not action.help:
            action.help = f"(default {shown})"
        elif "default" not in action.help:
            action.help = f"{action.help} (default {shown})"


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="pgdbench", formatter_class=argparse.RawDescriptionHelpFormatter,
                    description="A benchmark suite for parallel training of multilayer perceptrons.",
                    epilog="Every command has --help; the README documents them all. First steps:\n"
                           "  pgdbench list                            the backends, and which run here\n"
                           "  pgdbench train --net net1h --epochs 10   train on the embedded MNIST sample")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for name, module in COMMANDS.items():
        # raw: the commands' descriptions keep their line breaks (examples stay one per line)
        p = sub.add_parser(name, help=module.HELP, description=module.__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
        show_defaults(p)
        p.set_defaults(run=module.run)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    in_job = mpi.launched_size() > 1
    if in_job:  # launched by mpiexec with several ranks: rank 0 speaks, a failing rank aborts the job
        mpi.install_abort_hook()
        if not mpi.is_root():
            sys.stdout = open(os.devnull, "w")
            if hasattr(args, "quiet"):
                args.quiet = True
    try:
        code = int(args.run(args) or 0)
    except PgdbenchError as exc:
        if in_job:
            mpi.abort(2, f"pgdbench {args.command}: error: {exc}")
        print(f"pgdbench {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader of stdout went away (| head): stop quietly, as other tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's own flush at exit would fail too
        return 141  # 128 + SIGPIPE, what a shell reports for a tool killed by it
    except KeyboardInterrupt:
        if in_job:  # returning would leave the other ranks waiting in a collective for this one, for ever
            mpi.abort(130, "", "interrupted")
        print(f"pgdbench {args.command}: interrupted", file=sys.stderr)
        return 130
    if in_job and code != 0:
        mpi.abort(code, f"pgdbench {args.command} exited with status {code}")
    return code
