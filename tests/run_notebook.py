"""Execute one notebook in a process of its own, so the notebook tier can run two at a time,
each with its own environment (results directory, kernel path): ``python -m tests.run_notebook
NOTEBOOK OUT [PARAMS_JSON]``. The executed notebook is written to OUT even when a cell fails."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient


def with_params(nb, params: dict) -> None:
    """Set the notebook's ``PARAMS = {}`` line to ``params``, as a reader edits it."""
    for cell in nb.cells:
        if cell.cell_type == "code" and "PARAMS = {}" in cell.source:
            cell.source = re.sub(r"^PARAMS = \{\}", f"PARAMS = {params!r}", cell.source,
                                 flags=re.M)
            return
    raise AssertionError("no PARAMS = {} line in the notebook's setup cell")


def main(source: str, out: str, params: str | None = None) -> int:
    nb = nbformat.read(source, as_version=4)
    if params:
        with_params(nb, json.loads(params))
    client = NotebookClient(nb, timeout=240, kernel_name="python3",
                            resources={"metadata": {"path": str(Path(source).parent)}})
    try:
        client.execute()
        return 0
    except Exception as exc:  # the test reads the error from the written notebook
        print(f"{type(exc).__name__}: {str(exc)[-2000:]}", file=sys.stderr)
        return 1
    finally:
        nbformat.write(nb, out)


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
