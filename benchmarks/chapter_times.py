"""Benchmark: how long each chapter takes to run top to bottom, as `make book` runs it.

Run as `python benchmarks/chapter_times.py [chapter ...]` (the sum of the chapters' run times;
about ten minutes on 2 CPU cores). Each chapter is executed with nbclient in a fresh kernel,
with the pinned CPU kernels (`repro.PINNED_CPU_ENV`) and LMBOOK_DEVICE=cpu unless set, one
chapter at a time, and never written back: the stored outputs are left as they are. The table
gives the wall-clock seconds of each chapter, kernel start included, and their sum; the
chapter contract allows 180 s per chapter on 2 cores (aim: 150 s). Not a test: it prints.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = ROOT / "book" / "chapters"
LIMIT_S = 150


def run_chapter(path: Path, timeout: int = 600) -> tuple[float, list[tuple[float, int]]]:
    """(seconds to execute the notebook at `path` in a fresh kernel, [(seconds, cell index)] per
    code cell, from nbclient's timing metadata); the outputs are discarded."""
    from datetime import datetime

    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=True,
                            resources={"metadata": {"path": str(ROOT)}})
    start = time.perf_counter()
    client.execute()
    total = time.perf_counter() - start
    cells = []
    for i, cell in enumerate(nb.cells):
        stamps = cell.get("metadata", {}).get("execution", {})
        if "iopub.execute_input" in stamps and "shell.execute_reply" in stamps:
            begin, end = (datetime.fromisoformat(stamps[k].replace("Z", "+00:00"))
                          for k in ("iopub.execute_input", "shell.execute_reply"))
            cells.append(((end - begin).total_seconds(), i))
    return total, cells


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("chapters", nargs="*", help="names such as 05_bert (default: every chapter)")
    parser.add_argument("--cells", type=int, default=0, metavar="N",
                        help="also list each chapter's N slowest cells (where to look first)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from lmbook_utils.repro import pin_cpu_numerics

    pin_cpu_numerics()
    os.environ.setdefault("LMBOOK_DEVICE", "cpu")
    paths = sorted(CHAPTERS.glob("*.ipynb"))
    if args.chapters:
        wanted = set(args.chapters)
        paths = [p for p in paths if p.stem in wanted or p.name in wanted]
        missing = wanted - {p.stem for p in paths} - {p.name for p in paths}
        if missing:
            parser.error(f"no chapter named {sorted(missing)} in {CHAPTERS}")
    print(f"device {os.environ['LMBOOK_DEVICE']}, {os.cpu_count()} CPUs; limit {LIMIT_S} s per chapter")
    print(f"{'chapter':<20} {'seconds':>8}")
    total, over = 0.0, []
    for path in paths:
        seconds, cells = run_chapter(path)
        total += seconds
        if seconds > LIMIT_S:
            over.append(path.stem)
        print(f"{path.stem:<20} {seconds:>8.1f}{'  over the limit' if seconds > LIMIT_S else ''}",
              flush=True)
        for cell_seconds, index in sorted(cells, reverse=True)[:args.cells]:
            print(f"{'':<4}cell {index:<3} {cell_seconds:>10.1f}", flush=True)
    print(f"{'sum':<20} {total:>8.1f}")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
