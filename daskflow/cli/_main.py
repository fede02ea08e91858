"""``daskflow`` command line: generate, validate, run, k8s manifest.

Exit codes: 0 success; 2 a user error (bad config, missing data, bad schema...) printed
as one message without a traceback; 1 an internal error (a bug: the traceback is printed);
130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence

from daskflow._errors import DaskflowError
from daskflow._version import __version__

__all__ = ["main", "build_parser"]

log = logging.getLogger("daskflow")

EXIT_OK, EXIT_INTERNAL, EXIT_USER, EXIT_INTERRUPTED = 0, 1, 2, 130


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
    try:
        return _COMMANDS[args.command](args)
    except DaskflowError as exc:
        print(f"daskflow: error: {exc}", file=sys.stderr)
        return EXIT_USER
    except KeyboardInterrupt:
        print("daskflow: interrupted; nothing was published", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception:
        log.exception("internal error (a bug in daskflow, please report it with this traceback)")
        return EXIT_INTERNAL


def _setup_logging(quiet: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S"))
    log.handlers = [h for h in log.handlers if not isinstance(h, logging.StreamHandler)
                    or isinstance(h, logging.FileHandler)]
    log.addHandler(handler)
    log.setLevel(logging.WARNING if quiet else logging.INFO)
    log.propagate = False


def _generate(args: argparse.Namespace) -> int:
    from daskflow.cluster import connect, dashboard_link
    from daskflow.sample import generate_lake

    with connect("local", n_workers=args.workers, memory_limit=args.memory_limit) as client:
        log.info("Dask dashboard: %s", dashboard_link(client))
        manifest = generate_lake(args.out, scale=args.scale, format=args.format, seed=args.seed,
                                 client=client, overwrite=args.overwrite)
    print(json.dumps({"out": args.out, "rows": manifest["rows"]}))
    return EXIT_OK


def _validate(args: argparse.Namespace) -> int:
    from daskflow.config import config_to_yaml, load_config, stages_to_run

    config = load_config(args.config, args.overrides)
    stages = stages_to_run(config)
    print(config_to_yaml(config), end="")
    print(f"# valid: stages {' -> '.join(stages)}", file=sys.stderr)
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    from daskflow.config import load_config
    from daskflow.experiment import run_experiment

    config = load_config(args.config, args.overrides)
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
