"""Atomic, all-or-nothing output: files are written into a private staging folder beside the
destination, checked there, and only then renamed into place with ``os.replace``.

* A destination that already exists needs ``force=True`` (else :class:`OutputError`, exit 5);
  a destination that *is* one of the inputs (same file by path, hard link or symlink) is always
  refused, and so is a file name longer than the file system allows.
* On any failure (including KeyboardInterrupt and any other BaseException) the staging folder
  and everything in it is removed, so nothing half-written is ever left at a destination.
* Durability: writers do not fsync. ``sync_in_background()`` flushes the staged files to disk
  in a thread (fsync waits on the disk, not the CPU) while the caller verifies them;
  ``commit()`` waits for it before any rename, and fsyncs the folder after, so a crash or
  power loss leaves either the old destination or the complete new file.
* A single file is committed with one ``os.replace`` (an existing file is swapped atomically).
  Several files (one per table; ONNX + external data; word2vec + sidecar) are committed one by
  one: a journal is written first, existing destinations are moved aside into the staging
  folder, and on any exception — or a signal (SIGINT/SIGTERM/SIGHUP are held back while the
  renames run) — the previous files are moved back.

The staging folder ``.<name>.<random>.embconv-tmp`` (``<name>``: at most 32 plain characters
of the first destination's name, so any legal destination name fits) holds

* ``owner``: who made it (``{"embconv-staging": 1, "pid", "start", "boot", "host"}``: the
  process id, its start time and the machine's boot id), locked with ``flock`` while the
  owner lives;
* ``new/``: the staged files under their destinations' base names (ONNX external data refers to
  its sibling by base name);
* ``journal``, ``previous/`` and ``committed`` during and after a multi-file commit.

A process killed without cleanup (SIGKILL, power loss) leaves its folder behind. The next
``Staging`` in that folder sweeps such folders — only folders with a valid ``owner`` file whose
process is gone (no such pid, another start time, another boot; never one on another host or
one whose lock is held) — putting back previous outputs an unfinished commit had moved aside,
and says so through :data:`notify` (one line on stderr by default).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from .errors import OutputError

SUFFIX = ".embconv-tmp"
OWNER, NEW, PREVIOUS, JOURNAL, COMMITTED = "owner", "new", "previous", "journal", "committed"
_MARK = "embconv-staging"
_HELD_SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n))


def _default_notify(message: str) -> None:
    try:
        print(f"embconv: {message}", file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


#: Called with one line when a sweep removes what a dead process left (replace it to redirect).
notify: Callable[[str], None] = _default_notify


# ---------------------------------------------------------------------------------------------
# checks before anything is written


def name_max(folder: Path) -> int:
    """The longest file name (bytes) the file system of ``folder`` allows (255 if unknown)."""
    try:
        return int(os.pathconf(folder, "PC_NAME_MAX"))
    except (OSError, ValueError, AttributeError):
        return 255


def refuse_inputs(paths: Iterable[str | os.PathLike], inputs: Iterable[str | os.PathLike]) -> None:
    """OutputError (exit 5) if one of ``paths`` exists and is one of ``inputs``: the same file
    (device and inode), whatever it is called (hard link, symlink, another spelling)."""
    sources = []
    for src in inputs:
        try:
            st = os.stat(src)
        except (OSError, ValueError):
            continue
        sources.append((st.st_dev, st.st_ino, os.fspath(src)))
    if not sources:
        return
    for p in paths:
        try:
            st = os.stat(p)
        except (OSError, ValueError):
            continue
        for dev, ino, src in sources:
            if (st.st_dev, st.st_ino) == (dev, ino):
                raise OutputError(f"is the input {os.fsdecode(src)} itself (the same file): writing it would destroy "
                                  "the input; choose another output name", path=os.fsdecode(p))


def check_destinations(paths: Iterable[Path], force: bool, inputs: Iterable[str | os.PathLike] = ()) -> None:
    """Raise OutputError if a destination is one of ``inputs`` (the same file, however named), its
    folder is missing, it is a folder, its name is too long for the file system, or it exists
    and ``force`` is False."""
    paths = list(paths)
    refuse_inputs(paths, inputs)
    for p in paths:
        if not p.parent.is_dir():
            raise OutputError(f"folder {str(p.parent)!r} does not exist", path=str(p))
        limit = name_max(p.parent)
        length = len(os.fsencode(p.name))
        if length > limit:
            raise OutputError(f"the file name is {length} bytes long; the file system allows at most {limit} "
                              "(choose a shorter DST or table name)", path=str(p))
        if p.is_dir():
            raise OutputError("is a folder; give a file name", path=str(p))
        if (p.exists() or p.is_symlink()) and not force:
            raise OutputError("exists; use --force to overwrite", path=str(p))


# ---------------------------------------------------------------------------------------------
# who owns a staging folder


def _boot_id() -> str | None:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip() or None
    except OSError:
        return None


def _start_time(pid: int) -> str | None:
    """The start time of process ``pid`` (clock ticks since boot, from /proc), None if unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    try:
        return stat.rsplit(b")", 1)[1].split()[19].decode()
    except (IndexError, UnicodeDecodeError):
        return None


def _identity() -> dict[str, Any]:
    pid = os.getpid()
    return {_MARK: 1, "pid": pid, "start": _start_time(pid), "boot": _boot_id(), "host": socket.gethostname()}


def _owner_gone(owner: dict[str, Any]) -> bool:
    """True only when the process that made a staging folder is certainly not running."""
    pid = owner.get("pid")
    if not isinstance(pid, int) or pid <= 0 or owner.get("host") != socket.gethostname():
        return False  # another machine (a shared file system): cannot tell
    boot = _boot_id()
    if boot is not None and owner.get("boot") is not None and owner["boot"] != boot:
        return True  # made before the last reboot
    if pid == os.getpid():
        return owner.get("start") is not None and owner.get("start") != _start_time(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        pass  # exists (another user's process)
    start = _start_time(pid)
    return owner.get("start") is not None and start is not None and start != owner["start"]


def _read_owner(folder: Path) -> dict[str, Any] | None:
    try:
        with open(folder / OWNER, "rb") as f:
            data = json.loads(f.read(4096))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get(_MARK) == 1 else None


def _lock(fd: int, block: bool) -> bool:
    """flock ``fd``; False if another holder has it (True where flock is unavailable)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if block else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    except OSError:
        return True  # a file system without locks: fall back on the pid check alone
    return True


# ---------------------------------------------------------------------------------------------
# signals held back while a commit (or its undoing) runs


@contextlib.contextmanager
def signals_held() -> Iterator[list[int]]:
    """Hold SIGINT/SIGTERM/SIGHUP back for the duration, then deliver them as they would have
    been (main thread only: elsewhere Python never raises for signals anyway). Yields the list
    of the signals caught so far (ignored ones left out), so a commit can see one arrived."""
    caught: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield caught
        return
    previous: dict[int, Any] = {}

    def hold(signum: int, _frame: Any) -> None:
        if previous.get(signum) is not signal.SIG_IGN:
            caught.append(signum)

    try:
        for s in _HELD_SIGNALS:
            previous[s] = signal.signal(s, hold)
        yield caught
    finally:
        for s, h in previous.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)
        for s in dict.fromkeys(caught):
            signal.raise_signal(s)


class _Stopped(Exception):
    """A signal arrived while a commit ran: it is undone, then the signal is delivered."""


def _stopped() -> OutputError:
    # Raised out of signals_held(): the held signal is delivered first and normally raises
    # (KeyboardInterrupt, the CLI's Interrupted); this only remains when its handler returns.
    return OutputError("interrupted by a signal: nothing was moved into place (previous files kept)")


# ---------------------------------------------------------------------------------------------
# undoing a commit (in process, or by the sweep for a dead process)


def _write_json(path: Path, data: Any) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f)
        f.flush()
        os.fsync(f.fileno())


def _undo(dir: Path, folder: Path) -> list[str]:
    """Put back what the journal of staging folder ``dir`` says an unfinished commit moved:
    new files placed at a destination are removed (only if that is still the very file placed)
    and previous files go back. Returns the names restored. Never raises for OSError."""
    if (dir / COMMITTED).exists():
        return []
    try:
        journal = json.loads((dir / JOURNAL).read_text(encoding="utf-8"))
        entries = journal["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    restored: list[str] = []
    for e in entries if isinstance(entries, list) else []:
        try:
            name, ident, had = e["name"], e["new"], e["previous"]
        except (KeyError, TypeError):
            continue
        if not isinstance(name, str) or "/" in name or name in ("", ".", ".."):
            continue
        dest = folder / name
        try:
            st = os.lstat(dest)
            cur: tuple[int, int] | None = (st.st_dev, st.st_ino)
        except OSError:
            cur = None
        ours = cur is not None and list(cur) == ident
        try:
            if ours:
                os.replace(dest, dir / NEW / name)  # back where it came from (removed with the folder)
                cur = None
            if had and cur is None and os.path.lexists(dir / PREVIOUS / name):
                os.replace(dir / PREVIOUS / name, dest)
                restored.append(name)
        except OSError:
            pass
    return restored


def sweep(folder: Path) -> list[Path]:
    """Remove the staging folders in ``folder`` whose owner process is gone, restoring previous
    outputs an unfinished commit had moved aside; return the folders removed. Anything that is
    not an embconv staging folder (a valid ``owner`` file), or whose owner may live, stays."""
    removed: list[Path] = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        if not (name.startswith(".") and name.endswith(SUFFIX)):
            continue
        d = folder / name
        if d.is_symlink() or not d.is_dir():
            continue
        owner = _read_owner(d)
        if owner is None or not _owner_gone(owner):
            continue
        try:
            fd = os.open(d / OWNER, os.O_RDONLY)
        except OSError:
            continue
        try:
            if not _lock(fd, block=False):
                continue  # its owner (or another sweep) holds it
            try:
                if os.fstat(fd).st_ino != os.stat(d / OWNER).st_ino:
                    continue
            except OSError:
                continue  # another sweep removed it meanwhile
            restored = _undo(d, folder)
            shutil.rmtree(d, ignore_errors=True)
        finally:
            os.close(fd)
        if os.path.lexists(d):
            continue
        removed.append(d)
        what = f"; put back the previous {', '.join(restored)}" if restored else ""
        notify(f"removed {d}, left by an embconv run (pid {owner.get('pid')}) that did not finish{what}")
    return removed


def _short(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_+=-]", "", name.replace(".", "-"))[:32] or "out"


class Staging:
    """A private staging folder in the destinations' folder. ``path(dest)`` is where to write
    the file that will become ``dest``; it keeps dest's base name, so relative references
    between staged files (ONNX external data) already hold. ``inputs``: files that must never be
    a destination (the source being converted)."""

    def __init__(self, destinations: list[Path], force: bool, inputs: Iterable[str | os.PathLike] = ()) -> None:
        self.destinations = [Path(os.path.abspath(d)) for d in destinations]
        if len(set(self.destinations)) != len(self.destinations):
            raise OutputError("two outputs would get the same file name", path=str(destinations[0]))
        folders = {d.parent for d in self.destinations}
        if len(folders) != 1:
            raise OutputError("all files of one output must be in one folder", path=str(destinations[0]))
        self.force = force
        self.inputs = list(inputs)
        check_destinations(self.destinations, force, self.inputs)
        self.folder = self.destinations[0].parent
        self.committed = False
        self._sync: threading.Thread | None = None
        self._sync_error: OSError | None = None
        self._sync_started = False
        self._owner_fd: int | None = None
        sweep(self.folder)
        try:
            self.dir = Path(tempfile.mkdtemp(prefix=f".{_short(self.destinations[0].name)}.", suffix=SUFFIX,
                                             dir=self.folder))
        except OSError as e:
            raise OutputError(f"cannot write in {str(self.folder)!r}: {e.strerror or e}",
                              path=str(self.destinations[0])) from e
        try:
            with signals_held():  # a folder without its owner file would never be swept
                fd = os.open(self.dir / OWNER, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                self._owner_fd = fd
                _lock(fd, block=True)
                os.write(fd, json.dumps(_identity()).encode())
                (self.dir / NEW).mkdir()
        except BaseException as e:
            self.cleanup()
            if isinstance(e, OSError):
                raise OutputError(f"cannot write in {str(self.folder)!r}: {e.strerror or e}",
                                  path=str(self.destinations[0])) from e
            raise

    def sync_in_background(self) -> None:
        """Start flushing every staged file to disk in a thread; ``commit`` waits for it."""
        self.wait_synced()
        self._sync_started = True
        files = [p for p in self.staged() if p.is_file()]

        def run() -> None:
            try:
                for p in files:
                    fd = os.open(p, os.O_RDONLY)
                    try:
                        os.fsync(fd)
                    finally:
                        os.close(fd)
            except OSError as e:
                self._sync_error = e

        self._sync = threading.Thread(target=run, name="embconv-fsync", daemon=True)
        self._sync.start()

    def syncing(self) -> bool:
        """True while the background flush runs."""
        return self._sync is not None and self._sync.is_alive()

    def wait_synced(self, tick: Callable[[], None] | None = None) -> None:
        """Wait for ``sync_in_background`` (OutputError if flushing to disk failed); ``tick`` is
        called about every 0.2 s while waiting."""
        if self._sync is not None:
            while True:
                self._sync.join(0.2 if tick is not None else None)
                if not self._sync.is_alive():
                    break
                if tick is not None:
                    tick()
            self._sync = None
        if self._sync_error is not None:
            e, self._sync_error = self._sync_error, None
            raise OutputError(f"cannot flush the output to disk: {e.strerror or e}",
                              path=str(self.destinations[0])) from e

    def _sync_folder(self) -> None:
        try:
            fd = os.open(self.folder, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(fd)
        except OSError:
            pass  # some file systems cannot fsync a folder; the renames happened regardless
        finally:
            os.close(fd)

    def path(self, dest: Path | str) -> Path:
        d = Path(os.path.abspath(dest))
        if d not in self.destinations:
            raise ValueError(f"{dest} is not a declared destination")
        return self.dir / NEW / d.name

    def staged(self) -> list[Path]:
        return [self.path(d) for d in self.destinations]

    def destination_of(self, staged: str | os.PathLike) -> Path | None:
        """The destination a staged path stands for (None if it is not one)."""
        p = Path(os.path.abspath(staged))
        for d in self.destinations:
            if self.path(d) == p:
                return d
        return None

    def commit(self, tick: Callable[[], None] | None = None) -> list[Path]:
        """Move every staged file into place (all-or-nothing as far as possible)."""
        if not self._sync_started:
            self.sync_in_background()
        self.wait_synced(tick)
        check_destinations(self.destinations, self.force, self.inputs)  # nothing appeared meanwhile
        for d in self.destinations:
            if not self.path(d).is_file():
                raise OutputError("internal error: the file was not written", path=str(d))
        if len(self.destinations) == 1:
            d = self.destinations[0]
            with signals_held() as caught:
                if caught:
                    raise _stopped()
                try:
                    os.replace(self.path(d), d)
                except OSError as e:
                    raise OutputError(f"cannot move the output into place: {e.strerror or e}", path=str(d)) from e
                self.committed = True
            self._sync_folder()
            return [d]
        with signals_held() as caught:
            try:
                self._commit_many(caught)
            except BaseException as e:
                _undo(self.dir, self.folder)
                if isinstance(e, OSError):
                    raise OutputError(f"cannot move the output into place: {e.strerror or e}",
                                      path=str(self.destinations[0])) from e
                if isinstance(e, _Stopped):
                    raise _stopped() from None
                raise
            self.committed = True
        self._sync_folder()
        return list(self.destinations)

    def _commit_many(self, caught: list[int]) -> None:
        backup = self.dir / PREVIOUS
        backup.mkdir()
        entries = []
        for d in self.destinations:
            st = os.stat(self.path(d))
            entries.append({"name": d.name, "new": [st.st_dev, st.st_ino], "previous": os.path.lexists(d)})
        _write_json(self.dir / JOURNAL, {"folder": os.fsdecode(self.folder), "files": entries})
        for d, e in zip(self.destinations, entries, strict=True):
            if e["previous"]:
                os.replace(d, backup / d.name)
        for d in self.destinations:
            os.replace(self.path(d), d)
        if caught:  # a signal came while the files moved: all-or-nothing means nothing
            raise _Stopped()
        (self.dir / COMMITTED).touch()

    def cleanup(self) -> None:
        """Remove the staging folder (and, after a failed or interrupted commit, put the previous
        outputs back first). Signals arriving meanwhile are held back until it is done."""
        with signals_held():
            if self._sync is not None and os.name != "posix":
                self._sync.join()  # Windows cannot delete files a thread still has open
            if getattr(self, "dir", None) is not None:
                if not self.committed:
                    _undo(self.dir, self.folder)
                shutil.rmtree(self.dir, ignore_errors=True)
            if self._owner_fd is not None:
                with contextlib.suppress(OSError):
                    os.close(self._owner_fd)
                self._owner_fd = None

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is not None:
            with _signals_dropped():
                self.cleanup()
        else:
            self.cleanup()


@contextlib.contextmanager
def _signals_dropped() -> Iterator[None]:
    """Ignore SIGINT/SIGTERM/SIGHUP for the duration (main thread only): while an error or an
    interruption is already unwinding, a second Ctrl-C must not abort the cleanup."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous: dict[int, Any] = {}
    try:
        for s in _HELD_SIGNALS:
            previous[s] = signal.signal(s, signal.SIG_IGN)
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)


__all__ = ["Staging", "check_destinations", "refuse_inputs", "name_max", "notify", "signals_held", "sweep"]
