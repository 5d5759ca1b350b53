"""Issue 11: ``builtins.getattr`` on data the pickle itself built (a fastai2 preview export keeps a
bound method of a numpy array), answered inertly; getattr gadgets stay refused.

The fixture ``fastai2preview/tabular_getattr_export.pkl`` is a real fastai2 0.0.30 export
(tests/fixtures/gen_fastai2preview.py, ``gen_tabular_getattr``): ``learn.to_label`` is
``np.array(['no', 'yes']).take``, which pickle writes as ``getattr(<ndarray>, 'take')``."""

from __future__ import annotations

import io
import json
import pickletools
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

import converter
from converter.errors import UnreadableInputError, UnsafeInputError
from converter.pickle import AttrStub, ObjectStub, open_model_file, scan_file

from .conftest import FIXTURES
from .hostile.builders import call, dict_, global_, int_, unicode
from .hostile.corpus import CASES_BY_NAME, MARKER, getattr_of, in_learner, np_int64_array, plain

FIXTURE = FIXTURES / "fastai2preview" / "tabular_getattr_export.pkl"
TRUTH = json.loads((FIXTURES / "fastai2preview" / "truth.tabular_getattr_export.pkl.json").read_text())


def _data_pkl(path: Path) -> bytes:
    with zipfile.ZipFile(path) as z:
        return z.read(next(n for n in z.namelist() if n.endswith("/data.pkl")))


def _find(root, pred, limit=200_000):
    """Every object in the graph (dicts, lists, tuples, stub state) for which pred holds."""
    out, seen, todo = [], set(), [root]
    while todo and len(seen) < limit:
        o = todo.pop()
        if id(o) in seen:
            continue
        seen.add(id(o))
        if pred(o):
            out.append(o)
        if isinstance(o, dict):
            todo.extend(o.keys())
            todo.extend(o.values())
        elif isinstance(o, (list, tuple, set, frozenset)):
            todo.extend(o)
        elif isinstance(o, ObjectStub):
            todo.extend([o.cls, o.args, o.kwargs, o.state, o.dictitems, o.listitems])
        elif isinstance(o, AttrStub):
            todo.append(o.owner)
    return out


# ---- the real export ---------------------------------------------------------------------------
def test_fixture_really_getattrs_a_numpy_array():
    ga = TRUTH["numpy_getattr"]
    assert (ga["object_path"], ga["receiver"], ga["name"]) == ("learn.to_label", "numpy.ndarray", "take")
    ops = [(op.name, arg) for op, arg, _ in pickletools.genops(io.BytesIO(_data_pkl(FIXTURE)))]
    assert ("GLOBAL", "__builtin__ getattr") in ops
    assert ("BINUNICODE", "take") in ops


def test_fixture_opens_and_matches_truth():
    model = converter.load(FIXTURE)
    assert model.model.kind == "tabular"
    assert model.source.generation == "fastai2-preview"
    assert list(model.tables) == TRUTH["cat_names"]
    for tb in TRUTH["tables"]:
        t = model.tables[tb["column"]]
        assert t.weight_key == tb["source_key"]
        assert list(t.weight.shape) == tb["shape"]
        assert t.vocab.strings == tb["vocab"]


def test_fixture_bound_method_is_an_inert_stub():
    mf = open_model_file(FIXTURE)
    try:
        hits = _find(mf.root, lambda o: isinstance(o, AttrStub) and o.name == "take")
        assert len(hits) == 1
        owner = hits[0].owner
        assert type(owner) is np.ndarray and owner.tolist() == TRUTH["numpy_getattr"]["receiver_values"]
        assert hits[0].qualname == "numpy.ndarray.take"
    finally:
        mf.close()


def test_fixture_scan_reports_the_getattr():
    report = scan_file(FIXTURE)
    assert report.verdict == "clean", report.error
    assert [(a.receiver, a.name, a.verdict) for a in report.attributes] == [("numpy.ndarray", "take", "inert")]
    assert report.attributes[0].offset > 0
    assert any("numpy.ndarray.take" in n and "inert" in n for n in report.notes)


# ---- attacks: refused, or inert with nothing run -------------------------------------------------
def _write(tmp_path: Path, name: str) -> tuple[Path, Path]:
    canary = tmp_path / "CANARY"
    path = tmp_path / f"{name}.pkl"
    path.write_bytes(CASES_BY_NAME[name].build(str(canary)))
    return path, canary


class _CallWatch:
    """A profile hook recording every call of the C method ``name`` bound to a value of type
    ``kind`` (the VM itself appends to lists, formats strings ... so only the attacked pair counts)."""

    def __init__(self, name: str, kind: type) -> None:
        self.name, self.kind = name, kind
        self.calls: list[str] = []

    def __call__(self, frame, event, arg):
        if event == "c_call" and getattr(arg, "__name__", None) == self.name \
                and isinstance(getattr(arg, "__self__", None), self.kind):
            if self.kind is not str or "__globals__" in arg.__self__:
                self.calls.append(f"{type(arg.__self__).__name__}.{self.name}")

    def __enter__(self):
        sys.setprofile(self)
        return self

    def __exit__(self, *exc):
        sys.setprofile(None)


@pytest.mark.parametrize("name,method,kind", [
    ("ndarray_getattr_tofile_called", "tofile", np.ndarray), ("ndarray_getattr_dump_called", "dump", np.ndarray),
    ("ndarray_getattr_tofile_newobj", "tofile", np.ndarray), ("dtype_getattr_type_called", "type", np.dtype),
    ("npscalar_getattr_item", "item", np.generic), ("list_getattr_append_called", "append", list),
    ("str_getattr_format_gadget", "format", str),
])
def test_called_data_attribute_stays_inert(tmp_path, name, method, kind):
    path, canary = _write(tmp_path, name)
    with _CallWatch(method, kind) as watch:
        mf = open_model_file(path)
    try:
        assert not canary.exists()
        if kind is not list:  # the VM appends to its own lists; the list case is checked below
            assert watch.calls == []
        called = _find(mf.root, lambda o: isinstance(o, ObjectStub) and isinstance(o.cls, AttrStub))
        assert called, "the call was recorded as a stub"
        for stub in called:
            assert plain_receiver(stub.cls) is not None
    finally:
        mf.close()
    assert scan_file(path).verdict == "clean"


def plain_receiver(attr: AttrStub):
    node = attr
    while isinstance(node, AttrStub):
        node = node.owner
    return None if isinstance(node, (AttrStub, ObjectStub)) else node


def test_tofile_names_the_path_but_writes_nothing(tmp_path):
    path, canary = _write(tmp_path, "ndarray_getattr_tofile_called")
    mf = open_model_file(path)
    try:
        stub = mf.root["to_label"]
        assert isinstance(stub, ObjectStub) and stub.args == (str(canary),)
        assert stub.class_name == "numpy.ndarray.tofile"
        assert stub.cls.owner.tolist() == [1, 2, 3]
    finally:
        mf.close()
    assert not canary.exists()


def test_dict_update_and_list_append_do_not_mutate(tmp_path):
    path, _ = _write(tmp_path, "dict_getattr_update_called")
    mf = open_model_file(path)
    try:
        assert mf.root["d"] == {"learner": "tabular"}
        assert isinstance(mf.root["upd"], ObjectStub) and mf.root["upd"].class_name == "dict.update"
    finally:
        mf.close()
    path, canary = _write(tmp_path, "list_getattr_append_called")
    mf = open_model_file(path)
    try:
        appended, the_list = mf.root["to_label"]
        assert the_list == [] and isinstance(appended, ObjectStub)
    finally:
        mf.close()


@pytest.mark.parametrize("name,needle", [
    ("ndarray_getattr_class", "'__class__'"), ("ndarray_getattr_reduce_ex", "'__reduce_ex__'"),
    ("ndarray_getattr_private", "'_x'"), ("ndarray_getattr_non_identifier", "'tofile.__globals__'"),
    ("npscalar_getattr_class_subclasses", "'__class__'"), ("dtype_getattr_class", "'__class__'"),
    ("getattr_on_reconstructor_global", "collections.OrderedDict"),
    ("getattr_on_getattr", "builtins.getattr"), ("getattr_on_torch_dtype_tag", "torch.float32"),
    ("ndarray_getattr_then_build", "BUILD"),
])
def test_gadget_getattr_refused(tmp_path, name, needle):
    path, canary = _write(tmp_path, name)
    with pytest.raises(UnsafeInputError) as e:
        open_model_file(path)
    assert needle in str(e.value) and path.name in str(e.value)
    assert not canary.exists()
    report = scan_file(path)
    assert report.verdict == "unsafe" and report.exit_code == 1


def test_refusal_names_the_byte_offset(tmp_path):
    path, _ = _write(tmp_path, "ndarray_getattr_class")
    with pytest.raises(UnsafeInputError, match=r"numpy\.ndarray, attribute '__class__' at byte \d+"):
        open_model_file(path)


def test_scan_goes_on_after_a_refused_getattr(tmp_path):
    """scan records the refusal (as a refused builtins.getattr use) and lists what follows."""
    body = dict_([(unicode("a"), getattr_of(np_int64_array(), "__class__")),
                  (unicode("b"), call(global_("fastai.basic_train", "Recorder")))])
    path = tmp_path / "scan_on.pkl"
    path.write_bytes(plain(body))
    report = scan_file(path)
    assert report.verdict == "unsafe"
    refused = [u for u in report.globals if u.verdict == "refused"]
    assert [(u.module, u.name) for u in refused] == [("builtins", "getattr")]
    assert "numpy.ndarray" in refused[0].reason and "'__class__'" in refused[0].reason
    assert "at byte" in report.error
    assert any(u.name == "Recorder" for u in report.globals)
    assert [(a.name, a.verdict) for a in report.attributes] == [("__class__", "refused")]


def test_getattr_extra_arguments_unreadable(tmp_path):
    path = tmp_path / "args.pkl"
    path.write_bytes(in_learner(call(global_("builtins", "getattr"), np_int64_array(), unicode("take"),
                                     int_(1), int_(2))))
    with pytest.raises(UnreadableInputError):
        open_model_file(path)


def test_build_marker_never_lands_on_numpy(tmp_path):
    path, _ = _write(tmp_path, "ndarray_getattr_then_build")
    with pytest.raises(UnsafeInputError):
        open_model_file(path)
    assert not hasattr(np.ndarray, MARKER) and not hasattr(np.ndarray.flags, MARKER)

