"""The ``daskflow`` command line."""

from daskflow.cli._main import build_parser, main

__all__ = ["build_parser", "main"]
