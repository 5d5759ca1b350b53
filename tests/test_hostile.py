"""The hostile-file corpus (tests/hostile/corpus.py) against the CLI and the reader API.

For every corpus entry the file is written into a fresh directory, then

* ``python -m converter inspect FILE`` and ``python -m converter scan FILE`` run as subprocesses
  (cwd = that directory, 20 s timeout, address space capped at 2 GiB) and must exit with an
  accepted status, print exactly one non-empty stderr line naming the file when they fail, never
  print a traceback, and leave the canary (and every other new file) uncreated;
* an in-process pass loads the whole corpus with ``converter.pickle.open_model_file`` (and
  materialises every tensor it yields) and checks that no canary appeared, that no module such as
  ``subprocess`` or ``runpy`` got imported, and that no BUILD payload modified the reader's own
  functions or classes.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import types
from pathlib import Path

import pytest

from .damage.harness import Timeout as CaseTimeout
from .damage.harness import deadline, memory_cap
from .hostile.corpus import CASES, MARKER, Case

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
TIMEOUT = 20
MEM_CAP = 2 << 30  # 2 GiB of address space per CLI run

IDS = [c.name for c in CASES]


def _limit_memory() -> None:  # runs in the child between fork and exec
    resource.setrlimit(resource.RLIMIT_AS, (MEM_CAP, MEM_CAP))


def write_case(case: Case, directory: Path) -> tuple[Path, Path]:
    """Write the case's file (and any helper files) into ``directory``; return (file, canary)."""
    directory.mkdir(parents=True, exist_ok=True)
    canary = directory / "CANARY"
    path = directory / case.filename
    path.write_bytes(case.build(str(canary)))
    if case.extra_files:
        for name, data in case.extra_files(str(canary)).items():
            (directory / name).write_bytes(data)
    return path, canary


def run_cli(command: str, case: Case, directory: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("PYTHONSTARTUP", None)
    try:
        return subprocess.run(
            [sys.executable, "-m", "converter", *command.split(), case.filename],
            cwd=directory,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=TIMEOUT,
            preexec_fn=_limit_memory,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"embconv {command} {case.filename} did not finish within {TIMEOUT}s ({case.description})")


def check_cli_result(command: str, case: Case, r: subprocess.CompletedProcess, accepted: frozenset[int],
                     canary: Path, files_before: set[str], directory: Path) -> None:
    what = f"embconv {command} {case.filename} ({case.description})"
    detail = f"\n--- exit {r.returncode}\n--- stderr:\n{r.stderr[-3000:]}\n--- stdout:\n{r.stdout[-1500:]}"
    assert not canary.exists(), f"CANARY CREATED by {what}" + detail
    new_files = set(os.listdir(directory)) - files_before
    assert not new_files, f"{what} created files {sorted(new_files)}" + detail
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout, f"traceback from {what}" + detail
    assert r.returncode in accepted, f"{what}: exit {r.returncode}, expected one of {sorted(accepted)}" + detail
    if r.returncode != 0:
        lines = r.stderr.splitlines()
        assert len(lines) == 1 and lines[0].strip(), (
            f"{what}: stderr must be exactly one non-empty line, got {len(lines)}" + detail)
        assert case.filename in lines[0], f"{what}: the error line does not name the file" + detail


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_cli_inspect_tables(case: Case, tmp_path: Path) -> None:
    """The table view runs the loaders on top of the reader: the same refusals; a benign file
    that holds no embedding tables may be refused as not a model (3)."""
    _, canary = write_case(case, tmp_path)
    before = set(os.listdir(tmp_path))
    accepted = case.inspect_codes | ({3} if 0 in case.inspect_codes else set())
    r = run_cli("inspect", case, tmp_path)
    check_cli_result("inspect", case, r, frozenset(accepted), canary, before, tmp_path)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_cli_inspect(case: Case, tmp_path: Path) -> None:
    _, canary = write_case(case, tmp_path)
    before = set(os.listdir(tmp_path))
    r = run_cli("inspect --tensors", case, tmp_path)
    check_cli_result("inspect --tensors", case, r, case.inspect_codes, canary, before, tmp_path)
    if r.returncode == 0:
        for tensor_path, (shape, dtype, _values) in case.tensors.items():
            assert tensor_path in r.stdout, f"inspect output lacks tensor {tensor_path!r}:\n{r.stdout}"
            assert dtype in r.stdout, f"inspect output lacks dtype {dtype!r}:\n{r.stdout}"
            assert str(list(shape)) in r.stdout, f"inspect output lacks shape {list(shape)}:\n{r.stdout}"


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_cli_scan(case: Case, tmp_path: Path) -> None:
    _, canary = write_case(case, tmp_path)
    before = set(os.listdir(tmp_path))
    r = run_cli("scan", case, tmp_path)
    check_cli_result("scan", case, r, case.scan_codes, canary, before, tmp_path)


# ---------------------------------------------------------------------------------------------
# in process

# modules no load may pull in (checked against the set imported before the loop)
FORBIDDEN_TOPLEVEL = {
    "subprocess", "_posixsubprocess", "runpy", "pty", "socket", "webbrowser", "pdb", "bdb", "ctypes",
    "multiprocessing", "asyncio", "pkgutil", "code", "codeop", "nt", "antigravity", "http", "urllib",
    "smtplib", "ftplib", "telnetlib", "torch", "fastai", "shutil", "tempfile", "pathlib", "zipimport",
}


def _forbidden(mod: str) -> bool:
    return mod.split(".")[0] in FORBIDDEN_TOPLEVEL or mod.startswith("numpy.testing")




def address_space_headroom(extra: int = MEM_CAP):
    """Lower the soft RLIMIT_AS to (current size + extra) for the block, then restore it."""
    return memory_cap(extra)


def _converter_objects():
    """(qualified name, object) for every function and class defined in converter.* modules."""
    for modname, mod in list(sys.modules.items()):
        if not (modname == "converter" or modname.startswith("converter.")) or mod is None:
            continue
        for attr, value in list(vars(mod).items()):
            if isinstance(value, dict):  # e.g. a cache of stub classes
                for k, v in list(value.items()):
                    if isinstance(v, type):
                        yield f"{modname}.{attr}[{k!r}]", v
            if isinstance(value, (types.FunctionType, type)):
                yield f"{modname}.{attr}", value
                if isinstance(value, type):
                    for a, v in list(vars(value).items()):
                        if isinstance(v, types.FunctionType):
                            yield f"{modname}.{attr}.{a}", v


def _fingerprint(obj) -> tuple:
    if isinstance(obj, types.FunctionType):
        return (obj.__defaults__, obj.__kwdefaults__, obj.__code__, tuple(sorted(vars(obj))))
    return (tuple(sorted(vars(obj))),)


def _load_and_materialise(case: Case, path: Path, open_model_file, iter_tensors, EmbconvError):
    """The exit status the library implies for this file: the exit_code of the EmbconvError raised
    by open_model_file, iter_tensors or a TensorRef.to_numpy(), or 0. Any other exception fails."""
    import numpy as np

    try:
        mf = open_model_file(str(path))
    except EmbconvError as e:
        return e.exit_code, str(e)
    try:
        seen = {}
        for tpath, t in mf.tensors():
            arr = t.to_numpy()
            # API-DRAFT says t.dtype is a str; accept an object with a .name too
            seen[tpath] = (tuple(t.shape), getattr(t.dtype, "name", t.dtype), arr)
        for tpath, (shape, dtype, values) in case.tensors.items():
            assert tpath in seen, f"{case.name}: tensor {tpath!r} missing (got {sorted(seen)})"
            got_shape, got_dtype, arr = seen[tpath]
            assert got_shape == shape and got_dtype == dtype, f"{case.name}: {tpath} {got_shape} {got_dtype}"
            np.testing.assert_array_equal(arr.reshape(-1), np.array(values, dtype=arr.dtype))
        return 0, ""
    except EmbconvError as e:
        return e.exit_code, str(e)
    finally:
        mf.close()


def test_inprocess_corpus_has_no_side_effects(tmp_path: Path) -> None:
    from converter.errors import EmbconvError
    from converter.pickle import iter_tensors, open_model_file, scan_file

    # warm up: import everything a benign load and scan needs, so "new modules" means "caused by a payload"
    warm = [c for c in CASES if c.expected == 0 and c.tensors]
    for c in warm:
        path, _ = write_case(c, tmp_path / ("warmup-" + c.name))
        code, msg = _load_and_materialise(c, path, open_model_file, iter_tensors, EmbconvError)
        assert code == 0, f"benign control {c.name} failed in process: {msg}"
        assert scan_file(str(path)).verdict == "clean"

    fingerprints = {name: _fingerprint(o) for name, o in _converter_objects()}
    modules_before = set(sys.modules)
    failures: list[str] = []

    for case in CASES:
        d = tmp_path / case.name
        path, canary = write_case(case, d)
        try:
            with address_space_headroom(), deadline(TIMEOUT):
                code, msg = _load_and_materialise(case, path, open_model_file, iter_tensors, EmbconvError)
                report = scan_file(str(path))
        except CaseTimeout:
            failures.append(f"{case.name}: did not finish within {TIMEOUT}s in process")
            continue
        except AssertionError as e:
            failures.append(f"{case.name}: {e}")
            continue
        except BaseException as e:  # noqa: BLE001 - anything but an EmbconvError is a reader bug
            failures.append(f"{case.name}: raised {type(e).__name__}: {str(e)[:200]}")
            continue
        finally:
            if canary.exists():
                failures.append(f"{case.name}: CANARY CREATED")
        if code not in case.inspect_codes:
            failures.append(f"{case.name}: library status {code} not in {sorted(case.inspect_codes)} ({msg[:160]})")
        if report.exit_code not in case.scan_codes:
            failures.append(f"{case.name}: scan_file verdict {report.verdict!r} not in {sorted(case.scan_codes)}")
        if code != 0 and case.filename not in msg:
            failures.append(f"{case.name}: error message does not name the file: {msg[:160]}")

    new_modules = set(sys.modules) - modules_before
    bad_modules = sorted(m for m in new_modules if _forbidden(m))
    if bad_modules:
        failures.append(f"loading the corpus imported {bad_modules}")

    import collections

    import numpy as np

    f4 = np.dtype("float32")
    if (f4.str, f4.flags, f4.hasobject, f4.itemsize) != ("<f4", 0, False, 4):
        failures.append(f"the numpy float32 dtype singleton was modified: {f4.str} flags={f4.flags}")

    if MARKER in vars(collections.OrderedDict):
        failures.append("collections.OrderedDict was modified by a BUILD payload")
    for name, o in _converter_objects():
        if name in fingerprints and _fingerprint(o) != fingerprints[name]:
            failures.append(f"{name} was modified while loading the corpus (BUILD on a global?)")
        elif MARKER in getattr(o, "__dict__", {}):
            failures.append(f"{name} carries the BUILD marker attribute")
    assert not failures, "\n".join(failures)
