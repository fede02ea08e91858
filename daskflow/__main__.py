"""``python -m daskflow``: the same as the ``daskflow`` command."""

import sys

from daskflow.cli import main

if __name__ == "__main__":  # LocalCluster's worker processes re-import this module
    sys.exit(main())
