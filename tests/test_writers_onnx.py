"""ONNX output: checker full check, onnxruntime by index / by id / unseen id, ``.found``, collab rating."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from converter.saving import save
from converter.verify import verify_output
from converter.writers import read_output
from converter.writers.onnx import onnx_feed
from tests._writer_models import TRICKY_TOKENS, collab_model, tricky_model
from tests.conftest import FIXTURES


def _session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _run(sess, names, feeds):
    """``sess.run`` with the inputs not in ``feeds`` fed empty (every graph input must be fed)."""
    return sess.run(names, onnx_feed(sess, feeds))


@pytest.mark.parametrize("src_dtype", [np.float32, np.float16])
def test_checker_and_runtime(tmp_path, src_dtype):
    m = tricky_model(src_dtype)
    out = tmp_path / "m.onnx"
    save(m, out, allow_unlabelled=True)
    onnx.checker.check_model(str(out), full_check=True)
    proto = onnx.load(str(out))
    assert proto.ir_version == 8
    assert {o.domain: o.version for o in proto.opset_import} == {"": 13, "ai.onnx.ml": 2}
    sess = _session(out)
    w = m.tables["words"].weight.astype(np.float32)
    idx = np.array([3, 0, len(TRICKY_TOKENS) - 1, 3], dtype=np.int64)
    (vec,) = _run(sess, ["words.vectors"], {"words.index": idx})  # only one input given
    assert np.array_equal(vec, w[idx])
    ids = np.array(["new york", "", "never seen", "xxfake", "caf\u00e9 \u6771\u4eac"], dtype=object)
    (by_id,) = _run(sess, ["words.vectors_by_id"], {"words.id": ids})
    assert np.array_equal(by_id, w[[1, 3, 0, 5, 4]])  # unseen → #na# row 0; duplicate → first row
    (nums,) = _run(sess, ["nums.vectors_by_id"], {"nums.id": np.array(["2.5", "True", "7"], dtype=object)})
    assert np.array_equal(nums, m.tables["nums"].weight.astype(np.float32)[[2, 3, 4]])
    empty = _run(sess, ["plain.vectors"], {})
    assert empty[0].shape == (0, 2)


def test_unseen_id_without_unknown_row_is_nan(tmp_path):
    m = collab_model(unknown=False)
    out = tmp_path / "c.onnx"
    save(m, out)
    sess = _session(out)
    (v,) = _run(sess, ["userId.vectors_by_id"], {"userId.id": np.array(["u2", "nobody"], dtype=object)})
    assert np.array_equal(v[0], m.tables["userId"].weight[1])
    assert np.isnan(v[1]).all()


def _fastai_rating(m, users, items):
    u, i = m.tables["userId"], m.tables["title"]
    ur = np.array([u.vocab.index(x) if u.vocab.index(x) is not None else u.vocab.unknown_index for x in users])
    ir = np.array([i.vocab.index(x) if i.vocab.index(x) is not None else i.vocab.unknown_index for x in items])
    res = (u.weight[ur] * i.weight[ir]).sum(1, dtype=np.float32) + u.bias[ur] + i.bias[ir]
    if m.model.y_range is None:
        return res
    lo, hi = m.model.y_range
    return (1 / (1 + np.exp(-res))).astype(np.float32) * np.float32(hi - lo) + np.float32(lo)


@pytest.mark.parametrize("y_range", [(0.5, 5.5), None])
def test_rating_matches_fastai_formula(tmp_path, y_range):
    m = collab_model(y_range=y_range)
    out = tmp_path / "c.onnx"
    save(m, out)
    users = ["u1", "u3", "u2", "stranger"]
    items = ["i4", "i1", "unknown", "i2"]
    (r,) = _run(_session(out), ["rating"], {"userId.id": np.array(users, dtype=object),
                                          "title.id": np.array(items, dtype=object)})
    ref = _fastai_rating(m, users, items)
    assert r.shape == (4,) and np.abs(r - ref).max() < 1e-5
    if y_range is not None:
        assert ((r > 0.5) & (r < 5.5)).all()


def test_external_data(tmp_path):
    m = collab_model()
    out = tmp_path / "c.onnx"
    files = save(m, out, external_data=True)
    assert files == [out, tmp_path / "c.onnx.data"]
    assert out.stat().st_size < 4096 + 2000
    onnx.checker.check_model(str(out), full_check=True)
    (v,) = _run(_session(out), ["title.vectors"], {"title.index": np.array([4, 1], dtype=np.int64)})
    assert np.array_equal(v, m.tables["title"].weight[[4, 1]])
    verify_output(out, m)


def test_read_output(tmp_path):
    m = tricky_model()
    out = tmp_path / "m.onnx"
    save(m, out, allow_unlabelled=True)
    back = read_output(out)
    assert back.source.container == "onnx"
    assert back.tables["words"].vocab.strings == TRICKY_TOKENS
    assert np.array_equal(back.tables["words"].bias, m.tables["words"].bias)
    verify_output(out, m)


def _outputs(sess):
    return [o.name for o in sess.get_outputs()]


def test_found_and_vectors_by_id_on_a_fixture(tmp_path):
    """``<table>.found`` is True exactly for the vocabulary's ids (``#na#`` included); unseen ids
    get the ``#na#`` row in ``vectors_by_id``; ``rating`` still works beside them."""
    from converter import convert, load

    src = FIXTURES / "fastai2" / "collab_dot_export.pkl"
    out = tmp_path / "m.onnx"
    convert(src, out)
    m = load(src)
    sess = _session(out)
    names = _outputs(sess)
    for t in m.tables.values():
        assert f"{t.name}.found" in names
        o = next(o for o in sess.get_outputs() if o.name == f"{t.name}.found")
        assert o.type == "tensor(bool)"
    u = m.tables["userId"]
    known = [u.vocab.strings[r] for r in (3, 1, len(u.vocab) - 1, 0)]  # '#na#' (row 0) is a token too
    ids = np.array(known + ["typo", ""], dtype=object)
    found, vecs = _run(sess, ["userId.found", "userId.vectors_by_id"], {"userId.id": ids})
    assert found.dtype == np.bool_ and found.tolist() == [True, True, True, True, False, False]
    assert np.array_equal(vecs, u.weight[[3, 1, len(u.vocab) - 1, 0, 0, 0]])
    assert u.vocab.unknown_index == 0
    # the other table's outputs, and rating, from the same run
    t = m.tables["title"]
    titles = np.array([t.vocab.strings[2], "no such film", t.vocab.strings[1], t.vocab.strings[5], "x", "y"],
                      dtype=object)
    tf, r = _run(sess, ["title.found", "rating"], {"userId.id": ids, "title.id": titles})
    assert tf.tolist() == [True, False, True, True, False, False]
    assert r.shape == (6,) and np.isfinite(r).all()
    (empty,) = _run(sess, ["userId.found"], {})
    assert empty.shape == (0,)
    verify_output(out, read_output(out))


def test_found_without_unknown_row(tmp_path):
    m = collab_model(unknown=False)
    out = tmp_path / "c.onnx"
    save(m, out)
    onnx.checker.check_model(str(out), full_check=True)
    sess = _session(out)
    ids = np.array(["u3", "nobody", "u1", "", "#na#"], dtype=object)
    found, v = _run(sess, ["userId.found", "userId.vectors_by_id"], {"userId.id": ids})
    assert found.tolist() == [True, False, True, False, False]
    w = m.tables["userId"].weight
    assert np.array_equal(v[0], w[2]) and np.array_equal(v[2], w[0])
    assert np.isnan(v[[1, 3, 4]]).all()


@pytest.mark.parametrize("dtype", ["float16", "float64"])
def test_found_with_other_dtypes(tmp_path, dtype):
    m = tricky_model()
    out = tmp_path / "m.onnx"
    save(m, out, dtype=dtype, allow_unlabelled=True)
    onnx.checker.check_model(str(out), full_check=True)
    sess = _session(out)
    found, v = _run(sess, ["nums.found", "nums.vectors_by_id"],
                        {"nums.id": np.array(["7", "nope", "#na#", "2.5"], dtype=object)})
    assert found.tolist() == [True, False, True, True]
    assert np.array_equal(v, m.tables["nums"].weight.astype(dtype)[[4, 0, 0, 2]])
    assert "plain.found" not in _outputs(sess)  # no vocabulary: no .id, no .found


def test_files_without_found_still_read(tmp_path):
    """An ONNX file of the layout before ``.found`` (LabelEncoder default = the unknown row, no
    ``.found`` outputs) reads back and verifies as before."""
    m = collab_model()
    out = tmp_path / "c.onnx"
    save(m, out)
    proto = onnx.load(str(out))
    for node in proto.graph.node:
        if node.op_type == "LabelEncoder":
            for a in node.attribute:
                if a.name == "default_int64":
                    a.i = 0
    keep = [o for o in proto.graph.output if not o.name.endswith(".found")]
    del proto.graph.output[:]
    proto.graph.output.extend(keep)
    old = tmp_path / "old.onnx"
    onnx.save(proto, str(old))
    back = read_output(old)
    assert back.tables["userId"].vocab.strings == m.tables["userId"].vocab.strings
    assert np.array_equal(back.tables["title"].weight, m.tables["title"].weight)
    verify_output(old, m)
    (v,) = _run(_session(old), ["userId.vectors_by_id"], {"userId.id": np.array(["u2", "who"], dtype=object)})
    assert np.array_equal(v, m.tables["userId"].weight[[2, 0]])
