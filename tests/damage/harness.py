"""The property every damaged or hostile file must satisfy, checked in process under limits.

``check_file(path)`` runs, under a wall-clock deadline (``TIMEOUT`` s, SIGALRM) and an address-
space cap (``MEM_HEADROOM`` above the current size, RLIMIT_AS, restored afterwards):

1. ``converter.pickle.open_model_file(path)`` and ``t.to_numpy()`` for every tensor it yields;
2. ``converter.load(path)``, then the manifest and every table's weight and bias arrays.

Each stage either succeeds or raises ``converter.errors.EmbconvError`` with exit code 1 (unsafe)
or 3 (unreadable / corrupt / over a limit). Anything else — another exception, a timeout, a
``MemoryError`` (or the VM's "needs more memory than allowed", which is a MemoryError it caught)
— is a :class:`Violation`. Only SIGALRM and RLIMIT_AS are used, so the pytest process survives a
runaway case (a segfault would still take it down; the subprocess tests cover that)."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import sys
from collections import Counter
from dataclasses import dataclass, field

TIMEOUT = 10.0  # seconds per file (both stages)
MEM_HEADROOM = 2 << 30  # bytes of address space a check may add

# Modules that loading a file must never import (a payload running would pull one in).
FORBIDDEN_TOPLEVEL = frozenset({
    "subprocess", "_posixsubprocess", "runpy", "pty", "socket", "webbrowser", "pdb", "bdb", "ctypes",
    "multiprocessing", "asyncio", "pkgutil", "code", "codeop", "antigravity", "http", "urllib",
    "smtplib", "ftplib", "telnetlib", "torch", "fastai", "shutil", "tempfile", "zipimport",
})


class Violation(AssertionError):
    """The property does not hold for a file."""


class Timeout(BaseException):
    """Raised by SIGALRM; a BaseException so that ``except Exception`` in the reader can't eat it."""


@contextlib.contextmanager
def deadline(seconds: float):
    def on_alarm(signum, frame):
        raise Timeout()

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _vm_size() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


@contextlib.contextmanager
def memory_cap(extra: int = MEM_HEADROOM):
    """Lower the soft RLIMIT_AS to (current size + extra) for the block, then restore it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    new = _vm_size() + extra
    if hard != resource.RLIM_INFINITY:
        new = min(new, hard)
    resource.setrlimit(resource.RLIMIT_AS, (new, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@dataclass
class Outcome:
    """Exit status implied by each stage (0 ok, 1 unsafe, 3 unreadable) and what was seen."""

    open_code: int
    load_code: int
    open_message: str = ""
    load_message: str = ""
    warnings: list[str] = field(default_factory=list)  # ModelFile.warnings when it opened
    model_warnings: list[str] = field(default_factory=list)
    n_tensors: int = 0
    n_tables: int = 0

    @property
    def code(self) -> int:
        """The worst of the two stages: what ``embconv inspect`` would exit with."""
        return self.open_code or self.load_code


def _stage_open(path: str, out: Outcome) -> None:
    from converter.errors import EmbconvError
    from converter.pickle import open_model_file

    try:
        mf = open_model_file(path)
    except EmbconvError as e:
        out.open_code, out.open_message = _code(e), str(e)
        return
    try:
        out.warnings = list(mf.warnings)
        for _, t in mf.tensors():
            t.to_numpy()
            out.n_tensors += 1
    except EmbconvError as e:
        out.open_code, out.open_message = _code(e), str(e)
    finally:
        mf.close()


def _stage_load(path: str, out: Outcome) -> None:
    import converter
    from converter.errors import EmbconvError

    try:
        model = converter.load(path)
        model.manifest(include_tokens=True)
        for t in model.tables.values():
            t.weight  # noqa: B018 - materialise
            t.bias  # noqa: B018
        out.model_warnings = [w.message for w in model.warnings]
        out.n_tables = len(model.tables)
    except EmbconvError as e:
        out.load_code, out.load_message = _code(e), str(e)


def _code(e) -> int:
    if e.exit_code not in (1, 3):
        raise Violation(f"EmbconvError with exit code {e.exit_code}: {e}")
    if "needs more memory than allowed" in str(e):
        raise Violation(f"hit the {MEM_HEADROOM >> 20} MiB memory cap: {e}")
    return e.exit_code


def run_stages(path: str, out: Outcome, stages: str = "open,load") -> Outcome:
    """The stages without any limit (for drivers that impose their own, like atheris)."""
    if "open" in stages:
        _stage_open(path, out)
    if "load" in stages:
        _stage_load(path, out)
    return out


def check_file(path: str | os.PathLike, *, timeout: float = TIMEOUT, stages: str = "open,load") -> Outcome:
    """Run the stages on ``path`` under the limits; return the outcome or raise Violation."""
    p = os.fspath(path)
    out = Outcome(0, 0)
    try:
        with memory_cap(), deadline(timeout):
            run_stages(p, out, stages)
    except Violation:
        raise
    except Timeout:
        raise Violation(f"{p}: did not finish within {timeout:g} s") from None
    except BaseException as e:  # noqa: BLE001 - anything but an EmbconvError is a reader bug
        raise Violation(f"{p}: raised {type(e).__name__}: {str(e)[:300]}") from e
    if ("open" in stages and "load" in stages and out.open_code and out.load_code != out.open_code
            and not _looks_like_output(p)):
        # load() opens the file the same way first, so a refusal must be the same refusal
        raise Violation(f"{p}: open refused with {out.open_code} but load gave {out.load_code} "
                        f"({out.open_message[:120]} / {out.load_message[:120]})")
    return out


def _looks_like_output(path: str) -> bool:
    """converter.load() reads embconv outputs too: damage can make a file look like one."""
    from converter.api import is_output

    return is_output(path)


def forbidden_imports(before: set[str]) -> list[str]:
    """Modules imported since ``before`` that a load must never import."""
    return sorted(m for m in set(sys.modules) - before if m.split(".")[0] in FORBIDDEN_TOPLEVEL)


class Tally:
    """Counts of outcomes, for the reports (``EMBCONV_FUZZ_STATS=file.json`` writes them)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def add(self, group: str, out: Outcome) -> None:
        self.counts[f"{group}.tried"] += 1
        self.counts[f"{group}.exit{out.code}"] += 1
        total = sum(v for k, v in self.counts.items() if k.endswith(".tried"))
        if total % 5000 == 0 and os.environ.get("EMBCONV_FUZZ_LONG") == "1":
            print(f"\n[fuzz] {total} files checked: {dict(sorted(self.counts.items()))}", file=sys.stderr, flush=True)

    def dump(self, name: str) -> None:
        target = os.environ.get("EMBCONV_FUZZ_STATS")
        if not target:
            return
        import json

        try:
            with open(target) as f:
                all_stats = json.load(f)
        except (OSError, ValueError):
            all_stats = {}
        all_stats[name] = dict(sorted(self.counts.items()))
        with open(target, "w") as f:
            json.dump(all_stats, f, indent=2)
