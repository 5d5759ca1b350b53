"""Issue 13: what ``embconv scan`` calls clean, unsafe, inconclusive and unreadable, and that
``converter.load`` agrees (docs/robustness.md, "What a scan verdict means").

* a getattr of a special attribute (``__globals__``, ``__class__`` …, any ``__x__``) on any
  receiver, stubs included, is refused: scan "unsafe" (exit 1), load ``UnsafeInputError``;
* a scan that stops inside a pickle (memo index over the limit, unknown opcode, truncation, nested
  bytes it cannot read) is "inconclusive" (exit 3), never "clean"; load fails with exit 3;
* pickles nested in ``torch.storage._load_from_bytes`` are scanned, their globals listed with
  ``nested_at`` (and a note), and a dangerous one refuses the file (exit 1) in scan and load.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import converter
from converter.errors import EmbconvError, ResourceLimitError, UnreadableInputError, UnsafeInputError
from converter.pickle import open_model_file, scan_file

from .conftest import FIXTURES
from .hostile.builders import EMPTY_DICT, call, global_, long_binput, make_zip_file, unicode
from .hostile.corpus import CASES_BY_NAME, getattr_of, in_learner, in_state_dict, plain

REPO = Path(__file__).resolve().parent.parent


def _cli(*args: str | os.PathLike) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return subprocess.run([sys.executable, "-m", "converter", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=60)


def _case(tmp_path: Path, name: str) -> tuple[Path, Path]:
    canary = tmp_path / "CANARY"
    case = CASES_BY_NAME[name]
    path = tmp_path / case.filename
    path.write_bytes(case.build(str(canary)))
    return path, canary


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _scan_json(path: Path) -> tuple[int, dict]:
    r = _cli("scan", "--json", path)
    assert "Traceback" not in r.stderr, r.stderr
    return r.returncode, json.loads(r.stdout)


def _refused(report) -> list[tuple[str, str]]:
    return [(u.module, u.name) for u in report.globals if u.verdict == "refused"]


# ---- getattr of special attributes ------------------------------------------------------------
SPECIAL = ["__globals__", "__builtins__", "__class__", "__subclasses__", "__init__", "__reduce__", "__code__",
           "__dict__", "__x__", "__reduce_ex__", "__self__", "__func__", "__mro__", "__bases__",
           "__getattribute__", "__closure__", "__loader__", "__spec__", "__private", "get.__globals__"]

RECEIVERS = {
    "class": lambda: global_("fastai.basic_train", "Learner"),
    "instance": lambda: call(global_("fastai.basic_train", "Learner")),
    "attribute": lambda: getattr_of(global_("fastai.basic_train", "Learner"), "fit"),
}


@pytest.mark.parametrize("name", SPECIAL)
@pytest.mark.parametrize("receiver", sorted(RECEIVERS))
def test_special_getattr_on_a_stub_is_refused(tmp_path, name, receiver):
    path = _write(tmp_path, "g.pkl", in_learner(getattr_of(RECEIVERS[receiver](), name)))
    report = scan_file(path)
    assert report.verdict == "unsafe" and report.exit_code == 1, report.error
    assert _refused(report) == [("builtins", "getattr")]
    refused = next(u for u in report.globals if u.verdict == "refused")
    assert repr(name) in refused.reason and "fastai.basic_train.Learner" in refused.reason
    assert [(a.name, a.verdict) for a in report.attributes] == [(name, "refused")]
    with pytest.raises(UnsafeInputError, match=r"attribute .* at byte \d+"):
        open_model_file(path)
    with pytest.raises(UnsafeInputError):
        converter.load(path)


def test_learner_init_globals_chain(tmp_path):
    """The issue's file: ``getattr(Learner.__init__, '__globals__')`` is no longer "clean"."""
    path, _ = _case(tmp_path, "stub_getattr_init_globals")
    code, out = _scan_json(path)
    assert (code, out["verdict"]) == (1, "unsafe")
    refused = [g for g in out["globals"] if g["verdict"] == "refused"]
    assert [(g["module"], g["name"]) for g in refused] == [("builtins", "getattr")] * 2
    assert "'__init__'" in refused[0]["reason"] and "'__globals__'" in refused[1]["reason"]
    assert "fastai.basic_train.Learner.__init__" in refused[1]["reason"]
    assert {(g["module"], g["name"], g["verdict"]) for g in out["globals"]} >= {
        ("fastai.basic_train", "Learner", "stubbed")}
    with pytest.raises(UnsafeInputError, match="'__init__'"):
        converter.load(path)


@pytest.mark.parametrize("name", ["stub_getattr_globals_exec", "stub_instance_getattr_class_subclasses",
                                  "stub_getattr_reduce_in_zip", "getattr_on_codecs_result_chain"])
def test_special_getattr_corpus_cases(tmp_path, name):
    path, canary = _case(tmp_path, name)
    r = _cli("scan", path)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "verdict:   unsafe" in r.stdout and "refused       builtins.getattr" in r.stdout
    with pytest.raises(UnsafeInputError):
        converter.load(path)
    assert not canary.exists()


def test_dotted_global_through_a_dunder(tmp_path):
    path, _ = _case(tmp_path, "dotted_name_init_globals")
    report = scan_file(path)
    assert report.verdict == "unsafe"
    assert _refused(report) == [("fastai.basic_train", "Learner.__init__.__globals__")]
    with pytest.raises(UnsafeInputError, match="special attribute '__init__'"):
        open_model_file(path)


@pytest.mark.parametrize("name", ["fit", "dataloaders", "_do_nothing", "before_iter", "x_"])
def test_ordinary_getattr_on_a_stub_stays_inert(tmp_path, name):
    """Real exports keep bound methods of fastai objects, public and ``_private`` ones (the real
    models hold ``getattr(WeightDropout(), '_do_nothing')``): still clean."""
    path = _write(tmp_path, "ok.pkl", in_learner(getattr_of(call(global_("fastai.basic_train", "Learner")), name)))
    report = scan_file(path)
    assert report.verdict == "clean", report.error
    mf = open_model_file(path)
    mf.close()


# ---- inconclusive: the scan did not see everything ---------------------------------------------
def test_memo_index_2_30_is_not_clean(tmp_path):
    path = _write(tmp_path, "memo.pkl", plain(EMPTY_DICT + long_binput(2**30)))
    report = scan_file(path)
    assert report.verdict == "inconclusive" and report.exit_code == 3
    assert report.globals == [] and "memo index 1,073,741,824" in report.error
    code, out = _scan_json(path)
    assert (code, out["verdict"]) == (3, "inconclusive")
    with pytest.raises(ResourceLimitError, match="memo index"):
        open_model_file(path)
    with pytest.raises(EmbconvError) as e:
        converter.load(path)
    assert e.value.exit_code == 3


@pytest.mark.parametrize("name,seen,needle", [
    ("unknown_opcode_after_global", ("fastai.basic_train", "Learner"), "invalid pickle opcode 0xff"),
    ("memo_get_unwritten_after_global", ("fastai.basic_train", "Learner"), "memo index 7"),
    ("torch_storage_load_from_bytes_garbage", ("torch.storage", "_load_from_bytes"), "not a torch file"),
    ("torch_storage_load_from_bytes_truncated", ("fastai.basic_train", "Learner"), "truncated"),
    ("memo_many_sparse_entries", None, "memo index"),
])
def test_scan_that_stops_early_is_inconclusive(tmp_path, name, seen, needle):
    path, _ = _case(tmp_path, name)
    r = _cli("scan", path)
    assert r.returncode == 3 and "verdict:   inconclusive" in r.stdout, r.stdout + r.stderr
    assert len(r.stderr.splitlines()) == 1 and needle in r.stderr and path.name in r.stderr
    report = scan_file(path)
    assert report.verdict == "inconclusive" and report.stops
    if seen:
        assert seen in [(u.module, u.name) for u in report.globals]
    with pytest.raises(UnreadableInputError):
        open_model_file(path)


def test_truncated_after_a_stubbed_global(tmp_path):
    data = in_learner(call(global_("fastai.basic_train", "Learner")))  # ... GLOBAL ) R u .
    path = _write(tmp_path, "cut.pkl", data[:-3])
    report = scan_file(path)
    assert report.verdict == "inconclusive" and "truncated" in report.error
    assert ("fastai.basic_train", "Learner") in [(u.module, u.name) for u in report.globals]


def test_refused_then_broken_is_still_unsafe(tmp_path):
    path, _ = _case(tmp_path, "truncated_after_dangerous_global")
    report = scan_file(path)
    assert report.verdict == "unsafe" and _refused(report) == [("posix", "system")]


@pytest.mark.parametrize("data,needle", [
    (b"", "empty"), (b"Id,name\n1,x\n", "not a model file"), (b"\x00\x01garbage", "not a model file"),
])
def test_nothing_run_is_unreadable_not_inconclusive(tmp_path, data, needle):
    path = _write(tmp_path, "x.bin", data)
    report = scan_file(path)
    assert report.verdict == "unreadable" and report.exit_code == 3 and needle in report.error


def test_broken_container_after_complete_pickles_is_unreadable(tmp_path):
    path, _ = _case(tmp_path, "truncated_legacy_blob")
    assert scan_file(path).verdict == "unreadable"


# ---- nested pickles (torch.storage._load_from_bytes) -------------------------------------------
def _load_from_bytes_offset(path: Path) -> int:
    """The file offset of the REDUCE of torch.storage._load_from_bytes (where nested_at points)."""
    report = scan_file(path)
    outer = [u for u in report.globals if u.nested_at is None]
    assert any(u.name == "_load_from_bytes" for u in outer)
    return next(iter({u.nested_at for u in report.nested}))


@pytest.mark.parametrize("name,inner", [
    ("torch_storage_load_from_bytes_plain_pickle", ("posix", "system")),
    ("torch_storage_load_from_bytes_plain_in_plain", ("os", "system")),
    ("torch_storage_load_from_bytes", ("os", "system")),
    ("torch_storage_load_from_bytes_getattr_globals", ("builtins", "getattr")),
])
def test_dangerous_nested_global_refuses_the_file(tmp_path, name, inner):
    path, canary = _case(tmp_path, name)
    code, out = _scan_json(path)
    assert (code, out["verdict"]) == (1, "unsafe"), out
    assert "nested in torch.storage._load_from_bytes" in out["error"]
    assert any("nested in torch.storage._load_from_bytes" in n and f"{inner[0]}.{inner[1]} (refused" in n
               for n in out["notes"]), out["notes"]
    report = scan_file(path)
    nested_refused = [(u.module, u.name) for u in report.nested if u.verdict == "refused"]
    assert nested_refused[0] == inner
    assert all(u.nested_at is None for u in report.globals if u.name == "_load_from_bytes")
    at = _load_from_bytes_offset(path)
    assert at > 0 and path.read_bytes()[at:at + 1] == b"R"  # the REDUCE that calls _load_from_bytes
    with pytest.raises(UnsafeInputError, match=r"nested in torch\.storage\._load_from_bytes at byte \d+"):
        open_model_file(path)
    with pytest.raises(UnsafeInputError):
        converter.load(path)
    assert not canary.exists()


def test_cli_text_lists_nested_globals(tmp_path):
    path, _ = _case(tmp_path, "torch_storage_load_from_bytes_plain_pickle")
    r = _cli("scan", path)
    assert r.returncode == 1
    assert "refused       posix.system" in r.stdout
    assert "nested in torch.storage._load_from_bytes" in r.stdout
    assert "verdict:   unsafe" in r.stdout


def test_nested_inside_nested_is_refused(tmp_path):
    path, _ = _case(tmp_path, "torch_storage_load_from_bytes_twice_nested")
    report = scan_file(path)
    assert report.verdict == "unsafe"
    assert ("torch.storage", "_load_from_bytes") in [(u.module, u.name) for u in report.nested if u.verdict == "refused"]
    with pytest.raises(UnsafeInputError, match="nested"):
        open_model_file(path)


def test_nested_plain_pickle_without_payload_is_unreadable_for_load(tmp_path):
    """A harmless plain pickle in _load_from_bytes is still not a torch file (exit 3), and the
    scan has seen all of it: its globals are listed as nested, the file is not clean."""
    inner = plain(call(global_("collections", "OrderedDict")))
    path = _write(tmp_path, "n.pth", make_zip_file(in_state_dict(
        call(global_("torch.storage", "_load_from_bytes"), call(global_("_codecs", "encode"),
                                                                unicode(inner.decode("latin1")), unicode("latin1")))),
        {}))
    report = scan_file(path)
    assert report.verdict == "inconclusive" and [(u.module, u.name) for u in report.nested] == [
        ("collections", "OrderedDict")]
    with pytest.raises(UnreadableInputError, match="plain pickle, not a torch file"):
        open_model_file(path)


def test_real_nested_storages_scan_clean():
    """fastai 1.0.40/41 plain-pickle exports keep every storage as _load_from_bytes(<legacy file>):
    clean, the nested globals listed and noted."""
    path = FIXTURES / "fastai1" / "collab_dot_plain_export.pkl"
    report = scan_file(path)
    assert report.verdict == "clean", report.error
    assert report.nested and all(u.verdict == "reconstructed" for u in report.nested)
    assert any("nested in torch.storage._load_from_bytes" in n for n in report.notes)
    code, out = _scan_json(path)
    assert (code, out["verdict"]) == (0, "clean")
