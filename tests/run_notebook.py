"""Execute one notebook in a process of its own, so the notebook tier can run two at a time,
each with its own environment (results directory, kernel path): ``python -m tests.run_notebook
NOTEBOOK OUT [SETUP_JSON]``, where SETUP_JSON is ``{"quick": bool, "params": ["key=value", ...]}``.
The executed notebook is written to OUT even when a cell fails."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient


def with_setup(nb, quick: bool, params: list[str] | dict) -> None:
    """Set the notebook's ``QUICK = True`` and ``PARAMS = {}`` lines, as a reader edits them
    (the driver takes ``key=value`` strings as the command line does, or a dict)."""
    for cell in nb.cells:
        if cell.cell_type == "code" and "PARAMS = {}" in cell.source:
            source = re.sub(r"^PARAMS = \{\}", f"PARAMS = {params!r}", cell.source, flags=re.M)
            source, found = re.subn(r"^QUICK = True", f"QUICK = {quick!r}", source, flags=re.M)
            assert found == 1, "no QUICK = True line in the notebook's setup cell"
            cell.source = source
            return
    raise AssertionError("no PARAMS = {} line in the notebook's setup cell")


def main(source: str, out: str, setup: str | None = None) -> int:
    nb = nbformat.read(source, as_version=4)
    if setup:
        given = json.loads(setup)
        with_setup(nb, given.get("quick", True), given.get("params", {}))
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
