"""embconv → Parquet against embconv → safetensors and the usual pandas path, in the same run.

    python bench/bench_parquet.py --size 1GiB [--container zip] [--repeat 3] [--work DIR]

On the synthetic fastai collab ``learn.save`` file of make_synthetic.py (two tables of N × 128
float32 plus biases, vocabularies as --vocab sidecars; 1 GiB → N = 1,048,576), each command its
own process under ``/usr/bin/time -v`` (wall time, peak RSS; helpers of bench_convert.py):

* embconv → safetensors (verified): the reference (targets: Parquet ≤ 1.5× its time);
* embconv → Parquet (verified; both tables, ``out.user.parquet`` / ``out.item.parquet``):
  target peak RSS ≤ 0.3 GiB;
* (d) the usual path: ``torch.load`` → a pandas DataFrame per table (token, vector as one
  array per row, bias) → ``DataFrame.to_parquet`` (pyarrow): target slower and bigger than embconv.

``baseline SRC DST USERS ITEMS`` runs (d) alone (what the bench times). Output sizes are printed
too. Not part of ``make test``."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import bench_convert as bc  # noqa: E402
from make_synthetic import generate, parse_size  # noqa: E402


def baseline(src: str, dst: str, users: str, items: str) -> None:
    """(d): torch.load, then per table a pandas DataFrame → to_parquet, named like embconv's files."""
    import pandas as pd
    import torch

    obj = torch.load(src, map_location="cpu", weights_only=True)
    sd = obj["model"] if "model" in obj else obj
    t0 = time.perf_counter()
    for name, prefix, vocab in (("user", "u", users), ("item", "i", items)):
        with open(vocab, encoding="utf-8") as f:
            tokens = f.read().split("\n")[:-1]
        w = sd[f"{prefix}_weight.weight"].numpy()
        df = pd.DataFrame({"token": tokens, "vector": list(w), "bias": sd[f"{prefix}_bias.weight"].numpy()[:, 0]})
        df.to_parquet(f"{dst}.{name}.parquet")
    print(f"writer_seconds={time.perf_counter() - t0:.3f}", file=sys.stderr)


def _size(*paths: str) -> int:
    return sum(os.path.getsize(p) for p in paths if os.path.exists(p))


def run(container: str, size: int, work: str) -> list[tuple]:
    info = generate(os.path.join(work, "src"), size, container)
    src, vocab = info["path"], ["--vocab", f"user={info['users']}", "--vocab", f"item={info['items']}"]
    out = os.path.join(work, "out")
    os.makedirs(out, exist_ok=True)
    subprocess.run(["sync"])
    cwd = os.path.dirname(HERE)
    pq_files = [f"{out}/e.user.parquet", f"{out}/e.item.parquet"]
    base_files = [f"{out}/d.user.parquet", f"{out}/d.item.parquet"]

    st = bc.repeated([*bc.EMBCONV, "convert", "-q", src, f"{out}/e.safetensors", *vocab],
                     after=lambda: bc.clean(f"{out}/e.safetensors"), cwd=cwd)
    sizes: dict[str, int] = {}

    def keep_size(key: str, files: list[str]) -> None:
        sizes[key] = _size(*files)
        bc.clean(*files)

    pq = bc.repeated([*bc.EMBCONV, "convert", "-q", src, f"{out}/e.parquet", *vocab],
                     after=lambda: keep_size("embconv", pq_files), cwd=cwd)
    pq_nv = bc.repeated([*bc.EMBCONV, "convert", "-q", "--no-verify", src, f"{out}/e.parquet", *vocab],
                        after=lambda: bc.clean(*pq_files), cwd=cwd)
    base = bc.repeated([bc.PY, __file__, "baseline", src, f"{out}/d", info["users"], info["items"]],
                       after=lambda: keep_size("baseline", base_files), cwd=cwd)
    os.unlink(src)
    st_name, base_name = "embconv → safetensors (verified)", "(d) torch.load → pandas DataFrame → to_parquet"
    return [
        (st_name, st, None),
        ("embconv → Parquet (verified)", pq, st_name),
        ("embconv → Parquet (--no-verify)", pq_nv, st_name),
        (base_name, base, None),
        ("embconv → Parquet (verified) vs (d)", pq, base_name),
        ("(d) to_parquet alone (in-process)", {"wall": base["writer"], "rss": base["rss"], "writer": None}, None),
        (f"output bytes: embconv {sizes.get('embconv', 0):,} vs (d) {sizes.get('baseline', 0):,}",
         {"wall": 0.0, "rss": 0, "writer": None}, None),
    ]


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "baseline":
        baseline(*sys.argv[2:6])
        return 0
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="1GiB", help="bytes of weights in both tables (default 1GiB)")
    ap.add_argument("--container", default="zip", choices=["zip", "legacy"])
    ap.add_argument("--work", default=None, help="scratch folder (default: a temporary folder under ./bench-work)")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each command (median shown)")
    a = ap.parse_args()
    bc.REPEAT = max(1, a.repeat)
    size = parse_size(a.size)
    os.makedirs("bench-work", exist_ok=True)
    work = a.work or tempfile.mkdtemp(prefix="parquet-", dir="bench-work")
    need = int(size * 3.5)
    if shutil.disk_usage(work).free < need:
        raise SystemExit(f"needs about {bc.gib(need)} free in {work}")
    print(f"weights: {bc.gib(size)} ({size:,} bytes); python {sys.version.split()[0]}; {os.cpu_count()} cores; "
          f"scratch {work}", flush=True)
    try:
        rows = run(a.container, size, work)
        bc.print_table(f"Parquet, {a.container} container ({bc.gib(size)} of weights)", rows)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
