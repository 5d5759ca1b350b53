"""`make demo`: convert the bundled example learners into every format and show the result.

The examples are real fixtures from tests/fixtures/ (made by real fastai, see its README):
  * a fastai 2.8 collaborative-filtering export (EmbeddingDotBias on a tiny movie-ratings set);
  * a fastai 0.7 `.h5` state dict (torch 0.3 layout), which carries no vocabulary — its rows are
    labelled from the ratings CSV it was trained on, the way fastai 0.7 numbered them;
  * a fastai 2.8 tabular export and a small CSV, whose categorical columns `encode` replaces by
    their learned vectors.
Then the data path: Parquet, a nearest-neighbour query in DuckDB's SQL, `embconv similar`.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "demo-out"
V2 = ROOT / "tests" / "fixtures" / "fastai2" / "collab_dot_export.pkl"
V07 = ROOT / "tests" / "fixtures" / "fastai07" / "collab.h5"
TABULAR = ROOT / "tests" / "fixtures" / "encode" / "fastai2"
V07_VOCAB = ["--vocab", f"u.weight={V07.parent / 'ratings.csv'}:userId",
             "--vocab", f"i.weight={V07.parent / 'ratings.csv'}:title"]


def embconv(*args: str) -> None:
    shown = " ".join(shlex.quote(str(a).replace(str(ROOT) + "/", "")) for a in args)
    print(f"\n$ embconv {shown}", flush=True)
    subprocess.run([sys.executable, "-m", "converter", *map(str, args)], check=True, cwd=ROOT)


def main() -> None:
    OUT.mkdir(exist_ok=True)
    print("embconv demo: two real example learners → safetensors, ONNX, word2vec text and binary")
    embconv("inspect", V2)
    for suffix in (".safetensors", ".onnx", ".vec", ".bin"):
        embconv("convert", V2, OUT / f"fastai2_collab{suffix}", "--force")
    embconv("inspect", V07, *V07_VOCAB, "--rows", "3")
    for suffix in (".safetensors", ".onnx", ".vec", ".bin"):
        embconv("convert", V07, OUT / f"fastai07_collab{suffix}", *V07_VOCAB, "--force")
    embconv("verify", OUT / "fastai07_collab.safetensors", "--against", V07, *V07_VOCAB)
    embconv("inspect", OUT / "fastai2_collab.safetensors", "--rows", "2")

    # Reading an output back with nothing but the safetensors library:
    from safetensors import safe_open

    path = OUT / "fastai2_collab.safetensors"
    with safe_open(str(path), framework="np") as f:
        b = bytes(f.get_tensor("title.vocab.utf8"))
        o = f.get_tensor("title.vocab.offsets").tolist()
        titles = [b[o[i] : o[i + 1]].decode("utf-8") for i in range(len(o) - 1)]
        vectors = f.get_tensor("title.weight")
    print(f"\nsafetensors only: {path.name} holds {vectors.shape[0]} title vectors; "
          f"row 1 is {titles[1]!r}: {vectors[1]}")
    data_path()
    print(f"\nAll outputs are in {OUT.relative_to(ROOT)}/. See README.md for loading each format.")


def data_path() -> None:
    """Where data people go next: Parquet, SQL over it, nearest rows, entity-embedding features."""
    import duckdb
    import pandas as pd

    embconv("convert", V2, OUT / "fastai2_collab.parquet", "--force")  # one file per table
    titles = OUT / "fastai2_collab.title.parquet"
    dim = pd.read_parquet(titles).vector.iloc[0].shape[0]
    sql = (f"SELECT token, array_cosine_similarity(vector::FLOAT[{dim}], (SELECT vector::FLOAT[{dim}] "
           f"FROM '{titles}' WHERE token = 'Die Hard (1988)')) AS cosine FROM '{titles}' "
           "WHERE NOT is_unknown AND token <> 'Die Hard (1988)' ORDER BY cosine DESC LIMIT 3")
    print(f"\nDuckDB, nearest titles in SQL:\n  {sql.replace(str(ROOT) + '/', '')}")
    for token, cosine in duckdb.sql(sql).fetchall():
        print(f"  {token!r:<24} {cosine:.4f}")
    embconv("similar", V2, "Die Hard (1988)", "-k", "3")
    embconv("encode", TABULAR / "tabular_export.pkl", TABULAR / "test.csv", OUT / "encoded.parquet", "--force")
    encoded = pd.read_parquet(OUT / "encoded.parquet")
    print(f"\nencoded.parquet: {encoded.shape[0]} rows, columns {', '.join(map(str, encoded.columns[:9]))} …")


if __name__ == "__main__":
    main()
