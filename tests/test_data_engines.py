"""embconv's Parquet where data people work: DuckDB finds nearest neighbours in SQL, and Spark
(local[2]) joins the user and item tables with ratings and computes fastai's own dot-model
prediction — equal to fastai's (fixture truth) within 1e-5. Nothing beyond what their docs show."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import converter
from tests.conftest import real_model_truths
from tests.test_convert_end_to_end import COLLAB, _sidecars
from tests.test_loaders import fixture_truths

duckdb = pytest.importorskip("duckdb")
SPARK_COLLAB = [(p, t) for p, t in COLLAB if t.get("artifact") == "export"]


def _parquet(tmp_path: Path, path: Path, truth: dict) -> tuple[converter.EmbeddingModel, dict[str, Path]]:
    model = converter.load(path, vocab=_sidecars(path, truth))
    missing = tuple(truth["y_range"]) if model.model.y_range is None and truth.get("y_range") else None
    files = converter.convert(path, tmp_path / "out.parquet", vocab=_sidecars(path, truth), y_range=missing)
    by_table = {t: next(f for f in files if f.name == f"out.{t}.parquet") for t in model.tables}
    return model, by_table


@pytest.mark.parametrize("path,truth", COLLAB[:3], ids=[f"{p.parent.name}/{p.name}" for p, _ in COLLAB[:3]])
def test_duckdb_nearest_neighbours_in_sql(tmp_path, path, truth):
    model, files = _parquet(tmp_path, path, truth)
    table = next(t for t in model.tables.values() if t.vocab is not None)
    w = table.weight.astype(np.float32)
    query_row = next(i for i in range(table.rows) if i != table.vocab.unknown_index)
    dim = table.dim
    sql = (f"SELECT token, array_cosine_similarity(vector::FLOAT[{dim}], "
           f"(SELECT vector::FLOAT[{dim}] FROM '{files[table.name]}' WHERE row = {query_row})) AS sim "
           f"FROM '{files[table.name]}' WHERE NOT is_unknown AND row <> {query_row} ORDER BY sim DESC, row LIMIT 5")
    got = duckdb.sql(sql).fetchall()
    ref = w / np.maximum(np.linalg.norm(w, axis=1, keepdims=True), 1e-30)
    scores = ref @ ref[query_row]
    order = [i for i in np.argsort(-scores, kind="stable") if i != query_row and i != table.vocab.unknown_index][:5]
    assert [t for t, _ in got] == [table.vocab.strings[i] for i in order]
    assert np.allclose([s for _, s in got], scores[order], atol=1e-5)
    ((manifest,),) = duckdb.sql(f"SELECT value FROM parquet_kv_metadata('{files[table.name]}') "
                                "WHERE key = 'embconv.manifest'").fetchall()
    manifest = manifest.decode() if isinstance(manifest, bytes) else manifest
    assert json.loads(manifest)["tables"][0]["name"] == table.name


@pytest.fixture(scope="module")
def spark():
    if shutil.which("java") is None:
        pytest.fail("Spark needs Java 17: .ci/run installs openjdk-17-jre-headless")
    from pyspark.sql import SparkSession

    session = (SparkSession.builder.master("local[2]").appName("embconv-tests")
               .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "2").getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.mark.parametrize("path,truth", SPARK_COLLAB, ids=[f"{p.parent.name}/{p.name}" for p, _ in SPARK_COLLAB])
def test_spark_joins_tables_with_ratings_and_predicts_as_fastai(tmp_path, spark, path, truth):
    from pyspark.sql import functions as F

    model, files = _parquet(tmp_path, path, truth)
    user, item = list(model.tables.values())[:2]
    lo, hi = model.model.y_range
    preds = truth["predictions"]
    user_col = next(k for k in preds[0]["input"] if k not in ("title", "user_index", "item_index"))
    ratings = spark.createDataFrame([(str(p["input"][user_col]), str(p["input"]["title"]), i)
                                     for i, p in enumerate(preds)], ["user_id", "item_id", "n"])
    def vectors(table: str, id_col: str, vec: str, bias: str):  # ids fastai has not seen get the #na# row
        df = spark.read.parquet(str(files[table]))
        known = df.select(F.col("token").alias(id_col), F.col("vector").alias(vec), F.col("bias").alias(bias))
        unknown = df.filter("is_unknown").select(F.col("vector").alias(f"{vec}_na"), F.col("bias").alias(f"{bias}_na"))
        return known, unknown

    users, users_na = vectors(user.name, "user_id", "u", "ub")
    items, items_na = vectors(item.name, "item_id", "i", "ib")
    joined = (ratings.join(users, "user_id", "left").join(items, "item_id", "left")
              .crossJoin(users_na).crossJoin(items_na)
              .select("n", *(F.coalesce(c, f"{c}_na").alias(c) for c in ("u", "ub", "i", "ib"))))
    dot = F.aggregate(F.zip_with("u", "i", lambda a, b: a * b), F.lit(0.0), lambda acc, x: acc + x)
    raw = dot + F.col("ub") + F.col("ib")
    scored = (joined.select("n", (F.lit(lo) + (F.lit(hi) - F.lit(lo)) / (1 + F.exp(-raw))).alias("rating"))
              .orderBy("n").collect())
    assert [r["n"] for r in scored] == list(range(len(preds)))
    got = np.array([r["rating"] for r in scored])
    expected = np.array([p["output"] for p in preds])
    assert np.allclose(got, expected, atol=1e-5, rtol=0), (got, expected)


ALL = fixture_truths() + real_model_truths()


def test_spark_reads_every_fixture_and_real_model_exactly(tmp_path, spark):
    """Every table of every fixture and real model, written as Parquet, read by Spark: tokens equal
    to the truth, vectors and biases bit-exact float32 (Spark's float is float32), the unknown row
    marked. One Spark session, many reads (starting Spark costs ~10 s)."""
    checked = 0
    for n, (path, truth) in enumerate(ALL):
        model = converter.load(path, vocab=_sidecars(path, truth))
        files = converter.save(model, tmp_path / f"m{n}.parquet", allow_unlabelled=True)
        for table, f in zip(model.tables.values(), files, strict=True):
            rows = spark.read.parquet(str(f)).orderBy("row").collect()
            assert [r["row"] for r in rows] == list(range(table.rows)), f
            got = np.array([r["vector"] for r in rows], dtype=np.float32).reshape(table.rows, table.dim)
            assert np.array_equal(got.view(np.uint32), np.ascontiguousarray(table.weight, np.float32).view(np.uint32)), f
            if table.bias is not None:
                assert np.array_equal(np.array([r["bias"] for r in rows], np.float32), table.bias.astype(np.float32))
            expected = list(table.vocab.strings) if table.vocab is not None else [str(i) for i in range(table.rows)]
            assert [r["token"] for r in rows] == expected, f
            unknown = table.vocab.unknown_index if table.vocab is not None else None
            assert [i for i, r in enumerate(rows) if r["is_unknown"]] == ([] if unknown is None else [unknown])
            checked += 1
    assert checked >= len(ALL)
