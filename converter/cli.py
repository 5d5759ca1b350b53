"""The command line: argument parsing and output formatting only (design.md §4)."""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from collections.abc import Sequence
from typing import Any

from . import __version__
from .errors import EmbconvError, UsageError
from .pickle import describe, open_model_file, scan_file


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse prints usage + exits 2; keep it one line
        raise UsageError(message)


def _build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="embconv", description="fastai learners → labelled embedding tables, read safely.")
    p.add_argument("--version", action="version", version=f"embconv {__version__}")
    p.add_argument("--debug", action="store_true", help="show a traceback on errors")
    sub = p.add_subparsers(dest="command", parser_class=_Parser)

    s = sub.add_parser("scan", help="list every global a pickle names, and the verdict")
    s.add_argument("src")
    s.add_argument("--json", action="store_true", help="machine-readable output")

    i = sub.add_parser("inspect", help="what is in this file")
    i.add_argument("src")
    i.add_argument("--json", action="store_true", help="machine-readable output")
    return p


def _cmd_scan(args: argparse.Namespace) -> int:
    report = scan_file(args.src)
    if args.json:
        print(json.dumps({
            "path": report.path,
            "container": report.container,
            "verdict": report.verdict,
            "error": report.error,
            "globals": [
                {"module": u.module, "name": u.name, "verdict": u.verdict, "offset": u.offset,
                 **({"reason": u.reason} if u.reason else {})}
                for u in report.globals
            ],
        }, indent=2))
    else:
        print(f"file:      {report.path}")
        print(f"container: {report.container or 'unknown'}")
        counts: dict[tuple[str, str, str], int] = {}
        for u in report.globals:
            key = (u.module, u.name, u.verdict)
            counts[key] = counts.get(key, 0) + 1
        print(f"globals:   {len(counts)} distinct")
        for (module, name, verdict), n in sorted(counts.items(), key=lambda kv: (kv[0][2] != "refused", kv[0])):
            times = f" ×{n}" if n > 1 else ""
            print(f"  {verdict:<13} {module}.{name}{times}")
        print(f"verdict:   {report.verdict}")
    if report.error:
        _error_line(report.error)
    return report.exit_code


def _cmd_inspect(args: argparse.Namespace) -> int:
    with open_model_file(args.src) as mf:
        tensors = list(mf.tensors())
        if args.json:
            print(json.dumps({
                "path": mf.path,
                "size": mf.size,
                "container": mf.container,
                "top_level": describe(mf.root),
                "tensors": [{"path": p, "shape": list(t.shape), "dtype": t.dtype.name} for p, t in tensors],
                "warnings": mf.warnings,
            }, indent=2))
            return 0
        print(f"file:      {mf.path} ({mf.size:,} bytes)")
        print(f"container: {mf.container}")
        print(f"top level: {describe(mf.root)}")
        print(f"tensors:   {len(tensors)}")
        width = max((len(p) for p, _ in tensors), default=0)
        for p, t in tensors:
            print(f"  {p:<{width}}  {t.dtype.name:<8} {list(t.shape)}")
        for w in mf.warnings:
            print(f"warning:   {w}")
    return 0


def _error_line(message: str) -> None:
    print(f"embconv: error: {' '.join(str(message).split())}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``embconv`` command; returns the exit code."""
    parser = _build_parser()
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            raise UsageError("a command is required: scan, inspect")
        handler: Any = {"scan": _cmd_scan, "inspect": _cmd_inspect}[args.command]
        return handler(args)
    except EmbconvError as e:
        if debug:
            traceback.print_exc()
        src = getattr(locals().get("args"), "src", None)
        _error_line(str(e) if e.path or not src else f"{src}: {e.message}")
        return e.exit_code
    except KeyboardInterrupt:
        _error_line("interrupted")
        return 130
    except BrokenPipeError:
        return 0
    except RecursionError:
        if debug:
            traceback.print_exc()
        _error_line(f"{getattr(locals().get('args'), 'src', '')}: input nests too deeply (limit)")
        return 3
    except MemoryError:
        src = getattr(locals().get("args"), "src", "")
        _error_line(f"{src}: needs more memory than this machine allows (limit)")
        return 3
    except Exception as e:  # a bug in embconv: still one line, exit 3, traceback with --debug
        if debug:
            traceback.print_exc()
        src = getattr(locals().get("args"), "src", "")
        _error_line(f"{src}: internal error ({type(e).__name__}: {e}); rerun with --debug and report it")
        return 3


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
