"""embconv against the usual tools, on synthetic fastai collab files of a given size.

    python bench/bench_convert.py --size 1GiB [--containers zip,legacy] [--work DIR] [--keep]

For each torch container (zip, legacy) it writes a fastai-shaped ``learn.save`` file (two
tables of N × 128 float32 plus biases; vocabularies as --vocab sidecars, see make_synthetic.py)
and runs, each as its own process under ``/usr/bin/time -v`` (wall time and peak RSS):

* ``cp`` of the source (the disk's limit), and ``cp`` + ``sync`` of the copy;
* embconv → safetensors (verification on) vs (a) torch.load + safetensors.torch.save_file;
* embconv → word2vec text (both tables; verification on, and --no-verify) vs (b) torch.load +
  gensim KeyedVectors.save_word2vec_format (writer time alone reported too);
* embconv → ONNX with external data (verification + onnx.checker on), beside (c) what the onnx
  library itself needs to build, save, load and check the two LabelEncoders (no weights);
* embconv inspect (human form) of the source.

The quick commands run ``--repeat`` times (default 3): the table shows the median wall time
(min–max in brackets) and the largest peak RSS; the slow ones (word2vec, gensim) run once.

Then gensim loads a slice of both word2vec files (``--gensim-check-rows``, 0 = all) and the
values are compared bit for bit. Prints one table with ratios. Not part of ``make test``."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from make_synthetic import generate, parse_size  # noqa: E402

PY = sys.executable
EMBCONV = [PY, "-m", "converter"]


COLD = False  # --cold: empty the page cache before every measured command
REPEAT = 3  # --repeat: runs of each quick command


def drop_caches() -> None:
    """Write back dirty pages and empty the page cache, so a run reads from the disk (root only)."""
    subprocess.run(["sync"], check=True)
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def timed(cmd: list[str], **kw) -> dict:
    """Run ``cmd`` under /usr/bin/time -v: wall seconds, peak RSS bytes, stderr text."""
    if COLD:
        drop_caches()
    t0 = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True, **kw)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"failed ({p.returncode}): {' '.join(cmd)}\n{p.stdout}\n{p.stderr}")
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr).group(1)) * 1024
    m = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", p.stderr)
    h, mnt, sec = int(m.group(1) or 0), int(m.group(2)), float(m.group(3))
    w = re.search(r"writer_seconds=([\d.]+)", p.stderr)
    return {"wall": h * 3600 + mnt * 60 + sec if m else wall, "rss": rss, "stderr": p.stderr,
            "writer": float(w.group(1)) if w else None}


def repeated(cmd: list[str], after=None, **kw) -> dict:
    """``timed`` REPEAT times (``after()`` between runs): median wall, its spread, largest RSS."""
    runs = []
    for _ in range(REPEAT):
        runs.append(timed(cmd, **kw))
        if after is not None:
            after()
        subprocess.run(["sync"])
    walls = sorted(r["wall"] for r in runs)
    out = dict(runs[0])
    out.update(wall=walls[len(walls) // 2], rss=max(r["rss"] for r in runs), spread=(walls[0], walls[-1]))
    return out


def clean(*paths: str) -> None:
    for p in paths:
        for f in [p, p + ".data", p + ".manifest.json"]:
            if os.path.exists(f):
                os.unlink(f)


def gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def gensim_identical(a: str, b: str, rows: int) -> str:
    import numpy as np
    from gensim.models import KeyedVectors

    ka = KeyedVectors.load_word2vec_format(a, binary=False, limit=rows or None)
    kb = KeyedVectors.load_word2vec_format(b, binary=False, limit=rows or None)
    same = ka.index_to_key == kb.index_to_key and np.array_equal(ka.vectors.view(np.uint32),
                                                                 kb.vectors.view(np.uint32))
    return f"{len(ka.index_to_key):,} rows: {'identical' if same else 'DIFFERENT'}"


def run(container: str, size: int, work: str, check_rows: int, skip_gensim: bool) -> list[tuple]:
    info = generate(os.path.join(work, "src"), size, container)
    src, vocab = info["path"], ["--vocab", f"user={info['users']}", "--vocab", f"item={info['items']}"]
    out = os.path.join(work, "out")
    os.makedirs(out, exist_ok=True)
    rows: list[tuple] = []
    subprocess.run(["sync"])

    def emb(args: list[str]) -> dict:
        return timed([*EMBCONV, *args], cwd=os.path.dirname(HERE))

    def emb_repeated(args: list[str], *outputs: str) -> dict:
        return repeated([*EMBCONV, *args], after=lambda: clean(*outputs), cwd=os.path.dirname(HERE))

    cp = repeated(["cp", src, f"{out}/copy.pth"], after=lambda: clean(f"{out}/copy.pth"))
    cps = repeated(["sh", "-c", f"cp {src} {out}/copy.pth && sync {out}/copy.pth"],
                   after=lambda: clean(f"{out}/copy.pth"))
    rows.append(("cp source", cp, None))
    rows.append(("cp source + sync", cps, None))

    st = emb_repeated(["convert", "-q", src, f"{out}/e.safetensors", *vocab], f"{out}/e.safetensors")
    base_st = repeated([PY, f"{HERE}/baselines.py", "torch-safetensors", src, f"{out}/a.safetensors"],
                       after=lambda: clean(f"{out}/a.safetensors"))
    rows.append(("embconv → safetensors (verified)", st, "cp source"))
    rows.append(("embconv → safetensors vs cp + sync (both on disk)", st, "cp source + sync"))
    rows.append(("(a) torch.load + safetensors save_file", base_st, None))
    rows.append(("embconv → safetensors vs (a)", st, "(a) torch.load + safetensors save_file"))

    onnx = emb_repeated(["convert", "-q", "--external-data", src, f"{out}/e.onnx", *vocab], f"{out}/e.onnx")
    keys = repeated([PY, f"{HERE}/baselines.py", "onnx-keys", f"{out}/k.onnx", info["users"], info["items"]],
                    after=lambda: clean(f"{out}/k.onnx"))
    rows.append(("embconv → ONNX + external data (verified)", onnx, "cp source"))
    rows.append(("(c) onnx library alone: the 2 LabelEncoders, saved + loaded + checked", keys, None))
    rows.append(("embconv → ONNX vs (c)", onnx, "(c) onnx library alone: the 2 LabelEncoders, saved + loaded + checked"))

    ins = emb_repeated(["inspect", src, *vocab])
    rows.append(("embconv inspect (human)", ins, None))
    ins_nv = emb_repeated(["inspect", src])
    rows.append(("embconv inspect (no --vocab)", ins_nv, None))

    w2v = emb(["convert", "-q", src, f"{out}/e.vec", *vocab])
    w2v_nv = emb(["convert", "-q", "--no-verify", "--force", src, f"{out}/e.vec", *vocab])
    rows.append(("embconv → word2vec text (verified)", w2v, None))
    rows.append(("embconv → word2vec text (--no-verify)", w2v_nv, None))
    if not skip_gensim:
        gs = timed([PY, f"{HERE}/baselines.py", "gensim", src, f"{out}/g", info["users"], info["items"]])
        rows.append(("(b) torch.load + gensim save_word2vec_format", gs, None))
        rows.append(("embconv w2v (verified) vs (b) whole process", w2v, "(b) torch.load + gensim save_word2vec_format"))
        gw = {"wall": gs["writer"], "rss": gs["rss"], "writer": None}
        rows.append(("(b) gensim writer alone (in-process)", gw, None))
        rows.append(("embconv w2v (verified) vs (b) writer alone", w2v, "(b) gensim writer alone (in-process)"))
        rows.append(("embconv w2v (--no-verify) vs (b) writer alone", w2v_nv, "(b) gensim writer alone (in-process)"))
        for t in ("user", "item"):
            print(f"[{container}] gensim reads {t}: "
                  f"{gensim_identical(f'{out}/e.{t}.vec', f'{out}/g.{t}.vec', check_rows)}", flush=True)
        clean(f"{out}/g.user.vec", f"{out}/g.item.vec")
    clean(f"{out}/e.user.vec", f"{out}/e.item.vec")
    os.unlink(src)
    return rows



def print_table(title: str, rows: list) -> None:
    """A markdown table of (name, result, baseline name or None) rows: wall time with its spread,
    peak RSS, and the ratio to the baseline measured in the same run (a result without a wall
    time prints as an empty row)."""
    by = {name: r for name, r, _ in rows}
    print(f"\n### {title}\n")
    print("| run | wall s | peak RSS | ratio |")
    print("|---|---:|---:|---|")
    for name, r, vs in rows:
        if not r.get("wall"):
            print(f"| {name} | | | |")
            continue
        ratio = ""
        if vs is not None:
            o = by[vs]
            ratio = (f"{r['wall'] / o['wall']:.2f}× the time of '{vs}'" if r["wall"] >= o["wall"]
                     else f"{o['wall'] / r['wall']:.1f}× faster than '{vs}'")
            ratio += f"; RSS {r['rss'] / o['rss']:.2f}×"
        spread = r.get("spread")
        wall = f"{r['wall']:.2f}" + (f" ({spread[0]:.2f}–{spread[1]:.2f})" if spread and REPEAT > 1 else "")
        print(f"| {name} | {wall} | {gib(r['rss'])} | {ratio} |")

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="1GiB", help="bytes of weights in both tables (default 1GiB)")
    ap.add_argument("--containers", default="zip,legacy")
    ap.add_argument("--work", default=None, help="scratch folder (default: a temporary folder under ./bench-work)")
    ap.add_argument("--gensim-check-rows", type=int, default=200_000,
                    help="rows per table gensim loads back from both writers' files (0 = all)")
    ap.add_argument("--skip-gensim", action="store_true")
    ap.add_argument("--cold", action="store_true",
                    help="empty the page cache before each command (needs root): cp then measures the disk")
    ap.add_argument("--keep", action="store_true", help="keep the scratch folder")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each quick command (median shown)")
    a = ap.parse_args()
    global COLD, REPEAT
    REPEAT = max(1, a.repeat)
    if a.cold:
        try:
            drop_caches()
        except OSError as e:
            raise SystemExit(f"--cold needs to write /proc/sys/vm/drop_caches: {e}") from None
        COLD = True
    size = parse_size(a.size)
    os.makedirs("bench-work", exist_ok=True)
    work = a.work or tempfile.mkdtemp(prefix="run-", dir="bench-work")
    free = shutil.disk_usage(work).free
    need = int(size * 4.5)
    if free < need:
        raise SystemExit(f"needs about {gib(need)} free in {work}, has {gib(free)}")
    print(f"weights: {gib(size)} ({size:,} bytes) per file; python {sys.version.split()[0]}; "
          f"{os.cpu_count()} cores; scratch {work}", flush=True)
    try:
        for container in a.containers.split(","):
            rows = run(container, size, work, a.gensim_check_rows, a.skip_gensim)
            print_table(f"{container} container ({gib(size)} of weights)", rows)
            sys.stdout.flush()
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
