"""``scan``: every global a file names and embconv's verdict on each, without loading tensors.

The file's verdict (docs/robustness.md, "What a scan verdict means"):

* ``clean`` (exit 0) — every pickle was run to its end, and every global they name (nested
  pickles included) is reconstructed or stubbed; no getattr of a special attribute;
* ``unsafe`` (exit 1) — something is refused: a refused global or getattr (listed), or a refused
  opcode or construct (the error says which); also when the scan later stopped early;
* ``inconclusive`` (exit 3) — nothing refused among what was seen, but a pickle stopped before
  its end (corrupt or unknown opcode, truncation, a resource limit such as a memo index of
  2**30, nested bytes that cannot be read): the rest was not seen, so the file is not clean;
* ``unreadable`` (exit 3) — no pickle could be run at all (cannot open, empty, not a model
  file, a container embconv does not read, a damaged zip directory) or the pickles ran to their
  end and the container around them is broken (e.g. a legacy storage blob cut short).
"""

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
    verdict: str = "clean"  # "clean" | "unsafe" | "inconclusive" | "unreadable"
    error: str | None = None
    # builtins.getattr calls on values the pickle built itself (numpy arrays, dicts …), and
    # refused getattr of special attributes on anything (stubs included)
    attributes: list[AttrUse] = field(default_factory=list)
    # why a pickle run stopped before its end (the first failure): the scan did not see everything
    stops: list[str] = field(default_factory=list)

    @property
    def nested(self) -> list[GlobalUse]:
        """The globals named by pickles nested in ``torch.storage._load_from_bytes``."""
        return [u for u in self.globals if u.nested_at is not None]

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
        nested = self.nested
        if nested:
            calls = sorted({u.nested_at for u in nested if u.nested_at is not None})
            seen: dict[tuple[str, str, str], int] = {}
            for u in nested:
                seen[(u.module, u.name, u.verdict)] = seen.get((u.module, u.name, u.verdict), 0) + 1
            order = sorted(seen, key=lambda k: (k[2] != "refused", k))
            shown = [f"{m}.{n} ({v}{f' ×{seen[(m, n, v)]}' if seen[(m, n, v)] > 1 else ''})"
                     for m, n, v in order[:8]]
            more = f" and {len(order) - len(shown)} more" if len(order) > len(shown) else ""
            at = ", ".join(str(c) for c in calls[:4]) + (", …" if len(calls) > 4 else "")
            notes.append(f"{len(nested)} of the globals above {'is' if len(nested) == 1 else 'are'} named by pickles nested in "
                         f"torch.storage._load_from_bytes (at byte {at}), which torch.load runs too: "
                         f"{', '.join(shown)}{more}")
        return notes

    @property
    def exit_code(self) -> int:
        return {"clean": 0, "unsafe": 1, "inconclusive": 3, "unreadable": 3}[self.verdict]


# Globals that rebuild functions or classes from pickled code objects (cloudpickle, dill).
CODE_CARRIERS = frozenset({
    ("cloudpickle.cloudpickle", "_make_function"), ("cloudpickle.cloudpickle", "_make_skeleton_class"),
    ("cloudpickle.cloudpickle", "_builtin_type"), ("cloudpickle.cloudpickle", "_make_code"),
    ("dill._dill", "_create_function"), ("dill._dill", "_create_code"), ("dill._dill", "_create_type"),
})


def scan_file(path: str | os.PathLike) -> ScanReport:
    """Run the file's pickles in record-only mode: refused globals are listed (not loaded) and
    the scan goes on, so the report shows everything the file names; a scan that stops before
    the end of a pickle is "inconclusive" (or "unsafe" if it refused something first)."""
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
                read_buffer(p, mm, record_only=True, uses=report.globals, attr_uses=report.attributes,
                            stops=report.stops)
    except OSError as e:
        report.verdict, report.error = "unreadable", f"{p}: cannot open: {e.strerror}"
        return report
    except UnsafeInputError as e:
        report.verdict, report.error = "unsafe", f"{p}: {e.message}"
        return report
    except EmbconvError as e:
        # A refused global met before the failure decides: a "broken pickle" whose dangerous
        # part comes before a deliberately corrupt tail is unsafe, not merely unreadable. With
        # nothing refused, a pickle that stopped early leaves the scan inconclusive.
        first = _first_refused(report)
        if first is not None:
            report.verdict = "unsafe"
            report.error = (f"{p}: refused global '{first.module}.{first.name}' {first.where}: "
                            f"{first.reason} (and then: {e.message})")
        elif report.stops:
            report.verdict = "inconclusive"
            report.error = (f"{p}: scan inconclusive: the pickle could not be read to its end, so what "
                            f"follows was not seen ({e.message})")
        else:
            report.verdict, report.error = "unreadable", f"{p}: {e.message}"
        return report
    except BufferError:
        pass
    first = _first_refused(report)
    if first is not None:
        report.verdict = "unsafe"
        report.error = f"{p}: refused global '{first.module}.{first.name}' {first.where}: {first.reason}"
    elif report.stops:  # a pickle stopped early and the reader went on (defensive: none does today)
        report.verdict = "inconclusive"
        report.error = f"{p}: scan inconclusive: a pickle could not be read to its end ({report.stops[0]})"
    return report


def _first_refused(report: ScanReport) -> GlobalUse | None:
    return next((u for u in report.globals if u.verdict == "refused"), None)


def _container_guess(mm: mmap.mmap) -> str | None:
    try:
        return sniff(bytes(mm[:512]), len(mm))
    except EmbconvError:
        return None
