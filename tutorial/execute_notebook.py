"""Execute the tutorial notebook in place, without execution timestamps.

nbclient records when each cell started and finished in its ``execution`` metadata, so
re-running an unchanged notebook would rewrite every cell. This script removes that metadata
from earlier runs and executes with ``record_timing=False``: running again changes only the
cells whose outputs changed.

Usage::

    python tutorial/execute_notebook.py [NOTEBOOK]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "vanishing_gradients_tutorial.ipynb"
# The metadata key nbclient writes its timestamps under (iopub.status.busy, shell.execute_reply, ...).
TIMING_KEY = "execution"


def strip_execution_metadata(nb: nbformat.NotebookNode) -> int:
    """Remove every cell's ``execution`` metadata in place; return how many cells had some."""
    stripped = 0
    for cell in nb.cells:
        if TIMING_KEY in cell.get("metadata", {}):
            del cell.metadata[TIMING_KEY]
            stripped += 1
    return stripped


def execute_in_place(path: Path, timeout: int | None = None) -> nbformat.NotebookNode:
    """Execute the notebook at ``path`` from its own folder and write it back, untimed.

    Raises nbclient's CellExecutionError (the file is left as it was) when a cell fails.
    """
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    strip_execution_metadata(nb)
    client = NotebookClient(nb, timeout=timeout, record_timing=False,
                            resources={"metadata": {"path": str(path.parent.resolve())}})
    client.execute()
    strip_execution_metadata(nb)  # nothing should be there; make sure nothing is written
    nbformat.write(nb, path)
    return nb


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebook", nargs="?", type=Path, default=NOTEBOOK)
    parser.add_argument("--timeout", type=int, default=None,
                        help="seconds a cell may run (default: no limit)")
    args = parser.parse_args(argv)
    if not args.notebook.is_file():
        print(f"execute_notebook: {args.notebook} not found", file=sys.stderr)
        return 1
    try:
        execute_in_place(args.notebook, args.timeout)
    except CellExecutionError as error:
        print(f"execute_notebook: {args.notebook} failed, left unchanged:\n{error}", file=sys.stderr)
        return 1
    print(f"Executed {args.notebook}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
