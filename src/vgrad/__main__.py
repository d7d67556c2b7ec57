"""``python -m vgrad`` and the ``vgrad`` console script; the logic lives in :mod:`vgrad.cli`."""

import sys

from vgrad.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
