"""``daskflow`` command line: generate, validate, run, k8s manifest.

Exit codes: 0 success; 2 a user error (bad config, missing data, bad schema...) printed
as one message without a traceback; 1 an internal error (a bug: the traceback is printed);
130 interrupted by SIGINT (Ctrl-C), 143 by SIGTERM, each with one message line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shlex
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from daskflow._errors import DaskflowError
from daskflow._version import __version__

__all__ = ["main", "build_parser"]

log = logging.getLogger("daskflow")

EXIT_OK, EXIT_INTERNAL, EXIT_USER, EXIT_INTERRUPTED = 0, 1, 2, 130
#: 128 + the signal number, as a shell reports a process the signal ended.
EXIT_SIGNALLED = {"SIGINT": 130, "SIGTERM": 143}


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM, raised in the main thread so that a run unwinds as on Ctrl-C.

    A ``KeyboardInterrupt`` so that every ``finally`` and every ``except
    KeyboardInterrupt`` cleanup (temporary run directories, the cluster and its worker
    processes) runs for SIGTERM exactly as for Ctrl-C.
    """

    def __init__(self, signal_name: str) -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name


class _UsageError(DaskflowError):
    """argparse's complaints, routed through the same exit path as every user error."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise _UsageError(f"{message} (see: {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="daskflow", description="Out-of-core machine learning on Dask for "
                     "product event logs.")
    parser.add_argument("--version", action="version", version=f"daskflow {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="only print warnings and errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    generate = commands.add_parser("generate", help="write a synthetic sample data lake")
    generate.add_argument("out", metavar="OUT", help="destination directory or fsspec URL")
    generate.add_argument("--scale", choices=("small", "medium", "large"), default="small")
    generate.add_argument("--format", choices=("parquet", "orc"), default="parquet")
    generate.add_argument("--seed", type=int, default=0)
    generate.add_argument("--workers", type=int, default=2, help="LocalCluster workers (default 2)")
    generate.add_argument("--memory-limit", default="auto", help="per worker, e.g. 4GiB")
    generate.add_argument("--overwrite", action="store_true", help="replace an existing lake")
    generate.add_argument("--srm", action="store_true", help="plant a sample-ratio mismatch in the A/B "
                          "test's assignments (experiments/)")

    validate = commands.add_parser("validate", help="check an experiment file and print it resolved")
    validate.add_argument("config", metavar="CONFIG")
    validate.add_argument("overrides", nargs="*", metavar="KEY=VALUE")

    run = commands.add_parser("run", help="run an experiment")
    run.add_argument("config", metavar="CONFIG")
    run.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    run.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run in its working "
                     "directory (printed at the start of the run), from the last checkpoint")

    k8s = commands.add_parser("k8s", help="Kubernetes: the DaskCluster an experiment would create")
    k8s_commands = k8s.add_subparsers(dest="k8s_command", metavar="COMMAND", parser_class=_Parser,
                                      required=True)
    manifest = k8s_commands.add_parser("manifest", help="print the DaskCluster resource of CONFIG, checked "
                                       "against the operator's CRD")
    manifest.add_argument("config", metavar="CONFIG")
    manifest.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    manifest.add_argument("-o", "--output", metavar="FILE", help="write the YAML to FILE, not stdout")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``daskflow`` console script; returns the exit code."""
    try:
        args = build_parser().parse_args(argv)
    except _UsageError as exc:
        print(f"daskflow: error: {exc}", file=sys.stderr)
        return EXIT_USER
    except SystemExit as exc:  # --help, --version
        return int(exc.code or 0)
    if args.command is None:
        build_parser().print_help(sys.stderr)
        return EXIT_USER
    _setup_logging(quiet=args.quiet)
    with _signals_unwind() as disarm, _children_swept() as sweep:
        try:
            try:
                return _COMMANDS[args.command](args)
            finally:
                # Done (or failing): a signal from now on must not turn a finished, perhaps
                # published, command into an "interrupted; nothing was published".
                disarm()
        except DaskflowError as exc:
            print(f"daskflow: error: {exc}", file=sys.stderr)
            return EXIT_USER
        except KeyboardInterrupt as exc:
            sweep()
            name = _signal_name(exc)
            print(f"daskflow: interrupted ({name}); nothing was published{_resume_hint(args, exc)}",
                  file=sys.stderr)
            return EXIT_SIGNALLED.get(name, EXIT_INTERRUPTED)
        except Exception:
            log.exception("internal error (a bug in daskflow, please report it with this traceback)")
            return EXIT_INTERNAL


@contextlib.contextmanager
def _signals_unwind() -> Iterator[Callable[[], None]]:
    """While a command runs, SIGINT and SIGTERM raise :class:`Interrupted` in the main thread.

    Python's default SIGTERM ends the process at once: no cleanup, no message, the
    working directory left behind. Only the first signal raises; later ones are ignored
    while the command unwinds, since raising again inside a cleanup would cut it short,
    and so are those after the yielded ``disarm()`` (the command is over). Signal
    handlers can only be set from the main thread; elsewhere nothing changes.

    A signal handler runs wherever the main thread happens to be, and a few places drop
    any exception raised in them: a garbage-collector callback (distributed registers
    one), a ``__del__``, a weakref callback. Python reports such an exception to
    ``sys.unraisablehook`` and goes on, so the run would finish as if never signalled.
    The hook here catches our own interruption there and delivers the signal again, to be
    raised at the next ordinary line instead (and again, should that one be dropped too).
    """
    state = {"armed": True, "over": False}

    def disarm() -> None:
        state["armed"] = False
        state["over"] = True

    if threading.current_thread() is not threading.main_thread():
        yield disarm
        return

    def handler(signum: int, frame: Any) -> None:
        if not state["armed"]:
            return
        state["armed"] = False
        raise Interrupted(signal.Signals(signum).name)

    previous_hook = sys.unraisablehook

    def unraisable(info: Any) -> None:
        if isinstance(info.exc_value, Interrupted) and not state["over"]:
            threading.Thread(target=deliver_again, args=(signal.Signals[info.exc_value.signal_name],),
                             daemon=True, name="daskflow-signal").start()
            return
        previous_hook(info)

    def deliver_again(signum: int) -> None:
        # From another thread, a moment later: the main thread handles the signal once the code
        # that dropped the exception (and this hook, which would drop it too) has returned.
        time.sleep(0.05)
        if not state["over"]:
            state["armed"] = True
            os.kill(os.getpid(), signum)

    previous = {signum: signal.signal(signum, handler) for signum in (signal.SIGINT, signal.SIGTERM)}
    sys.unraisablehook = unraisable
    try:
        yield disarm
    finally:
        sys.unraisablehook = previous_hook
        for signum, old in previous.items():
            signal.signal(signum, old)


@contextlib.contextmanager
def _children_swept() -> Iterator[Any]:
    """Yields a function that ends the child processes this command started and left running.

    The cluster's teardown stops its worker processes; this is the guarantee for an
    interrupted command that none outlives it (e.g. one still starting when the signal
    came). Processes that were children before the command began are left alone, and so
    is multiprocessing's resource tracker, which exits by itself with its parent.
    """
    import psutil

    me = psutil.Process()
    before = {child.pid for child in me.children(recursive=True)}

    def sweep() -> None:
        with contextlib.suppress(psutil.Error):
            left = [child for child in me.children(recursive=True) if child.pid not in before
                    and not any("resource_tracker" in part for part in _cmdline(child))]
            for child in left:
                with contextlib.suppress(psutil.Error):
                    child.terminate()
            _, alive = psutil.wait_procs(left, timeout=5)
            for child in alive:
                with contextlib.suppress(psutil.Error):
                    child.kill()

    yield sweep


def _cmdline(process: Any) -> list[str]:
    try:
        return list(process.cmdline())
    except Exception:  # psutil.Error: gone, a zombie, or not ours to read
        return []


def _signal_name(exc: BaseException) -> str:
    """The signal behind an interruption (also when the runner re-raised it as another one)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, Interrupted):
            return seen.signal_name
        seen = seen.__cause__ or seen.__context__
    return "SIGINT"  # a plain KeyboardInterrupt: Python's own SIGINT handler


def _resume_hint(args: argparse.Namespace, exc: BaseException) -> str:
    """The command that continues an interrupted run, when the run kept its working directory.

    The runner says so by an attribute ``work_dir`` on the exception it raises (or one in
    its chain); only then is there anything to resume from.
    """
    work_dir = None
    seen: BaseException | None = exc
    while seen is not None and work_dir is None:
        work_dir = getattr(seen, "work_dir", None)
        seen = seen.__cause__ or seen.__context__
    if work_dir is None or args.command != "run" or not Path(work_dir).is_dir():
        return ""
    command = shlex.join(["daskflow", "run", args.config, *args.overrides, "--resume", str(work_dir)])
    return f"; continue from its checkpoints with: {command}"


def _setup_logging(quiet: bool) -> None:
    from daskflow._progress import TerminalHandler

    # Progress bars on a terminal, one line every few seconds elsewhere; per-iteration
    # detail only in run.log (docs/architecture.md, "Watching a run").
    handler = TerminalHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S"))
    # Its own level: the runner lowers the logger's to INFO for run.log, and -q must hold.
    handler.setLevel(logging.WARNING if quiet else logging.INFO)
    log.handlers = [h for h in log.handlers if not isinstance(h, logging.StreamHandler)
                    or isinstance(h, logging.FileHandler)]
    log.addHandler(handler)
    log.setLevel(logging.WARNING if quiet else logging.INFO)
    log.propagate = False


def _generate(args: argparse.Namespace) -> int:
    from daskflow._errors import OutputError
    from daskflow.cluster import connect, dashboard_link
    from daskflow.io import open_filesystem
    from daskflow.sample import generate_lake

    fs, path = open_filesystem(args.out)
    if not args.overwrite and fs.exists(path):  # found before a cluster starts, not after
        raise OutputError(f"output {args.out!r} already exists: pass --overwrite to replace it (the old "
                          "lake is removed only once the new one is complete), or choose another directory")
    with connect("local", n_workers=args.workers, memory_limit=args.memory_limit) as client:
        log.info("Dask dashboard: %s", dashboard_link(client))
        manifest = generate_lake(args.out, scale=args.scale, format=args.format, seed=args.seed,
                                 client=client, overwrite=args.overwrite, srm=args.srm)
    print(json.dumps({"out": args.out, "rows": manifest["rows"]}))
    return EXIT_OK


def _validate(args: argparse.Namespace) -> int:
    from daskflow.config import config_to_yaml, load_config, redacting
    from daskflow.experiment import preflight

    config = load_config(args.config, args.overrides)
    with redacting(config.secrets):
        # What run rejects before computing, found the same way, without a cluster.
        stages = preflight(config)
    print(config_to_yaml(config), end="")
    print(f"# valid: stages {' -> '.join(stages)}", file=sys.stderr)
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    from daskflow.config import load_config, redacting
    from daskflow.experiment import run_experiment

    config = load_config(args.config, args.overrides)
    with redacting(config.secrets):  # no log line or error message shows a secret (docs/security.md)
        result = run_experiment(config, resume=args.resume)
    print(json.dumps({"run_dir": str(result.run_dir), "metrics": str(result.run_dir / "metrics.json")}))
    return EXIT_OK


def _k8s(args: argparse.Namespace) -> int:
    from daskflow._errors import ConfigError, OutputError
    from daskflow.cluster import build_manifest, manifest_to_yaml
    from daskflow.config import load_config

    config = load_config(args.config, args.overrides)
    if config.cluster.kubernetes is None:
        raise ConfigError(f"{args.config} runs on cluster.kind {config.cluster.kind!r}: expected kind "
                          "kubernetes. Add a cluster.kubernetes section, or pass cluster.kind=kubernetes")
    text = manifest_to_yaml(build_manifest(**config.cluster.kubernetes.model_dump()))
    if args.output is None:
        print(text, end="")
        print("# valid DaskCluster (checked against the operator's CRD)", file=sys.stderr)
        return EXIT_OK
    try:
        with open(args.output, "w") as stream:
            stream.write(text)
    except OSError as exc:
        raise OutputError(f"cannot write the manifest to {args.output} ({exc.strerror}): choose a "
                          "writable --output path") from exc
    print(f"# valid DaskCluster written to {args.output}", file=sys.stderr)
    return EXIT_OK


_COMMANDS = {"generate": _generate, "validate": _validate, "run": _run, "k8s": _k8s}
