"""Execute the notebooks and store them with their outputs, so that figures show when browsing.

    python notebooks/build.py                 # every notebook in this folder
    python notebooks/build.py 01 05           # the notebooks whose names start with these

Each notebook runs top to bottom in a fresh kernel from this folder (as Jupyter would), its
outputs are written back into the file, and the run time and file size are printed. A notebook
over MAX_BYTES (1 MB) is an error: lower its figures' dpi or size, or draw fewer of them.
The CI executes every notebook anyway (pytest --nbmake); this script only refreshes the stored
outputs.
"""
import argparse
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

FOLDER = Path(__file__).resolve().parent
MAX_BYTES = 1 << 20


def build(path, timeout=600):
    """Execute ``path`` in place; returns (seconds, bytes)."""
    notebook = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    seconds = time.perf_counter() - start
    for cell in notebook.cells:  # keep stored files stable: no execution timestamps
        cell.get("metadata", {}).pop("execution", None)
    nbformat.write(notebook, path)
    return seconds, path.stat().st_size


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("prefixes", nargs="*", help="notebook name prefixes (default: all)")
    args = parser.parse_args(argv)
    paths = sorted(p for p in FOLDER.glob("*.ipynb")
                   if not args.prefixes or any(p.name.startswith(x) for x in args.prefixes))
    if not paths:
        print(f"no notebook in {FOLDER} matches {args.prefixes}", file=sys.stderr)
        return 2
    too_big = []
    for path in paths:
        seconds, size = build(path)
        print(f"{path.name}: {seconds:5.1f} s, {size / 1024:6.0f} KB")
        if size > MAX_BYTES:
            too_big.append(path.name)
    if too_big:
        print(f"over {MAX_BYTES // 1024} KB: {', '.join(too_big)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
