"""Benchmark ``embconv encode``: N rows x 3 categorical columns of a synthetic tabular model.

The model is tabular-shaped (a ``learn.save``-style bare state dict with ``embeds.0-2.weight``,
vocab sizes 1,000 / 10,000 / 100,000, dims 4 / 8 / 16, ``#na#`` first, text sidecar vocabularies),
because encode is about tabular categorical columns; its tables are unnamed (``cat_0`` …), so
the run also exercises the ``columns={table: column}`` mapping. The data (Parquet, written in row
groups) has the three string columns (1 % unseen values, 1 % missing) and an int id passed through.

Each measurement runs in its own process (peak RSS from ``wait4``):
  * stream: ``encode_file`` Parquet → Parquet (and CSV → Parquet on ``--csv-rows`` rows);
  * in-memory: ``converter.encode(model, df)`` vs the pandas baseline
    (``df[col].map(token→row)`` + ``np.take`` + ``pd.concat``) on the same DataFrame.

    .venv/bin/python bench/bench_encode.py --rows 10000000
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SIZES = [(1_000, 4), (10_000, 8), (100_000, 16)]
COLS = ["a", "b", "c"]


def make(folder: str, rows: int) -> None:
    from collections import OrderedDict

    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    import torch

    g = torch.Generator().manual_seed(0)
    sd = OrderedDict((f"embeds.{k}.weight", torch.randn(n, d, generator=g)) for k, (n, d) in enumerate(SIZES))
    torch.save(sd, os.path.join(folder, "model.pth"))
    for k, (n, _) in enumerate(SIZES):
        with open(os.path.join(folder, f"vocab{k}.txt"), "w") as f:
            f.write("#na#\n" + "".join(f"{COLS[k]}{i}\n" for i in range(1, n)))
    rng = np.random.default_rng(0)
    step = 1_000_000
    writer = None
    for s in range(0, rows, step):
        m = min(step, rows - s)
        cols = {"id": pa.array(np.arange(s, s + m))}
        for k, (n, _) in enumerate(SIZES):
            ids = rng.integers(1, int(n * 1.01), m)          # ~1 % beyond the vocabulary: unseen
            strs = np.char.add(COLS[k], ids.astype(str)).astype(object)
            strs[rng.random(m) < 0.01] = None
            cols[COLS[k]] = pa.array(strs, type=pa.string())
        t = pa.table(cols)
        writer = writer or pq.ParquetWriter(os.path.join(folder, "data.parquet"), t.schema)
        writer.write_table(t, row_group_size=step)
    writer.close()


CHILD = r"""
import sys, time, json
sys.path.insert(0, {root!r})
import converter
folder, mode, rows = {folder!r}, {mode!r}, {rows}
model = converter.load(folder + "/model.pth", vocab={{f"cat_{{k}}": f"{{folder}}/vocab{{k}}.txt" for k in range(3)}})
mapping = {{"cat_0": "a", "cat_1": "b", "cat_2": "c"}}
res = {{}}
if mode in ("stream", "stream-csv"):
    from converter.encoding import encode_file
    src = folder + ("/data.parquet" if mode == "stream" else "/data.csv")
    t = time.perf_counter()
    rep = encode_file(model, src, folder + "/out.parquet", columns=mapping)
    res = {{"seconds": time.perf_counter() - t, "rows": rep.rows, "unseen": [c.unseen for c in rep.columns]}}
else:
    import numpy as np, pandas as pd
    df = pd.read_parquet(folder + "/data.parquet")
    if rows < len(df): df = df.iloc[:rows]
    t = time.perf_counter()
    if mode == "encode":
        from converter.encoding import encode
        out = encode(model, df, columns=mapping)
    else:  # the pandas baseline
        pieces = [df[["id"]]]
        for tab, col in mapping.items():
            table = model.tables[tab]
            w = np.asarray(table.weight, dtype=np.float32)
            lookup = {{tok: i for i, tok in enumerate(table.vocab.strings)}}
            idx = df[col].map(lookup).fillna(0).astype(np.int64).to_numpy()
            pieces.append(pd.DataFrame(np.take(w, idx, axis=0), columns=[f"{{col}}_{{j}}" for j in range(w.shape[1])],
                                       index=df.index))
        out = pd.concat(pieces, axis=1)
    res = {{"seconds": time.perf_counter() - t, "rows": len(out), "cols": out.shape[1]}}
print(json.dumps(res))
"""


def run(folder: str, mode: str, rows: int) -> dict:
    p = subprocess.Popen([sys.executable, "-c", CHILD.format(root=ROOT, folder=folder, mode=mode, rows=rows)],
                         stdout=subprocess.PIPE, text=True)
    t = time.perf_counter()
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    out = p.stdout.read() if p.stdout else ""
    if status != 0:
        raise SystemExit(f"{mode} failed ({status})")
    res = json.loads(out.strip().splitlines()[-1])
    res.update(mode=mode, wall=wall, peak_rss_mib=usage.ru_maxrss / 1024)
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--csv-rows", type=int, default=2_000_000, help="rows for the CSV → Parquet run (0: skip)")
    ap.add_argument("--in-memory-rows", type=int, default=None, help="rows for encode vs the pandas baseline")
    ap.add_argument("--work", default=None)
    ap.add_argument("--make-only", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.make_only:  # in a child process, so the parent stays small (a forked child's peak RSS counts it)
        make(a.work, a.rows)
        if a.csv_rows:
            import pyarrow.csv as pcsv
            import pyarrow.parquet as pq

            pcsv.write_csv(pq.read_table(a.work + "/data.parquet").slice(0, a.csv_rows), a.work + "/data.csv")
        return
    folder = a.work or tempfile.mkdtemp(prefix="bench-encode-", dir=ROOT)
    t = time.perf_counter()
    subprocess.run([sys.executable, __file__, "--make-only", "--work", folder, "--rows", str(a.rows),
                    "--csv-rows", str(a.csv_rows)], check=True)
    print(f"made {a.rows:,} rows in {time.perf_counter() - t:.1f}s -> {folder}", flush=True)
    results = [run(folder, "stream", a.rows)]
    if a.csv_rows:
        results.append(run(folder, "stream-csv", a.csv_rows))
    n = a.in_memory_rows or a.rows
    results += [run(folder, "baseline", n), run(folder, "encode", n)]
    print("| run | rows | wall s (process) | timed s | peak RSS MiB |")
    print("|---|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['mode']} | {r['rows']:,} | {r['wall']:.1f} | {r['seconds']:.2f} | {r['peak_rss_mib']:.0f} |")
    b, e = results[-2], results[-1]
    stream = results[0]
    per_row = (b["seconds"] / b["rows"]) / (stream["seconds"] / stream["rows"])
    print(f"encode vs pandas baseline (in memory): {b['seconds'] / e['seconds']:.2f}x faster; "
          f"stream (file to file) vs baseline, per row: {per_row:.2f}x; stream peak RSS {stream['peak_rss_mib']:.0f} MiB")
    if not a.work:
        import shutil
        shutil.rmtree(folder)


if __name__ == "__main__":
    main()
