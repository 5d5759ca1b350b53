"""``scan``: every global a file names and embconv's verdict on each, without loading tensors."""

from __future__ import annotations

import mmap
import os
from dataclasses import dataclass, field

from ..errors import EmbconvError, UnsafeInputError
from .containers import read_buffer, sniff
from .globals import AttrUse, GlobalUse


@dataclass
class ScanReport:
    path: str
    container: str | None
    globals: list[GlobalUse] = field(default_factory=list)
    verdict: str = "clean"  # "clean" | "unsafe" | "unreadable"
    error: str | None = None
    # builtins.getattr calls on values the pickle built itself (numpy arrays, dicts …), not on stubs
    attributes: list[AttrUse] = field(default_factory=list)

    @property
    def notes(self) -> list[str]:
        """Things worth knowing that do not make the file unsafe for embconv."""
        notes = []
        code = [u for u in self.globals if u.verdict == "stubbed" and (u.module, u.name) in CODE_CARRIERS]
        if code:
            notes.append(f"the file carries pickled code ({len(code)} uses of "
                         f"{', '.join(sorted({u.name for u in code}))}): "
                         "fastai's load_learner would run it; embconv only records it")
        inert = [a for a in self.attributes if a.verdict == "inert"]
        if inert:
            counts: dict[str, int] = {}
            for a in inert:
                key = f"{a.receiver}.{a.name}"
                counts[key] = counts.get(key, 0) + 1
            shown = sorted(counts)[:8]
            more = f" and {len(counts) - len(shown)} more" if len(counts) > len(shown) else ""
            times = "once" if len(inert) == 1 else f"{len(inert)} times"
            notes.append(f"the pickle calls builtins.getattr {times} on data it built itself "
                         f"({', '.join(k + (f' ×{counts[k]}' if counts[k] > 1 else '') for k in shown)}{more}): "
                         "bound methods fastai's load_learner would rebuild; embconv records them as inert "
                         "stubs and never looks them up or calls them")
        return notes

    @property
    def exit_code(self) -> int:
        return {"clean": 0, "unsafe": 1, "unreadable": 3}[self.verdict]


# Globals that rebuild functions or classes from pickled code objects (cloudpickle, dill).
CODE_CARRIERS = frozenset({
    ("cloudpickle.cloudpickle", "_make_function"), ("cloudpickle.cloudpickle", "_make_skeleton_class"),
    ("cloudpickle.cloudpickle", "_builtin_type"), ("cloudpickle.cloudpickle", "_make_code"),
    ("dill._dill", "_create_function"), ("dill._dill", "_create_code"), ("dill._dill", "_create_type"),
})


def scan_file(path: str | os.PathLike) -> ScanReport:
    """Run the file's pickles in record-only mode: refused globals are listed (not loaded) and
    the scan goes on, so the report shows everything the file names."""
    p = os.fspath(path)
    report = ScanReport(p, None)
    try:
        with open(p, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size == 0:
                report.verdict, report.error = "unreadable", f"{p}: the file is empty"
                return report
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                report.container = _container_guess(mm)
                read_buffer(p, mm, record_only=True, uses=report.globals, attr_uses=report.attributes)
    except OSError as e:
        report.verdict, report.error = "unreadable", f"{p}: cannot open: {e.strerror}"
        return report
    except UnsafeInputError as e:
        report.verdict, report.error = "unsafe", f"{p}: {e.message}"
        return report
    except EmbconvError as e:
        # A refused global met before the failure decides: a "broken pickle" whose dangerous
        # part comes before a deliberately corrupt tail is unsafe, not merely unreadable.
        report.verdict, report.error = "unreadable", f"{p}: {e.message}"
        refused = [u for u in report.globals if u.verdict == "refused"]
        if refused:
            first = refused[0]
            report.verdict = "unsafe"
            report.error = (f"{p}: refused global '{first.module}.{first.name}' at byte {first.offset}: "
                            f"{first.reason} (and then: {e.message})")
        return report
    except BufferError:
        pass
    if any(u.verdict == "refused" for u in report.globals):
        report.verdict = "unsafe"
        first = next(u for u in report.globals if u.verdict == "refused")
        report.error = f"{p}: refused global '{first.module}.{first.name}' at byte {first.offset}: {first.reason}"
    return report


def _container_guess(mm: mmap.mmap) -> str | None:
    try:
        return sniff(bytes(mm[:512]), len(mm))
    except EmbconvError:
        return None
