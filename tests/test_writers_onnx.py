"""ONNX output: checker full check, onnxruntime by index / by id / unseen id, collab rating."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from converter.saving import save
from converter.verify import verify_output
from converter.writers import read_output
from tests._writer_models import TRICKY_TOKENS, collab_model, tricky_model


def _session(path):
    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # the overridable-initializer notice is expected
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("src_dtype", [np.float32, np.float16])
def test_checker_and_runtime(tmp_path, src_dtype):
    m = tricky_model(src_dtype)
    out = tmp_path / "m.onnx"
    save(m, out)
    onnx.checker.check_model(str(out), full_check=True)
    proto = onnx.load(str(out))
    assert proto.ir_version == 8
    assert {o.domain: o.version for o in proto.opset_import} == {"": 13, "ai.onnx.ml": 2}
    sess = _session(out)
    w = m.tables["words"].weight.astype(np.float32)
    idx = np.array([3, 0, len(TRICKY_TOKENS) - 1, 3], dtype=np.int64)
    (vec,) = sess.run(["words.vectors"], {"words.index": idx})  # only one input fed
    assert np.array_equal(vec, w[idx])
    ids = np.array(["new york", "", "never seen", "xxfake", "caf\u00e9 \u6771\u4eac"], dtype=object)
    (by_id,) = sess.run(["words.vectors_by_id"], {"words.id": ids})
    assert np.array_equal(by_id, w[[1, 3, 0, 5, 4]])  # unseen → #na# row 0; duplicate → first row
    (nums,) = sess.run(["nums.vectors_by_id"], {"nums.id": np.array(["2.5", "True", "7"], dtype=object)})
    assert np.array_equal(nums, m.tables["nums"].weight.astype(np.float32)[[2, 3, 4]])
    empty = sess.run(["plain.vectors"], {})
    assert empty[0].shape == (0, 2)


def test_unseen_id_without_unknown_row_is_nan(tmp_path):
    m = collab_model(unknown=False)
    out = tmp_path / "c.onnx"
    save(m, out)
    sess = _session(out)
    (v,) = sess.run(["userId.vectors_by_id"], {"userId.id": np.array(["u2", "nobody"], dtype=object)})
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
    (r,) = _session(out).run(["rating"], {"userId.id": np.array(users, dtype=object),
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
    (v,) = _session(out).run(["title.vectors"], {"title.index": np.array([4, 1], dtype=np.int64)})
    assert np.array_equal(v, m.tables["title"].weight[[4, 1]])
    verify_output(out, m)


def test_read_output(tmp_path):
    m = tricky_model()
    out = tmp_path / "m.onnx"
    save(m, out)
    back = read_output(out)
    assert back.source.container == "onnx"
    assert back.tables["words"].vocab.strings == TRICKY_TOKENS
    assert np.array_equal(back.tables["words"].bias, m.tables["words"].bias)
    verify_output(out, m)
