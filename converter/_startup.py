"""Ctrl-C (or SIGTERM/SIGHUP) while the ``embconv`` program is still starting — importing numpy
and the rest takes ~0.2 s, before ``cli.main`` can catch anything — ends it with the same one
line and exit status as later ("embconv: interrupted", 128 + the signal's number) instead of a
KeyboardInterrupt traceback. Nothing has been written yet, so exiting at once is safe.

Installed on import (converter/__init__.py imports this module first). Only the program installs it (``embconv …`` or ``python -m converter …``): importing the
library leaves the signal handlers alone."""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Any


def _is_program() -> bool:
    argv0 = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if argv0.lower() in ("embconv", "embconv.exe", "embconv-script.py"):
        return True
    orig = list(getattr(sys, "orig_argv", []))
    for i, a in enumerate(orig):
        if a == "-m" and i + 1 < len(orig):
            return orig[i + 1] == "converter"
        if a.startswith("-m") and len(a) > 2:
            return a[2:] == "converter"
    return False


def _exit_now(signum: int, _frame: Any) -> None:
    name = "" if signum == signal.SIGINT else f" ({signal.Signals(signum).name})"
    try:
        os.write(2, f"embconv: interrupted{name}\n".encode())
    except OSError:
        pass
    os._exit(128 + signum)


def guard() -> None:
    """Install the start-up handlers when this process is the embconv program."""
    if not _is_program() or threading.current_thread() is not threading.main_thread():
        return
    for n in ("SIGINT", "SIGTERM", "SIGHUP"):
        s = getattr(signal, n, None)
        if s is not None:
            try:
                signal.signal(s, _exit_now)
            except (OSError, ValueError):
                pass


guard()
