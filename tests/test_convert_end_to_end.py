"""Every fixture and real model through every output format, checked by the consumers users
run: the safetensors library, onnxruntime and gensim — against the truth computed by fastai."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import pytest

import converter
from converter.writers.onnx import onnx_feed

from .conftest import FIXTURES, real_model_truths, run_cli
from .test_loaders import _sidecars, fixture_truths

ALL = fixture_truths() + real_model_truths()
# Bare state dicts of unknown architecture have no manifest-level identity worth testing here;
# everything with a truth is covered.
IDS = [f"{p.parent.name}/{p.name}" for p, _ in ALL]


def sha256_f32(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a, dtype="<f4").tobytes()).hexdigest()


def _by_key(model: converter.EmbeddingModel) -> dict[str, tuple[str, str]]:
    out = {}
    for t in model.tables.values():
        out[t.weight_key.removeprefix("module.")] = (t.name, "weight")
        if t.bias_key:
            out[t.bias_key.removeprefix("module.")] = (t.name, "bias")
    return out


@pytest.mark.parametrize("path,truth", ALL, ids=IDS)
def test_safetensors_read_by_the_official_library(tmp_path, path, truth):
    from safetensors import safe_open

    model = converter.load(path, vocab=_sidecars(path, truth))
    out = tmp_path / "out.safetensors"
    converter.save(model, out, allow_unlabelled=True)  # the bare .pth / v0.7 fixtures carry no vocabulary
    where = _by_key(model)
    with safe_open(str(out), framework="np") as f:
        meta = f.metadata()
        assert meta["format"] == "pt"
        assert json.loads(meta["embconv.manifest"])["source"]["sha256"] == model.source.sha256
        for table in truth["tables"]:
            name, part = where[table["source_key"].removeprefix("module.")]
            array = f.get_tensor(f"{name}.{part}")
            assert array.dtype == np.float32
            assert sha256_f32(array) == table["sha256_f32"]
            if table.get("vocab") is not None:
                b = bytes(f.get_tensor(f"{name}.vocab.utf8"))
                o = f.get_tensor(f"{name}.vocab.offsets").tolist()
                tokens = [b[o[i] : o[i + 1]].decode("utf-8", "surrogatepass") for i in range(len(o) - 1)]
                assert tokens == table["vocab"]


@pytest.mark.parametrize("path,truth", ALL, ids=IDS)
def test_onnx_rows_by_index_and_by_id(tmp_path, path, truth):
    ort = pytest.importorskip("onnxruntime")
    import onnx

    model = converter.load(path, vocab=_sidecars(path, truth))
    out = tmp_path / "out.onnx"
    converter.save(model, out, allow_unlabelled=True)  # the bare .pth / v0.7 fixtures carry no vocabulary
    onnx.checker.check_model(str(out), full_check=True)
    sess = ort.InferenceSession(str(out))  # no warnings to silence: the inputs are graph inputs
    outputs = {o.name for o in sess.get_outputs()}
    for t in model.tables.values():
        w = t.weight.astype(np.float32)
        idx = np.array([0, t.rows - 1, t.rows // 2], dtype=np.int64)
        (got,) = sess.run([f"{t.name}.vectors"], onnx_feed(sess, {f"{t.name}.index": idx}))
        assert np.array_equal(got, w[idx])
        if t.vocab is None:
            continue
        assert f"{t.name}.vectors_by_id" in outputs
        # The first row of each distinct token, plus an id no vocabulary holds.
        seen: dict[str, int] = {}
        for i, s in enumerate(t.vocab.strings):
            seen.setdefault(s, i)
        ids = list(seen)[:50] + ["\u2603 never seen \u2603"]
        (got,) = sess.run([f"{t.name}.vectors_by_id"], onnx_feed(sess, {f"{t.name}.id": ids}))
        assert np.array_equal(got[:-1], w[[seen[s] for s in ids[:-1]]])
        if t.vocab.unknown_index is not None:
            assert np.array_equal(got[-1], w[t.vocab.unknown_index])
        else:
            assert np.isnan(got[-1]).all()


COLLAB = [(p, t) for p, t in ALL if t.get("kind") == "collab-dot" and t.get("predictions")
          and (t.get("artifact") == "export" or t.get("sidecars"))]


@pytest.mark.parametrize("path,truth", COLLAB, ids=[f"{p.parent.name}/{p.name}" for p, _ in COLLAB])
def test_onnx_rating_equals_fastai_predictions(tmp_path, path, truth):
    """The rating output reproduces fastai's own predictions (fixture truth) within 1e-5."""
    ort = pytest.importorskip("onnxruntime")
    model = converter.load(path, vocab=_sidecars(path, truth))
    out = tmp_path / "out.onnx"
    # fastai 0.7 keeps min/max ratings outside the file: the user supplies them (--y-range).
    missing = tuple(truth["y_range"]) if model.model.y_range is None and truth.get("y_range") else None
    if missing:
        assert any(w.code == "no-y-range" and w.message.startswith("no y_range in this file") for w in model.warnings)
    converter.convert(path, out, vocab=_sidecars(path, truth), y_range=missing)
    sess = ort.InferenceSession(str(out))  # no warnings to silence: the inputs are graph inputs
    user, item = list(model.tables.values())[:2]
    preds = truth["predictions"]
    uid = [str(p["input"][next(k for k in p["input"] if k not in ("title", "user_index", "item_index"))])
           for p in preds]
    iid = [str(p["input"]["title"]) for p in preds]
    (rating,) = sess.run(["rating"], onnx_feed(sess, {f"{user.name}.id": uid, f"{item.name}.id": iid}))
    expected = np.array([p["output"] for p in preds], dtype=np.float64)
    assert np.allclose(rating, expected, atol=1e-5, rtol=0), (rating, expected)


@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
@pytest.mark.parametrize("path,truth", ALL, ids=IDS)
def test_word2vec_loads_in_gensim_exactly(tmp_path, path, truth, binary, caplog):
    gensim_models = pytest.importorskip("gensim.models")
    model = converter.load(path, vocab=_sidecars(path, truth))
    out = tmp_path / ("out.bin" if binary else "out.vec")
    written = converter.save(model, out, allow_unlabelled=True)
    vector_files = [p for p in written if not p.name.endswith(".manifest.json")]
    assert len(vector_files) == len(model.tables)
    back = converter.read_output(vector_files[0]) if len(vector_files) == 1 else None
    with caplog.at_level(logging.WARNING, logger="gensim"):
        for t, f in zip(model.tables.values(), vector_files, strict=True):
            kv = gensim_models.KeyedVectors.load_word2vec_format(str(f), binary=binary)
            assert len(kv.index_to_key) == t.rows == len(set(kv.index_to_key))
            assert np.array_equal(kv.vectors, t.weight.astype(np.float32))
            if t.vocab is not None:
                side = json.loads(Path(f"{f}.manifest.json").read_text())
                assert side["embconv.word2vec"]["table"] == t.name
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.records
    if back is not None:
        assert list(back.tables) == list(model.tables)


def test_cli_convert_verify_and_inspect_output(tmp_path):
    src = FIXTURES / "fastai2" / "collab_dot_export.pkl"
    for name in ("out.safetensors", "out.onnx", "out.vec", "out.bin"):
        dst = tmp_path / name
        proc = run_cli("convert", src, dst, "-q")
        assert proc.returncode == 0, proc.stderr
        proc = run_cli("verify", dst, "--against", src)
        assert proc.returncode == 0 and "ok: 2 table(s)" in proc.stdout, proc.stderr
    # convert hashes the source in the background while loading; the manifest names that hash.
    from safetensors import safe_open

    with safe_open(str(tmp_path / "out.safetensors"), framework="np") as f:
        embedded = json.loads(f.metadata()["embconv.manifest"])["source"]
    assert embedded["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    assert embedded["path"] == str(src) and embedded["size"] == src.stat().st_size
    proc = run_cli("inspect", tmp_path / "out.safetensors", "--json")
    manifest = json.loads(proc.stdout)
    assert manifest["source"]["container"] == "safetensors"
    assert [t["name"] for t in manifest["tables"]] == ["userId", "title"]
    # An existing destination needs --force; a wrong source is caught by verify (exit 4).
    proc = run_cli("convert", src, tmp_path / "out.safetensors")
    assert proc.returncode == 5 and "--force" in proc.stderr
    other = FIXTURES / "fastai1" / "collab_dot_export.pkl"
    proc = run_cli("verify", tmp_path / "out.safetensors", "--against", other)
    assert proc.returncode == 4 and "userId" in proc.stderr and "row" in proc.stderr


def test_table_selection_and_unknown_table(tmp_path):
    src = FIXTURES / "fastai2" / "tabular_export.pkl"
    proc = run_cli("convert", src, tmp_path / "city.vec", "--table", "city", "-q")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "city.vec").exists() and not list(tmp_path.glob("city.*.vec"))
    proc = run_cli("convert", src, tmp_path / "x.vec", "--table", "nope")
    assert proc.returncode == 2 and "nope" in proc.stderr
    assert not (tmp_path / "x.vec").exists()
