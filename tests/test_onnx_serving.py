"""ONNX for serving (issue 13, items 14, 10, 9, 12): the inputs are plain graph inputs that
``get_inputs()`` lists and onnxruntime loads every embconv file without a warning;
``onnx_feed`` feeds the inputs a caller leaves out; ``rating_by_index`` reproduces fastai's
predictions from row numbers; user and item inputs of different lengths fail the run instead of
being truncated; a layout-1 file (inputs as overridable initializers) still reads. External data
follows the reference loaders' rules (no symlink, FIFO, hard link, ``..``, absolute path,
negative or non-integer offset); damaged files fail in one line with an EmbconvError; an inline
model that does not fit in memory says so."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import converter
from converter.errors import EmbconvError, OutputError
from converter.saving import save
from converter.verify import verify_output
from converter.writers import read_output
from converter.writers.onnx import EXTERNAL_THRESHOLD, needs_external, onnx_feed
from tests._writer_models import collab_model, model, table, tricky_model
from tests.conftest import FIXTURES, ROOT, run_cli
from tests.test_loaders import _sidecars, fixture_truths

CPU = ["CPUExecutionProvider"]


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=CPU)


@pytest.fixture(scope="module")
def onnx_files(tmp_path_factory) -> list[Path]:
    """One embconv ONNX file of each kind: awkward tokens in three dtypes, collab with and
    without y_range and unknown rows, external data, and real fastai fixtures."""
    folder = tmp_path_factory.mktemp("serving")
    files = []
    for dtype in ("float32", "float16", "float64"):
        files.append(folder / f"tricky_{dtype}.onnx")
        save(tricky_model(), files[-1], dtype=dtype, allow_unlabelled=True)
    for name, m, opts in (("collab", collab_model(), {}), ("collab_raw", collab_model(y_range=None), {}),
                          ("collab_nounk_ext", collab_model(unknown=False), {"external_data": True}),
                          ("collab_f16", collab_model(), {"dtype": "float16"})):
        files.append(folder / f"{name}.onnx")
        save(m, files[-1], **opts)
    for gen, name in (("fastai2", "collab_dot_export.pkl"), ("fastai1", "collab_dot_export.pkl"),
                      ("fastai2", "text_clas_export.pkl"), ("fastai2", "collab_dot_noopt.pth")):
        files.append(folder / f"{gen}_{name}.onnx")
        converter.convert(FIXTURES / gen / name, files[-1], allow_unlabelled=True)
    return files


_LOAD = textwrap.dedent("""
    import sys, onnxruntime as ort
    if sys.argv[1] == "verbose":
        ort.set_default_logger_severity(0)
    for p in sys.argv[2:]:
        s = ort.InferenceSession(p, providers=["CPUExecutionProvider"])
        assert s.get_inputs() and not s.get_overridable_initializers(), p
    """)


def test_onnxruntime_loads_every_file_without_a_warning(onnx_files):
    """Default log level: nothing at all on stderr. Verbose (severity 0): info and verbose lines
    only, no warning or error (layout 1 logged one warning per input and per unused bias)."""
    r = subprocess.run([sys.executable, "-c", _LOAD, "default", *map(str, onnx_files)], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0 and r.stderr == "", r.stderr[-3000:]
    r = subprocess.run([sys.executable, "-c", _LOAD, "verbose", *map(str, onnx_files)], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    levels = set(re.findall(r"\[([VIWEF]):onnxruntime", r.stderr))
    assert "I" in levels and levels <= {"I", "V"}, [ln for ln in r.stderr.splitlines() if "[W:" in ln or "[E:" in ln]


def test_inputs_are_listed(onnx_files):
    for path in onnx_files:
        sess = _session(path)
        inputs = {i.name: i.type for i in sess.get_inputs()}
        m = read_output(path)
        expected = {}
        for t in m.tables.values():
            expected[f"{t.name}.index"] = "tensor(int64)"
            if t.vocab is not None:
                expected[f"{t.name}.id"] = "tensor(string)"
        assert inputs == expected, path
        proto = onnx.load(str(path), load_external_data=False)
        assert not {i.name for i in proto.graph.initializer} & set(inputs)  # none is an overridable default
        assert {p.key: p.value for p in proto.metadata_props}["embconv.layout"] == "2"


def test_every_input_must_be_fed_and_onnx_feed_fills_the_rest(tmp_path):
    m = collab_model()
    out = tmp_path / "c.onnx"
    save(m, out)
    sess = _session(out)
    with pytest.raises(ValueError, match="are missing from input feed"):  # plain ONNX: every graph input is fed
        sess.run(["userId.vectors"], {"userId.index": np.array([1], dtype=np.int64)})
    # the documented way by hand: the unused inputs take empty arrays
    feed = {"userId.index": np.array([2, 1], dtype=np.int64), "userId.id": np.array([], dtype=object),
            "title.index": np.zeros(0, np.int64), "title.id": np.array([], dtype=object)}
    (v,) = sess.run(["userId.vectors"], feed)
    assert np.array_equal(v, m.tables["userId"].weight[[2, 1]])
    # and with onnx_feed: lists, ints as ids (str), only what is needed
    f = onnx_feed(sess, {"userId.index": [3, 0], "title.id": ["i2", "nope"]})
    assert set(f) == {"userId.index", "userId.id", "title.index", "title.id"}
    assert f["userId.index"].dtype == np.int64 and f["userId.id"].dtype == object and len(f["userId.id"]) == 0
    vec, found, bias = sess.run(["userId.vectors", "title.found", "title.biases_by_id"], f)
    assert np.array_equal(vec, m.tables["userId"].weight[[3, 0]]) and found.tolist() == [True, False]
    assert np.array_equal(bias, m.tables["title"].bias[[2, 0]])
    assert onnx_feed(sess, {"userId.id": [7, b"u1"]})["userId.id"].tolist() == ["7", "u1"]
    (r,) = sess.run(["rating"], onnx_feed(sess, {"userId.id": ["u1"], "title.id": ["i3"]}))
    assert r.shape == (1,)
    with pytest.raises(KeyError, match="userId.index"):
        onnx_feed(sess, {"user.index": [1]})
    with pytest.raises(TypeError):
        onnx_feed(sess, {"userId.index": [1.5]})
    with pytest.raises(ValueError):
        onnx_feed(sess, {"userId.index": [[1]]})
    (b,) = sess.run(["userId.biases"], onnx_feed(sess, {"userId.index": [1, 3]}))
    assert np.array_equal(b, m.tables["userId"].bias[[1, 3]])


_COLLAB = [(p, t) for p, t in fixture_truths() if t.get("kind") == "collab-dot" and t.get("predictions")
           and "user_index" in t["predictions"][0]["input"]]


@pytest.mark.parametrize("path,truth", _COLLAB, ids=[f"{p.parent.name}/{p.name}" for p, _ in _COLLAB])
def test_rating_by_index_equals_fastai_predictions(tmp_path, path, truth):
    """fastai's own predictions (fixture truth) for (user row, item row) pairs, within 1e-5 —
    state dicts without vocabulary too; and ``rating`` from the ids gives the same."""
    m = converter.load(path, vocab=_sidecars(path, truth))
    missing = tuple(truth["y_range"]) if m.model.y_range is None and truth.get("y_range") else None
    out = tmp_path / "out.onnx"
    converter.convert(path, out, vocab=_sidecars(path, truth), y_range=missing, allow_unlabelled=True)
    sess = _session(out)
    user, item = (t for t in m.tables.values() if t.role in ("user", "item"))
    preds = truth["predictions"]
    expected = np.array([p["output"] for p in preds])
    feed = {f"{user.name}.index": [p["input"]["user_index"] for p in preds],
            f"{item.name}.index": [p["input"]["item_index"] for p in preds]}
    (r,) = sess.run(["rating_by_index"], onnx_feed(sess, feed))
    assert r.dtype == np.float32 and np.allclose(r, expected, atol=1e-5, rtol=0), (r, expected)
    if user.vocab is not None and item.vocab is not None:
        ucol = next(k for k in preds[0]["input"] if k not in ("title", "user_index", "item_index"))
        ids = {f"{user.name}.id": [str(p["input"][ucol]) for p in preds],
               f"{item.name}.id": [str(p["input"]["title"]) for p in preds]}
        by_id, by_index = sess.run(["rating", "rating_by_index"], onnx_feed(sess, {**feed, **ids}))
        assert np.allclose(by_id, expected, atol=1e-5, rtol=0) and np.array_equal(by_index, r)
    else:
        assert "rating" not in {o.name for o in sess.get_outputs()}


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_inputs_of_different_lengths_fail_instead_of_truncating(tmp_path, dtype):
    m = collab_model()
    out = tmp_path / "c.onnx"
    save(m, out, dtype=dtype)
    sess = _session(out)
    for users, items in ((["u1", "u2", "u3"], ["i1", "i2"]), (["u1"], ["i1", "i2", "i3"]), (["u2", "u3"], ["i4"])):
        with pytest.raises(Exception, match="userId.id and title.id have different lengths"):
            sess.run(["rating"], onnx_feed(sess, {"userId.id": users, "title.id": items}))
        with pytest.raises(Exception, match="userId.index and title.index have different lengths"):
            sess.run(["rating_by_index"], onnx_feed(sess, {"userId.index": [1] * len(users),
                                                            "title.index": [2] * len(items)}))
    # equal lengths work; one side empty ("not fed") gives an empty rating
    r, ri = sess.run(["rating", "rating_by_index"],
                     onnx_feed(sess, {"userId.id": ["u1", "u2"], "title.id": ["i1", "i2"],
                                      "userId.index": [1, 2], "title.index": [1, 2]}))
    assert r.shape == (2,) and np.allclose(r, ri, atol=1e-6)
    r, ri, v = sess.run(["rating", "rating_by_index", "userId.vectors_by_id"],
                        onnx_feed(sess, {"userId.id": ["u1", "u2"], "userId.index": [3]}))
    assert r.shape == (0,) and ri.shape == (0,) and v.shape == (2, 6)


# An ONNX file written by embconv 0.1.0 (layout 1: every input also an initializer holding an
# empty default): collab_model() of tests/_writer_models.py, zlib + base64.
_LAYOUT1 = """
eNqlV1uIE1cYTtZsMjl7SZzdqrVaw2xd16Bx74VsojG4XmJ3vezD6sqanmRONtOdzKQzk714gRaEtS0IQgWhCCtK1VILaqldN+ND
KZQ+tfWhF3zQWloo9KFiW/Cl9pyZSTIzG8WlC4Fz/v/77//851+Koj0ol0qLwsTK2vZQR6g9/KgJxEFDQUbSLjY0ibixrALqjSsn
sGiKbjRuEyitiJLMuHdAJYukYB1wwSlOXuGYddaA007gLUmxNDCOkjjJ1L8GU4jvF9Iii4VWgwYWZWCBV5KcoPR2r3hS+nNiNcEW
UD+OpuWkrEicMCYnXC0CbEnUFDrwrxP/umadVHAlaJiAfAHJugo55og5YzWxJbNOTxhALiQKwlQox4NXgckPUGecjyBJpEsRZsSC
wDKNOyQEFSTtkfrfLEAebAcWvkUNbZwLwrggTgpJTKN9Bk2GGUQITO0wThACu+2JtQPpZmtuk6npJMdWz/AWUK9wCo9Kuur0m16j
Bv3yzBKdcQLKkGFpr35adIHWVS8QhwvE4QJxXfjXTYq06ilFirnsZeoGFWcA0I9akYwIq9coDsxss4ql+tFcoEadZK/PTltKbTC6
yZLVZxWnbWFpGyWo4BSFhCThyEztUBbmEVi3wEoFyCkoVwZuAjYNwAakqdKdWTLACWDPAh9AvYGQFSgpoIy30mmfcSPSenqGeC6N
wAFQtT2fU2uTWWupMQ3N/eWvMcVBGdgdoP1mAoFUz/qgPZeLDJik0RzwMKhW8UXGqym1xbut1NeWcEvmy+FqhKeHGwPVcgqqGS6H
mJdEtpBWZNwiBTLY7HRQZxDgFJJpYFxYUWG8+xFGoKFCLugD1DhCeZbLGZ50AhMSLKgW3VDhJgspZslWlsUyVipYEHXZvAQndZm1
wEQqfygyN5YT8ZfoGdIPWLWNVSlNGvKo7I52Y/VUtAErtWyJxwVx62fNifKLGWymHH5P3PI4JhxBH6ZS8crjF3yJcmKY+blJUA7j
LxjArCpPiAnRpFkxT3dspFEzUh7fwZWaDdOwNClYgzkLZ6AJsEoTtnSviWu4b2qLBOUsMZf5nXFLbhMuh2M2FmzGdFMCCdWxZYSx
bRI08FMeuh4AmjLogyNrzHsDAVAWwMBIwPrSLQU+rKMOeGmPTh4cWW161wibMrMHUm3AtsHQy0Az5aT9Zj9ADeVOhaoPvCr4AQ3P
WPcEzX2v1f1UK7C+zfQLoAkr85kC0HRtqDp7FqJ1ywHL66dF7bVGvQoYTax55bR6FXcBh78h3ghM77C/RvrGDfxGs4dyUOAySFbo
W+6jjJzOohzEw0WSOVFgwoHODQHGQJqojLZSMpgniwUpjTDpKJPHk4zwNgmigPAsU5CgbEJTeVFSQvlxXkNnYWdPr6bgf/5p2rgj
xHJHZxe+jCEBkTzo/mUg7nZuYyeB4a7nMjCtELruDqHiiDACyxBynkuP84iQc3g34pNpHspyRU8oLfI8TIX6cynEsjjV20QlTqb3
8ZKEloBx3LhESEdvJLMV86eTEhTGiKOH2kM9GwI9oZ5RIqfAFI+IkUNHGQHmCIDRy0akJJEvU/T7JMF24yOezvjUS07KdF5DZXgR
Kl1atPqGk8S7W0WhsfYQNhm/VqY2kU0IhUMsQWiujWLChJiGKS1AI+HEidLA0b5VTGs39wKT4bD3x3GUldC0djVHRl4DU2Q9i4zM
vM/ZA9N4i4+r53njItKTUBLIYqxpOy41gcbSB8XDabGg0M6O8HRwknJRbjwyrf8eJF4/f6xWvRfwFWdGP4oO/euObmm+rJ7InJz7
/fCT4vsnHvV9cvWiGvVtj/x9JxZZfuB89ML1tyM3Xv4u0vbrWfXh1d+ib63/Um39EEYfBWaK0UPdaiTrVv+Y9ao35z6I/LPv0/nw
2mAL5cKGzetXwn/z2+WbHx/su11z8vzcG9c+U8OnncFTTqpW89GyIiemBiKvqDvOzag9hd3Fn3s/jpy6ko123b7Rt330QXHFXED9
cfjF6N3MpegXcjLy8Mwx9Xpsm/ruDxeiJ7taI/cPX1NvBd6Zfy8sqHfuO9Q1v3xVDC6j1T+vPIgc/Hxw/qDwsHjx60uRfX+tj97b
fFnt3bu/mL27U935U0Mx3BZspWrJM1PZpBLNw17X7bmznr5bu6bmt+59XJw59736H5XSuJk=
"""


def test_layout1_files_still_read(tmp_path):
    old = tmp_path / "old.onnx"
    old.write_bytes(zlib.decompress(base64.b64decode("".join(_LAYOUT1.split()))))
    proto = onnx.load(str(old))
    assert {p.key: p.value for p in proto.metadata_props}["embconv.layout"] == "1"
    assert "userId.index" in {i.name for i in proto.graph.initializer}
    m = collab_model()
    back = read_output(old)
    assert list(back.tables) == ["userId", "title"]
    assert back.tables["userId"].vocab.strings == m.tables["userId"].vocab.strings
    assert np.array_equal(back.tables["title"].weight, m.tables["title"].weight)
    assert np.array_equal(back.tables["title"].bias, m.tables["title"].bias)
    verify_output(old, m)
    r = run_cli("inspect", old)
    assert r.returncode == 0, r.stderr
    r = run_cli("convert", old, tmp_path / "again.onnx")
    assert r.returncode == 0, r.stderr
    assert read_output(tmp_path / "again.onnx").tables["userId"].vocab.strings == m.tables["userId"].vocab.strings


# --- item 10: external data locations -------------------------------------------------------

def _external(tmp_path: Path, name: str = "m") -> Path:
    out = tmp_path / f"{name}.onnx"
    save(collab_model(), out, external_data=True)
    return out


def _edit_external(path: Path, tensor: str = "userId.weight", **fields: str) -> None:
    proto = onnx.load(str(path), load_external_data=False)
    tp = next(t for t in proto.graph.initializer if t.name == tensor)
    for e in tp.external_data:
        if e.key in fields:
            e.value = fields[e.key]
    path.write_bytes(proto.SerializeToString())


def _refused(path: Path, tmp_path: Path, pattern: str, timeout: float = 60) -> None:
    """inspect and convert (ONNX in, safetensors out): exit 3, one line; the library (load, read,
    verify): EmbconvError."""
    for argv in (["inspect", path], ["convert", path, tmp_path / "out.safetensors", "--force"]):
        r = run_cli(*argv, timeout=timeout)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 3 and len(lines) == 1 and re.search(pattern, lines[0]), (argv, r.returncode, r.stderr)
        assert "internal error" not in r.stderr
    assert not (tmp_path / "out.safetensors").exists()
    with pytest.raises(EmbconvError, match=pattern):
        converter.load(path)
    with pytest.raises(EmbconvError, match=pattern):
        read_output(path)
    ref = tmp_path / "ref.safetensors"
    if not ref.exists():
        save(collab_model(), ref)
    with pytest.raises(EmbconvError, match=pattern):
        converter.verify(path, against=ref)


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symlinks")
def test_external_data_symlink_is_refused(tmp_path):
    out = _external(tmp_path)
    data = out.with_name(out.name + ".data")
    real = tmp_path / "elsewhere.bin"
    data.rename(real)
    data.symlink_to(real)
    _refused(out, tmp_path, "symbolic link")
    # a symlink to a file outside the folder (the issue's /etc/services) and a linked sub-folder
    data.unlink()
    data.symlink_to("/etc/services" if Path("/etc/services").is_file() else real)
    _refused(out, tmp_path, "symbolic link")
    (tmp_path / "sub").symlink_to(tmp_path, target_is_directory=True)
    data.unlink()
    real.rename(data)
    _edit_external(out, location=f"sub/{data.name}")
    _refused(out, tmp_path, "symbolic link")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs")
def test_external_data_fifo_is_refused_without_blocking(tmp_path):
    out = _external(tmp_path)
    data = out.with_name(out.name + ".data")
    data.unlink()
    os.mkfifo(data)
    _refused(out, tmp_path, "not a regular file", timeout=30)  # the old reader waited forever for a writer


def test_external_data_paths_outside_the_folder_are_refused(tmp_path):
    out = _external(tmp_path)
    for loc in ("/etc/services", "../m.onnx.data", "a/../m.onnx.data", "", "./m.onnx.data"):
        _edit_external(out, location=loc)
        with pytest.raises(EmbconvError, match="not a plain relative path"):
            read_output(out)
    _edit_external(out, location="m.onnx.data")
    read_output(out)
    os.link(out.with_name("m.onnx.data"), tmp_path / "second-name")
    with pytest.raises(EmbconvError, match="hard links"):
        read_output(out)


# --- item 9: damaged ONNX outputs -----------------------------------------------------------

@pytest.mark.parametrize("field,value,pattern", [
    ("offset", "-8", "offset '-8' is not a non-negative integer"),
    ("offset", "1.5", "offset '1.5' is not a non-negative integer"),
    ("offset", "999999999", "holds .* bytes, fewer than offset"),
    ("length", "-1", "length '-1' is not a non-negative integer"),
    ("length", "12", "length 12 but its shape"),
])
def test_external_offsets_and_lengths_are_checked(tmp_path, field, value, pattern):
    out = _external(tmp_path)
    _edit_external(out, **{field: value})
    _refused(out, tmp_path, pattern)


def _edit_model(path: Path, edit) -> None:
    proto = onnx.load(str(path), load_external_data=False)
    edit(proto)
    path.write_bytes(proto.SerializeToString())


def test_three_dimensional_weight_is_refused(tmp_path):
    out = tmp_path / "m.onnx"
    save(collab_model(), out)

    def three_d(proto):
        tp = next(t for t in proto.graph.initializer if t.name == "userId.weight")
        rows, dim = tp.dims
        del tp.dims[:]
        tp.dims.extend([rows, dim // 2, 2])
    _edit_model(out, three_d)
    _refused(out, tmp_path, "must have 2 dimension")
    ext = _external(tmp_path, "e")
    _edit_model(ext, three_d)
    _refused(ext, tmp_path, "must have 2 dimension")


@pytest.mark.parametrize("manifest", ["{not json", "5", "null", "[]", '"text"', "[" * 100000])
def test_damaged_manifest_is_refused(tmp_path, manifest):
    out = tmp_path / "m.onnx"
    save(collab_model(), out)

    def edit(proto):
        for p in proto.metadata_props:
            if p.key == "embconv.manifest":
                p.value = manifest
    _edit_model(out, edit)
    _refused(out, tmp_path, "embconv.manifest")


# --- item 12: memory -------------------------------------------------------------------------

def test_tables_above_512_mib_go_to_external_data_by_default():
    """An inline model is parsed whole by onnx.checker and by readers, at ~2.6 times its size
    (measured: 690 MB peak for a 256 MiB table inline, 190 MB with external data; a 768 MiB table
    peaked at 1.97 GB inline, 0.43 GB external): above 512 MiB embconv writes external data."""
    assert EXTERNAL_THRESHOLD == 512 << 20

    def sized(rows: int, dim: int):
        t = table("t", 1, 1)
        t.weight_source = type(t.weight_source)(np.broadcast_to(np.float32(0), (rows, dim)))
        return model(t)
    assert not needs_external(sized(1 << 20, 64))  # 256 MiB: one file
    assert needs_external(sized(3 << 20, 64))  # 768 MiB: external (inline before)
    assert not needs_external(sized(3 << 20, 64), "float16")


_CAPPED = textwrap.dedent("""
    import resource, sys
    sys.path.insert(0, sys.argv[1])
    import onnx  # noqa: F401
    from converter.errors import EmbconvError
    from converter.saving import save
    from tests._writer_models import model, table
    rows = 1 << 18  # 64 MiB
    m = model(table("words", rows, 64, vocab=[f"w{i}" for i in range(rows)], role="token"))
    m.tables["words"].weight
    vm = int(next(ln for ln in open("/proc/self/status") if ln.startswith("VmSize")).split()[1]) * 1024
    cap = vm + (128 << 20)
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    try:
        save(m, sys.argv[2], external_data=sys.argv[3] == "external")
    except EmbconvError as e:
        print(e.exit_code, e)
    else:
        print("ok")
    """)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc and RLIMIT_AS")
def test_inline_model_short_of_memory_says_so(tmp_path):
    """Under an address-space cap that external data fits in, an inline model fails as a memory
    limit (exit 5, "use --external-data"), not as "onnx.checker rejects the model: std::bad_alloc"."""
    def run(mode: str) -> str:
        r = subprocess.run([sys.executable, "-c", _CAPPED, str(ROOT), str(tmp_path / f"{mode}.onnx"), mode],
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-2000:]
        return r.stdout.strip()
    got = run("inline")
    assert got.startswith("5 ") and "not enough memory to build an inline ONNX model" in got, got
    assert "--external-data" in got and "bad_alloc" not in got and "rejects" not in got
    assert not (tmp_path / "inline.onnx").exists()
    assert run("external") == "ok"


def test_checker_memory_error_is_an_output_error(tmp_path, monkeypatch):
    from converter.writers import _onnx_impl

    def short(*a, **k):
        raise RuntimeError("std::bad_alloc")
    monkeypatch.setattr(_onnx_impl.onnx.checker, "check_model", short)
    with pytest.raises(OutputError, match="not enough memory to build an inline ONNX model; use --external-data"):
        _onnx_impl.check(tmp_path / "x.onnx")


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symlinks")
def test_external_data_checks_without_openat(tmp_path, monkeypatch):
    """Where the platform has no ``openat`` (``dir_fd``), each part is checked with lstat."""
    monkeypatch.setattr(os, "supports_dir_fd", set())
    out = _external(tmp_path)
    assert read_output(out).tables["userId"].rows == 4
    data = out.with_name(out.name + ".data")
    real = tmp_path / "elsewhere.bin"
    data.rename(real)
    data.symlink_to(real)
    with pytest.raises(EmbconvError, match="symbolic link"):
        read_output(out)
