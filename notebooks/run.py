"""Executes every notebook in this folder headless and checks that its views rendered.

    python notebooks/run.py [--save DIR] [--param NAME=VALUE ...] [NOTEBOOK.ipynb ...]

Each notebook runs with nbclient in a fresh kernel (the Python running this script, so the
packages of notebooks/requirements.txt), with this folder as working directory as in Jupyter.
A cell error fails the run. Then the outputs are checked, so that a view which quietly drew
nothing fails too:

- a cell tagged `figure` must have produced an image/png output, one tagged `table` a
  text/html output (a rendered DataFrame);
- every notebook must produce at least one figure;
- the views listed in REQUIRED_VIEWS must exist as cells tagged `view:NAME`, each with the
  outputs its `figure`/`table` tags promise, so deleting a view or its tags fails as well.

With --save DIR the executed notebooks and their figures (PNG) are written to DIR for a look.
--param NAME=VALUE sets a parameter as papermill would: a cell `NAME = "VALUE"` runs right after
the cell tagged `parameters` (CI runs the notebook once more on a capture tree this way).
Exit status: 0 when every notebook passed, 1 otherwise.
"""

import argparse
import base64
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

HERE = Path(__file__).resolve().parent

# The six views issue 6 asks of the fingerprint notebook.
REQUIRED_VIEWS = {
    "fingerprints.ipynb": [
        "os-mix",
        "syns-over-time",
        "top-hosts",
        "unknown-signatures",
        "ttl-distance",
        "mtu-link",
    ],
}

# What each output tag promises, as the MIME type the cell must have produced.
PROMISES = {"figure": "image/png", "table": "text/html"}

CELL_TIMEOUT_S = 600


def mime_types(cell):
    """MIME types of a code cell's rich outputs (display_data and execute_result)."""
    return {
        mime
        for out in cell.get("outputs", [])
        if out.get("output_type") in ("display_data", "execute_result")
        for mime in out.get("data", {})
    }


def check_outputs(name, nb):
    """Problems with the executed notebook's outputs, as readable lines (empty: all good)."""
    problems = []
    views = {}
    figures = 0
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        tags = cell.metadata.get("tags", [])
        have = mime_types(cell)
        figures += sum(
            "image/png" in out.get("data", {}) for out in cell.get("outputs", [])
        )
        for tag in tags:
            if tag.startswith("view:"):
                views[tag.removeprefix("view:")] = (index, tags)
            want = PROMISES.get(tag)
            if want and want not in have:
                problems.append(f"cell {index} (tags {tags}): no {want} output")
    if figures == 0:
        problems.append("no figure (image/png) at all")
    for view in REQUIRED_VIEWS.get(name, []):
        if view not in views:
            problems.append(f"view {view!r}: no cell tagged view:{view}")
        elif not PROMISES.keys() & set(views[view][1]):
            problems.append(
                f"view {view!r}: cell {views[view][0]} promises no output "
                f"(tag it {' or '.join(PROMISES)})"
            )
    return problems, figures


def save(nb, path, out_dir):
    """Writes the executed notebook and each PNG it produced into out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out_dir / path.name)
    for index, cell in enumerate(nb.cells):
        for n, out in enumerate(cell.get("outputs", [])):
            png = out.get("data", {}).get("image/png")
            if png:
                (out_dir / f"{path.stem}-cell{index:02}-{n}.png").write_bytes(
                    base64.b64decode(png)
                )


def inject(nb, params):
    """Adds a cell setting `params` (name -> string) right after the `parameters` cell."""
    if not params:
        return
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    code = "\n".join(f"{name} = {value!r}" for name, value in params.items())
    nb.cells.insert(at + 1, nbformat.v4.new_code_cell(code, metadata={"tags": ["injected"]}))


def run(path, out_dir, params=None):
    """Executes one notebook; returns True when it ran cleanly and its checks passed."""
    nb = nbformat.read(path, as_version=4)
    inject(nb, params)
    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    start = time.monotonic()
    try:
        client.execute()
    except CellExecutionError as err:
        print(f"FAIL {path.name}: a cell raised\n{err}", file=sys.stderr)
        return False
    finally:
        if out_dir:
            save(nb, path, out_dir)
    elapsed = time.monotonic() - start
    problems, figures = check_outputs(path.name, nb)
    for problem in problems:
        print(f"FAIL {path.name}: {problem}", file=sys.stderr)
    if not problems:
        print(f"ok   {path.name}: {figures} figures, {elapsed:.1f} s")
    return not problems


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path,
                        help="notebooks to run (default: every notebooks/*.ipynb)")
    parser.add_argument("--save", type=Path, metavar="DIR",
                        help="write the executed notebooks and their figures here")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="set a parameter of the notebooks (a string), as papermill -p")
    args = parser.parse_args()
    params = dict(p.split("=", 1) for p in args.param)
    paths = [p.resolve() for p in args.notebooks] or sorted(HERE.glob("*.ipynb"))
    if not paths:
        print(f"FAIL: no notebook in {HERE}", file=sys.stderr)
        return 1
    results = [run(path, args.save, params) for path in paths]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
