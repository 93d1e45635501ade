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


def run_chapter(path: Path, timeout: int = 600) -> float:
    """Seconds to execute the notebook at `path` in a fresh kernel (outputs discarded)."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(ROOT)}})
    start = time.perf_counter()
    client.execute()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("chapters", nargs="*", help="names such as 05_bert (default: every chapter)")
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
        seconds = run_chapter(path)
        total += seconds
        if seconds > LIMIT_S:
            over.append(path.stem)
        print(f"{path.stem:<20} {seconds:>8.1f}{'  over the limit' if seconds > LIMIT_S else ''}",
              flush=True)
    print(f"{'sum':<20} {total:>8.1f}")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
