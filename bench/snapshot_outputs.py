"""Refactor guard (not a test): prove that embconv writes the same outputs before and after a change.

``snapshot`` runs the real CLI (``python -m converter``, one subprocess per command) over every model
file in ``tests/fixtures/`` and in ``../shared/real-models/*/`` and keeps everything it produced;
``compare`` checks two snapshots for equality, format by format.

    # 1. the "before" snapshot, from the pristine tree (e.g. a git worktree of the old commit):
    PYTHONPATH=/tmp/before .venv/bin/python bench/snapshot_outputs.py snapshot /tmp/snap-before
    # 2. the "after" snapshot, from the working tree:
    .venv/bin/python bench/snapshot_outputs.py snapshot /tmp/snap-after      # or --code /work/main
    # 3. prove them identical (exit 0), or list every difference (exit 1):
    .venv/bin/python bench/snapshot_outputs.py compare /tmp/snap-before /tmp/snap-after

Which ``converter`` is snapshotted: the one ``import converter`` finds for this script (PYTHONPATH
first, then the venv's editable install), or ``--code DIR`` (the folder holding ``converter/``).
Its ``converter/`` is copied to a private temporary folder first (``--in-place``: not), so that
edits made during the snapshot cannot mix two states; the subprocesses run with that folder as cwd
and first on PYTHONPATH, a probe checks that they import it, and ``meta.json`` records the package's
path and a sha256 of its files (bytecode goes to ``$TMPDIR/embconv-snapshot-pycache``, never into a
source tree). About 2 minutes on 2 cores (904 commands); ``-k SUBSTR`` runs only some cases. The model files, sidecars and the Python interpreter are
the same for both snapshots: those of the tree this script lives in, and ``sys.executable``.

Cases: each model file as it is (no options); v0.7 fixtures again with the sidecar vocabularies
their truth lists (``--vocab KEY=ratings.csv:userId`` …, ``--y-range`` for collab); ``learn.save``
``.pth`` fixtures again with the vocabularies of their companion export (and ``--y-range`` for
collab dot models); three real models with their sidecar (store.csv, the notebook's export). Every
``convert`` gets ``--allow-unlabelled`` when the converter has that flag (probed with ``convert --help``;
recorded as ``consent`` in ``meta.json``), so that tables without a vocabulary are still written;
``compare`` ignores that flag in the argv.
Per case, in ``OUTDIR/<case>/``: ``inspect.json`` (``inspect SRC --json`` stdout); ``out.safetensors``,
``out.onnx``, ``out[.<table>].vec``, ``out[.<table>].bin`` (+ word2vec ``.manifest.json`` sidecars),
``out-float16.safetensors`` (``--dtype float16``), ``out-drop-unknown[.<table>].vec``
(``--drop-unknown``); ``inspect-output.json`` (``inspect out.safetensors --json``: embconv reading its
own output; compared without ``source.sha256``/``size``, which are those of out.safetensors); ``log.json``: argv, exit code, stdout, stderr and time of every command. Failures are
recorded, not fatal: the same failure before and after counts as identical.

``compare``: safetensors by tensor names, dtypes, shapes and bytes plus ``__metadata__``; ONNX by
initializers (names, types, dims, bytes), graph inputs/outputs, nodes (op types in order, then
inputs, outputs and attributes, e.g. the LabelEncoder vocabularies), opsets and metadata_props;
word2vec ``.vec``/``.bin`` and any other file byte for byte; JSON (inspect stdout, sidecars, embedded
manifests) after normalisation: ``embconv_version`` and ``schema_version`` dropped, ``warnings`` reduced
to their message texts (a string, or the ``message`` of a ``{"code", "table", "message"}`` object),
snapshot/code/fixture folders and temporary names replaced by placeholders (ONNX ``producer_version``,
the embconv version, is ignored too); per command the exit code and the first line of stderr (and,
for a Python traceback, the last: the exception). One line per difference, then
``N cases, M files compared, K differences``; exit 1 on any difference.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
REAL_MODELS = Path(os.environ.get("EMBCONV_REAL_MODELS", ROOT.parent / "shared" / "real-models")).resolve()
HARNESS = "embconv-snapshot/1"
NOT_MODELS = {".py", ".json", ".md", ".csv", ".tsv", ".txt", ".sh"}
MAX_LINES_PER_FILE = 20

# Real models whose folder holds what labels their rows (tests/test_loaders.py, real-models/README.md).
REAL_SIDECARS: dict[tuple[str, str], tuple[str, list[tuple[str, str]]]] = {
    ("v07-tabular-ziheng-rossmann", "val0.h5"): (
        "store", [("embs.8", "store.csv:StoreType"), ("embs.9", "store.csv:Assortment"),
                  ("embs.10", "store.csv:PromoInterval")]),
    ("v1-collab-lilit-export", "movieRecom.pth"): (
        "export", [("embeds.0.weight", "export.pkl"), ("embeds.1.weight", "export.pkl")]),
    ("v1-collab-laloceh-ncf-export", "tmp.pth"): (
        "export", [("u_weight.weight", "ncf.model"), ("i_weight.weight", "ncf.model")]),
}


# --------------------------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class Case:
    name: str
    src: Path
    vocab: tuple[tuple[str, str], ...] = ()
    y_range: tuple[float, float] | None = None
    why: str = "as it is"

    def vocab_args(self) -> list[str]:
        return [a for key, spec in self.vocab for a in ("--vocab", f"{key}={spec}")]

    def convert_args(self) -> list[str]:
        yr = ["--y-range", f"{self.y_range[0]!r},{self.y_range[1]!r}"] if self.y_range else []
        return self.vocab_args() + yr


def _truths(folder: Path) -> dict[str, dict[str, Any]]:
    out = {}
    for p in sorted(folder.glob("truth.*.json")):
        truth = json.loads(p.read_text(encoding="utf-8"))
        out[truth["file"]] = truth
    return out


def _sidecar_files(folder: Path, truths: dict[str, dict[str, Any]]) -> set[str]:
    """Files of ``folder`` that label another file's rows (itos.pkl, CSVs), not models."""
    names = set()
    for truth in truths.values():
        for spec in (truth.get("sidecars") or {}).values():
            names.add(spec.split(":")[0])
    return {n for n in names if (folder / n).is_file()}


def _model_files(folder: Path, truths: dict[str, dict[str, Any]]) -> list[Path]:
    """Every model in ``folder``: the files a truth describes, plus any other non-data file."""
    sidecars = _sidecar_files(folder, truths)
    found = {folder / f for f in truths if (folder / f).is_file()}
    for p in folder.iterdir():
        if p.is_file() and not p.name.startswith(("truth.", ".")) and p.suffix.lower() not in NOT_MODELS \
                and p.name not in sidecars:
            found.add(p)
    return sorted(found)


def _y_range(truth: dict[str, Any]) -> tuple[float, float] | None:
    yr = truth.get("y_range")
    return (float(yr[0]), float(yr[1])) if yr and truth.get("kind") == "collab-dot" else None


def discover_cases() -> list[Case]:
    cases: list[Case] = []
    for folder in sorted(p for p in FIXTURES.iterdir() if p.is_dir() and p.name.startswith("fastai")):
        truths = _truths(folder)
        for src in _model_files(folder, truths):
            base = f"fx.{folder.name}.{src.name}"
            cases.append(Case(base, src))
            truth = truths.get(src.name, {})
            if truth.get("sidecars"):
                vocab = tuple((k, str(folder / spec)) for k, spec in truth["sidecars"].items())
                cases.append(Case(base + "+sidecars", src, vocab, _y_range(truth), "truth sidecars"))
            if truth.get("companion_export"):
                export = str(folder / truth["companion_export"])
                keys = [t["source_key"] for t in truth["tables"]
                        if t.get("vocab") is None and not str(t.get("role", "")).endswith("bias")]
                if keys:
                    vocab = tuple((k, export) for k in keys)
                    cases.append(Case(base + "+export-vocab", src, vocab,
                                      _y_range(truth) if truth.get("artifact") != "export" else None,
                                      f"vocab from {truth['companion_export']}"))
    if REAL_MODELS.is_dir():
        for folder in sorted(p for p in REAL_MODELS.iterdir() if p.is_dir()):
            for src in _model_files(folder, _truths(folder)):
                base = f"real.{folder.name}.{src.name}"
                cases.append(Case(base, src))
                extra = REAL_SIDECARS.get((folder.name, src.name))
                if extra:
                    label, specs = extra
                    vocab = tuple((k, str(folder / spec)) for k, spec in specs)
                    cases.append(Case(f"{base}+{label}", src, vocab, None, f"vocab from {label}"))
    names = [c.name for c in cases]
    assert len(names) == len(set(names)), "case names must be unique"
    return cases


# ------------------------------------------------------------------------------------------ snapshot


@dataclass(frozen=True)
class Command:
    id: str
    argv: list[str]
    stdout_file: str | None = None


def case_commands(case: Case, out: Path, consent: tuple[str, ...] = ()) -> list[Command]:
    """``consent``: ``("--allow-unlabelled",)`` where the converter has it (the bare ``.pth``/``.h5``
    cases are written with numbered rows, as before that flag existed), else empty."""
    src = str(case.src)
    conv = [*case.convert_args(), *consent]

    def convert(cid: str, name: str, *extra: str) -> Command:
        return Command(cid, ["convert", src, str(out / name), "--force", *extra, *conv])

    return [
        # `inspect` takes --vocab but has no --y-range.
        Command("inspect", ["inspect", src, "--json", *case.vocab_args()], "inspect.json"),
        convert("convert-safetensors", "out.safetensors"),
        convert("convert-onnx", "out.onnx"),
        convert("convert-vec", "out.vec"),
        convert("convert-bin", "out.bin"),
        convert("convert-safetensors-float16", "out-float16.safetensors", "--dtype", "float16"),
        convert("convert-vec-drop-unknown", "out-drop-unknown.vec", "--drop-unknown"),
        Command("inspect-output", ["inspect", str(out / "out.safetensors"), "--json"], "inspect-output.json"),
    ]


@dataclass(frozen=True)
class Runner:
    python: str
    code: Path
    env: dict[str, str]
    timeout: float

    def run(self, argv: list[str]) -> tuple[int | str, bytes, bytes, float]:
        t0 = time.perf_counter()
        try:
            p = subprocess.run([self.python, *argv], cwd=self.code, env=self.env, capture_output=True,
                               timeout=self.timeout, stdin=subprocess.DEVNULL)
            code: int | str = p.returncode
            stdout, stderr = p.stdout, p.stderr
        except subprocess.TimeoutExpired as e:
            code = f"timeout after {self.timeout:g} s"
            stdout, stderr = e.stdout or b"", e.stderr or b""
        return code, stdout, stderr, time.perf_counter() - t0


def _text(b: bytes) -> str:
    return b.decode("utf-8", "replace")


def stderr_key(stderr: str) -> str:
    """What is compared of a command's stderr: its first line, and for a Python traceback (whose
    first line says nothing) also the last, the exception."""
    lines = stderr.strip().splitlines() or [""]
    return f"{lines[0]} … {lines[-1]}" if lines[0].startswith("Traceback") else lines[0]


def snapshot_case(case: Case, outdir: Path, runner: Runner, consent: tuple[str, ...] = ()) -> dict[str, Any]:
    out = outdir / case.name
    out.mkdir(parents=True)
    log: dict[str, Any] = {"case": case.name, "src": str(case.src), "why": case.why,
                           "vocab": [list(v) for v in case.vocab], "y_range": case.y_range, "commands": []}
    for cmd in case_commands(case, out, consent):
        code, stdout, stderr, seconds = runner.run(["-m", "converter", *cmd.argv])
        entry: dict[str, Any] = {"id": cmd.id, "argv": ["python", "-m", "converter", *cmd.argv],
                                 "exit_code": code, "stderr": _text(stderr), "seconds": round(seconds, 3)}
        if cmd.stdout_file:
            (out / cmd.stdout_file).write_bytes(stdout)
            entry["stdout_file"] = cmd.stdout_file
        else:
            entry["stdout"] = _text(stdout)
        log["commands"].append(entry)
    (out / "log.json").write_text(json.dumps(log, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return log


def resolve_code(explicit: str | None) -> Path:
    """The folder holding the ``converter`` package to snapshot."""
    if explicit:
        code = Path(explicit).resolve()
        if not (code / "converter" / "__init__.py").is_file():
            raise SystemExit(f"--code {explicit}: no converter/__init__.py there")
        return code
    spec = importlib.util.find_spec("converter")
    if spec is None or not spec.origin:
        raise SystemExit("no importable converter package: set PYTHONPATH or pass --code DIR")
    code = Path(spec.origin).resolve().parent.parent
    for entry in filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep)):
        if (Path(entry) / "converter" / "__init__.py").is_file():
            if Path(entry).resolve() != code:
                raise SystemExit(f"PYTHONPATH names {entry} but `import converter` finds {code} "
                                 "(cwd on sys.path?): pass --code DIR to say which one")
            break
    return code


def child_env(code: Path, pycache: Path | None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(code), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))])
    env.pop("PYTHONSTARTUP", None)
    env["PYTHONIOENCODING"] = "utf-8"
    if pycache is not None:  # bytecode cached outside every source tree (nothing is written into --code)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


def cmd_snapshot(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    code = resolve_code(args.code)
    outdir = Path(args.outdir).resolve()
    if outdir.exists() and any(outdir.iterdir()):
        if not (outdir / "meta.json").is_file():
            raise SystemExit(f"{outdir} exists, is not empty and is not a snapshot: refusing to replace it")
        shutil.rmtree(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    # Marks the folder as a snapshot (so a re-run may replace it) that is not complete yet.
    (outdir / "meta.json").write_text(json.dumps({"harness": HARNESS, "complete": False}) + "\n", encoding="utf-8")
    digest = tree_sha256(code / "converter")
    # A private copy, so that edits made to the tree while the snapshot runs cannot mix two states.
    copy = None if args.in_place else Path(tempfile.mkdtemp(prefix="embconv-snapshot-code-"))
    try:
        if copy is not None:
            shutil.copytree(code / "converter", copy / "converter", ignore=shutil.ignore_patterns("__pycache__"))
            if tree_sha256(copy / "converter") != digest:
                raise SystemExit(f"{code}/converter changed while it was copied: run again")
        return _snapshot(args, outdir, code, copy or code, digest, t0)
    finally:
        if copy is not None:
            shutil.rmtree(copy, ignore_errors=True)


def tree_sha256(folder: Path) -> str:
    """sha256 over the relative paths and bytes of a package's files (bytecode caches left out)."""
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file() and "__pycache__" not in p.parts:
            h.update(str(p.relative_to(folder)).encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def _snapshot(args: argparse.Namespace, outdir: Path, code: Path, run_from: Path, digest: str, t0: float) -> int:
    pycache = None if args.no_pycache else Path(tempfile.gettempdir()) / "embconv-snapshot-pycache"
    runner = Runner(args.python, run_from, child_env(run_from, pycache), args.timeout)
    # Where the subprocesses find converter (find_spec does not run it: a broken tree is snapshotted too).
    probe = runner.run(["-c", "import importlib.util as u; print(u.find_spec('converter').origin)"])
    found = _text(probe[1]).strip()
    if probe[0] != 0 or not found or Path(found).resolve() != run_from.resolve() / "converter" / "__init__.py":
        raise SystemExit(f"the subprocesses do not import {run_from}/converter: {found} {_text(probe[2])}")
    imported = runner.run(["-m", "converter", "--version"])
    version = _text(imported[1]).strip() if imported[0] == 0 else \
        f"unimportable: {(_text(imported[2]).strip().splitlines() or ['?'])[-1]}"
    # Converters that refuse unlabelled tables without consent get it, so that every case is written.
    usage = runner.run(["-m", "converter", "convert", "--help"])
    consent = ("--allow-unlabelled",) if b"--allow-unlabelled" in usage[1] else ()
    cases = discover_cases()
    if args.k:
        cases = [c for c in cases if any(k in c.name for k in args.k)]
    print(f"snapshot of {code}/converter (sha256 {digest[:12]}…, {version}"
          f"{f', run from a copy in {run_from}' if run_from != code else ''}) → {outdir}: "
          f"{len(cases)} cases, {args.jobs} jobs", flush=True)
    order = sorted(cases, key=lambda c: -c.src.stat().st_size)  # big first: better packing of the jobs
    failures: list[str] = []
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        for log in pool.map(lambda c: snapshot_case(c, outdir, runner, consent), order):
            for c in log["commands"]:
                if c["exit_code"] != 0:
                    failures.append(f"  {log['case']} {c['id']}: exit {c['exit_code']}: {stderr_key(c['stderr'])}")
    seconds = time.perf_counter() - t0
    meta = {"harness": HARNESS, "complete": True, "converter": str(code / "converter"),
            "converter_sha256": digest, "version": version, "code": str(code), "code_run": str(run_from),
            "outdir": str(outdir), "fixtures": str(FIXTURES), "real_models": str(REAL_MODELS),
            "real_models_present": REAL_MODELS.is_dir(), "python": args.python, "jobs": args.jobs,
            "seconds": round(seconds, 1), "cases": [c.name for c in cases], "consent": list(consent),
            "commands": len(cases) * len(case_commands(cases[0], outdir)) if cases else 0,
            "failed_commands": len(failures)}
    (outdir / "meta.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    if failures:
        print(f"{len(failures)} of {meta['commands']} commands exited non-zero (recorded in log.json):")
        print("\n".join(sorted(failures)[:args.show]))
        if len(failures) > args.show:
            print(f"  … and {len(failures) - args.show} more (--show N to see them)")
    print(f"{len(cases)} cases, {meta['commands']} commands in {seconds:.1f} s")
    return 0


# ------------------------------------------------------------------------------------------- compare


class Normaliser:
    """Replaces one snapshot's folders and temporary names by placeholders, in every string."""

    _TEMP = [(re.compile(r"(\.[^/\s'\"]+?\.)[a-z0-9_]{8}\.embconv-tmp"), r"\1XXXXXXXX.embconv-tmp"),
             (re.compile(re.escape(tempfile.gettempdir()) + r"/tmp[a-z0-9_]{8}(?![\w.-])"), "$TMPDIR")]

    def __init__(self, meta: dict[str, Any]) -> None:
        wanted = {"outdir": "$OUT", "fixtures": "$FIXTURES", "real_models": "$REAL_MODELS", "code": "$CODE",
                  "code_run": "$CODE"}
        pairs = sorted(((str(meta[k]), r) for k, r in wanted.items() if meta.get(k)), key=lambda pr: -len(pr[0]))
        self._paths = [(re.compile(re.escape(p) + r"(?=/|$|[^\w.-])"), r) for p, r in pairs]

    def text(self, s: str) -> str:
        for rx, rep in self._paths:
            s = rx.sub(rep, s)
        for rx, rep in self._TEMP:
            s = rx.sub(rep, s)
        return s

    def json(self, v: Any) -> Any:
        if isinstance(v, str):
            return self.text(v)
        if isinstance(v, list):
            return [self.json(x) for x in v]
        if isinstance(v, dict):
            return {self.text(k): self.json(x) for k, x in v.items()}
        return v


def normalise_manifest(m: Any) -> Any:
    """A manifest as compared: no version fields, warnings as their message texts."""
    if not isinstance(m, dict):
        return m
    m = {k: v for k, v in m.items() if k not in ("embconv_version", "schema_version")}
    if isinstance(m.get("warnings"), list):
        m["warnings"] = [w.get("message") if isinstance(w, dict) else w for w in m["warnings"]]
    return m


def json_diffs(a: Any, b: Any, path: str = "") -> Iterator[str]:
    """Every differing leaf of two JSON values, as ``path: a != b``."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in list(a) + [k for k in b if k not in a]:
            p = f"{path}.{k}" if path else str(k)
            if k not in b:
                yield f"{p}: only before ({_short(a[k])})"
            elif k not in a:
                yield f"{p}: only after ({_short(b[k])})"
            else:
                yield from json_diffs(a[k], b[k], p)
        if [k for k in a if k in b] != [k for k in b if k in a]:
            yield f"{path or '<root>'}: key order {list(a)} != {list(b)}"
    elif isinstance(a, list) and isinstance(b, list):
        for i, (x, y) in enumerate(zip(a, b)):
            yield from json_diffs(x, y, f"{path}[{i}]")
        if len(a) != len(b):
            yield f"{path}: {len(a)} items != {len(b)} items"
    elif isinstance(a, str) and isinstance(b, str) and a != b:
        yield f"{path or '<root>'}: {_str_diff(a, b)}"
    elif type(a) is not type(b) or a != b:
        yield f"{path or '<root>'}: {_short(a)} != {_short(b)}"


def _str_diff(a: str, b: str, width: int = 40) -> str:
    """Two differing strings, around their first difference when they are long."""
    if len(a) <= 2 * width and len(b) <= 2 * width:
        return f"{a!r} != {b!r}"
    i = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    lo = max(0, i - width)
    cut = "…" if lo else ""
    return f"{cut}{a[lo:i + width]!r}… != {cut}{b[lo:i + width]!r}… (at char {i})"


def _short(v: Any, n: int = 100) -> str:
    s = json.dumps(v, ensure_ascii=False) if not isinstance(v, str) else repr(v)
    return s if len(s) <= n else s[: n - 1] + "…"


def _manifest_json_diffs(a: str, b: str, na: Normaliser, nb: Normaliser) -> Iterator[str]:
    try:
        ja, jb = json.loads(a), json.loads(b)
    except ValueError:
        ta, tb = na.text(a), nb.text(b)
        if ta != tb:
            yield f"not both JSON, and the texts differ: {_short(ta)} != {_short(tb)}"
        return
    yield from json_diffs(na.json(normalise_manifest(ja)), nb.json(normalise_manifest(jb)))


def _props_diffs(a: dict[str, str], b: dict[str, str], na: Normaliser, nb: Normaliser,
                 what: str) -> Iterator[str]:
    """Key/value metadata (safetensors __metadata__, ONNX metadata_props); manifests compared as JSON."""
    for k in list(a) + [k for k in b if k not in a]:
        if k not in b or k not in a:
            yield f"{what} {k!r}: only {'before' if k in a else 'after'}"
        elif k == "embconv.manifest":
            for d in _manifest_json_diffs(a[k], b[k], na, nb):
                yield f"{what} {k}: {d}"
        elif na.text(a[k]) != nb.text(b[k]):
            yield f"{what} {k!r}: {_short(a[k])} != {_short(b[k])}"


def read_safetensors(path: Path) -> tuple[dict[str, tuple[str, str, tuple[int, ...], bytes]], dict[str, str]]:
    import numpy as np
    from safetensors import safe_open

    tensors = {}
    with safe_open(str(path), framework="numpy") as f:
        metadata = dict(f.metadata() or {})
        for name in f.keys():
            st_dtype = f.get_slice(name).get_dtype()
            a = f.get_tensor(name)
            tensors[name] = (st_dtype, str(a.dtype), tuple(a.shape), np.ascontiguousarray(a).tobytes())
    return tensors, metadata


def safetensors_diffs(a: Path, b: Path, na: Normaliser, nb: Normaliser) -> Iterator[str]:
    ta, ma = read_safetensors(a)
    tb, mb = read_safetensors(b)
    if set(ta) != set(tb):
        yield f"tensor names: only before {sorted(set(ta) - set(tb))}, only after {sorted(set(tb) - set(ta))}"
    yield from _array_diffs("tensor", {n: ((sd, dt), sh, by) for n, (sd, dt, sh, by) in ta.items()},
                            {n: ((sd, dt), sh, by) for n, (sd, dt, sh, by) in tb.items()}, sorted(set(ta) & set(tb)))
    yield from _props_diffs(ma, mb, na, nb, "__metadata__")


def _array_diffs(kind: str, a: dict[str, tuple[Any, tuple[int, ...], bytes]], b: dict[str, tuple[Any, tuple[int, ...], bytes]],
                 names: list[str]) -> Iterator[str]:
    """Differences of the named arrays in ``names``, each given as (type, shape, bytes)."""
    for name in names:
        (type_a, shape_a, bytes_a), (type_b, shape_b, bytes_b) = a[name], b[name]
        if type_a != type_b:
            yield f"{kind} {name}: type {type_a} != {type_b}"
        if shape_a != shape_b:
            yield f"{kind} {name}: shape {list(shape_a)} != {list(shape_b)}"
        if bytes_a != bytes_b:
            yield f"{kind} {name}: bytes differ ({_first_diff(bytes_a, bytes_b)})"


def _first_diff(a: bytes, b: bytes) -> str:
    n = min(len(a), len(b))
    i = next((i for i in range(n) if a[i] != b[i]), n)
    return f"{len(a)} vs {len(b)} bytes, first difference at byte {i}"


def read_onnx(path: Path) -> dict[str, Any]:
    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(path))
    g = m.graph
    inits = {}
    for t in g.initializer:
        arr = numpy_helper.to_array(t, base_dir=str(path.parent))
        inits[t.name] = (t.data_type, tuple(t.dims), str(arr.dtype), arr.tobytes() if arr.dtype != object
                         else repr(arr.tolist()).encode())
    return {
        "model": {"ir_version": m.ir_version, "opset_import": [(o.domain, o.version) for o in m.opset_import],
                  "producer_name": m.producer_name, "domain": m.domain, "model_version": m.model_version,
                  "doc_string": m.doc_string, "graph.name": g.name, "graph.doc_string": g.doc_string,
                  "functions": [f.SerializeToString() for f in m.functions],
                  "graph.value_info": [v.SerializeToString() for v in g.value_info],
                  "graph.sparse_initializer": [s.SerializeToString() for s in g.sparse_initializer]},
        "init_order": [t.name for t in g.initializer],
        "inits": inits,
        "inputs": [(v.name, v.type.SerializeToString()) for v in g.input],
        "outputs": [(v.name, v.type.SerializeToString()) for v in g.output],
        "ops": [(n.domain, n.op_type) for n in g.node],
        "nodes": [(n.name, list(n.input), list(n.output), sorted((a.name, a.SerializeToString()) for a in n.attribute))
                  for n in g.node],
        "props": {p.key: p.value for p in m.metadata_props},
    }


def onnx_diffs(a: Path, b: Path, na: Normaliser, nb: Normaliser) -> Iterator[str]:
    oa, ob = read_onnx(a), read_onnx(b)
    for k, va in oa["model"].items():
        if va != ob["model"][k]:
            yield f"model {k}: {_short(str(va))} != {_short(str(ob['model'][k]))}"
    ia, ib = oa["inits"], ob["inits"]
    if set(ia) != set(ib):
        yield f"initializer names: only before {sorted(set(ia) - set(ib))}, only after {sorted(set(ib) - set(ia))}"
    elif oa["init_order"] != ob["init_order"]:
        yield "initializer order differs"
    yield from _array_diffs("initializer", {n: ((dt, np_), dims, by) for n, (dt, dims, np_, by) in ia.items()},
                            {n: ((dt, np_), dims, by) for n, (dt, dims, np_, by) in ib.items()},
                            [n for n in oa["init_order"] if n in ib])
    for part in ("inputs", "outputs"):
        if oa[part] != ob[part]:
            names_a, names_b = [n for n, _ in oa[part]], [n for n, _ in ob[part]]
            detail = f"{names_a} != {names_b}" if names_a != names_b else "same names, different types"
            yield f"graph {part}: {detail}"
    if oa["ops"] != ob["ops"]:
        yield f"node op types: {[t for _, t in oa['ops']]} != {[t for _, t in ob['ops']]}"
    else:
        for i, (x, y) in enumerate(zip(oa["nodes"], ob["nodes"])):
            if x != y:
                what = [w for w, u, v in zip(("name", "inputs", "outputs", "attributes"), x, y) if u != v]
                yield f"node {i} ({oa['ops'][i][1]}): {', '.join(what)} differ"
    yield from _props_diffs(oa["props"], ob["props"], na, nb, "metadata_props")


def bytes_diffs(a: Path, b: Path, na: Normaliser, nb: Normaliser) -> Iterator[str]:
    ba, bb = a.read_bytes(), b.read_bytes()
    if ba != bb:
        yield f"bytes differ ({_first_diff(ba, bb)})"


def sidecar_diffs(a: Path, b: Path, na: Normaliser, nb: Normaliser) -> Iterator[str]:
    ja, jb = (json.loads(p.read_text(encoding="utf-8")) for p in (a, b))
    for j in (ja, jb):
        if isinstance(j, dict) and "embconv.manifest" in j:
            j["embconv.manifest"] = normalise_manifest(j["embconv.manifest"])
    yield from json_diffs(na.json(ja), nb.json(jb))


def stdout_json_diffs(a: Path, b: Path, na: Normaliser, nb: Normaliser) -> Iterator[str]:
    ta, tb = a.read_text("utf-8", "replace"), b.read_text("utf-8", "replace")
    if a.name == "inspect-output.json":
        ta, tb = _without_output_hash(ta), _without_output_hash(tb)
    yield from _manifest_json_diffs(ta, tb, na, nb)


def _without_output_hash(text: str) -> str:
    """``inspect out.safetensors``: the source is the output file itself, whose sha256 and size follow
    from its header (the manifest, compared normalised in out.safetensors), so they are left out."""
    try:
        m = json.loads(text)
    except ValueError:
        return text
    if isinstance(m, dict) and isinstance(m.get("source"), dict):
        m["source"] = {k: v for k, v in m["source"].items() if k not in ("sha256", "size")}
    return json.dumps(m, ensure_ascii=False)


def log_diffs(a: Path, b: Path, na: Normaliser, nb: Normaliser) -> Iterator[str]:
    ca = {c["id"]: c for c in json.loads(a.read_text(encoding="utf-8"))["commands"]}
    cb = {c["id"]: c for c in json.loads(b.read_text(encoding="utf-8"))["commands"]}
    if list(ca) != list(cb):
        yield f"commands {list(ca)} != {list(cb)}"
    for cid in [c for c in ca if c in cb]:
        x, y = ca[cid], cb[cid]
        # The consent flag is given to every converter that has it: its absence is not another command.
        xa, ya = ([a for a in c["argv"] if a != "--allow-unlabelled"] for c in (x, y))
        if na.json(xa) != nb.json(ya):
            yield f"{cid}: the snapshots ran different commands: {na.json(xa)} != {nb.json(ya)}"
        if x["exit_code"] != y["exit_code"]:
            yield f"{cid}: exit code {x['exit_code']} != {y['exit_code']}"
        ea, eb = na.text(stderr_key(x["stderr"])), nb.text(stderr_key(y["stderr"]))
        if ea != eb:
            yield f"{cid}: stderr {_str_diff(ea, eb, 100)}"


Differ = Callable[[Path, Path, Normaliser, Normaliser], Iterator[str]]


def differ_for(name: str) -> Differ:
    if name == "log.json":
        return log_diffs
    if name in ("inspect.json", "inspect-output.json"):
        return stdout_json_diffs
    if name.endswith(".manifest.json"):
        return sidecar_diffs
    if name.endswith(".safetensors"):
        return safetensors_diffs
    if name.endswith(".onnx"):
        return onnx_diffs
    return bytes_diffs  # .vec, .bin, .onnx.data, anything else


def file_diffs(a: Path, b: Path, na: Normaliser, nb: Normaliser) -> list[str]:
    """The differences of one file; a file unreadable on one side is a difference, and one
    unreadable the same way on both sides is not."""
    differ = differ_for(a.name)
    try:
        return list(differ(a, b, na, nb))
    except Exception as e:
        errors = []
        for side, norm in ((a, na), (b, nb)):
            try:
                list(differ(side, side, norm, norm))
                errors.append("")
            except Exception as e2:
                errors.append(norm.text(f"{type(e2).__name__}: {e2}"))
        if errors[0] and errors[0] == errors[1]:
            return []
        if not any(errors):
            return [f"comparison failed: {type(e).__name__}: {e}"]
        return [f"unreadable: before {errors[0] or 'readable'}; after {errors[1] or 'readable'}"]


def _load_meta(d: Path) -> dict[str, Any]:
    p = d / "meta.json"
    if not p.is_file():
        print(f"warning: {d} has no meta.json (not a finished snapshot?); paths are not normalised")
        return {"outdir": str(d.resolve())}
    meta: dict[str, Any] = json.loads(p.read_text(encoding="utf-8"))
    return meta


def _case_dirs(d: Path) -> dict[str, Path]:
    return {p.name: p for p in sorted(d.iterdir()) if p.is_dir() and (p / "log.json").is_file()}


def _files(d: Path) -> list[str]:
    return sorted(str(p.relative_to(d)) for p in d.rglob("*") if p.is_file())


def cmd_compare(args: argparse.Namespace) -> int:
    da, db = Path(args.before), Path(args.after)
    for d in (da, db):
        if not d.is_dir():
            raise SystemExit(f"{d}: not a folder")
    ma, mb = _load_meta(da), _load_meta(db)
    na, nb = Normaliser(ma), Normaliser(mb)
    for label, m in (("before", ma), ("after: ", mb)):
        print(f"{label} {m.get('converter')} (sha256 {str(m.get('converter_sha256'))[:12]}…, {m.get('version')}; "
              f"{len(m.get('cases', []))} cases in {m.get('seconds')} s)")
    if ma.get("converter_sha256") and ma.get("converter_sha256") == mb.get("converter_sha256"):
        print("note: both snapshots were taken from identical converter code (same sha256)")
    for m, d in ((ma, da), (mb, db)):
        if not m.get("complete", True):
            print(f"warning: {d} is an unfinished snapshot")
        if m.get("real_models_present") is False:
            print(f"warning: {d} was taken without the real models ({m.get('real_models')} absent)")
        if m.get("harness", HARNESS) != HARNESS:
            print(f"warning: {d} was made by {m.get('harness')}, this is {HARNESS}")
    ca, cb = _case_dirs(da), _case_dirs(db)
    differences = files = 0

    def report(where: str, line: str) -> None:
        nonlocal differences
        differences += 1
        print(f"DIFF {where}: {line}")

    for case in sorted(set(ca) | set(cb)):
        if case not in cb or case not in ca:
            report(case, f"case only {'before' if case in ca else 'after'}")
            continue
        fa, fb = _files(ca[case]), _files(cb[case])
        for name in sorted(set(fa) | set(fb)):
            files += 1
            where = f"{case}/{name}"
            if name not in fb or name not in fa:
                report(where, f"file only {'before' if name in fa else 'after'}")
                continue
            found = file_diffs(ca[case] / name, cb[case] / name, na, nb)
            for line in found[:MAX_LINES_PER_FILE]:
                report(where, line)
            if len(found) > MAX_LINES_PER_FILE:
                differences += len(found) - MAX_LINES_PER_FILE
                print(f"DIFF {where}: … and {len(found) - MAX_LINES_PER_FILE} more")
    cases = len(set(ca) | set(cb))
    print(f"{cases} cases, {files} files compared, {differences} differences")
    return 1 if differences else 0


# ---------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("snapshot", help="run every case with the importable converter and keep the outputs")
    s.add_argument("outdir")
    s.add_argument("--code", help="folder holding the converter package (default: what `import converter` finds)")
    s.add_argument("--jobs", "-j", type=int, default=os.cpu_count() or 2, help="parallel cases (default: cores)")
    s.add_argument("--timeout", type=float, default=600, help="seconds per command (default 600)")
    s.add_argument("--python", default=sys.executable, help="interpreter for the CLI (default: this one)")
    s.add_argument("-k", action="append", default=[], metavar="SUBSTR", help="only cases whose name contains it")
    s.add_argument("--show", type=int, default=40, metavar="N", help="failed commands listed (default 40)")
    s.add_argument("--in-place", action="store_true",
                   help="run the code where it is (default: from a private copy taken at the start)")
    s.add_argument("--no-pycache", action="store_true", help="do not cache bytecode (in $TMPDIR) between commands")
    c = sub.add_parser("compare", help="compare two snapshots; exit 1 on any difference")
    c.add_argument("before")
    c.add_argument("after")
    args = p.parse_args(argv)
    return int(cmd_snapshot(args) if args.command == "snapshot" else cmd_compare(args))


if __name__ == "__main__":
    sys.exit(main())
