"""`make demo`: run embconv on the bundled example learners and show what it finds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run(*args: str) -> None:
    print(f"\n$ embconv {' '.join(args)}", flush=True)
    subprocess.run([sys.executable, "-m", "converter", *args], check=True)


def main() -> None:
    examples = sorted(p for p in HERE.iterdir() if p.suffix in (".pkl", ".pth", ".h5"))
    if not examples:
        sys.exit("no example learners found in examples/")
    for path in examples:
        rel = str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else str(path)
        run("scan", rel)
        run("inspect", rel)


if __name__ == "__main__":
    main()
