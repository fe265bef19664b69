"""Executes every tutorial notebook top to bottom and fails on the first error in any of them.

Default (what ``make tutorials`` runs): reduced budget (CAPTUM_NETINV_TUTORIAL_QUICK=1), each
notebook executed in a temporary copy within a wall-clock budget; the committed notebooks are left
untouched. ``--write``: full budget, the outputs are written back into the committed notebooks.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

TUTORIALS = Path(__file__).resolve().parent
QUICK_VARIABLE = "CAPTUM_NETINV_TUTORIAL_QUICK"
KERNEL_NAME = "captum-netinv-python"
QUICK_BUDGET_S = 180.0
FULL_BUDGET_S = 1800.0


def write_kernelspec(folder: Path) -> None:
    r"""
    A kernelspec that starts ipykernel with this very interpreter, so the notebooks run in the
    environment that runs this script whatever kernels the user has registered elsewhere.
    """
    spec_dir = folder / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    spec = {
        # ipykernel 7 logs a warning about unencrypted local TCP for every kernel: keep errors only
        "argv": [
            sys.executable,
            "-m",
            "ipykernel_launcher",
            "-f",
            "{connection_file}",
            "--IPKernelApp.log_level=ERROR",
        ],
        "display_name": f"Python ({sys.executable})",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))


def execute(notebook_path: Path, workdir: Path, budget_s: float) -> nbformat.NotebookNode:
    r"""
    Runs ``notebook_path`` in ``workdir`` and returns it with its outputs; raises if a cell
    fails or the notebook as a whole runs past ``budget_s`` seconds.
    """
    notebook = nbformat.read(notebook_path, as_version=4)
    deadline = time.monotonic() + budget_s
    client = NotebookClient(
        notebook,
        kernel_name=KERNEL_NAME,
        resources={"metadata": {"path": str(workdir)}},
        # the budget is for the whole notebook: each cell may use what the earlier ones left
        timeout_func=lambda cell: max(1, int(deadline - time.monotonic())),
        startup_timeout=120,
        record_timing=False,
    )
    client.execute()
    # kernelspec of the committed notebooks stays the standard one, whoever executed them
    notebook.metadata["kernelspec"] = {
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
        "name": "python3",
    }
    return notebook


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "notebooks",
        nargs="*",
        type=Path,
        help="notebooks to run (default: tutorials/*.ipynb)",
    )
    parser.add_argument(
        "--write",
        action="store_true",
        help="full budget; store the outputs in the committed notebooks",
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=None,
        help=f"seconds per notebook (default {QUICK_BUDGET_S:.0f} quick, "
        f"{FULL_BUDGET_S:.0f} with --write)",
    )
    args = parser.parse_args(argv)
    notebooks = [path.resolve() for path in args.notebooks] or sorted(TUTORIALS.glob("*.ipynb"))
    if not notebooks:
        print(f"no notebooks in {TUTORIALS}", file=sys.stderr)
        return 1
    budget_s = args.budget or (FULL_BUDGET_S if args.write else QUICK_BUDGET_S)
    if args.write:
        os.environ.pop(QUICK_VARIABLE, None)
    else:
        os.environ[QUICK_VARIABLE] = "1"
    mode = "full budget, writing outputs" if args.write else "quick mode"
    print(f"executing {len(notebooks)} notebooks ({mode}, {budget_s:.0f} s each)", flush=True)

    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="captum_netinv_tutorials_") as scratch:
        scratch_dir = Path(scratch)
        write_kernelspec(scratch_dir / "jupyter")
        # without ipywidgets, tqdm.auto warns once per kernel (with a local path) before it
        # falls back to text bars: keep that out of the outputs
        # (matched by its message: a category filter would import tqdm at interpreter start)
        os.environ["PYTHONWARNINGS"] = "ignore:IProgress not found"
        os.environ["JUPYTER_PATH"] = os.pathsep.join(
            [str(scratch_dir / "jupyter"), *filter(None, [os.environ.get("JUPYTER_PATH")])]
        )
        for notebook_path in notebooks:
            workdir = scratch_dir / notebook_path.stem
            workdir.mkdir()
            copy = workdir / notebook_path.name
            shutil.copyfile(notebook_path, copy)
            start = time.monotonic()
            try:
                executed = execute(copy, workdir, budget_s)
                elapsed = time.monotonic() - start
                if elapsed > budget_s:
                    raise TimeoutError(f"took {elapsed:.1f} s, over the {budget_s:.0f} s budget")
            except (CellExecutionError, CellTimeoutError, DeadKernelError, TimeoutError) as error:
                elapsed = time.monotonic() - start
                print(f"FAILED {notebook_path.name} after {elapsed:.1f} s:\n{error}", flush=True)
                failures.append(notebook_path.name)
                continue
            if args.write:
                nbformat.write(executed, notebook_path)
            print(f"ok     {notebook_path.name}: {elapsed:.1f} s", flush=True)
    if failures:
        print(f"{len(failures)} of {len(notebooks)} notebooks failed: {', '.join(failures)}")
        return 1
    print(f"all {len(notebooks)} notebooks executed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
