"""``imgcls <command> [overrides]``: dispatch, error printing and exit codes.

Nothing here imports torch at module level: ``imgcls --help`` and ``imgcls list`` stay fast.
Every error becomes one line on stderr through :func:`imgcls.base.errors.error_line`: a user
mistake exits 2, an interruption 128 + the signal's number (SIGINT 130, SIGTERM 143, SIGHUP
129: commands run inside :func:`imgcls.base.signals.signals_raise`, so each signal unwinds
through the command's clean-up), an unexpected error (a bug) 1 (set IMGCLS_DEBUG=1 for the
traceback of either).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Callable, Sequence

from imgcls import __version__
from imgcls.base.errors import TrainingInterrupted, error_line, unknown_choice
from imgcls.base.signals import SignalReceived, raise_if_received, signals_held, signals_raise

COMMANDS: dict[str, str] = {
    "train": "train a model: imgcls train [group=option ...] [key=value ...] [-m]",
    "eval": "evaluate a run or an ensemble: imgcls eval run=<dir>|[<dir>,...] [split=test|val]",
    "predict": "classify image files: imgcls predict run=<dir>|model=<file.onnx> images=<path>",
    "export": "export a run's model: imgcls export run=<dir> [format=onnx|torchscript|pt2]",
    "report": (
        "leaderboard or HTML report: imgcls report [--html] <dir> [<dir> ...] [--plot] "
        "[--baseline K=V] [--target X]"
    ),
    "list": "list config groups and their options: imgcls list [group] [pattern] [--input CxHxW]",
    "preview": "a PNG grid of augmented training images: imgcls preview dataset=... augment=...",
}

USAGE = """usage: imgcls <command> [arguments]

imgcls is a config-driven experiment runner for image classification.

commands:
{commands}

examples:
  imgcls train                                   ResNet on the built-in digits dataset
  imgcls train model=simplecnn scheduler=step optimizer.lr=0.01 trainer.epochs=30
  imgcls train -m model=simplecnn,resnet seed=0,1    a sweep: four runs
  imgcls train experiment=smoke                  a complete run in seconds, for CI
  imgcls train --help                            config groups, options and the composed config
  imgcls list                                    every group's options with a description
  imgcls eval run=outputs/<date>/<run>           metrics, confusion matrix, predictions
  imgcls predict run=outputs/<date>/<run> images=pics/   classify image files
  imgcls export run=outputs/<date>/<run>         ONNX model + export.json, parity-checked
  imgcls predict model=<run>/export/onnx_best/model.onnx images=pics/   without PyTorch
  imgcls report outputs/multirun/<date>/<time>   the leaderboard of a sweep
  imgcls report --html outputs/<date>/<run>      a self-contained report.html (run or sweep)
  imgcls report <sweep> --baseline augment=none  each row against a baseline: difference, p-value

Runs are written to outputs/<date>/<time>_<model>_<dataset>/. Set IMGCLS_DEBUG=1 to see
tracebacks.
"""


def usage() -> str:
    """The text of ``imgcls --help``: the commands, examples and where runs go."""
    width = max(len(c) for c in COMMANDS)
    lines = "\n".join(f"  {name:<{width}}  {text}" for name, text in COMMANDS.items())
    return USAGE.format(commands=lines)


def _debug() -> bool:
    return os.environ.get("IMGCLS_DEBUG", "") not in ("", "0") or bool(
        os.environ.get("HYDRA_FULL_ERROR")
    )


def _command(name: str) -> Callable[[Sequence[str]], int]:
    if name == "train":
        from imgcls.commands.train import run_train

        return run_train
    if name == "eval":
        from imgcls.commands.evaluate import run_eval

        return run_eval
    if name == "predict":
        from imgcls.commands.predict import run_predict

        return run_predict
    if name == "export":
        from imgcls.commands.export import run_export

        return run_export
    if name == "report":
        from imgcls.commands.report import run_report

        return run_report
    if name == "preview":
        from imgcls.commands.preview import run_preview

        return run_preview
    from imgcls.commands.listing import run_list

    return run_list


def main(argv: Sequence[str] | None = None) -> int:
    """Run one imgcls command and return its exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if not args or args[0] in ("-h", "--help", "help"):
            print(usage())
            sys.stdout.flush()  # `imgcls --help | head`: a reader gone away shows here
            return 0
        if args[0] in ("-V", "--version"):
            print(f"imgcls {__version__}")
            sys.stdout.flush()
            return 0
        if args[0] not in COMMANDS:
            raise unknown_choice("command", args[0], COMMANDS)
        with signals_raise(ignore_after=argv is None):  # the program: see there
            try:
                # imports (torch): seconds, before any work. Held, not raised, meanwhile:
                # torch's import runs Python from C++ (pybind11), and an exception raised
                # there by a signal handler aborts the process ("terminate called ...")
                with signals_held():
                    command = _command(args[0])
            except SignalReceived as stop:
                raise SignalReceived(stop.signum, " during start-up; nothing was kept") from None
            code = command(args[1:])
            raise_if_received()  # a signal whose exception a library swallowed still counts
        sys.stdout.flush()  # a reader gone away shows here, in the handler below
        return code
    except BrokenPipeError:  # `imgcls list | head`: the reader has all it wants; no error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # silence the final flush
        return 141  # 128 + SIGPIPE, as a shell tool would
    except (Exception, KeyboardInterrupt) as error:
        interrupted = isinstance(error, (KeyboardInterrupt, TrainingInterrupted))
        if _debug() and not interrupted:
            raise
        line, code = error_line(error)
        with contextlib.suppress(OSError):  # SIGHUP: no terminal; the exit code still tells
            print(line, file=sys.stderr)
        if interrupted and argv is None:  # the program itself, not a call from Python
            _exit_now(code)
        return code


def _exit_now(code: int) -> None:
    """End the process after a stop signal without the interpreter's finalization.

    Everything of the run is on disk by now (and train.log closed); finalizing could only
    meet a library thread still inside C code, which then aborts with a fatal error on
    stderr after our one line.
    """
    logging.shutdown()
    with contextlib.suppress(OSError):
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    raise SystemExit(main())
